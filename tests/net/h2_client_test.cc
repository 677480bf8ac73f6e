// The HTTP/2 upstream client (net/h2_client.h), h2c and h2 over TLS, through HttpClientPool's
// interface, against a real HTTP/2 server (nghttpd) and against peers that fail in the ways
// upstreams do.
#include "net/h2_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/net/nghttpd.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"

namespace doppel::net {
namespace {

namespace http = boost::beast::http;

class H2ClientTest : public ::testing::Test {
 protected:
  HttpClientPoolPtr MakePool(const std::string& url, ClientOptions options = {},
                             const TlsClientOptions& tls = {}) {
    auto parsed = ParseUrl(url);
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    std::shared_ptr<boost::asio::ssl::context> ctx;
    if (parsed->tls()) {
      auto made = MakeClientTlsContext(tls);
      EXPECT_TRUE(made.ok()) << made.status().ToString();
      ctx = made.value();
    }
    auto pool = HttpClientPool::Create(io_, parsed.value(), options, ctx);
    EXPECT_TRUE(pool.ok()) << pool.status().ToString();
    return pool.value();
  }

  static HttpRequest Get(const std::string& target) {
    HttpRequest req{http::verb::get, target, 11};
    req.set(http::field::host, "test");
    return req;
  }

  // Runs the io_context until `done` (an HTTP/2 connection keeps a read pending, so run()
  // would not return).
  void RunUntil(const bool& done, int seconds = 20) {
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(done);
  }

  ExchangeResult Run(HttpClientPool& pool, HttpRequest req) {
    ExchangeResult out;
    bool done = false;
    pool.Send(std::move(req), [&](ExchangeResult&& r) {
      out = std::move(r);
      done = true;
    });
    EXPECT_FALSE(done) << "the callback must not run inside Send";
    RunUntil(done);
    return out;
  }

  boost::asio::io_context io_;
};

TEST_F(H2ClientTest, ResponsesAndTrailersOverOneMultiplexedConnection) {
  testing::Nghttpd server({"grpc-status: 0", "x-check: done"});
  ASSERT_TRUE(server.ok());
  server.WriteFile("a.txt", "hello over h2");
  auto pool = MakePool(server.url());
  ExchangeResult r = Run(*pool, Get("/a.txt"));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.result_int(), 200u);
  EXPECT_EQ(r.response.version(), 20u);
  EXPECT_EQ(r.response.body(), "hello over h2");
  EXPECT_EQ(r.response[http::field::content_length], "13");
  EXPECT_EQ(r.trailers["grpc-status"], "0");
  EXPECT_EQ(r.trailers["x-check"], "done");
  EXPECT_FALSE(r.reused_connection);
  EXPECT_EQ(Run(*pool, Get("/missing")).response.result_int(), 404u);

  // 50 requests at once: one connection, every answer whole.
  int answered = 0;
  for (int i = 0; i < 50; ++i) {
    pool->Send(Get("/a.txt"), [&](ExchangeResult&& r) {
      EXPECT_EQ(r.error, ClientError::kNone) << r.detail;
      EXPECT_EQ(r.response.body(), "hello over h2");
      ++answered;
    });
  }
  io_.restart();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (answered < 50 && std::chrono::steady_clock::now() < deadline) {
    io_.run_one_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(answered, 50);
  EXPECT_EQ(pool->stats().connections_opened, 1u);
  EXPECT_EQ(pool->stats().exchanges, 52u);
  EXPECT_EQ(pool->stats().active, 0u);
}

// A streamed 4 MiB body is read piece by piece; the stream's window (256 KiB) is given back
// only as pieces are taken, so an unread stream holds at most its window. A reader that
// pauses longer than the idle timeout is not the upstream stalling: no timeout.
TEST_F(H2ClientTest, StreamedBodyFollowsTheReader) {
  testing::Nghttpd server({"grpc-status: 0"});
  ASSERT_TRUE(server.ok());
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 5);
  server.WriteFile("big.bin", big);
  ClientOptions options;
  options.read_idle_timeout = std::chrono::milliseconds(150);
  auto pool = MakePool(server.url(), options);
  BodyReaderPtr reader;
  bool head = false;
  pool->SendStreaming(Get("/big.bin"), [&](ExchangeResult&& r, BodyReaderPtr body) {
    ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
    EXPECT_EQ(r.response.result_int(), 200u);
    EXPECT_TRUE(r.response.body().empty());
    reader = std::move(body);
    head = true;
  });
  RunUntil(head);
  ASSERT_NE(reader, nullptr);
  // Nobody reads for a while: what arrived is bounded by the stream's window.
  io_.run_for(std::chrono::milliseconds(300));
  std::string got;
  bool end = false;
  size_t largest_piece = 0;
  while (!end) {
    bool piece_done = false;
    reader->ReadSome([&](ClientError error, std::string detail, std::string_view piece, bool e) {
      ASSERT_EQ(error, ClientError::kNone) << detail;
      got.append(piece);
      largest_piece = std::max(largest_piece, piece.size());
      end = e;
      piece_done = true;
    });
    RunUntil(piece_done);
    if (!piece_done) break;
  }
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  EXPECT_LE(largest_piece, BodyReader::kPieceBytes);
  EXPECT_EQ(reader->trailers()["grpc-status"], "0");
}

TEST_F(H2ClientTest, PostBodyGoesOutWithTe) {
  // nghttpd answers POST to a file like GET; what is checked is that the body and te are
  // accepted (an HTTP/2 server refuses connection-specific fields with a stream error).
  testing::Nghttpd server;
  ASSERT_TRUE(server.ok());
  server.WriteFile("p", "ok");
  auto pool = MakePool(server.url());
  HttpRequest req{http::verb::post, "/p", 11};
  req.set(http::field::host, "test");
  req.set(http::field::connection, "keep-alive");
  req.set(http::field::transfer_encoding, "chunked");
  req.set(http::field::content_type, "application/grpc");
  req.body() = std::string(100000, 'x');
  ExchangeResult r = Run(*pool, std::move(req));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.result_int(), 200u);
  EXPECT_EQ(r.response.body(), "ok");
}

TEST_F(H2ClientTest, RefusedConnectionIsAConnectError) {
  const unsigned port = testing::FreePort();
  auto pool = MakePool("h2c://127.0.0.1:" + std::to_string(port));
  ExchangeResult r = Run(*pool, Get("/"));
  EXPECT_EQ(r.error, ClientError::kConnect);
  EXPECT_NE(r.detail.find("connect to 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.detail;
}

TEST_F(H2ClientTest, Http11ServerIsABadResponse) {
  testing::TestUpstream h1;
  auto url = ParseUrl(h1.url()).value();
  auto pool = MakePool("h2c://127.0.0.1:" + std::to_string(url.port));
  ExchangeResult r = Run(*pool, Get("/size?n=3"));
  EXPECT_NE(r.error, ClientError::kNone);
  EXPECT_TRUE(r.error == ClientError::kBadResponse || r.error == ClientError::kReset) << r.detail;
}

TEST_F(H2ClientTest, SilentServerTimesOut) {
  // Accepts (the kernel completes the handshake) and never says a word.
  boost::asio::io_context other;
  boost::asio::ip::tcp::acceptor silent(other, {boost::asio::ip::make_address("127.0.0.1"), 0});
  silent.listen();
  ClientOptions o;
  o.response_timeout = std::chrono::milliseconds(300);
  auto pool = MakePool("h2c://127.0.0.1:" + std::to_string(silent.local_endpoint().port()), o);
  ExchangeResult r = Run(*pool, Get("/"));
  EXPECT_EQ(r.error, ClientError::kTimeout) << r.detail;
  EXPECT_NE(r.detail.find("300 ms"), std::string::npos) << r.detail;
}

TEST_F(H2ClientTest, UrlSchemeH2cIsParsed) {
  auto u = ParseUrl("h2c://example.test:8080/base");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->http2());
  EXPECT_FALSE(u->tls());
  EXPECT_EQ(u->Authority(), "example.test:8080");
  EXPECT_EQ(ParseUrl("h2c://example.test")->port, 80u);
  auto tls = ParseUrl("H2://example.test/");
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls->http2());
  EXPECT_TRUE(tls->tls());
  EXPECT_EQ(tls->port, 443u);
  EXPECT_FALSE(ParseUrl("https://example.test")->http2());
}

// h2:// is HTTP/2 over TLS: the certificate is verified against the CA given (and the host),
// the server must choose h2 by ALPN, and requests are multiplexed on one connection, trailers
// included.
TEST_F(H2ClientTest, H2OverTlsVerifiesTheServerAndMultiplexes) {
  testing::Nghttpd server({"grpc-status: 0"}, testing::Nghttpd::Transport::kTls);
  ASSERT_TRUE(server.ok());
  server.WriteFile("a.txt", "hello over h2 and TLS");
  ASSERT_EQ(server.url().rfind("h2://", 0), 0u) << server.url();

  auto pool = MakePool(server.url(), {}, {.verify = true, .ca_file = server.tls_ca()});
  ExchangeResult r = Run(*pool, Get("/a.txt"));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.version(), 20u);
  EXPECT_EQ(r.response.body(), "hello over h2 and TLS");
  EXPECT_EQ(r.trailers["grpc-status"], "0");
  int answered = 0;
  bool all_answered = false;
  for (int i = 0; i < 20; ++i) {
    pool->Send(Get("/a.txt"), [&](ExchangeResult&& x) {
      EXPECT_EQ(x.error, ClientError::kNone) << x.detail;
      EXPECT_EQ(x.response.body(), "hello over h2 and TLS");
      all_answered = ++answered == 20;
    });
  }
  RunUntil(all_answered);
  EXPECT_EQ(pool->stats().connections_opened, 1u);

  // Without the CA the certificate is refused, and the exchange says it was the handshake.
  auto untrusting = MakePool(server.url(), {}, {.verify = true, .ca_file = ""});
  ExchangeResult refused = Run(*untrusting, Get("/a.txt"));
  EXPECT_EQ(refused.error, ClientError::kConnect);
  EXPECT_NE(refused.detail.find("TLS handshake"), std::string::npos) << refused.detail;
}

// https:// lets the server choose by ALPN: nghttpd chooses h2, so the exchanges go over
// HTTP/2 (trailers included), multiplexed on one connection after the one handshake that
// found out; an HTTP/1.1-only server keeps HTTP/1.1 (the same URL scheme).
TEST_F(H2ClientTest, HttpsGoesOverH2WhenTheServerChoosesIt) {
  testing::Nghttpd server({"grpc-status: 0"}, testing::Nghttpd::Transport::kTls);
  ASSERT_TRUE(server.ok());
  server.WriteFile("a.txt", "chosen by ALPN");
  auto pool = MakePool("https://127.0.0.1:" + std::to_string(server.port()), {},
                       {.verify = true, .ca_file = server.tls_ca()});
  ExchangeResult r = Run(*pool, Get("/a.txt"));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.version(), 20u);
  EXPECT_EQ(r.response.body(), "chosen by ALPN");
  EXPECT_EQ(r.trailers["grpc-status"], "0");
  int answered = 0;
  bool all_answered = false;
  for (int i = 0; i < 20; ++i) {
    pool->SendStreaming(Get("/a.txt"), [&](ExchangeResult&& head, BodyReaderPtr body) {
      EXPECT_EQ(head.error, ClientError::kNone) << head.detail;
      EXPECT_EQ(head.response.version(), 20u);
      EXPECT_NE(body, nullptr);
      all_answered = ++answered == 20;
    });
  }
  RunUntil(all_answered);
  // The handshake that found h2, then the HTTP/2 connection.
  EXPECT_EQ(pool->stats().connections_opened, 2u);
  EXPECT_EQ(pool->stats().exchanges, 21u);

  testing::TestTlsUpstream http11({.keep_alive = true});
  auto plain = MakePool("https://127.0.0.1:" + std::to_string(http11.port()), {},
                        {.verify = false, .ca_file = ""});
  ExchangeResult one = Run(*plain, Get("/a"));
  ASSERT_EQ(one.error, ClientError::kNone) << one.detail;
  EXPECT_EQ(one.response.version(), 11u);
  EXPECT_EQ(http11.answered().size(), 1u);
}

// A TCP balancer on 127.0.0.1 in front of one backend at a time: each connection it accepts
// is relayed byte for byte to the backend set last. Switch() also cuts the connections relayed
// so far, as a backend leaving in a rolling deploy does.
class SwitchingBalancer {
 public:
  explicit SwitchingBalancer(uint16_t backend) : backend_(backend) {
    listen_fd_ = testing::ListenOnLoopback(16, &port_);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~SwitchingBalancer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    Cut();
    for (auto& relay : relays_) relay.join();
    for (int fd : fds_) ::close(fd);
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  void Switch(uint16_t backend) {
    backend_ = backend;
    Cut();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      const int backend = testing::ConnectToLoopback(backend_.load());
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(client);
      if (backend < 0) {
        ::shutdown(client, SHUT_RDWR);
        continue;
      }
      fds_.push_back(backend);
      relays_.emplace_back([client, backend] { Relay(client, backend); });
    }
  }
  // Until either side closes (or 10 s without a byte); then both are cut.
  static void Relay(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    for (bool open = true; open && ::poll(fds, 2, 10000) > 0;) {
      for (int i = 0; i < 2 && open; ++i) {
        if (!fds[i].revents) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        open = n > 0 && ::send(fds[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
      }
    }
    ::shutdown(a, SHUT_RDWR);
    ::shutdown(b, SHUT_RDWR);
  }
  void Cut() {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<uint16_t> backend_;
  std::mutex mu_;
  std::vector<int> fds_;  // guarded by mu_, closed at the end
  std::vector<std::thread> relays_;
  std::thread accept_thread_;
};

// An https:// pool follows its upstream both ways: behind one address, an h2 server (nghttpd)
// is replaced by an HTTP/1.1-only one and then comes back. The exchange that finds HTTP/1.1
// on the HTTP/2 pool's new connection goes over HTTP/1.1 instead of failing, and so do the
// later ones; a later new connection that finds h2 switches again. On the way back, the idle
// HTTP/1.1 connection the balancer cut (a TCP close, no TLS close_notify: stream_truncated)
// is retried on a new connection, as a plain one's end of stream is.
TEST_F(H2ClientTest, HttpsFollowsTheServerFromH2BackToHttp11AndAgain) {
  testing::Nghttpd h2_server({}, testing::Nghttpd::Transport::kTls);
  ASSERT_TRUE(h2_server.ok());
  h2_server.WriteFile("a", "over h2");
  testing::TestTlsUpstream http11({.keep_alive = true});
  SwitchingBalancer balancer(static_cast<uint16_t>(h2_server.port()));
  auto pool = MakePool("https://127.0.0.1:" + std::to_string(balancer.port()), {},
                       {.verify = false, .ca_file = ""});

  ExchangeResult first = Run(*pool, Get("/a"));
  ASSERT_EQ(first.error, ClientError::kNone) << first.detail;
  EXPECT_EQ(first.response.version(), 20u);
  EXPECT_EQ(first.response.body(), "over h2");

  balancer.Switch(http11.port());
  for (const char* target : {"/b", "/c"}) {
    ExchangeResult r = Run(*pool, Get(target));
    ASSERT_EQ(r.error, ClientError::kNone) << target << ": " << r.detail;
    EXPECT_EQ(r.response.version(), 11u) << target;
    EXPECT_EQ(r.response.body(), std::string("tls ok ") + target);
  }
  EXPECT_EQ(http11.answered(), (std::vector<std::string>{"/b", "/c"}));

  balancer.Switch(static_cast<uint16_t>(h2_server.port()));
  ExchangeResult again = Run(*pool, Get("/a"));
  ASSERT_EQ(again.error, ClientError::kNone) << again.detail;
  EXPECT_EQ(again.response.version(), 20u);
  EXPECT_EQ(again.response.body(), "over h2");
  // Each exchange counted once, over whichever pool answered it.
  EXPECT_EQ(pool->stats().exchanges, 4u);
  pool->Shutdown();
}

// A TLS server that does not choose h2 by ALPN (an HTTP/1.1-only HTTPS server) fails an h2://
// exchange with kConnect and a reason naming ALPN, instead of sending HTTP/2 frames to it.
TEST_F(H2ClientTest, H2OverTlsRefusesAServerThatDoesNotChooseH2) {
  testing::TestTlsUpstream http11({.keep_alive = true});
  auto pool = MakePool("h2://127.0.0.1:" + std::to_string(http11.port()), {},
                       {.verify = false, .ca_file = ""});
  ExchangeResult r = Run(*pool, Get("/a"));
  EXPECT_EQ(r.error, ClientError::kConnect);
  EXPECT_NE(r.detail.find("by ALPN, not h2"), std::string::npos) << r.detail;
  EXPECT_TRUE(http11.answered().empty());
}

}  // namespace
}  // namespace doppel::net
