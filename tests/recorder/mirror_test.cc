// Live mirroring, fast checks: the --mirror spec parser (every key, defaults, every error),
// MirrorHub::Create's checks and metrics, and Host shadowing through a real exchange (the
// proxy in-process, a TestUpstream as primary and another as mirror).
#include "recorder/mirror.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "recorder/recorder.h"
#include "tests/base/gate.h"
#include "tests/diff/gated_differ.h"
#include "tests/net/test_upstream.h"

namespace doppel::recorder {
namespace {

namespace http = boost::beast::http;
using testing::TestClient;
using testing::TestUpstream;

// The error message of a spec that must not parse ("" if it parsed).
std::string SpecError(const std::string& text) {
  auto spec = ParseMirrorSpec(text);
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), Status::Code::kInvalidArgument) << text;
  return spec.status().message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------- ParseMirrorSpec

TEST(ParseMirrorSpecTest, DefaultsForABareUrl) {
  auto spec = ParseMirrorSpec("http://staging.internal:8080");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->text, "http://staging.internal:8080");
  EXPECT_EQ(spec->url.host, "staging.internal");
  EXPECT_EQ(spec->url.port, 8080);
  EXPECT_EQ(spec->name, "staging.internal:8080");
  EXPECT_EQ(spec->percent, 100);
  EXPECT_EQ(spec->timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(spec->max_inflight, 1000u);
  EXPECT_EQ(spec->rule, "");
  EXPECT_TRUE(spec->set_headers.empty());
  EXPECT_TRUE(spec->remove_headers.empty());
  EXPECT_TRUE(spec->tls.verify);
  EXPECT_EQ(spec->tls.ca_file, "");

  // The default port of the scheme goes into the default name.
  auto https = ParseMirrorSpec("https://shadow.example");
  ASSERT_TRUE(https.ok()) << https.status().ToString();
  EXPECT_EQ(https->name, "shadow.example:443");
  EXPECT_TRUE(https->url.tls());
}

TEST(ParseMirrorSpecTest, EveryKey) {
  auto spec = ParseMirrorSpec(
      "https://m.test:9443/base,percent=12.5,timeout=250ms,max-inflight=50,rule=dbg,"
      "name=stg-a,set-header=X-Env:staging,set-header=X-Two:  spaced  ,remove-header=Cookie,"
      "remove-header=X-Debug,ca=/etc/ssl/shadow.pem,insecure");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->url.scheme, "https");
  EXPECT_EQ(spec->url.base_path, "/base");
  EXPECT_DOUBLE_EQ(spec->percent, 12.5);
  EXPECT_EQ(spec->timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(spec->max_inflight, 50u);
  EXPECT_EQ(spec->rule, "dbg");
  EXPECT_EQ(spec->name, "stg-a");
  ASSERT_EQ(spec->set_headers.size(), 2u);
  EXPECT_EQ(spec->set_headers[0], std::make_pair(std::string("X-Env"), std::string("staging")));
  // The value is trimmed, as a header value is.
  EXPECT_EQ(spec->set_headers[1], std::make_pair(std::string("X-Two"), std::string("spaced")));
  EXPECT_EQ(spec->remove_headers, (std::vector<std::string>{"Cookie", "X-Debug"}));
  EXPECT_EQ(spec->tls.ca_file, "/etc/ssl/shadow.pem");
  EXPECT_FALSE(spec->tls.verify);
}

// mTLS toward a mirror: cert= and key= together, https only.
TEST(ParseMirrorSpecTest, ClientCertificateAndKey) {
  auto spec = ParseMirrorSpec("https://m.test:9443,cert=/etc/doppel/c.pem,key=/etc/doppel/c.key");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->tls.cert_file, "/etc/doppel/c.pem");
  EXPECT_EQ(spec->tls.key_file, "/etc/doppel/c.key");
  EXPECT_TRUE(spec->tls.verify);
  EXPECT_TRUE(Contains(SpecError("https://m:1,cert=c.pem"), "cert=FILE and key=FILE go together"));
  EXPECT_TRUE(Contains(SpecError("https://m:1,key=c.key"), "cert=FILE and key=FILE go together"));
  EXPECT_TRUE(Contains(SpecError("http://m:1,cert=c.pem,key=c.key"), "https:// mirror"));
  EXPECT_TRUE(Contains(SpecError("https://m:1,cert=,key=k"), "cert= needs"));
  EXPECT_TRUE(Contains(SpecError("https://m:1,bogus=1"), "cert, key"));
}

TEST(ParseMirrorSpecTest, TimeoutUnitsAndPercentBounds) {
  auto bare = ParseMirrorSpec("http://m:1,timeout=3");  // a bare number is seconds
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->timeout, std::chrono::milliseconds(3000));
  auto fraction = ParseMirrorSpec("http://m:1,timeout=1.5s");
  ASSERT_TRUE(fraction.ok());
  EXPECT_EQ(fraction->timeout, std::chrono::milliseconds(1500));
  for (const char* p : {"0", "100", "0.01", "99.99"}) {
    auto s = ParseMirrorSpec(std::string("http://m:1,percent=") + p);
    ASSERT_TRUE(s.ok()) << p << ": " << s.status().ToString();
    EXPECT_DOUBLE_EQ(s->percent, std::stod(p));
  }
  auto cap = ParseMirrorSpec("http://m:1,max-inflight=1000000");
  ASSERT_TRUE(cap.ok());
  EXPECT_EQ(cap->max_inflight, 1000000u);
}

TEST(ParseMirrorSpecTest, EscapedCommaInASetHeaderValue) {
  auto spec = ParseMirrorSpec(R"(http://m:1,set-header=X-List:a\,b\, c,percent=5)");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->set_headers.size(), 1u);
  EXPECT_EQ(spec->set_headers[0].first, "X-List");
  EXPECT_EQ(spec->set_headers[0].second, "a,b, c");
  EXPECT_DOUBLE_EQ(spec->percent, 5);  // the item after the value is still its own item
}

TEST(ParseMirrorSpecTest, BadPercent) {
  for (const char* p : {"abc", "101", "-1", "", "30%", "nan", "inf", "5x"}) {
    const std::string text = std::string("http://m:1,percent=") + p;
    const std::string err = SpecError(text);
    EXPECT_TRUE(Contains(err, "--mirror '" + text + "'")) << err;
    EXPECT_TRUE(Contains(err, std::string("percent='") + p + "' must be a number from 0 to 100"))
        << err;
  }
}

TEST(ParseMirrorSpecTest, BadTimeout) {
  for (const char* t : {"fast", "0", "500us", "", "-1s", "2 weeks"}) {
    const std::string err = SpecError(std::string("http://m:1,timeout=") + t);
    EXPECT_TRUE(Contains(
        err, std::string("timeout='") + t + "' must be a duration of at least 1ms, e.g. 2s"))
        << t << ": " << err;
  }
}

TEST(ParseMirrorSpecTest, BadMaxInflight) {
  for (const char* n : {"0", "x", "", "1000001", "-5", "10.5"}) {
    const std::string err = SpecError(std::string("http://m:1,max-inflight=") + n);
    EXPECT_TRUE(Contains(
        err, std::string("max-inflight='") + n + "' must be a whole number from 1 to 1000000"))
        << n << ": " << err;
  }
}

TEST(ParseMirrorSpecTest, UnknownKeyAndNotKeyValue) {
  std::string err = SpecError("http://m:1,pct=5");
  EXPECT_TRUE(Contains(err, "unknown key 'pct'")) << err;
  EXPECT_TRUE(Contains(err,
                       "known keys: percent, timeout, max-inflight, rule, name, set-header, "
                       "remove-header, ca, cert, key, insecure"))
      << err;
  err = SpecError("http://m:1,verbose");
  EXPECT_TRUE(Contains(err, "'verbose' is not KEY=VALUE")) << err;
  EXPECT_TRUE(Contains(err, "known keys: percent")) << err;
  // A comma too many leaves an empty item, which is not KEY=VALUE either.
  err = SpecError("http://m:1,,percent=5");
  EXPECT_TRUE(Contains(err, "'' is not KEY=VALUE")) << err;
}

TEST(ParseMirrorSpecTest, BadHeaders) {
  std::string err = SpecError("http://m:1,set-header=NoColon");
  EXPECT_TRUE(Contains(err, "set-header='NoColon' must be NAME:VALUE with a valid header name"))
      << err;
  err = SpecError("http://m:1,set-header=Bad Name:1");
  EXPECT_TRUE(Contains(err, "set-header='Bad Name:1' must be NAME:VALUE")) << err;
  err = SpecError("http://m:1,set-header=:value");
  EXPECT_TRUE(Contains(err, "set-header=':value' must be NAME:VALUE")) << err;
  err = SpecError("http://m:1,remove-header=Bad Name");
  EXPECT_TRUE(Contains(err, "remove-header='Bad Name' is not a header name")) << err;
  err = SpecError("http://m:1,remove-header=");
  EXPECT_TRUE(Contains(err, "remove-header='' is not a header name")) << err;
}

TEST(ParseMirrorSpecTest, BadNameRuleCaAndUrl) {
  std::string err = SpecError("http://m:1,name=has space");
  EXPECT_TRUE(Contains(err, "name='has space' may only use letters, digits and . _ - :")) << err;
  err = SpecError("http://m:1,name=");
  EXPECT_TRUE(Contains(err, "name='' may only use")) << err;
  err = SpecError("http://m:1,name=a\"b");  // would break the Prometheus label
  EXPECT_TRUE(Contains(err, "may only use")) << err;
  err = SpecError("http://m:1,rule=");
  EXPECT_TRUE(Contains(err, "rule= needs the name of a match rule")) << err;
  err = SpecError("https://m:1,ca=");
  EXPECT_TRUE(Contains(err, "ca= needs a PEM file")) << err;
  err = SpecError("ftp://m:1,percent=5");
  EXPECT_TRUE(Contains(err, "--mirror 'ftp://m:1,percent=5'")) << err;
  EXPECT_TRUE(Contains(err, "scheme must be http, https, h2c (HTTP/2 in plaintext) or h2")) << err;
  err = SpecError("");
  EXPECT_FALSE(err.empty());
}

// ---------------------------------------------------------------- MirrorHub::Create

MirrorSpec Spec(const std::string& text) {
  auto spec = ParseMirrorSpec(text);
  EXPECT_TRUE(spec.ok()) << text << ": " << spec.status().ToString();
  return spec.ok() ? spec.value() : MirrorSpec{};
}

std::string CreateError(MirrorOptions o, const net::MatchRules& capture = {}) {
  net::MetricsRegistry registry;
  auto hub = MirrorHub::Create(std::move(o), capture, registry);
  if (hub.ok()) return "";
  EXPECT_EQ(hub.status().code(), Status::Code::kInvalidArgument);
  return hub.status().message();
}

TEST(MirrorHubTest, UnknownRuleName) {
  MirrorOptions o;
  o.mirrors.push_back(Spec("http://m:1,rule=dbg"));
  const std::string err = CreateError(o);
  EXPECT_TRUE(Contains(err, "--mirror 'http://m:1,rule=dbg': no match rule named 'dbg'")) << err;
  EXPECT_TRUE(Contains(err, "define it with --mirror-match 'name=dbg,...'")) << err;

  // Defined among the mirror rules, or among the capture rules (--match): both are found.
  auto mirror_rules = net::MatchRules::FromFlags({"name=dbg,header.Cookie~=.*x.*"});
  ASSERT_TRUE(mirror_rules.ok());
  o.rules = mirror_rules.value();
  EXPECT_EQ(CreateError(o), "");
  o.rules = {};
  auto capture = net::MatchRules::FromFlags({"name=dbg,uri^=/api/"});
  ASSERT_TRUE(capture.ok());
  EXPECT_EQ(CreateError(o, capture.value()), "");
}

TEST(MirrorHubTest, DuplicateNames) {
  MirrorOptions o;
  o.mirrors.push_back(Spec("http://m:1/a"));
  o.mirrors.push_back(Spec("http://m:1/b"));  // same default name "m:1"
  std::string err = CreateError(o);
  EXPECT_TRUE(Contains(err, "two mirrors are named 'm:1'")) << err;
  EXPECT_TRUE(Contains(err, "give each a distinct name=")) << err;
  o.mirrors[1] = Spec("http://m:1/b,name=m-b");
  EXPECT_EQ(CreateError(o), "");
  o.mirrors[1] = Spec("http://other:2,name=m:1");  // an explicit name can collide too
  err = CreateError(o);
  EXPECT_TRUE(Contains(err, "two mirrors are named 'm:1'")) << err;
}

TEST(MirrorHubTest, BadGlobalHeaderMutations) {
  MirrorOptions o;
  o.mirrors.push_back(Spec("http://m:1"));
  o.set_headers = {{"Bad Name", "1"}};
  std::string err = CreateError(o);
  EXPECT_TRUE(Contains(err,
                       "--mirror-set-header 'Bad Name=1': give NAME=VALUE with a valid "
                       "header name"))
      << err;
  o.set_headers = {{"X-Ok", "line\r\nInjected: 1"}};
  err = CreateError(o);
  EXPECT_TRUE(Contains(err, "--mirror-set-header 'X-Ok=")) << err;
  o.set_headers = {{"X-Ok", "fine"}};
  o.remove_headers = {"no good"};
  err = CreateError(o);
  EXPECT_TRUE(Contains(err, "--mirror-remove-header 'no good' is not a header name")) << err;
  o.remove_headers = {"Authorization"};
  EXPECT_EQ(CreateError(o), "");
}

TEST(MirrorHubTest, RegistersPerMirrorMetricsAndStatus) {
  net::MetricsRegistry registry;
  MirrorOptions o;
  o.mirrors.push_back(Spec("http://m:1,name=staging,percent=10,max-inflight=7,timeout=300ms"));
  o.mirrors.push_back(Spec("http://n:2"));
  o.diff = true;
  auto hub = MirrorHub::Create(o, {}, registry);
  ASSERT_TRUE(hub.ok()) << hub.status().ToString();
  const std::string page = registry.RenderPrometheus();
  for (const char* series :
       {"doppel_mirror_sent_total{mirror=\"staging\"} 0",
        "doppel_mirror_succeeded_total{mirror=\"n:2\"} 0",
        "doppel_mirror_failed_total{mirror=\"staging\",reason=\"connect\"} 0",
        "doppel_mirror_failed_total{mirror=\"staging\",reason=\"timeout\"} 0",
        "doppel_mirror_failed_total{mirror=\"staging\",reason=\"reset\"} 0",
        "doppel_mirror_failed_total{mirror=\"staging\",reason=\"5xx\"} 0",
        "doppel_mirror_dropped_total{mirror=\"staging\",reason=\"max_inflight\"} 0",
        "doppel_mirror_dropped_total{mirror=\"staging\",reason=\"sampling\"} 0",
        "doppel_mirror_dropped_total{mirror=\"staging\",reason=\"rule\"} 0",
        "doppel_mirror_dropped_total{mirror=\"staging\",reason=\"unavailable\"} 0",
        "doppel_mirror_inflight{mirror=\"staging\"} 0",
        "doppel_mirror_diff_total{mirror=\"staging\",result=\"match\"} 0",
        "doppel_mirror_diff_total{mirror=\"n:2\",result=\"mismatch\"} 0",
        "doppel_mirror_diff_skipped_total{mirror=\"staging\"} 0",
        "doppel_mirror_latency_seconds_count{mirror=\"staging\"} 0",
        "doppel_mirror_primary_latency_seconds_count{mirror=\"staging\"} 0"}) {
    EXPECT_TRUE(Contains(page, series)) << series << "\n" << page;
  }
  const boost::json::array status = hub.value()->StatusJson();
  ASSERT_EQ(status.size(), 2u);
  const auto& s = status[0].as_object();
  EXPECT_EQ(s.at("name").as_string(), "staging");
  EXPECT_EQ(s.at("percent").to_number<double>(), 10);
  EXPECT_EQ(s.at("max_inflight").to_number<int>(), 7);
  EXPECT_EQ(s.at("timeout_ms").to_number<int>(), 300);
  EXPECT_EQ(s.at("sent").to_number<int>(), 0);
  EXPECT_TRUE(s.at("diff").as_object().at("top_paths").is_array());
  EXPECT_EQ(s.at("diff").as_object().at("skipped").to_number<int>(), 0);
  EXPECT_EQ(hub.value()->inflight(), 0u);

  // Without --mirror-diff there is no diff series and no "diff" object.
  net::MetricsRegistry plain_registry;
  o.diff = false;
  auto plain = MirrorHub::Create(o, {}, plain_registry);
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(Contains(plain_registry.RenderPrometheus(), "doppel_mirror_diff_total"));
  EXPECT_FALSE(plain.value()->StatusJson()[0].as_object().contains("diff"));
}

// ---------------------------------------------------------------- Host shadowing

class NullSink : public CaptureSink {
 public:
  Status Append(std::span<const doppel::v1::Envelope>) override { return Status::Ok(); }
};

class MirrorExchangeTest : public ::testing::Test {
 protected:
  void Start(bool shadow_suffix, std::string mirror_url = "",
             const std::function<void(MirrorOptions&)>& more = {}) {
    RecorderOptions o;
    o.listen = {"127.0.0.1", 0};
    o.upstream = net::ParseUrl(primary_.url()).value();
    o.threads = 1;
    o.session = "mirror-unit";
    o.sample_percent = 0;
    o.capture_body_limit = capture_body_limit_;
    o.request_buffer = request_buffer_;
    if (mirror_url.empty()) mirror_url = mirror_.url();
    o.mirror.mirrors.push_back(Spec(mirror_url + ",name=m"));
    o.mirror.shadow_suffix = shadow_suffix;
    if (more) more(o.mirror);
    auto rec = Recorder::Start(std::move(o), &sink_, &redactor_);
    ASSERT_TRUE(rec.ok()) << rec.status().ToString();
    rec_ = std::move(rec.value());
  }
  void TearDown() override {
    gate_.Open();  // comparisons held by a test must not hold up Stop
    if (rec_) rec_->Stop();
  }
  // Sends one request per Host value on one keep-alive connection; returns the Host each
  // one arrived with at the primary and at the mirror (matched by X-Seq).
  std::vector<std::pair<std::string, std::string>> HostsSeen(
      const std::vector<std::string>& hosts) {
    TestClient client(rec_->listen_address().port);
    for (size_t i = 0; i < hosts.size(); ++i) {
      net::HttpRequest r{http::verb::get, "/h?i=" + std::to_string(i), 11};
      r.set(http::field::host, hosts[i]);
      r.set("X-Seq", std::to_string(i));
      EXPECT_EQ(client.Send(std::move(r)).result_int(), 200u) << hosts[i];
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (mirror_.requests().size() < hosts.size() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::vector<std::pair<std::string, std::string>> seen(hosts.size());
    for (const auto& r : primary_.requests())
      seen.at(std::stoul(r.Header("X-Seq"))).first = r.Header("Host");
    for (const auto& r : mirror_.requests())
      seen.at(std::stoul(r.Header("X-Seq"))).second = r.Header("Host");
    return seen;
  }

  TestUpstream primary_, mirror_;
  uint64_t capture_body_limit_ = 1ull << 20;
  uint64_t request_buffer_ = 1ull << 20;
  doppel::testing::Gate gate_;  // outlives rec_: its diff threads may wait here
  NullSink sink_;
  redact::Redactor redactor_{"0123456789abcdef0123456789abcdef", {}};
  RecorderPtr rec_;
};

TEST_F(MirrorExchangeTest, HostGetsTheShadowSuffixBeforeThePort) {
  Start(/*shadow_suffix=*/true);
  const std::vector<std::string> hosts = {"api:9000", "api", "[::1]:80", "[::1]",
                                          "shop.example.com"};
  const auto seen = HostsSeen(hosts);
  const std::vector<std::string> want = {"api-shadow:9000", "api-shadow", "[::1]-shadow:80",
                                         "[::1]-shadow", "shop.example.com-shadow"};
  for (size_t i = 0; i < hosts.size(); ++i) {
    EXPECT_EQ(seen[i].first, hosts[i]) << "the primary's Host is never changed";
    EXPECT_EQ(seen[i].second, want[i]) << hosts[i];
  }
  const auto counts = rec_->mirror_counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].sent, hosts.size());
}

TEST_F(MirrorExchangeTest, NoShadowSuffixKeepsHost) {
  Start(/*shadow_suffix=*/false);
  const std::vector<std::string> hosts = {"api:9000", "api", "[::1]:80"};
  const auto seen = HostsSeen(hosts);
  for (size_t i = 0; i < hosts.size(); ++i) {
    EXPECT_EQ(seen[i].first, hosts[i]);
    EXPECT_EQ(seen[i].second, hosts[i]);
  }
}

// RFC 9110 9.1: an extension method (one Beast has no verb for included) reaches the
// primary and the mirror as the client sent it.
TEST_F(MirrorExchangeTest, ExtensionMethodsReachTheMirrorUnchanged) {
  Start(/*shadow_suffix=*/false);
  const std::vector<std::string> methods = {"PROPFIND", "M-SEARCH", "X-ZAP_1!"};
  TestClient client(rec_->listen_address().port);
  for (const auto& m : methods) {
    net::HttpRequest r{http::verb::get, "/dav", 11};
    r.method_string(m);
    r.set(http::field::host, "api");
    EXPECT_EQ(client.Send(std::move(r)).result_int(), 200u) << m;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (mirror_.requests().size() < methods.size() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::multiset<std::string> want(methods.begin(), methods.end()), primary, mirror;
  for (const auto& r : primary_.requests()) primary.insert(r.method);
  for (const auto& r : mirror_.requests()) mirror.insert(r.method);
  EXPECT_EQ(primary, want);
  EXPECT_EQ(mirror, want);
}

// Whether `done` holds within 10 s.
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

// Sends a 200 KiB body with Content-Length, the same body chunked, and a small body: the two
// large ones stream to the primary (over the 64 KiB --request-buffer), the small one is read
// whole. The primary echoes each.
void SendLargeAndSmallBodies(TestClient& client, const std::string& large,
                             const std::string& small) {
  for (int i = 0; i < 3; ++i) {
    net::HttpRequest r{http::verb::post, "/upload/" + std::to_string(i), 11};
    r.set(http::field::host, "api");
    r.body() = i == 2 ? small : large;
    if (i == 1) {
      r.chunked(true);
    } else {
      r.prepare_payload();
    }
    const auto res = client.Send(std::move(r));
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body().size(), i == 2 ? small.size() : large.size())
        << "the primary echoes what it got";
  }
}

// Issue #23: a request body over --request-buffer streams to the primary; the mirror's copy
// is filled as it passes and goes out whole once the body is complete, with Content-Length or
// chunked as the client sent it.
TEST_F(MirrorExchangeTest, StreamedRequestBodyIsMirroredWholeOnceComplete) {
  request_buffer_ = 64 * 1024;
  Start(/*shadow_suffix=*/false);
  TestClient client(rec_->listen_address().port);
  const std::string large(200 * 1024, 'L'), small(1000, 's');
  SendLargeAndSmallBodies(client, large, small);
  WaitFor([&] { return mirror_.requests().size() >= 3; });
  ASSERT_EQ(primary_.requests().size(), 3u);
  ASSERT_EQ(mirror_.requests().size(), 3u);
  std::map<std::string, std::string> got;  // target -> body; the copies may arrive in any order
  for (const auto& r : mirror_.requests()) got[r.target] = r.body;
  EXPECT_EQ(got["/upload/0"], large);
  EXPECT_EQ(got["/upload/1"], large);
  EXPECT_EQ(got["/upload/2"], small);
  const auto counts = rec_->mirror_counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].sent, 3u);
  EXPECT_EQ(counts[0].skipped_upload, 0u);
  EXPECT_TRUE(WaitFor([&] { return rec_->mirror_counts()[0].inflight == 0; }));
  EXPECT_TRUE(WaitFor([&] {
    return Contains(rec_->MetricsText(), "doppel_mirror_inflight_bytes 0");
  })) << "the held bytes are given back: "
      << rec_->MetricsText();
}

// A streamed body larger than --mirror-max-inflight-bytes cannot be held for the copy: a
// declared Content-Length over it is given up at once, a chunked body when it passes it. The
// mirror gets neither, both are counted (reason "request_streamed"), the primary gets all.
TEST_F(MirrorExchangeTest, StreamedRequestBodyOverTheMirrorByteCapIsNotMirroredAndIsCounted) {
  request_buffer_ = 64 * 1024;
  Start(/*shadow_suffix=*/false, "", [](MirrorOptions& o) { o.max_inflight_bytes = 100 * 1024; });
  TestClient client(rec_->listen_address().port);
  const std::string large(200 * 1024, 'L'), small(1000, 's');
  SendLargeAndSmallBodies(client, large, small);
  WaitFor([&] { return !mirror_.requests().empty(); });
  ASSERT_EQ(primary_.requests().size(), 3u);
  EXPECT_EQ(primary_.requests()[0].body, large);
  EXPECT_EQ(primary_.requests()[1].body, large);
  ASSERT_EQ(mirror_.requests().size(), 1u);
  EXPECT_EQ(mirror_.requests()[0].body, small);
  const auto counts = rec_->mirror_counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].sent, 1u);
  EXPECT_EQ(counts[0].skipped_upload, 2u);
  EXPECT_TRUE(Contains(rec_->MetricsText(),
                       "doppel_mirror_dropped_total{mirror=\"m\",reason=\"request_streamed\"} 2"))
      << rec_->MetricsText();
}

// A port nothing listens on.
uint16_t ClosedPort() {
  TestUpstream gone;
  const uint16_t port = gone.port();
  gone.Stop();
  return port;
}

TEST_F(MirrorExchangeTest, RefusingMirrorIsSkippedForAMomentAfterAFailedConnect) {
  Start(/*shadow_suffix=*/true, "http://127.0.0.1:" + std::to_string(ClosedPort()));
  TestClient client(rec_->listen_address().port);
  auto send = [&](int n) {
    for (int i = 0; i < n; ++i) {
      net::HttpRequest r{http::verb::get, "/r", 11};
      r.set(http::field::host, "api");
      ASSERT_EQ(client.Send(std::move(r)).result_int(), 200u) << "the primary still answers";
    }
  };
  auto counts = [&] { return rec_->mirror_counts().at(0); };
  auto settle = [&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (counts().inflight > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  send(1);
  settle();
  ASSERT_EQ(counts().sent, 1u);
  ASSERT_EQ(counts().failed_connect, 1u);
  // A burst right after: copies inside the hold are dropped, not each a connect attempt.
  send(200);
  settle();
  MirrorCounts c = counts();
  EXPECT_EQ(c.sent + c.dropped_unavailable, 201u);
  EXPECT_EQ(c.failed_connect, c.sent);
  EXPECT_GT(c.dropped_unavailable, 0u);
  EXPECT_EQ(c.failed, c.failed_connect);
  // Once the hold is over, the next copy tries again.
  std::this_thread::sleep_for(MirrorHub::kUnavailableHold + std::chrono::milliseconds(50));
  const uint64_t sent_before = c.sent;
  send(1);
  settle();
  EXPECT_EQ(counts().sent, sent_before + 1);
  EXPECT_EQ(counts().failed_connect, sent_before + 1);
}

// --mirror-diff compares on the hub's diff threads: with the only comparison thread held at
// a gate, the client still gets its answers; past the diff queue a comparison is skipped
// and counted, and the held ones are counted once they go on.
TEST_F(MirrorExchangeTest, ClientsGetAnswersWhileAComparisonIsBlocked) {
  Start(/*shadow_suffix=*/false, "", [this](MirrorOptions& m) {
    m.diff = true;
    m.diff_threads = 1;
    m.diff_queue = 1;
    auto real = diff::Differ::Create(diff::DiffConfig());
    ASSERT_TRUE(real.ok());
    m.differ = std::make_shared<diff::testing::GatedDiffer>(std::move(real.value()), &gate_);
  });
  auto counts = [&] { return rec_->mirror_counts().at(0); };
  auto wait_for = [&](const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
  };
  TestClient client(rec_->listen_address().port);
  auto get = [&](const std::string& path) {
    net::HttpRequest r{http::verb::get, path, 11};
    r.set(http::field::host, "api");
    return client.Send(std::move(r)).result_int();
  };
  ASSERT_EQ(get("/first"), 200u);
  ASSERT_TRUE(gate_.AwaitWaiting(1, std::chrono::seconds(30))) << "the first comparison began";
  // The one diff thread is held: one more comparison waits in the queue, the next is
  // skipped; every client is answered meanwhile.
  EXPECT_EQ(get("/second"), 200u);
  EXPECT_EQ(get("/third"), 200u);
  EXPECT_TRUE(wait_for([&] { return counts().diff_skipped == 1; }));
  EXPECT_EQ(gate_.waiting(), 1);
  MirrorCounts held = counts();
  EXPECT_EQ(held.diff_match + held.diff_mismatch, 0u);

  gate_.Open();
  EXPECT_TRUE(wait_for([&] {
    const MirrorCounts c = counts();
    return c.diff_match + c.diff_mismatch == 2;
  }));
  const MirrorCounts c = counts();
  EXPECT_EQ(c.sent, 3u);
  EXPECT_EQ(c.diff_skipped, 1u);
  EXPECT_EQ(c.diff_uncompared, 0u);
  EXPECT_TRUE(Contains(rec_->StatusJson(), "\"skipped\":1")) << rec_->StatusJson();
}

// The primary's response streams to the client and only its first --capture-body-limit bytes
// are kept aside: a longer body is not compared (uncompared), rather than reported as a
// mismatch against the mirror's whole body.
TEST_F(MirrorExchangeTest, PrimaryBodyOverTheCaptureLimitIsNotCompared) {
  capture_body_limit_ = 100;
  Start(/*shadow_suffix=*/false, "", [](MirrorOptions& m) { m.diff = true; });
  TestClient client(rec_->listen_address().port);
  for (const char* path : {"/size?n=50", "/size?n=1000"}) {
    net::HttpRequest r{http::verb::get, path, 11};
    r.set(http::field::host, "api");
    ASSERT_EQ(client.Send(std::move(r)).result_int(), 200u) << path;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  auto compared = [&] {
    const MirrorCounts c = rec_->mirror_counts().at(0);
    return c.diff_match + c.diff_mismatch + c.diff_uncompared;
  };
  while (compared() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const MirrorCounts c = rec_->mirror_counts().at(0);
  EXPECT_EQ(c.diff_match, 1u);
  EXPECT_EQ(c.diff_mismatch, 0u);
  EXPECT_EQ(c.diff_uncompared, 1u);
}

// mode=coverage: copies are chosen by class once the primary answered, within the budget;
// every rare class reaches the mirror, the hot one gets what is left.
TEST_F(MirrorExchangeTest, CoverageMirrorGetsEveryRareClassWithinItsBudget) {
  constexpr int kRequests = 1500;
  // /api/items/{id}: every 300th answers 500, every 300th (offset 149) has a shape of its own.
  primary_.SetHandler(
      [](const doppel::testing::ReceivedRequest& r) -> std::optional<net::HttpResponse> {
        const int id = std::atoi(r.target.c_str() + std::string("/api/items/").size());
        net::HttpResponse res{http::status::ok, 11};
        res.set(http::field::content_type, "application/json");
        if (id % 300 == 299) {
          res.result(http::status::internal_server_error);
          res.body() = R"({"error":"boom"})";
        } else if (id % 300 == 149) {
          res.body() = R"({"id":1,"promo":{"code":"X"}})";
        } else {
          res.body() = R"({"id":1,"name":"item"})";
        }
        return res;
      });
  Start(/*shadow_suffix=*/false, mirror_.url() + ",mode=coverage,budget=2%");
  {
    TestClient client(rec_->listen_address().port);
    for (int i = 0; i < kRequests; ++i) {
      net::HttpRequest r{http::verb::get, "/api/items/" + std::to_string(i), 11};
      r.set(http::field::host, "api");
      ASSERT_NE(client.Send(std::move(r)).result_int(), 0u) << i;
    }
  }
  auto settled = [&] {
    const MirrorCounts c = rec_->mirror_counts().at(0);
    return c.sent + c.skipped_sample == kRequests && c.sent == mirror_.requests().size() &&
           c.inflight == 0;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!settled() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(settled()) << rec_->StatusJson();
  int errors = 0, promos = 0;
  for (const auto& r : mirror_.requests()) {
    const int id = std::atoi(r.target.c_str() + std::string("/api/items/").size());
    errors += id % 300 == 299;
    promos += id % 300 == 149;
  }
  EXPECT_EQ(errors, 5);
  EXPECT_EQ(promos, 5);
  // A hard cap: 2 % of the requests plus the bucket's burst (1000 x 2 %).
  const MirrorCounts c = rec_->mirror_counts().at(0);
  EXPECT_LE(c.sent, kRequests * 2 / 100 + 20);
  EXPECT_GE(c.sent, 10u + 1);
  const std::string status = rec_->StatusJson();
  EXPECT_TRUE(Contains(status, R"("mode":"coverage")")) << status;
  EXPECT_TRUE(Contains(status, R"("classes_covered":3)")) << status;
}

TEST(ParseMirrorSpecTest, CoverageModeAndBudget) {
  auto spec = ParseMirrorSpec("http://m:1,mode=coverage,budget=50/s");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_TRUE(spec->coverage);
  EXPECT_EQ(spec->budget.kind, SampleBudget::Kind::kRate);
  EXPECT_DOUBLE_EQ(spec->budget.per_second, 50);
  EXPECT_FALSE(ParseMirrorSpec("http://m:1,mode=uniform").value().coverage);
  EXPECT_TRUE(Contains(SpecError("http://m:1,mode=coverage"), "needs budget="));
  EXPECT_TRUE(Contains(SpecError("http://m:1,budget=5%"), "budget= is for mode=coverage"));
  EXPECT_TRUE(Contains(SpecError("http://m:1,mode=coverage,budget=5%,percent=10"), "percent="));
  EXPECT_TRUE(Contains(SpecError("http://m:1,mode=coverage,budget=5%,adaptive"), "adaptive"));
  EXPECT_TRUE(Contains(SpecError("http://m:1,mode=smart"), "uniform"));
  EXPECT_TRUE(Contains(SpecError("http://m:1,mode=coverage,budget=lots"), "budget="));
}

}  // namespace
}  // namespace doppel::recorder
