#include "net/http_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <thread>

#include "tests/net/test_upstream.h"

namespace doppel::net {
namespace {

namespace http = boost::beast::http;

class HttpClientTest : public ::testing::Test {
 protected:
  HttpClientPoolPtr MakePool(ClientOptions options = {}) {
    auto url = ParseUrl(upstream_.url());
    EXPECT_TRUE(url.ok());
    auto pool = HttpClientPool::Create(io_, url.value(), options, nullptr);
    EXPECT_TRUE(pool.ok());
    return pool.value();
  }

  HttpRequest Get(const std::string& target, http::verb verb = http::verb::get) {
    HttpRequest req{verb, target, 11};
    req.set(http::field::host, "test");
    return req;
  }

  HttpRequest Post(const std::string& target, std::string body) {
    HttpRequest req = Get(target, http::verb::post);
    req.body() = std::move(body);
    req.prepare_payload();
    return req;
  }

  // Runs one exchange to completion.
  ExchangeResult Run(HttpClientPool& pool, HttpRequest req) {
    return Await([&](ExchangeCallback done) { pool.Send(std::move(req), std::move(done)); });
  }
  ExchangeResult RunShaped(HttpClientPool& pool, HttpRequest req, RequestShape shape) {
    return Await(
        [&](ExchangeCallback done) { pool.SendShaped(std::move(req), shape, std::move(done)); });
  }
  // Starts an exchange with `start` and runs the io_context until it is over.
  ExchangeResult Await(const std::function<void(ExchangeCallback)>& start) {
    ExchangeResult out;
    bool done = false;
    start([&](ExchangeResult&& r) {
      out = std::move(r);
      done = true;
    });
    EXPECT_FALSE(done) << "the callback must not run inside Send";
    io_.restart();
    io_.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(done);
    return out;
  }
  // SendStreaming(req) read to its end (or its first error): the head, the body pieces.
  struct Streamed {
    ExchangeResult head;
    BodyReaderPtr reader;  // kept for its trailers()
    std::string body;
    size_t pieces = 0;
    ClientError error = ClientError::kNone;  // of the body
    std::string detail;
  };
  Streamed RunStreaming(HttpClientPool& pool, HttpRequest req) {
    Streamed out;
    bool got_head = false;
    pool.SendStreaming(std::move(req), [&](ExchangeResult&& r, BodyReaderPtr body) {
      out.head = std::move(r);
      out.reader = std::move(body);
      got_head = true;
    });
    io_.restart();
    while (!got_head && io_.run_one_for(std::chrono::seconds(10)) > 0) {
    }
    EXPECT_TRUE(got_head);
    if (!got_head || out.head.error != ClientError::kNone || !out.reader) return out;
    for (bool end = false; !end && out.error == ClientError::kNone;) {
      bool piece = false;
      out.reader->ReadSome(
          [&](ClientError error, std::string detail, std::string_view data, bool last) {
            out.error = error;
            out.detail = std::move(detail);
            out.body += data;
            ++out.pieces;
            end = last;
            piece = true;
          });
      io_.restart();  // run_one_for stopped it when it ran out of work
      while (!piece && io_.run_one_for(std::chrono::seconds(10)) > 0) {
      }
      EXPECT_TRUE(piece);
      if (!piece) break;
    }
    return out;
  }
  // The upstream's threads record what they read: waits (bounded) until `seen` holds.
  static bool Eventually(const std::function<bool()>& seen) {
    for (int i = 0; i < 200 && !seen(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return seen();
  }

  testing::TestUpstream upstream_;
  boost::asio::io_context io_;
};

// SendShaped (replay --fault): the request goes out as a misbehaving client sends it.
TEST_F(HttpClientTest, ShapedResetSendsTheRequestThenResetsBeforeTheAnswer) {
  auto pool = MakePool();
  HttpRequest req = Get("/slow?ms=200");
  RequestShape shape;
  shape.reset = true;
  ExchangeResult r = RunShaped(*pool, std::move(req), shape);
  EXPECT_EQ(r.error, ClientError::kReset);
  EXPECT_EQ(r.detail, kRequestResetByFault);
  // The upstream read the whole request; the connection is not pooled.
  ASSERT_TRUE(Eventually([&] { return upstream_.requests().size() >= 1; }));
  EXPECT_EQ(upstream_.requests()[0].target, "/slow?ms=200");
  EXPECT_EQ(pool->stats().idle, 0u);
  EXPECT_EQ(pool->stats().active, 0u);
}

TEST_F(HttpClientTest, ShapedTruncateWritesHalfTheBodyThenResets) {
  auto pool = MakePool();
  HttpRequest req = Post("/echo", std::string(4000, 'b'));
  RequestShape shape;
  shape.truncate = true;
  ExchangeResult r = RunShaped(*pool, std::move(req), shape);
  EXPECT_EQ(r.error, ClientError::kReset);
  EXPECT_EQ(r.detail, kRequestTruncatedByFault);
  // The upstream never got a whole request (it saw a connection and half a body).
  EXPECT_TRUE(Eventually([&] { return upstream_.connections() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(upstream_.requests().empty());
  // A second, unshaped exchange is untouched.
  ExchangeResult ok = Run(*pool, Post("/echo", "whole"));
  ASSERT_EQ(ok.error, ClientError::kNone) << ok.detail;
  EXPECT_EQ(ok.response.body(), "whole");
}

TEST_F(HttpClientTest, ShapedBandwidthThrottlesTheRequestAndKeepsEveryByte) {
  auto pool = MakePool();
  HttpRequest req = Post("/echo", std::string(3000, 'x'));
  RequestShape shape;
  shape.bytes_per_second = 2000;  // ~3.1 KB with the head: at least 1.5 s
  const auto start = std::chrono::steady_clock::now();
  ExchangeResult r = RunShaped(*pool, std::move(req), shape);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.body(), std::string(3000, 'x'));
  EXPECT_GE(took, std::chrono::milliseconds(1500));  // throttling is never faster
  EXPECT_EQ(pool->stats().idle, 0u);                 // a shaped connection is not pooled
}

TEST_F(HttpClientTest, KeepAliveReusesOneConnection) {
  auto pool = MakePool();
  for (int i = 0; i < 5; ++i) {
    HttpRequest req = Get("/echo", http::verb::post);
    req.body() = "hello " + std::to_string(i);
    req.prepare_payload();
    ExchangeResult r = Run(*pool, std::move(req));
    ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
    EXPECT_EQ(r.response.body(), "hello " + std::to_string(i));
    EXPECT_EQ(r.reused_connection, i > 0);
  }
  EXPECT_EQ(upstream_.connections(), 1u);
  EXPECT_EQ(pool->stats().connections_opened, 1u);
  EXPECT_EQ(pool->stats().reused, 4u);
  EXPECT_EQ(pool->stats().idle, 1u);
}

TEST_F(HttpClientTest, ConcurrentExchangesOpenSeveralConnections) {
  auto pool = MakePool();
  int done = 0;
  for (int i = 0; i < 8; ++i) {
    pool->Send(Get("/slow?ms=50"), [&](ExchangeResult&& r) {
      EXPECT_EQ(r.error, ClientError::kNone) << r.detail;
      EXPECT_EQ(r.response.body(), "slow");
      ++done;
    });
  }
  io_.run_for(std::chrono::seconds(20));
  EXPECT_EQ(done, 8);
  EXPECT_EQ(pool->stats().idle, 8u);
  EXPECT_EQ(pool->stats().active, 0u);
}

TEST_F(HttpClientTest, ChunkedResponseIsDecoded) {
  auto pool = MakePool();
  ExchangeResult r = Run(*pool, Get("/chunked?n=70000"));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.body().size(), 70000u);
  EXPECT_TRUE(r.response.chunked());
}

// An HTTP/1.1 chunked trailer section is the response's trailers, not its headers, both when
// the response is read whole (replay targets, mirrors) and piece by piece (the proxy); framing
// and hop-by-hop fields in it are dropped; the connection is reused after it.
TEST_F(HttpClientTest, ChunkedTrailersAreTrailersNotHeaders) {
  auto pool = MakePool();
  ExchangeResult whole = Run(*pool, Get("/trailers"));
  ASSERT_EQ(whole.error, ClientError::kNone) << whole.detail;
  EXPECT_EQ(whole.response.body(), "hello");
  EXPECT_EQ(whole.response.count("X-Checksum"), 0u);
  EXPECT_EQ(whole.response[http::field::trailer], "X-Checksum");
  ASSERT_EQ(std::distance(whole.trailers.begin(), whole.trailers.end()), 1);
  EXPECT_EQ(whole.trailers["X-Checksum"], "sha-abc");

  Streamed streamed = RunStreaming(*pool, Get("/trailers"));
  ASSERT_EQ(streamed.head.error, ClientError::kNone) << streamed.head.detail;
  ASSERT_EQ(streamed.error, ClientError::kNone) << streamed.detail;
  EXPECT_EQ(streamed.head.response.count("X-Checksum"), 0u);
  EXPECT_EQ(streamed.body, "hello");
  const http::fields& trailers = streamed.reader->trailers();
  ASSERT_EQ(std::distance(trailers.begin(), trailers.end()), 1);
  EXPECT_EQ(trailers["X-Checksum"], "sha-abc");
  streamed.reader.reset();

  ExchangeResult next = Run(*pool, Get("/size?n=2"));
  ASSERT_EQ(next.error, ClientError::kNone) << next.detail;
  EXPECT_TRUE(next.reused_connection);
  EXPECT_TRUE(next.trailers.begin() == next.trailers.end());
}

// A streamed Content-Length body is read from the socket straight into the reader's buffer,
// around the parser: it must end exactly at its length, so that the kept-alive connection's
// next response is read whole, and come in pieces of at most BodyReader::kPieceBytes.
TEST_F(HttpClientTest, StreamedBodyEndsAtItsLengthAndKeepsTheConnection) {
  auto pool = MakePool();
  constexpr size_t kSize = 5 * BodyReader::kPieceBytes + 123;
  Streamed big = RunStreaming(*pool, Get("/size?n=" + std::to_string(kSize)));
  ASSERT_EQ(big.head.error, ClientError::kNone) << big.head.detail;
  ASSERT_EQ(big.error, ClientError::kNone) << big.detail;
  EXPECT_EQ(big.body, std::string(kSize, 's'));
  EXPECT_GE(big.pieces, 6u);
  big.reader.reset();
  for (const char* target : {"/size?n=7", "/chunked?n=9"}) {
    Streamed next = RunStreaming(*pool, Get(target));
    ASSERT_EQ(next.head.error, ClientError::kNone) << target << ": " << next.head.detail;
    ASSERT_EQ(next.error, ClientError::kNone) << target << ": " << next.detail;
    EXPECT_TRUE(next.head.reused_connection) << target;
    EXPECT_EQ(next.body, std::string(target[1] == 's' ? "sssssss" : "ccccccccc")) << target;
  }
  EXPECT_EQ(upstream_.connections(), 1u);
}

// A one-connection upstream on loopback: reads one request, writes `answer`, then closes
// the connection, or holds it until the client does when `hold`.
class RawUpstream {
 public:
  RawUpstream(std::string answer, bool hold) {
    fd_ = testing::ListenOnLoopback(4, &port_);
    thread_ = std::thread([this, answer = std::move(answer), hold] {
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      char buf[4096];
      (void)!::read(conn, buf, sizeof buf);  // the request (one small GET)
      for (size_t at = 0; at < answer.size();) {
        const ssize_t n = ::write(conn, answer.data() + at, answer.size() - at);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      if (hold) {
        while (::read(conn, buf, sizeof buf) > 0) {
        }
      }
      ::close(conn);
    });
  }
  ~RawUpstream() {
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// An upstream that closes before its Content-Length was sent fails the streamed body (the
// proxy then cuts the client's connection): what arrived is passed on, the end is not.
TEST_F(HttpClientTest, StreamedBodyCutShortIsAnError) {
  Streamed cut;
  {
    RawUpstream upstream(
        "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + std::string(100000, 'x'),
        /*hold=*/false);
    auto url = ParseUrl(upstream.url());
    ASSERT_TRUE(url.ok());
    auto pool = HttpClientPool::Create(io_, url.value(), {}, nullptr).value();
    cut = RunStreaming(*pool, Get("/"));
  }
  ASSERT_EQ(cut.head.error, ClientError::kNone) << cut.head.detail;
  EXPECT_EQ(cut.error, ClientError::kReset) << cut.detail;
  EXPECT_NE(cut.detail.find("the upstream closed the connection"), std::string::npos) << cut.detail;
  EXPECT_EQ(cut.body, std::string(100000, 'x'));
}

// Bytes an upstream sends after a Content-Length body (in the same write) are not part of it:
// the body ends at its length, and the pieces never hold more.
TEST_F(HttpClientTest, StreamedBodyStopsAtItsLengthWhateverFollows) {
  constexpr size_t kSize = 3 * BodyReader::kPieceBytes + 5;
  Streamed streamed;
  {
    RawUpstream upstream("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) +
                             "\r\n\r\n" + std::string(kSize, 'b') +
                             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra",
                         /*hold=*/true);
    auto url = ParseUrl(upstream.url());
    ASSERT_TRUE(url.ok());
    auto pool = HttpClientPool::Create(io_, url.value(), {}, nullptr).value();
    streamed = RunStreaming(*pool, Get("/"));
    streamed.reader.reset();
    pool->Shutdown();  // closes the kept connection: the upstream's thread ends
    io_.restart();
    io_.run_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(streamed.head.error, ClientError::kNone) << streamed.head.detail;
  ASSERT_EQ(streamed.error, ClientError::kNone) << streamed.detail;
  EXPECT_EQ(streamed.body, std::string(kSize, 'b'));
}

TEST_F(HttpClientTest, HeadHasNoBodyAndKeepsTheConnection) {
  auto pool = MakePool();
  ExchangeResult r = Run(*pool, Get("/size?n=123", http::verb::head));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response[http::field::content_length], "123");
  EXPECT_TRUE(r.response.body().empty());
  ExchangeResult next = Run(*pool, Get("/size?n=5"));
  ASSERT_EQ(next.error, ClientError::kNone) << next.detail;
  EXPECT_EQ(next.response.body(), "sssss");
  EXPECT_TRUE(next.reused_connection);
}

TEST_F(HttpClientTest, InterimResponsesAreSkipped) {
  auto pool = MakePool();
  ExchangeResult r = Run(*pool, Get("/interim"));
  ASSERT_EQ(r.error, ClientError::kNone) << r.detail;
  EXPECT_EQ(r.response.result_int(), 200u);
  EXPECT_EQ(r.response.body(), "final");
}

TEST_F(HttpClientTest, RefusedIsConnectError) {
  testing::TestUpstream gone;
  const std::string url = gone.url();
  gone.Stop();
  auto pool = HttpClientPool::Create(io_, ParseUrl(url).value(), {}, nullptr).value();
  ExchangeResult r = Run(*pool, Get("/"));
  EXPECT_EQ(r.error, ClientError::kConnect);
  EXPECT_NE(r.detail.find("refused"), std::string::npos) << r.detail;
}

TEST_F(HttpClientTest, SlowUpstreamTimesOut) {
  ClientOptions o;
  o.response_timeout = std::chrono::milliseconds(200);
  auto pool = MakePool(o);
  ExchangeResult r = Run(*pool, Get("/slow?ms=1500"));
  EXPECT_EQ(r.error, ClientError::kTimeout) << r.detail;
  EXPECT_EQ(pool->stats().idle, 0u);
}

TEST_F(HttpClientTest, ResetIsReported) {
  auto pool = MakePool();
  ExchangeResult r = Run(*pool, Get("/reset"));
  EXPECT_EQ(r.error, ClientError::kReset) << r.detail;
}

TEST_F(HttpClientTest, OversizedResponseIsRefused) {
  ClientOptions o;
  o.max_response_body = 100;
  auto pool = MakePool(o);
  ExchangeResult r = Run(*pool, Get("/size?n=1000"));
  EXPECT_EQ(r.error, ClientError::kTooLarge) << r.detail;
}

TEST_F(HttpClientTest, HttpsNeedsATlsContext) {
  auto url = ParseUrl("https://127.0.0.1:1").value();
  EXPECT_FALSE(HttpClientPool::Create(io_, url, {}, nullptr).ok());
  auto ctx = MakeClientTlsContext({});
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  EXPECT_TRUE(HttpClientPool::Create(io_, url, {}, ctx.value()).ok());
  EXPECT_FALSE(MakeClientTlsContext({true, "/nonexistent/ca.pem"}).ok());
}

}  // namespace
}  // namespace doppel::net
