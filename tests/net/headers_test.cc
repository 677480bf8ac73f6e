#include "net/headers.h"

#include <gtest/gtest.h>

namespace doppel::net {
namespace {

namespace http = boost::beast::http;

std::vector<std::string> Names(const http::fields& f) {
  std::vector<std::string> out;
  for (const auto& h : f) out.emplace_back(h.name_string());
  return out;
}

TEST(HeadersTest, StripsHopByHopAndConnectionNamed) {
  http::fields f;
  f.insert("Host", "shop.example");
  f.insert("Connection", "keep-alive, X-Private");
  f.insert("Accept", "*/*");
  f.insert("X-Private", "secret");
  f.insert("Connection", "X-Other");
  f.insert("X-Other", "1");
  f.insert("Keep-Alive", "timeout=5");
  f.insert("Proxy-Connection", "keep-alive");
  f.insert("TE", "trailers");
  f.insert("Trailer", "X-Checksum");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Upgrade", "websocket");
  f.insert("x-private", "again");
  StripHopByHop(f);
  EXPECT_EQ(Names(f), (std::vector<std::string>{"Host", "Accept"}));
}

TEST(HeadersTest, HopByHopNames) {
  EXPECT_TRUE(IsHopByHop("connection"));
  EXPECT_TRUE(IsHopByHop("Transfer-Encoding"));
  EXPECT_FALSE(IsHopByHop("Content-Length"));
  EXPECT_FALSE(IsHopByHop("Host"));
}

TEST(HeadersTest, ForwardingHeadersAppendAndKeepHost) {
  http::fields f;
  f.insert("Host", "shop.example:8080");
  f.insert("X-Forwarded-For", "10.0.0.1");
  f.insert("Accept", "*/*");
  f.insert("X-Forwarded-For", "10.0.0.2");
  f.insert("Via", "1.0 edge");
  f.insert("X-Forwarded-Proto", "https");
  AddForwardingHeaders(f, {"127.0.0.1", "http", 11});
  EXPECT_EQ(f["Host"], "shop.example:8080");
  EXPECT_EQ(f["X-Forwarded-For"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(std::distance(f.equal_range("X-Forwarded-For").first,
                          f.equal_range("X-Forwarded-For").second),
            1);
  EXPECT_EQ(f["X-Forwarded-Proto"], "http");
  EXPECT_EQ(f["X-Forwarded-Host"], "shop.example:8080");
  EXPECT_EQ(f["Via"], "1.0 edge, 1.1 doppel");
}

TEST(HeadersTest, ForwardingHeadersOnBareRequest) {
  http::fields f;
  AddForwardingHeaders(f, {"::1", "http", 10});
  EXPECT_EQ(f["X-Forwarded-For"], "::1");
  EXPECT_EQ(f["Via"], "1.0 doppel");
  EXPECT_EQ(f.find("X-Forwarded-Host"), f.end());
}

}  // namespace
}  // namespace doppel::net
