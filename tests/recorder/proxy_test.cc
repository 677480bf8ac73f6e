// The proxy in-process, on loopback, between a test client and a test upstream; captured
// envelopes land in an in-memory sink.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "recorder/recorder.h"
#include "tests/base/gate.h"
#include "tests/net/test_upstream.h"
#include "tests/recorder/loopback_options.h"
#include "tests/recorder/memory_sink.h"

namespace doppel::recorder {
namespace {

namespace http = boost::beast::http;
using testing::Fetch;
using testing::TestClient;
using testing::TestUpstream;

std::string Header(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                   const std::string& name) {
  for (const auto& h : headers) {
    if (boost::beast::iequals(h.name(), name)) return h.value();
  }
  return "<absent>";
}

class ProxyTest : public ::testing::Test {
 protected:
  void Start(const std::function<void(RecorderOptions&)>& tweak = {}) {
    RecorderOptions o = LoopbackOptions(upstream_.url());
    o.admin = net::HostPort{"127.0.0.1", 0};
    if (tweak) tweak(o);
    auto rec = Recorder::Start(std::move(o), &sink_, redactor_.get());
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    rec_ = std::move(rec.value());
    port_ = rec_->listen_address().port;
  }
  void TearDown() override {
    sink_.Release();  // a test that failed while holding the sink must not hang in Stop
    if (rec_) rec_->Stop();
  }
  net::HttpRequest Req(http::verb verb, const std::string& target, const std::string& body = "") {
    net::HttpRequest r{verb, target, 11};
    r.set(http::field::host, "shop.test");
    r.body() = body;
    if (!body.empty()) r.prepare_payload();
    return r;
  }
  std::string Metrics() { return rec_->MetricsText(); }

  TestUpstream upstream_;
  MemorySink sink_;
  std::unique_ptr<redact::Redactor> redactor_ = std::make_unique<redact::Redactor>(
      "0123456789abcdef0123456789abcdef", std::vector<std::string>{});
  RecorderPtr rec_;
  uint16_t port_ = 0;
};

TEST_F(ProxyTest, ForwardsWithHeaderHygieneAndCaptures) {
  Start();
  TestClient c(port_);
  net::HttpRequest req = Req(http::verb::post, "/orders?id=7", "{\"qty\":2}");
  req.set(http::field::connection, "X-Drop-Me");
  req.set("X-Drop-Me", "1");
  req.set("Keep-Alive", "timeout=9");
  req.set(http::field::user_agent, "proxy-test");
  auto res = c.Send(std::move(req));
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "{\"qty\":2}");
  EXPECT_EQ(res[http::field::via], "1.1 doppel");
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/orders?id=7");
  EXPECT_EQ(seen[0].Header("Host"), "shop.test");
  EXPECT_EQ(seen[0].Header("X-Forwarded-For"), "127.0.0.1");
  EXPECT_EQ(seen[0].Header("X-Forwarded-Proto"), "http");
  EXPECT_EQ(seen[0].Header("X-Forwarded-Host"), "shop.test");
  EXPECT_EQ(seen[0].Header("Via"), "1.1 doppel");
  EXPECT_FALSE(seen[0].HasHeader("X-Drop-Me"));
  EXPECT_FALSE(seen[0].HasHeader("Keep-Alive"));
  EXPECT_FALSE(seen[0].HasHeader("Connection"));
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 1u);
  const auto& e = env[0];
  EXPECT_EQ(e.request().method(), "POST");
  EXPECT_EQ(e.request().target(), "/orders?id=7");
  EXPECT_EQ(e.request().version(), 11u);
  EXPECT_EQ(e.request().body(), "{\"qty\":2}");
  EXPECT_EQ(Header(e.request().headers(), "User-Agent"), "proxy-test");
  EXPECT_EQ(Header(e.request().headers(), "X-Drop-Me"), "<absent>");
  EXPECT_EQ(Header(e.request().headers(), "X-Forwarded-For"), "<absent>");
  EXPECT_EQ(e.response().status(), 200u);
  EXPECT_EQ(e.response().body(), "{\"qty\":2}");
  EXPECT_GT(e.response().latency_us(), 0u);
  EXPECT_GT(e.arrival_us(), 1700000000000000u);
  EXPECT_EQ(e.client_addr().rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(e.scheme(), "http");
  EXPECT_EQ(e.error(), doppel::v1::PROXY_ERROR_NONE);
}

// `top -H`, `perf` and `ps -L` tell the proxy threads from the capture writer and the admin
// endpoint by name; the names are listed in docs/recorder.md.
TEST_F(ProxyTest, ThreadsAreNamedForTopAndPerf) {
  Start([](RecorderOptions& o) { o.threads = 2; });
  std::set<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_EQ(names.count("doppel-proxy-0"), 1u);
  EXPECT_EQ(names.count("doppel-proxy-1"), 1u);
  EXPECT_EQ(names.count("doppel-capture"), 1u);
  EXPECT_EQ(names.count("doppel-admin"), 1u);
}

TEST_F(ProxyTest, KeepAliveBothSides) {
  Start();
  TestClient c(port_);
  for (int i = 0; i < 20; ++i) {
    auto res = c.Send(Req(http::verb::get, "/k/" + std::to_string(i)));
    ASSERT_EQ(res.result_int(), 200u) << i << " " << res.body();
    EXPECT_TRUE(res.keep_alive());
  }
  EXPECT_EQ(upstream_.connections(), 1u);
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 20u);
  for (const auto& r : seen) EXPECT_EQ(r.connection_id, seen[0].connection_id);
  EXPECT_NE(Metrics().find("doppel_upstream_reused_total 19"), std::string::npos);
}

// A chunked response streams to an HTTP/1.0 client close-delimited: its length is not known
// when the head goes out.
TEST_F(ProxyTest, Http10ClientGetsACloseDelimitedBody) {
  Start();
  TestClient c(port_);
  net::HttpRequest req = Req(http::verb::get, "/chunked?n=3000");
  req.version(10);
  auto res = c.Send(std::move(req));
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.version(), 10u);
  EXPECT_EQ(res.find(http::field::content_length), res.end());
  EXPECT_FALSE(res.chunked());
  EXPECT_EQ(res.body().size(), 3000u);
  EXPECT_TRUE(c.PeerClosed());
}

TEST_F(ProxyTest, ChunkedUploadAndDownloadAreReframed) {
  Start();
  TestClient c(port_);
  ASSERT_TRUE(
      c.Write("POST /up HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  std::string raw = c.ReadUntil("hello world");
  EXPECT_NE(raw.find("HTTP/1.1 200"), std::string::npos) << raw;
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body, "hello world");
  EXPECT_TRUE(seen[0].chunked);
  auto down = c.Send(Req(http::verb::get, "/chunked?n=100000"));
  ASSERT_EQ(down.result_int(), 200u);
  EXPECT_TRUE(down.chunked());
  EXPECT_EQ(down.body(), std::string(100000, 'c'));
}

TEST_F(ProxyTest, ExpectContinueIsAnsweredByTheProxy) {
  Start();
  TestClient c(port_);
  ASSERT_TRUE(
      c.Write("PUT /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n"
              "Expect: 100-continue\r\n\r\n"));
  const std::string interim = c.ReadUntil("\r\n\r\n", 3000);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.Write("abcde"));
  const std::string final_response = c.ReadUntil("abcde");
  EXPECT_NE(final_response.find("HTTP/1.1 200"), std::string::npos) << final_response;
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].HasHeader("Expect"));
  EXPECT_EQ(seen[0].body, "abcde");
}

TEST_F(ProxyTest, HeadHasNoBodyAndConnectionStaysUsable) {
  Start();
  TestClient c(port_);
  auto head = c.Send(Req(http::verb::head, "/size?n=42"));
  ASSERT_EQ(head.result_int(), 200u);
  EXPECT_EQ(head[http::field::content_length], "42");
  EXPECT_TRUE(head.body().empty());
  auto next = c.Send(Req(http::verb::get, "/size?n=3"));
  ASSERT_EQ(next.result_int(), 200u);
  EXPECT_EQ(next.body(), "sss");
}

TEST_F(ProxyTest, InterimUpstreamResponsesAreSkipped) {
  Start();
  auto res = Fetch(port_, "GET", "/interim");
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "final");
}

TEST_F(ProxyTest, LargeBodiesForwardedWholeRecordedTruncated) {
  Start([](RecorderOptions& o) { o.capture_body_limit = 1000; });
  const std::string body(5000, 'b');
  TestClient c(port_);
  auto res = c.Send(Req(http::verb::post, "/echo", body));
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), body);
  auto big = c.Send(Req(http::verb::get, "/size?n=3000"));
  EXPECT_EQ(big.body().size(), 3000u);
  ASSERT_EQ(upstream_.requests().at(0).body.size(), 5000u);
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 2u);
  EXPECT_EQ(env[0].request().body().size(), 1000u);
  EXPECT_TRUE(env[0].request().body_truncated());
  EXPECT_EQ(env[0].request().body_size(), 5000u);
  EXPECT_TRUE(env[0].response().body_truncated());
  EXPECT_EQ(env[0].response().body_size(), 5000u);
  EXPECT_FALSE(env[1].request().body_truncated());
  EXPECT_EQ(env[1].response().body().size(), 1000u);
  EXPECT_EQ(env[1].response().body_size(), 3000u);
}

TEST_F(ProxyTest, MalformedRequestsAre400AndCounted) {
  Start();
  {
    TestClient c(port_);
    ASSERT_TRUE(c.Write("GARBAGE\r\n\r\n"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("doppel: malformed request"), std::string::npos) << out;
    EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
  }
  {
    TestClient c(port_);
    ASSERT_TRUE(
        c.Write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  }
  {
    TestClient c(port_);
    ASSERT_TRUE(c.Write("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nxx"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  }
  EXPECT_TRUE(upstream_.requests().empty());
  EXPECT_NE(Metrics().find("doppel_proxy_errors_total{reason=\"bad_request\"} 3"),
            std::string::npos)
      << Metrics();
  EXPECT_NE(Metrics().find("doppel_requests_total{class=\"4xx\"} 3"), std::string::npos);
}

// RFC 9112 2.2: empty lines before a request line are skipped, also between requests on a
// keep-alive connection (an old client's extra CRLF after a POST body).
TEST_F(ProxyTest, EmptyLinesBeforeARequestLineAreSkipped) {
  Start();
  TestClient c(port_);
  ASSERT_TRUE(c.Write("\r\n\n\r\nGET /size?n=3 HTTP/1.1\r\nHost: shop.test\r\n\r\n"));
  const std::string first = c.ReadUntil("sss");
  EXPECT_EQ(first.rfind("HTTP/1.1 200", 0), 0u) << first;
  ASSERT_TRUE(
      c.Write("POST /echo HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 4\r\n\r\nbody\r\n"));
  const std::string second = c.ReadUntil("body");
  EXPECT_NE(second.find("HTTP/1.1 200"), std::string::npos) << second;
  auto third = c.Send(Req(http::verb::get, "/size?n=2"));
  EXPECT_EQ(third.result_int(), 200u);
  EXPECT_EQ(third.body(), "ss");
  ASSERT_EQ(upstream_.requests().size(), 3u);
  EXPECT_EQ(upstream_.requests()[0].target, "/size?n=3");
  rec_->Stop();
  EXPECT_EQ(sink_.envelopes().size(), 3u);
  EXPECT_EQ(rec_->counts().errors, 0u);
}

// A connection that sends only an empty line and leaves sent no request: nothing is
// answered, counted or stored (it used to be a 400 with an envelope without a method).
TEST_F(ProxyTest, AConnectionWithOnlyAnEmptyLineIsNotARequest) {
  Start();
  // One connection at a time, each seen open by the proxy before the client leaves (without
  // that, the counts could be read before the proxy accepted anything).
  for (const char* line : {"\n", "\r\n", "\r\n\n"}) {
    {
      TestClient c(port_);
      ASSERT_TRUE(c.Write(line));
      for (int i = 0; i < 300 && rec_->counts().connections == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_EQ(rec_->counts().connections, 1u) << ::testing::PrintToString(line);
    }
    for (int i = 0; i < 300 && rec_->counts().connections > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(rec_->counts().connections, 0u) << ::testing::PrintToString(line);
  }
  rec_->Stop();
  EXPECT_TRUE(sink_.envelopes().empty()) << sink_.envelopes().at(0).DebugString();
  EXPECT_EQ(rec_->counts().requests, 0u);
  EXPECT_EQ(rec_->counts().errors, 0u);
}

TEST_F(ProxyTest, ObsFoldIsRefusedNotUnfolded) {
  Start();
  TestClient c(port_);
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n"));
  const std::string out = c.ReadAll(3000);
  EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("obs-fold"), std::string::npos) << out;
  EXPECT_TRUE(upstream_.requests().empty());
}

TEST_F(ProxyTest, InvalidHostIs400WithTheReason) {
  Start();
  for (const std::string host : {"a b", "a:99999", "[::1", "x@y", ""}) {
    TestClient c(port_);
    ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << host << ": " << out;
    EXPECT_NE(out.find("doppel: malformed request: Host"), std::string::npos) << out;
  }
  EXPECT_TRUE(upstream_.requests().empty());
  EXPECT_NE(Metrics().find("doppel_proxy_errors_total{reason=\"bad_request\"} 5"),
            std::string::npos)
      << Metrics();
}

// RFC 9110 9.1: any token is a method, forwarded and recorded as sent (case included).
TEST_F(ProxyTest, ExtensionMethodsAreForwardedAndRecorded) {
  Start();
  const std::vector<std::string> methods = {"M-SEARCH", "PROPFIND", "PURGE", "X-ZAP_1!", "get"};
  TestClient c(port_);
  for (const auto& m : methods) {
    net::HttpRequest r = Req(http::verb::get, "/m");
    r.method_string(m);
    EXPECT_EQ(c.Send(std::move(r)).result_int(), 200u) << m;
  }
  const auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), methods.size());
  for (size_t i = 0; i < methods.size(); ++i) EXPECT_EQ(seen[i].method, methods[i]);
  rec_->Stop();
  const auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), methods.size());
  for (size_t i = 0; i < methods.size(); ++i) EXPECT_EQ(env[i].request().method(), methods[i]);
}

// The proxy is not a tunnel: CONNECT is "not implemented", not a malformed request.
TEST_F(ProxyTest, ConnectIs501) {
  Start();
  TestClient c(port_);
  ASSERT_TRUE(c.Write("CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n"));
  const std::string out = c.ReadAll(3000);
  EXPECT_EQ(out.rfind("HTTP/1.1 501 Not Implemented\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Type: text/plain"), std::string::npos) << out;
  EXPECT_NE(out.find("doppel: CONNECT"), std::string::npos) << out;
  EXPECT_TRUE(upstream_.requests().empty());
  EXPECT_NE(Metrics().find("doppel_proxy_errors_total{reason=\"bad_request\"} 1"),
            std::string::npos);
}

TEST_F(ProxyTest, OversizedBodiesAre413) {
  Start([](RecorderOptions& o) { o.max_request_body = 1000; });
  {
    TestClient c(port_);
    ASSERT_TRUE(c.Write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
    EXPECT_NE(out.find("over 1000 bytes"), std::string::npos) << out;
  }
  {
    TestClient c(port_);
    std::string raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) raw += "1f4\r\n" + std::string(500, 'z') + "\r\n";
    raw += "0\r\n\r\n";
    ASSERT_TRUE(c.Write(raw));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  }
  {
    TestClient c(port_);
    ASSERT_TRUE(
        c.Write("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'h') + "\r\n\r\n"));
    const std::string out = c.ReadAll(3000);
    EXPECT_EQ(out.rfind("HTTP/1.1 431", 0), 0u) << out;
  }
  EXPECT_TRUE(upstream_.requests().empty());
  EXPECT_NE(Metrics().find("doppel_proxy_errors_total{reason=\"body_too_large\"} 2"),
            std::string::npos);
}

TEST_F(ProxyTest, UpstreamDownIs502AndRecordedWithError) {
  const std::string dead = [] {
    TestUpstream gone;
    return gone.url();
  }();
  Start([&](RecorderOptions& o) { o.upstream = net::ParseUrl(dead).value(); });
  TestClient c(port_);
  auto res = c.Send(Req(http::verb::get, "/x"));
  EXPECT_EQ(res.result_int(), 502u);
  EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_NE(res.body().find("doppel: primary unreachable"), std::string::npos) << res.body();
  auto again = c.Send(Req(http::verb::get, "/y"));  // the client connection survives
  EXPECT_EQ(again.result_int(), 502u);
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 2u);
  EXPECT_EQ(env[0].error(), doppel::v1::PROXY_ERROR_UPSTREAM_CONNECT);
  EXPECT_FALSE(env[0].error_detail().empty());
  EXPECT_EQ(env[0].request().target(), "/x");
  EXPECT_EQ(rec_->counts().errors, 2u);
}

TEST_F(ProxyTest, UpstreamResetIs502AndSlowIs504) {
  Start([](RecorderOptions& o) {
    o.upstream_client.response_timeout = std::chrono::milliseconds(300);
  });
  auto reset = Fetch(port_, "GET", "/reset");
  EXPECT_EQ(reset.result_int(), 502u);
  auto slow = Fetch(port_, "GET", "/slow?ms=2000");
  EXPECT_EQ(slow.result_int(), 504u);
  EXPECT_NE(slow.body().find("doppel: primary timeout"), std::string::npos) << slow.body();
  const std::string m = Metrics();
  EXPECT_NE(m.find("doppel_proxy_errors_total{reason=\"upstream_reset\"} 1"), std::string::npos);
  EXPECT_NE(m.find("doppel_proxy_errors_total{reason=\"upstream_timeout\"} 1"), std::string::npos);
}

TEST_F(ProxyTest, SamplingRateWithinBounds) {
  Start([](RecorderOptions& o) { o.sample_percent = 10; });
  TestClient c(port_);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(c.Send(Req(http::verb::get, "/s")).result_int(), 200u);
  }
  rec_->Stop();
  const auto counts = rec_->counts();
  EXPECT_EQ(counts.requests, static_cast<uint64_t>(n));
  // mean 300, sd 16.4: +-5 sd
  EXPECT_GE(counts.sampled, 218u);
  EXPECT_LE(counts.sampled, 382u);
  EXPECT_EQ(sink_.envelopes().size(), counts.sampled);
  EXPECT_EQ(counts.stored, counts.sampled);
}

TEST_F(ProxyTest, SampleKeyKeepsAUsersRequestsTogether) {
  Start([](RecorderOptions& o) {
    o.sample_percent = 50;
    o.sample_key = "header:X-User";
  });
  TestClient c(port_);
  for (int round = 0; round < 3; ++round) {
    for (int u = 0; u < 200; ++u) {
      net::HttpRequest r = Req(http::verb::get, "/u");
      r.set("X-User", "user-" + std::to_string(u));
      ASSERT_EQ(c.Send(std::move(r)).result_int(), 200u);
    }
  }
  rec_->Stop();
  std::map<std::string, int> per_user;
  for (const auto& e : sink_.envelopes()) ++per_user[Header(e.request().headers(), "X-User")];
  for (const auto& [user, n] : per_user) EXPECT_EQ(n, 3) << user;
  // 200 users at 50 %: sd 7.1
  EXPECT_GE(per_user.size(), 65u);
  EXPECT_LE(per_user.size(), 135u);
}

TEST_F(ProxyTest, MatchRulesSelectAndNameTheRule) {
  Start([](RecorderOptions& o) {
    o.rules =
        net::MatchRules::FromFlags({"name=api,method=GET,uri^=/api/", "name=debug,query.debug"})
            .value();
  });
  TestClient c(port_);
  for (const char* t : {"/api/items", "/other", "/api/items?x=1", "/x?debug=1"}) {
    ASSERT_EQ(c.Send(Req(http::verb::get, t)).result_int(), 200u);
  }
  ASSERT_EQ(c.Send(Req(http::verb::post, "/api/items", "p")).result_int(), 200u);
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0].matched_rule(), "api");
  EXPECT_EQ(env[1].request().target(), "/api/items?x=1");
  EXPECT_EQ(env[2].matched_rule(), "debug");
  EXPECT_EQ(upstream_.requests().size(), 5u);  // every request is still proxied
  EXPECT_NE(Metrics().find("doppel_requests_unmatched_total 2"), std::string::npos);
}

TEST_F(ProxyTest, RedactionKeepsSecretsOutOfTheRecord) {
  Start();
  TestClient c(port_);
  net::HttpRequest r = Req(http::verb::get, "/hop");
  r.set(http::field::authorization, "Bearer s3cr3t-token");
  r.set(http::field::cookie, "sid=s3cr3t-cookie");
  auto res = c.Send(std::move(r));
  ASSERT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res[http::field::set_cookie], "upstream-secret");  // the client gets it verbatim
  EXPECT_EQ(res.find("X-Hop-Secret"), res.end());              // hop-by-hop from upstream
  EXPECT_EQ(res.find(http::field::keep_alive), res.end());
  EXPECT_EQ(upstream_.requests().at(0).Header("Authorization"), "Bearer s3cr3t-token");
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(Header(env[0].request().headers(), "Authorization"),
            redactor_->Hash("Bearer s3cr3t-token"));
  EXPECT_EQ(Header(env[0].request().headers(), "Cookie"), redactor_->Hash("sid=s3cr3t-cookie"));
  EXPECT_EQ(Header(env[0].response().headers(), "Set-Cookie"), redactor_->Hash("upstream-secret"));
  const std::string all = env[0].SerializeAsString();
  EXPECT_EQ(all.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(all.find("upstream-secret"), std::string::npos);
}

TEST_F(ProxyTest, NoRedactStoresVerbatim) {
  redactor_.reset();
  Start();
  net::HttpRequest r = Req(http::verb::get, "/");
  r.set(http::field::authorization, "Bearer visible");
  TestClient c(port_);
  ASSERT_EQ(c.Send(std::move(r)).result_int(), 200u);
  rec_->Stop();
  ASSERT_EQ(sink_.envelopes().size(), 1u);
  EXPECT_EQ(Header(sink_.envelopes()[0].request().headers(), "Authorization"), "Bearer visible");
}

// The store takes nothing until every request was answered: a proxy that waited for storage
// would never answer them.
TEST_F(ProxyTest, QueueFullDropsButThePrimaryStillAnswers) {
  sink_.Hold();
  Start([](RecorderOptions& o) { o.queue.queue_size = 5; });
  TestClient c(port_);
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(c.Send(Req(http::verb::get, "/q")).result_int(), 200u) << i;
  }
  const auto during = rec_->counts();
  EXPECT_EQ(sink_.envelopes().size(), 0u);
  EXPECT_GE(during.dropped, 300u - 5u);  // at most queue_size were kept
  sink_.Release();
  rec_->Stop();
  const auto after = rec_->counts();
  EXPECT_EQ(after.sampled, 300u);
  EXPECT_EQ(after.stored + after.dropped, 300u);
  EXPECT_EQ(sink_.envelopes().size(), after.stored);
  EXPECT_NE(Metrics().find("doppel_envelopes_dropped_total{sink=\"store\",reason=\"queue_full\"}"),
            std::string::npos);
}

TEST_F(ProxyTest, GracefulStopFinishesInFlightAndLosesNothing) {
  Start([](RecorderOptions& o) { o.threads = 2; });
  TestClient idle(port_);
  ASSERT_EQ(idle.Send(Req(http::verb::get, "/warm")).result_int(), 200u);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&] {
      if (Fetch(port_, "GET", "/slow?ms=600").result_int() == 200) ++ok;
    });
  }
  // Wait until all 16 reached the upstream, then stop while they are in flight.
  for (int i = 0; i < 200 && upstream_.requests().size() < 17; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(upstream_.requests().size(), 17u);
  rec_->Stop();
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 16);
  EXPECT_TRUE(idle.PeerClosed());  // the idle keep-alive connection was closed
  EXPECT_EQ(sink_.envelopes().size(), 17u);
  EXPECT_EQ(rec_->counts().stored, 17u);
  EXPECT_EQ(Fetch(port_, "GET", "/late").result_int(), 0u);  // no longer accepting
}

TEST_F(ProxyTest, AdminEndpoint) {
  Start();
  ASSERT_EQ(Fetch(port_, "GET", "/a").result_int(), 200u);
  const uint16_t admin = rec_->admin_address()->port;
  auto health = Fetch(admin, "GET", "/healthz");
  EXPECT_EQ(health.result_int(), 200u);
  EXPECT_EQ(health.body(), "ok\n");
  auto metrics = Fetch(admin, "GET", "/metrics");
  EXPECT_EQ(metrics.result_int(), 200u);
  EXPECT_NE(metrics.body().find("doppel_requests_total{class=\"2xx\"} 1"), std::string::npos)
      << metrics.body();
  EXPECT_NE(metrics.body().find("# TYPE doppel_primary_latency_seconds histogram"),
            std::string::npos);
  EXPECT_NE(metrics.body().find("doppel_capture_queue_depth"), std::string::npos);
  auto status = Fetch(admin, "GET", "/status");
  EXPECT_EQ(status.result_int(), 200u);
  EXPECT_EQ(status[http::field::content_type], "application/json");
  EXPECT_NE(status.body().find("\"session\":\"test\""), std::string::npos) << status.body();
  EXPECT_NE(status.body().find("\"requests\":1"), std::string::npos) << status.body();
  EXPECT_EQ(Fetch(admin, "GET", "/nope").result_int(), 404u);
}

TEST_F(ProxyTest, ConnectionsOverTheLimitAreClosed) {
  Start([](RecorderOptions& o) { o.max_connections = 2; });
  TestClient a(port_), b(port_);
  ASSERT_EQ(a.Send(Req(http::verb::get, "/a")).result_int(), 200u);
  ASSERT_EQ(b.Send(Req(http::verb::get, "/b")).result_int(), 200u);
  TestClient c(port_);
  EXPECT_TRUE(c.PeerClosed());
  EXPECT_NE(Metrics().find("doppel_connections_rejected_total 1"), std::string::npos);
  EXPECT_NE(Metrics().find("doppel_connections_active 2"), std::string::npos);
}

TEST_F(ProxyTest, IdleAndStalledClientsTimeOut) {
  Start([](RecorderOptions& o) {
    o.idle_timeout = std::chrono::milliseconds(200);
    o.request_timeout = std::chrono::milliseconds(200);
  });
  TestClient idle(port_);
  ASSERT_EQ(idle.Send(Req(http::verb::get, "/a")).result_int(), 200u);
  EXPECT_TRUE(idle.PeerClosed(3000));
  TestClient stalled(port_);
  ASSERT_TRUE(stalled.Write("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(stalled.PeerClosed(3000));
  EXPECT_EQ(upstream_.requests().size(), 1u);
  // The stream's timer closes the socket before the read handler counts the timeout.
  const std::string counted = "doppel_proxy_errors_total{reason=\"request_timeout\"} 1";
  for (int i = 0; i < 100 && Metrics().find(counted) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(Metrics().find(counted), std::string::npos) << Metrics();
}

TEST_F(ProxyTest, BasePathIsPrefixed) {
  Start([&](RecorderOptions& o) { o.upstream = net::ParseUrl(upstream_.url() + "/v2").value(); });
  ASSERT_EQ(Fetch(port_, "GET", "/items?x=1").result_int(), 200u);
  EXPECT_EQ(upstream_.requests().at(0).target, "/v2/items?x=1");
}

TEST_F(ProxyTest, BindFailureIsAStatus) {
  Start();
  RecorderOptions o;
  o.listen = {"127.0.0.1", port_};
  o.upstream = net::ParseUrl(upstream_.url()).value();
  // SO_REUSEPORT lets a second recorder of the same user bind; a bad address cannot.
  o.listen.host = "256.1.1.1";
  auto again = Recorder::Start(std::move(o), &sink_, nullptr);
  EXPECT_FALSE(again.ok());
}

// --sink store --sink redis://...: every sink gets every sampled envelope through its own
// writer; a failing sink counts its own drops, says so in /status, and the other is unharmed.
TEST_F(ProxyTest, EverySinkGetsEveryEnvelopeAndCountsItsOwnDrops) {
  class FailingSink : public CaptureSink {
   public:
    Status Append(std::span<const doppel::v1::Envelope>) override {
      return Status::Unavailable("redis is away");
    }
  } failing;
  RecorderOptions o;
  o.listen = {"127.0.0.1", 0};
  o.upstream = net::ParseUrl(upstream_.url()).value();
  o.threads = 1;
  auto rec = Recorder::Start(std::move(o), {{"store", &sink_}, {"redis://r:6379/s", &failing}},
                             redactor_.get());
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  rec_ = std::move(rec.value());
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Fetch(rec_->listen_address().port, "GET", "/x").result_int(), 200u);
  }
  for (int i = 0; i < 500 && (*rec_).counts().sinks.at(1).dropped < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the writer
  }
  const RecorderCounts c = rec_->counts();
  ASSERT_EQ(c.sinks.size(), 2u);
  EXPECT_EQ(c.sinks[0].name, "store");
  EXPECT_EQ(c.sinks[1].name, "redis://r:6379/s");
  EXPECT_EQ(c.sinks[1].dropped, 5u);
  EXPECT_TRUE(c.sinks[1].failing);
  const std::string m = Metrics();
  EXPECT_NE(
      m.find("doppel_envelopes_dropped_total{sink=\"redis://r:6379/s\",reason=\"store_error\"} 5"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("doppel_sink_up{sink=\"redis://r:6379/s\"} 0"), std::string::npos) << m;
  EXPECT_NE(rec_->StatusJson().find("\"state\":\"retrying\""), std::string::npos);
  rec_->Stop();
  EXPECT_EQ(sink_.envelopes().size(), 5u);
  EXPECT_EQ(rec_->counts().sinks[0].stored, 5u);
  EXPECT_EQ(rec_->counts().stored, 5u) << "the top-level counts are the first sink's";
  EXPECT_NE(rec_->capture_error().message().find("sink redis://r:6379/s: redis is away"),
            std::string::npos)
      << rec_->capture_error().ToString();
}

}  // namespace
}  // namespace doppel::recorder
