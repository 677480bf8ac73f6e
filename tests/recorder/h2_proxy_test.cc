// HTTP/2 on the capture proxy's listener (h2c with prior knowledge), in-process on loopback:
// real HTTP/2 clients (curl, h2load) and hostile ones written here (an nghttp2 client session,
// raw frames) against the proxy in front of the HTTP/1.1 test upstream.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "recorder/recorder.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/net/nghttpd.h"
#include "tests/net/test_upstream.h"
#include "tests/recorder/loopback_options.h"
#include "tests/recorder/memory_sink.h"

namespace doppel::recorder {
namespace {

using testing::ChildProcess;
using testing::Eventually;
using testing::MetricIn;
using testing::TestUpstream;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A 9-byte frame header and its payload (RFC 9113 4.1).
std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const size_t n = payload.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>((stream >> 24) & 0x7f);
  f += static_cast<char>((stream >> 16) & 0xff);
  f += static_cast<char>((stream >> 8) & 0xff);
  f += static_cast<char>(stream & 0xff);
  return f + payload;
}

// Runs a client program to its end; its stdout.
struct ClientRun {
  int code = -1;
  std::string out;
  std::string err;
};
ClientRun RunClient(std::vector<std::string> args) {
  ChildProcess p(std::move(args));
  ClientRun r;
  r.code = p.Wait(60000);
  r.out = p.all_stdout();
  r.err = p.all_stderr();
  return r;
}

class H2ProxyTest : public LoopbackRecorderTest {
 protected:
  void Start(const std::function<void(RecorderOptions&)>& tweak = {}) {
    StartRecorder(upstream_.url(), "test", tweak);
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  double Metric(const std::string& series) { return MetricIn(rec_->MetricsText(), series); }

  TestUpstream upstream_;
};

TEST_F(H2ProxyTest, PriorKnowledgeGetAndPostAreForwardedAndCaptured) {
  Start();
  ClientRun get = RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-w",
                             "\n%{http_version} %{http_code}", Url("/size?n=5")});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out, "sssss\n2 200");
  ClientRun post = RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-H",
                              "Cookie: a=1", "-H", "Cookie: b=2", "--data-binary", "{\"qty\":2}",
                              "-w", "\n%{http_version}", Url("/orders?id=7")});
  ASSERT_EQ(post.code, 0) << post.err;
  EXPECT_EQ(post.out, "{\"qty\":2}\n2");
  // HTTP/1.1 on the same port is served as before.
  auto h1 = testing::Fetch(port_, "GET", "/size?n=3");
  EXPECT_EQ(h1.result_int(), 200u);
  EXPECT_EQ(h1.body(), "sss");

  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].method, "POST");
  EXPECT_EQ(seen[1].target, "/orders?id=7");
  EXPECT_EQ(seen[1].version, 11u);
  EXPECT_EQ(seen[1].Header("Host"), "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(seen[1].Header("Cookie"), "a=1; b=2");
  EXPECT_EQ(seen[1].Header("Content-Length"), "9");
  EXPECT_EQ(seen[1].Header("X-Forwarded-For"), "127.0.0.1");

  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 3u);
  EXPECT_EQ(env[0].client_protocol(), "h2c");
  EXPECT_EQ(env[0].scheme(), "http");
  EXPECT_EQ(env[0].request().version(), 20u);
  EXPECT_EQ(env[0].response().body(), "sssss");
  EXPECT_EQ(env[1].client_protocol(), "h2c");
  EXPECT_EQ(env[1].request().method(), "POST");
  EXPECT_EQ(env[1].request().body(), "{\"qty\":2}");
  EXPECT_EQ(env[1].response().status(), 200u);
  EXPECT_EQ(env[2].client_protocol(), "http/1.1");
  EXPECT_EQ(env[2].request().version(), 11u);
}

// Coverage sampling on HTTP/2 streams (issue #19): the decision is taken in the shared
// Exchange once the primary answered, so a rare 500 among 300 streams survives a 2 % budget.
TEST_F(H2ProxyTest, CoverageSamplingKeepsTheRareClassOverHttp2) {
  Start([](RecorderOptions& o) {
    CoverageOptions c;
    c.budget.kind = SampleBudget::Kind::kFraction;
    c.budget.fraction = 0.02;
    c.budget.text = "2%";
    c.per_class_min = 1;
    o.coverage = std::move(c);
  });
  // 300 streams of one class on one connection, then two 500s.
  ClientRun hot =
      RunClient({"/usr/bin/h2load", "-n", "300", "-c", "1", "-m", "10", Url("/size?n=100")});
  ASSERT_EQ(hot.code, 0) << hot.out << hot.err;
  EXPECT_NE(hot.out.find("300 succeeded"), std::string::npos) << hot.out;
  ClientRun rare = RunClient({"/usr/bin/h2load", "-n", "2", "-c", "1", Url("/status?code=500")});
  ASSERT_EQ(rare.code, 0) << rare.out << rare.err;
  rec_->Stop();
  int errors = 0, size = 0;
  std::string labels;
  for (const auto& e : sink_.envelopes()) {
    labels += e.sample_class() + "\n";
    EXPECT_EQ(e.client_protocol(), "h2c");
    EXPECT_GT(e.inclusion_probability(), 0);
    if (e.sample_class() == "GET /status 500 type:text/plain") ++errors;
    if (e.sample_class().rfind("GET /size 200 ", 0) == 0) ++size;
  }
  EXPECT_EQ(errors, 2) << labels;
  EXPECT_GE(size, 1) << labels;
  EXPECT_LE(errors + size, 302 * 2 / 100 + 20);  // the budget plus the bucket's burst
  const auto cov = rec_->coverage();
  ASSERT_TRUE(cov.has_value());
  EXPECT_EQ(cov->classes.size(), 2u) << labels;
}

TEST_F(H2ProxyTest, HundredConcurrentStreamsOnOneConnection) {
  Start();
  ClientRun load =
      RunClient({"/usr/bin/h2load", "-n", "100", "-c", "1", "-m", "100", Url("/size?n=100")});
  ASSERT_EQ(load.code, 0) << load.out << load.err;
  EXPECT_NE(load.out.find("100 succeeded, 0 failed, 0 errored"), std::string::npos) << load.out;
  EXPECT_NE(load.out.find("100 2xx"), std::string::npos) << load.out;
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 100u);
  for (const auto& e : env) {
    EXPECT_EQ(e.client_protocol(), "h2c");
    EXPECT_EQ(e.response().body_size(), 100u);
  }
}

// 10 MiB each way: the request body through the proxy's receive windows, the echoed
// response through the client's.
TEST_F(H2ProxyTest, TenMebibyteBodiesBothWaysIntact) {
  Start();
  const std::string dir = testing::MakeTempDir("h2-bodies");
  std::string body(10 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  const std::string in = dir + "/in.bin";
  const std::string out = dir + "/out.bin";
  std::ofstream(in, std::ios::binary) << body;
  ClientRun post =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@" + in, "-o",
                 out, "-w", "%{http_version} %{http_code}", Url("/echo")});
  ASSERT_EQ(post.code, 0) << post.err;
  EXPECT_EQ(post.out, "2 200");
  std::ifstream got_file(out, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(got_file)), {});
  EXPECT_EQ(got.size(), body.size());
  EXPECT_TRUE(got == body);
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].body == body);
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].request().body_size(), body.size());
  EXPECT_EQ(env[0].response().body_size(), body.size());
  std::filesystem::remove_all(dir);
}

// The HTTP/1.1 limits hold per stream: a header list over --max-header-size is answered 431,
// a body over --max-request-body 413, and neither reaches the primary.
TEST_F(H2ProxyTest, HeaderAndBodyLimitsPerStream) {
  Start([](RecorderOptions& o) {
    o.max_header_bytes = 1024;
    o.max_request_body = 1000;
  });
  ClientRun big_header =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                 "%{http_code}", "-H", "X-Big: " + std::string(2000, 'a'), Url("/size?n=1")});
  EXPECT_EQ(big_header.out, "431") << big_header.err;
  ClientRun big_body =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                 "%{http_code}", "--data-binary", std::string(5000, 'b'), Url("/echo")});
  EXPECT_EQ(big_body.out, "413") << big_body.err;
  EXPECT_EQ(upstream_.requests().size(), 0u);
  EXPECT_EQ(Metric("doppel_proxy_errors_total{reason=\"header_too_large\"}"), 1);
  EXPECT_EQ(Metric("doppel_proxy_errors_total{reason=\"body_too_large\"}"), 1);
}

// An nghttp2 client on a plain socket, for what curl will not do.
class RawH2Client {
 public:
  explicit RawH2Client(uint16_t port) : fd_(testing::ConnectToLoopback(port)) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* frame, void* self) {
          auto* c = static_cast<RawH2Client*>(self);
          if (frame->hd.type == NGHTTP2_GOAWAY) c->goaway_error_ = frame->goaway.error_code;
          if (frame->hd.type == NGHTTP2_RST_STREAM) c->rst_error_ = frame->rst_stream.error_code;
          return 0;
        });
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawH2Client() {
    nghttp2_session_del(session_);
    if (fd_ >= 0) ::close(fd_);
  }
  int32_t Request(const std::string& path) {
    std::string m = "GET", s = "http", a = "shop.test", p = path;
    const nghttp2_nv nva[] = {Nv(":method", m), Nv(":scheme", s), Nv(":authority", a),
                              Nv(":path", p)};
    return nghttp2_submit_request(session_, nullptr, nva, 4, nullptr, nullptr);
  }
  // A POST declaring `content_length` whose body stops after `sent` (the rest never comes).
  int32_t StalledPost(const std::string& path, size_t content_length, std::string sent) {
    body_ = std::move(sent);
    std::string m = "POST", s = "http", a = "shop.test", p = path,
                l = std::to_string(content_length);
    const nghttp2_nv nva[] = {Nv(":method", m), Nv(":scheme", s), Nv(":authority", a),
                              Nv(":path", p), Nv("content-length", l)};
    nghttp2_data_provider provider{};
    provider.source.ptr = this;
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t*,
                                nghttp2_data_source* source, void*) -> ssize_t {
      auto* c = static_cast<RawH2Client*>(source->ptr);
      const size_t n = std::min(length, c->body_.size() - c->body_sent_);
      if (n == 0) return NGHTTP2_ERR_DEFERRED;
      std::memcpy(buf, c->body_.data() + c->body_sent_, n);
      c->body_sent_ += n;
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(session_, nullptr, nva, 5, &provider, nullptr);
  }
  void Reset(int32_t stream) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, NGHTTP2_CANCEL);
  }
  // Writes what the session has queued; false once the proxy closed the connection.
  bool Send() {
    std::string out;
    const uint8_t* data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    return testing::SendAll(fd_, out);
  }
  // Reads (and parses, as the client side of a connection whose preface and SETTINGS went
  // out) until the proxy closes the connection; false on a timeout.
  bool ReadToClose(int timeout_ms = 10000) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
      if (n < 0) return false;
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                               static_cast<size_t>(n));
    }
  }
  // Reads (and parses) until `done()` or the proxy closes the connection; false on a timeout.
  bool ReadUntil(const std::function<bool()>& done, int timeout_ms = 10000) {
    timeval tv{0, 100 * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[16384];
    for (int waited = 0; !done(); waited += 100) {
      if (waited >= timeout_ms) return false;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return done();
      if (n > 0) {
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                                 static_cast<size_t>(n));
      }
    }
    return true;
  }
  int fd() const { return fd_; }
  int64_t goaway_error() const { return goaway_error_; }
  int64_t rst_error() const { return rst_error_; }

 private:
  static nghttp2_nv Nv(const char* name, std::string& value) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
            reinterpret_cast<uint8_t*>(value.data()), strlen(name), value.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  int fd_;
  nghttp2_session* session_ = nullptr;
  int64_t goaway_error_ = -1;
  int64_t rst_error_ = -1;
  std::string body_;  // StalledPost's
  size_t body_sent_ = 0;
};

// A client that stops sending in the middle of a streamed HTTP/2 body: after
// --request-timeout its stream is reset (CANCEL), request_timeout is counted, the primary
// never gets a complete request, and the proxy serves the next request.
TEST_F(H2ProxyTest, StalledStreamedBodyIsResetAfterTheRequestTimeout) {
  Start([](RecorderOptions& o) {
    o.request_buffer = 16 * 1024;
    o.request_timeout = std::chrono::milliseconds(300);
  });
  RawH2Client client(port_);
  const int32_t id = client.StalledPost("/echo", 1 << 20, std::string(40000, 'x'));
  ASSERT_GT(id, 0);
  ASSERT_TRUE(client.Send());
  ASSERT_TRUE(client.ReadUntil([&] { return client.rst_error() >= 0; }))
      << "the stalled stream was not reset";
  EXPECT_EQ(client.rst_error(), NGHTTP2_CANCEL);
  EXPECT_TRUE(Eventually(
      [&] { return Metric("doppel_proxy_errors_total{reason=\"request_timeout\"}") == 1; }));
  EXPECT_TRUE(upstream_.requests().empty()) << "the upstream got a complete request";
  auto next = testing::Fetch(port_, "GET", "/size?n=3");
  EXPECT_EQ(next.result_int(), 200u);
}

// CVE-2023-44487: a client that opens and resets streams in a tight loop gets GOAWAY
// ENHANCE_YOUR_CALM and is cut off; no stream stays behind and other clients are served.
TEST_F(H2ProxyTest, RapidResetIsCutOffWithEnhanceYourCalm) {
  Start();
  RawH2Client attacker(port_);
  bool open = true;
  for (int i = 0; i < 5000 && open; ++i) {
    const int32_t stream = attacker.Request("/size?n=10");
    open = attacker.Send();  // HEADERS goes out before its reset
    attacker.Reset(stream);
    open = open && attacker.Send();
  }
  ASSERT_TRUE(attacker.ReadToClose());
  EXPECT_EQ(attacker.goaway_error(), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_TRUE(Eventually(
      [&] { return Metric("doppel_h2_connections_closed_total{reason=\"rapid_reset\"}") == 1; }));
  EXPECT_TRUE(Eventually([&] { return Metric("doppel_h2_streams_active") == 0; }));
  // Far fewer requests reached the primary than were opened.
  EXPECT_LT(upstream_.requests().size(), 1000u);
  ClientRun other =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", Url("/size?n=2")});
  EXPECT_EQ(other.out, "ss");
}

// A client that sends PINGs and never reads the acknowledgements is cut off before the
// proxy queues more than a bounded number of them.
TEST_F(H2ProxyTest, PingFloodIsCutOff) {
  Start();
  const int fd = testing::ConnectToLoopback(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(testing::SendAll(fd, std::string(kPreface) + Frame(0x4, 0, 0, "")));
  std::string pings;
  for (int i = 0; i < 20000; ++i) pings += Frame(0x6, 0, 0, std::string(8, 'p'));
  bool closed = false;
  for (int round = 0; round < 100 && !closed; ++round) closed = !testing::SendAll(fd, pings);
  ::close(fd);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(Eventually([&] {
    return Metric("doppel_h2_connections_closed_total{reason=\"flood\"}") == 1;
  })) << rec_->MetricsText();
  ClientRun other =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", Url("/size?n=2")});
  EXPECT_EQ(other.out, "ss");
}

TEST_F(H2ProxyTest, MalformedPrefaceOrFramesCloseTheConnection) {
  Start();
  {
    // Not quite the preface: HTTP/1.x, which answers 505 and closes.
    testing::TestClient c(port_);
    ASSERT_TRUE(c.Write("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
    const std::string answer = c.ReadAll();
    EXPECT_EQ(answer.rfind("HTTP/1.1 505", 0), 0u) << answer;
  }
  {
    // The preface, then garbage where SETTINGS must come.
    RawH2Client c(port_);
    ASSERT_TRUE(testing::SendAll(c.fd(), std::string(kPreface) + std::string(64, '\xff')));
    EXPECT_TRUE(c.ReadToClose());
  }
  {
    // A valid start, then a DATA frame on stream 0 (a connection error).
    RawH2Client c(port_);
    ASSERT_TRUE(testing::SendAll(
        c.fd(), std::string(kPreface) + Frame(0x4, 0, 0, "") + Frame(0x0, 0, 0, "xx")));
    EXPECT_TRUE(c.ReadToClose());
    EXPECT_EQ(c.goaway_error(), NGHTTP2_PROTOCOL_ERROR);
  }
  EXPECT_TRUE(Eventually(
      [&] { return Metric("doppel_h2_connections_closed_total{reason=\"protocol\"}") == 2; }));
  ClientRun other =
      RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", Url("/size?n=2")});
  EXPECT_EQ(other.out, "ss");
}

// Shutdown: the stream in flight is answered, then the connection is closed with GOAWAY.
TEST_F(H2ProxyTest, DrainFinishesTheStreamInFlight) {
  Start();
  ChildProcess curl({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", Url("/slow?ms=500")});
  ASSERT_TRUE(Eventually([&] { return upstream_.requests().size() == 1; }, 10000));
  rec_->Stop();
  EXPECT_EQ(curl.Wait(20000), 0) << curl.all_stderr();
  EXPECT_EQ(curl.all_stdout(), "slow");
  ASSERT_EQ(sink_.envelopes().size(), 1u);
}

// A self-signed certificate and its key for 127.0.0.1, made by the openssl CLI.
struct TestCert {
  std::string dir;
  std::string cert = dir + "/cert.pem";
  std::string key = dir + "/key.pem";
  explicit TestCert(const std::string& name = "h2-tls") : dir(testing::MakeTempDir(name)) {
    ClientRun made = RunClient({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                                "/CN=127.0.0.1", "-keyout", key, "-out", cert});
    EXPECT_EQ(made.code, 0) << made.err;
  }
  ~TestCert() { std::filesystem::remove_all(dir); }
};

// TLS on the listener: ALPN h2 gets HTTP/2, ALPN http/1.1 gets HTTP/1.1, both captured with
// scheme https, the protocol, the TLS version and the ALPN.
TEST_F(H2ProxyTest, TlsListenerServesH2AndHttp11ByAlpn) {
  TestCert tls;
  Start([&](RecorderOptions& o) {
    o.tls_cert_file = tls.cert;
    o.tls_key_file = tls.key;
  });
  const std::string url = "https://127.0.0.1:" + std::to_string(port_) + "/size?n=4";
  ClientRun h2 =
      RunClient({"/usr/bin/curl", "-sS", "-k", "--http2", "-w", " %{http_version}", url});
  ASSERT_EQ(h2.code, 0) << h2.err;
  EXPECT_EQ(h2.out, "ssss 2");
  ClientRun h1 =
      RunClient({"/usr/bin/curl", "-sS", "-k", "--http1.1", "-w", " %{http_version}", url});
  ASSERT_EQ(h1.code, 0) << h1.err;
  EXPECT_EQ(h1.out, "ssss 1.1");
  // Plaintext on a TLS listener is no request.
  EXPECT_EQ(testing::Fetch(port_, "GET", "/size?n=1").result_int(), 0u);
  auto seen = upstream_.requests();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].Header("X-Forwarded-Proto"), "https");
  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 2u);
  EXPECT_EQ(env[0].scheme(), "https");
  EXPECT_EQ(env[0].client_protocol(), "h2");
  EXPECT_EQ(env[0].alpn(), "h2");
  EXPECT_EQ(env[0].tls_version().rfind("TLSv1.", 0), 0u) << env[0].tls_version();
  EXPECT_EQ(env[0].response().body(), "ssss");
  EXPECT_EQ(env[1].scheme(), "https");
  EXPECT_EQ(env[1].client_protocol(), "http/1.1");
  EXPECT_EQ(env[1].alpn(), "http/1.1");
  EXPECT_EQ(env[1].request().version(), 11u);
  EXPECT_EQ(Metric("doppel_tls_handshakes_failed_total"), 1);
}

TEST_F(H2ProxyTest, BadCertificateOrKeyIsAClearError) {
  TestCert tls;
  TestCert other("h2-tls-other");
  struct Case {
    std::string cert, key, expected;
  };
  for (const Case& c :
       {Case{tls.dir + "/missing.pem", tls.key, "--tls-cert"},
        Case{tls.cert, tls.cert, "--tls-key"}, Case{tls.cert, other.key, "does not match"},
        Case{tls.cert, "", "go together"}}) {
    RecorderOptions o = LoopbackOptions(upstream_.url());
    o.tls_cert_file = c.cert;
    o.tls_key_file = c.key;
    auto rec = Recorder::Start(std::move(o), &sink_, nullptr);
    ASSERT_FALSE(rec.ok()) << c.cert << " " << c.key;
    EXPECT_NE(rec.status().ToString().find(c.expected), std::string::npos)
        << rec.status().ToString();
  }
}

// An h2c primary (--upstream h2c://): HTTP/2 and HTTP/1.1 clients are served over one
// multiplexed HTTP/2 connection to nghttpd; the primary's trailers reach HTTP/2 clients and
// the envelopes.
TEST_F(H2ProxyTest, H2cUpstreamServesBothClientProtocolsWithTrailers) {
  testing::Nghttpd primary({"grpc-status: 0", "x-check: done"});
  ASSERT_TRUE(primary.ok());
  primary.WriteFile("hello.txt", "hello from h2");
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 3);
  primary.WriteFile("big.bin", big);
  Start([&](RecorderOptions& o) { o.upstream = net::ParseUrl(primary.url()).value(); });

  // nghttp (nghttp2-client) prints every frame: the trailers come in a HEADERS frame after
  // the DATA, with END_STREAM.
  ClientRun h2 = RunClient({"/usr/bin/nghttp", "-v", Url("/hello.txt")});
  ASSERT_EQ(h2.code, 0) << h2.err;
  const size_t data = h2.out.find("recv DATA frame <length=13");
  const size_t status = h2.out.find("grpc-status: 0", data);
  const size_t check = h2.out.find("x-check: done", data);
  const size_t end = h2.out.find("END_STREAM | END_HEADERS", data);
  ASSERT_NE(data, std::string::npos) << h2.out;
  EXPECT_NE(status, std::string::npos) << h2.out;
  EXPECT_NE(check, std::string::npos) << h2.out;
  EXPECT_NE(end, std::string::npos) << h2.out;
  EXPECT_NE(h2.out.find("hello from h2"), std::string::npos) << h2.out;
  const std::string dir = testing::MakeTempDir("h2-upstream");

  auto h1 = testing::Fetch(port_, "GET", "/hello.txt");
  EXPECT_EQ(h1.result_int(), 200u);
  EXPECT_EQ(h1.body(), "hello from h2");

  ClientRun download = RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-o",
                                  dir + "/big.out", "-w", "%{http_code}", Url("/big.bin")});
  ASSERT_EQ(download.code, 0) << download.err;
  EXPECT_EQ(download.out, "200");
  std::ifstream got_file(dir + "/big.out", std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(got_file)), {});
  EXPECT_TRUE(got == big) << got.size();

  ClientRun load =
      RunClient({"/usr/bin/h2load", "-n", "100", "-c", "2", "-m", "50", Url("/hello.txt")});
  ASSERT_EQ(load.code, 0) << load.out << load.err;
  EXPECT_NE(load.out.find("100 succeeded, 0 failed, 0 errored"), std::string::npos) << load.out;

  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 103u);
  EXPECT_EQ(env[0].client_protocol(), "h2c");
  EXPECT_EQ(env[0].response().version(), 20u);
  EXPECT_EQ(env[0].response().body(), "hello from h2");
  ASSERT_EQ(env[0].response().trailers_size(), 2);
  EXPECT_EQ(env[0].response().trailers(0).name(), "grpc-status");
  EXPECT_EQ(env[0].response().trailers(0).value(), "0");
  EXPECT_EQ(env[1].client_protocol(), "http/1.1");
  EXPECT_EQ(env[1].response().trailers_size(), 2);  // recorded (not chunked: not relayed)
  EXPECT_EQ(env[2].response().body_size(), big.size());
  std::filesystem::remove_all(dir);
}

// An h2 primary over TLS (--upstream h2://, its certificate verified with --upstream-ca):
// HTTP/2 and HTTP/1.1 clients are served over HTTP/2 and TLS, trailers included.
TEST_F(H2ProxyTest, H2UpstreamOverTlsServesBothClientProtocols) {
  testing::Nghttpd primary({"grpc-status: 0"}, testing::Nghttpd::Transport::kTls);
  ASSERT_TRUE(primary.ok());
  primary.WriteFile("hello.txt", "hello from h2 over TLS");
  Start([&](RecorderOptions& o) {
    o.upstream = net::ParseUrl(primary.url()).value();
    o.upstream_tls.ca_file = primary.tls_ca();
  });
  ClientRun h2 = RunClient({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-w",
                            " %{http_version}", Url("/hello.txt")});
  ASSERT_EQ(h2.code, 0) << h2.err;
  EXPECT_EQ(h2.out, "hello from h2 over TLS 2");
  auto h1 = testing::Fetch(port_, "GET", "/hello.txt");
  EXPECT_EQ(h1.result_int(), 200u);
  EXPECT_EQ(h1.body(), "hello from h2 over TLS");

  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 2u);
  for (const auto& e : env) {
    EXPECT_EQ(e.response().version(), 20u);
    ASSERT_EQ(e.response().trailers_size(), 1);
    EXPECT_EQ(e.response().trailers(0).value(), "0");
  }
}

// An HTTP/1.1 primary's chunked trailer section reaches HTTP/2 clients after the body and is
// recorded as the response's trailers, not its headers; its hop-by-hop fields do neither.
TEST_F(H2ProxyTest, Http11PrimarysChunkedTrailersReachHttp2ClientsAndTheEnvelope) {
  Start();
  ClientRun h2 = RunClient({"/usr/bin/nghttp", "-v", Url("/trailers")});
  ASSERT_EQ(h2.code, 0) << h2.err;
  const size_t data = h2.out.find("recv DATA frame <length=5");
  ASSERT_NE(data, std::string::npos) << h2.out;
  EXPECT_NE(h2.out.find("x-checksum: sha-abc", data), std::string::npos) << h2.out;
  EXPECT_EQ(h2.out.find("keep-alive"), std::string::npos) << h2.out;
  EXPECT_NE(h2.out.find("hello"), std::string::npos) << h2.out;
  auto h1 = testing::Fetch(port_, "GET", "/trailers");
  EXPECT_EQ(h1.result_int(), 200u);
  EXPECT_EQ(h1.body(), "hello");

  rec_->Stop();
  auto env = sink_.envelopes();
  ASSERT_EQ(env.size(), 2u);
  for (const auto& e : env) {
    EXPECT_EQ(e.response().body(), "hello");
    ASSERT_EQ(e.response().trailers_size(), 1) << e.client_protocol();
    EXPECT_EQ(e.response().trailers(0).name(), "X-Checksum");
    EXPECT_EQ(e.response().trailers(0).value(), "sha-abc");
    for (const auto& h : e.response().headers()) EXPECT_NE(h.name(), "X-Checksum");
  }
}

// An HTTP/1.1 client whose TE lists "trailers" gets the primary's trailer section after the
// chunked body (hop-by-hop fields left out); one that did not ask gets none. Both on one
// kept-alive connection, so the message ends where the client expects.
TEST_F(H2ProxyTest, Http11ClientsThatAskGetTheTrailers) {
  Start();
  testing::TestClient c(port_);
  ASSERT_TRUE(
      c.Write("GET /trailers HTTP/1.1\r\nHost: shop.test\r\nTE: gzip;q=0.5, trailers\r\n\r\n"));
  const std::string with = c.ReadUntil("\r\n0\r\n");
  std::string rest = c.ReadUntil("\r\n\r\n", 5000);
  EXPECT_NE(with.find("\r\n5\r\nhello\r\n0\r\n"), std::string::npos) << with;
  EXPECT_EQ(rest, "X-Checksum: sha-abc\r\n\r\n");
  ASSERT_TRUE(c.Write("GET /trailers HTTP/1.1\r\nHost: shop.test\r\n\r\n"));
  const std::string without = c.ReadUntil("\r\n0\r\n\r\n");
  EXPECT_NE(without.find("hello\r\n0\r\n\r\n"), std::string::npos) << without;
  EXPECT_EQ(without.find("X-Checksum"), std::string::npos) << without;
  // curl reads the trailer section as headers after the body: -D shows it.
  const std::string dir = testing::MakeTempDir("h1-trailers");
  ClientRun curl = RunClient({"/usr/bin/curl", "-sS", "-H", "TE: trailers", "-D", dir + "/headers",
                              "-o", "/dev/null", Url("/trailers")});
  ASSERT_EQ(curl.code, 0) << curl.err;
  std::ifstream h(dir + "/headers");
  const std::string headers((std::istreambuf_iterator<char>(h)), {});
  EXPECT_NE(headers.find("X-Checksum: sha-abc"), std::string::npos) << headers;
  EXPECT_EQ(headers.find("Keep-Alive: timeout=5"), std::string::npos) << headers;
  std::filesystem::remove_all(dir);
}

TEST_F(H2ProxyTest, UnreachableH2cUpstreamIsA502) {
  const unsigned port = testing::FreePort();
  Start([&](RecorderOptions& o) {
    o.upstream = net::ParseUrl("h2c://127.0.0.1:" + std::to_string(port)).value();
  });
  ClientRun get = RunClient(
      {"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code}", Url("/x")});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_NE(get.out.find("502"), std::string::npos) << get.out;
}

// An HTTP/1.1 upload over --request-buffer to an HTTP/2 primary: the body goes out in DATA
// frames as it arrives and comes back intact. The primary is a second proxy whose h2c listener
// fronts the echoing test upstream, so the answer is what it received (the backpressure of
// this path: proxy_stream_test's UploadToAnH2cPrimaryStreamsWithBackpressure).
TEST_F(H2ProxyTest, StreamedUploadToAnH2cPrimaryArrivesWhole) {
  Start();  // the h2c "primary": this fixture's proxy in front of the echo upstream
  MemorySink front_sink;
  uint16_t front_port = 0;
  RecorderOptions front = LoopbackOptions("h2c://127.0.0.1:" + std::to_string(port_), "front");
  front.request_buffer = 64 * 1024;
  RecorderPtr front_rec = StartLoopback(std::move(front), &front_sink, nullptr, &front_port);
  ASSERT_NE(front_rec, nullptr);

  std::string body(3 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>((i * 7919) >> 3);
  auto res = testing::Fetch(front_port, "POST", "/echo", body);
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_TRUE(res.body() == body) << res.body().size() << " bytes came back of " << body.size();
  front_rec->Stop();
  auto env = front_sink.envelopes();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].request().body_size(), body.size());
}

}  // namespace
}  // namespace doppel::recorder
