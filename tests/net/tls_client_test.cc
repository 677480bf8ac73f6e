// https upstreams: certificate verification by default, a custom CA, and --upstream-insecure.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "net/http_client.h"

namespace doppel::net {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// Self-signed for DNS:localhost and IP:127.0.0.1, valid until 2126. Test use only.
constexpr const char kCert[] = R"(
-----BEGIN CERTIFICATE-----
MIIDJzCCAg+gAwIBAgIUaUggedxmNi+Kk8BDNxYnX2tB4M4wDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNzAyNDMwMloYDzIxMjYx
MTAzMDI0MzAyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCwrRpN+VBBuNQ9v62fFhcCLLm86ez8ZMEoZl+Of15X
7EFewYQUoTnKoWtltRRzUuPAVpUyQf+ZG8IYmfzwki5ou2m1o8VEboHPAcfQATQE
zwus9aKEVA7fS/lbz72JcgIvn8KUKRnSNwOusH1D0peMgYVhvLnKTuh5P2HTUUWO
g7ImWs+S7E5f0Q41lgOreli51nffErh5UaBVMurMoiMs2jaUeXtHjphmIcciOfDp
PJuxT4+OyQNjqF/EfXAFDz8YmXLkj9OyzBMbgk8pm42ZUhnyaVRJRz3uLRnEYxmz
TInCn8pcp0jgu+yVn4HZMaDaxceI+j+82TBvo+O1KNUZAgMBAAGjbzBtMB0GA1Ud
DgQWBBTt7/kfWnGE+OFzU4YDZbVjlxLVJjAfBgNVHSMEGDAWgBTt7/kfWnGE+OFz
U4YDZbVjlxLVJjAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGCCWxvY2FsaG9z
dIcEfwAAATANBgkqhkiG9w0BAQsFAAOCAQEACLvQgBxGB/Wg4vUbeD+TsQ6GSS7Q
tX8tx/J4xuFjVqgZlXrgR1sKTAiHc+YyQaeayxwwXyDB9dtB8sbvhF6Xspb36TgX
IR3rPVI3GVGvm2/JBKNFtDlewIGsFyvCqI8/Kq/nlbH/sOS1fz/BDQ8i7kvQrPle
T7LhJTexez7zgmEJ8rehWvCKh4aLHbT4lTLWUjWIsbJ4RdGpRwi3YFWrLgE7p4J+
RgcjOVgDBZpm9NXuJtLsbGiyfiBtReXPNz9x4xmGmZSMwSMA76PDcHuUZ1zSmpIE
wYCQPZgm83vsszfFF5tlV2xpd8iC67G3KFcIIt4BlIhip+Tjm6yHXLqVdg==
-----END CERTIFICATE-----
)";
constexpr const char kKey[] = R"(
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCwrRpN+VBBuNQ9
v62fFhcCLLm86ez8ZMEoZl+Of15X7EFewYQUoTnKoWtltRRzUuPAVpUyQf+ZG8IY
mfzwki5ou2m1o8VEboHPAcfQATQEzwus9aKEVA7fS/lbz72JcgIvn8KUKRnSNwOu
sH1D0peMgYVhvLnKTuh5P2HTUUWOg7ImWs+S7E5f0Q41lgOreli51nffErh5UaBV
MurMoiMs2jaUeXtHjphmIcciOfDpPJuxT4+OyQNjqF/EfXAFDz8YmXLkj9OyzBMb
gk8pm42ZUhnyaVRJRz3uLRnEYxmzTInCn8pcp0jgu+yVn4HZMaDaxceI+j+82TBv
o+O1KNUZAgMBAAECggEABQIBFf74PAaqyG3JlHHuOMbvBFhumdhaw8QEFyBL2qrl
DvQmA+Yugsx4xHcho2Ow9jOWEsi9X5gCdEtQGLsSAvC1/jqsRaRqvEUBBoe0M2Mx
gedsAft2ePSYtrYgmZfgUTyCacvw8g0SZwYUZOLgHhDRSKwOaZo7O22VHqXl9nQ/
2Z3yHxRiafFFFM2f3HfRtvUidOBHxogJDKf8zPpSt1kI/n5C0OjMRmEdqsMTyoVx
7V5fGO4+D0sd7pb/IASZyBgyZObZaYOBVNs9ECHihfycmxvedVc4x9trtTip6UwP
lvjE39FrbVGTlCp9+pcLhjQwG/6WK+POK0GHVHXcUQKBgQDhfoOyLYwBplB8tyEF
UaeNqcjn08jAVMCqIG2U4gQ74SSToS5uDd5aEa88Lm3ymU0XmeoOF/rvadJjNp0p
QTn235TFhPNF2f+Ekdp0MzCo4VvQJaBIRDc2Dho2QpRBE+1c/svN8rZYefZHzLRy
+Mc/Xye0PYlZEThjUg4VLBw3kQKBgQDIk+LLvWbYureaY9BkDzVsTBKsahHgdyQH
Wrcc1VNFCPCxXWgNddO0SdEOnM4JOFrO9x/8LVKMsV/9YxQdfR9dl0QsyGZnLO0r
l3qPryjX9FJVNTKIEmfIMi5WpTD3U0CqW32ZoFGLeWSoE3snQftkq36ch1gkJ4Fw
9rIHYjZRCQKBgQC6TC0AC1NNlZuPvjjAzTpx9uEubzG/fQYESHBgfe7jjdoLQjI6
6KhYn524Sd+6e99ObXILHNLL9BDGuTtU9zeteADQw0u93SKW422pbRV5oV6adEud
CQbYWQRc6drUfWMw3q2AxFLUfEb2APDgwBrVh4clCWYtOOXuYL+TzHKvkQKBgAEZ
RknFbNXNGAphd5fEuY8xT3zgS97F6E2eApjG1mDvbpoaH+LK/XDkYp/I3hwQ0faG
RgeUm/onUpZJv6d1swFJPddc9aqlBVuSxdoZpIiiTv0mgHNcXnMrSzOwTfdc3mLQ
g3ye8zNnY9TD3o3Vf7IKenQTDbmM+dmLkGgX8qI5AoGAPcmJHK3GDFR7sScAy8e4
eZMV6T3gprwzDjm7lyeUYnRnrChPvzR0o4KVq1jL+NQ7zFSz1tR4hCBJQaty9NpE
kiDHfq0xLtdQ1IZ7/Uili2oD5oe6USskKz/L6i7OlCw5d9+XiptaPvNq7sPsAdMx
fcrPax85kCFI3E1ZJ1vsFjg=
-----END PRIVATE KEY-----
)";

// Blocking TLS upstream on 127.0.0.1:0, one connection at a time; answers "tls ok TARGET".
class TlsUpstream {
 public:
  TlsUpstream() : ctx_(asio::ssl::context::tls_server), acceptor_(io_) {
    ctx_.use_certificate_chain(asio::buffer(kCert, sizeof kCert - 1));
    ctx_.use_private_key(asio::buffer(kKey, sizeof kKey - 1), asio::ssl::context::pem);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~TlsUpstream() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  int handshakes() const { return handshakes_; }

 private:
  void Serve() {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) {
        if (stopping_) return;
        continue;
      }
      asio::ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
      stream.handshake(asio::ssl::stream_base::server, ec);
      if (ec) continue;
      ++handshakes_;
      boost::beast::flat_buffer buffer;
      for (;;) {
        http::request<http::string_body> req;
        http::read(stream, buffer, req, ec);
        if (ec) break;
        http::response<http::string_body> res{http::status::ok, 11};
        res.body() = "tls ok " + std::string(req.target());
        res.prepare_payload();
        http::write(stream, res, ec);
        if (ec) break;
      }
    }
  }

  asio::io_context io_;
  asio::ssl::context ctx_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> handshakes_{0};
  std::thread thread_;
};

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

  TlsUpstream upstream_;
  asio::io_context io_;
};

TEST_F(TlsClientTest, VerifiesAgainstAGivenCaAndKeepsTheConnection) {
  const std::string ca = std::filesystem::temp_directory_path() / "doppel-test-ca.pem";
  std::ofstream(ca) << kCert;
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

}  // namespace
}  // namespace doppel::net
