#include "net/headers.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace doppel::net {
namespace {

namespace http = boost::beast::http;

std::vector<std::string> Names(const http::fields& f) {
  std::vector<std::string> out;
  for (const auto& h : f) out.emplace_back(h.name_string());
  return out;
}

// Fields with these lines, in this order (repeated names stay separate lines).
http::fields Fields(std::initializer_list<std::pair<const char*, const char*>> lines) {
  http::fields f;
  for (const auto& [name, value] : lines) f.insert(name, value);
  return f;
}

TEST(HeadersTest, StripsHopByHopAndConnectionNamed) {
  http::fields f = Fields({{"Host", "shop.example"},
                           {"Connection", "keep-alive, X-Private"},
                           {"Accept", "*/*"},
                           {"X-Private", "secret"},
                           {"Connection", "X-Other"},
                           {"X-Other", "1"},
                           {"Keep-Alive", "timeout=5"},
                           {"Proxy-Connection", "keep-alive"},
                           {"TE", "trailers"},
                           {"Trailer", "X-Checksum"},
                           {"Transfer-Encoding", "chunked"},
                           {"Upgrade", "websocket"},
                           {"x-private", "again"}});
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
  http::fields f = Fields({{"Host", "shop.example:8080"},
                           {"X-Forwarded-For", "10.0.0.1"},
                           {"Accept", "*/*"},
                           {"X-Forwarded-For", "10.0.0.2"},
                           {"Via", "1.0 edge"},
                           {"X-Forwarded-Proto", "https"}});
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
