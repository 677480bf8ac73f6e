// https upstreams: certificate verification by default, a custom CA, and --upstream-insecure.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>

#include "net/http_client.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"

namespace doppel::net {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

class TlsClientTest : public ::testing::Test {
 protected:
  ExchangeResult Get(HttpClientPool& pool, const std::string& target) {
    HttpRequest req{http::verb::get, target, 11};
    req.set(http::field::host, "localhost");
    ExchangeResult out;
    pool.Send(std::move(req), [&](ExchangeResult&& r) { out = std::move(r); });
    io_.restart();
    io_.run_for(std::chrono::seconds(10));
    return out;
  }
  HttpClientPoolPtr Pool(const std::string& host, TlsClientOptions tls) {
    auto ctx = MakeClientTlsContext(tls);
    EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
    auto url = ParseUrl("https://" + host + ":" + std::to_string(upstream_.port()));
    return HttpClientPool::Create(io_, url.value(), {}, ctx.value()).value();
  }

  doppel::testing::TestTlsUpstream upstream_{{.keep_alive = true}};
  asio::io_context io_;
};

TEST_F(TlsClientTest, VerifiesAgainstAGivenCaAndKeepsTheConnection) {
  const std::string ca = std::filesystem::temp_directory_path() / "doppel-test-ca.pem";
  std::ofstream(ca) << upstream_.cert_pem();
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto pool = Pool(host, {true, ca});
    ExchangeResult a = Get(*pool, "/a");
    ASSERT_EQ(a.error, ClientError::kNone) << host << ": " << a.detail;
    EXPECT_EQ(a.response.body(), "tls ok /a");
    ExchangeResult b = Get(*pool, "/b");
    ASSERT_EQ(b.error, ClientError::kNone) << b.detail;
    EXPECT_TRUE(b.reused_connection);
    pool->Shutdown();
  }
  std::filesystem::remove(ca);
}

TEST_F(TlsClientTest, UnknownCertificateIsRefusedByDefault) {
  auto pool = Pool("127.0.0.1", {});
  ExchangeResult r = Get(*pool, "/a");
  EXPECT_EQ(r.error, ClientError::kConnect);
  EXPECT_NE(r.detail.find("TLS handshake"), std::string::npos) << r.detail;
}

TEST_F(TlsClientTest, InsecureSkipsVerification) {
  auto pool = Pool("127.0.0.1", {false, ""});
  ExchangeResult r = Get(*pool, "/x");
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.body(), "tls ok /x");
}

// A server that takes the connection and never answers the TLS handshake (a listening socket
// nobody accepts on: the kernel completes the TCP handshake) fails the exchange as a timeout
// within connect_timeout, over HTTP/1.1 (https://) and HTTP/2 (h2://) alike.
TEST_F(TlsClientTest, AHandshakeThatNeverAnswersTimesOut) {
  uint16_t port = 0;
  const int fd = doppel::testing::ListenOnLoopback(16, &port);
  ASSERT_GE(fd, 0);
  auto ctx = MakeClientTlsContext({false, ""});
  ASSERT_TRUE(ctx.ok());
  ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(300);
  for (const char* scheme : {"https", "h2"}) {
    auto url = ParseUrl(std::string(scheme) + "://127.0.0.1:" + std::to_string(port));
    ASSERT_TRUE(url.ok());
    auto pool = HttpClientPool::Create(io_, url.value(), options, ctx.value()).value();
    const auto start = std::chrono::steady_clock::now();
    ExchangeResult r = Get(*pool, "/a");
    EXPECT_EQ(r.error, ClientError::kTimeout) << scheme << ": " << r.detail;
    // The connect succeeded: the message names the handshake, the step that hung.
    EXPECT_NE(r.detail.find("TLS handshake with 127.0.0.1:"), std::string::npos)
        << scheme << ": " << r.detail;
    EXPECT_NE(r.detail.find("timed out"), std::string::npos) << scheme << ": " << r.detail;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << scheme;
    pool->Shutdown();
  }
  ::close(fd);
}

}  // namespace
}  // namespace doppel::net
