#include "net/http_client.h"

#include <gtest/gtest.h>

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

  BodyReaderPtr reader;
  ExchangeResult head;
  bool got_head = false;
  pool->SendStreaming(Get("/trailers"), [&](ExchangeResult&& r, BodyReaderPtr body) {
    head = std::move(r);
    reader = std::move(body);
    got_head = true;
  });
  io_.restart();
  while (!got_head && io_.run_one_for(std::chrono::seconds(10)) > 0) {
  }
  ASSERT_TRUE(got_head);
  ASSERT_EQ(head.error, ClientError::kNone) << head.detail;
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(head.response.count("X-Checksum"), 0u);
  std::string body;
  bool end = false;
  while (!end) {
    bool piece = false;
    reader->ReadSome([&](ClientError error, std::string detail, std::string_view data, bool last) {
      ASSERT_EQ(error, ClientError::kNone) << detail;
      body += data;
      end = last;
      piece = true;
    });
    io_.restart();  // run_one_for stopped it when it ran out of work
    while (!piece && io_.run_one_for(std::chrono::seconds(10)) > 0) {
    }
    ASSERT_TRUE(piece);
  }
  EXPECT_EQ(body, "hello");
  ASSERT_EQ(std::distance(reader->trailers().begin(), reader->trailers().end()), 1);
  EXPECT_EQ(reader->trailers()["X-Checksum"], "sha-abc");
  reader.reset();

  ExchangeResult next = Run(*pool, Get("/size?n=2"));
  ASSERT_EQ(next.error, ClientError::kNone) << next.detail;
  EXPECT_TRUE(next.reused_connection);
  EXPECT_TRUE(next.trailers.begin() == next.trailers.end());
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
