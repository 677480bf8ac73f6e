// Live mirroring (issue #4) with real processes: `doppel record --mirror ...` between test
// clients and a TestUpstream primary; mirrors are TestUpstreams (recording what they got,
// answering differently, or never answering), a `doppel-echo --latency 2s` and a closed
// port. Checks what users rely on: the sampled share and exact copies, independent vs nested
// sampling, rule-scoped mirrors, header mutations, live diffing, isolation of the primary
// from bad mirrors, and a bounded shutdown.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- helpers

// The /status entry of the mirror named `name` (empty when absent).
json::object MirrorStatus(const RecordProcess& rec, const std::string& name) {
  const json::object s = rec.Status();
  if (!s.contains("mirrors")) return {};
  for (const auto& m : s.at("mirrors").as_array()) {
    if (m.as_object().at("name").as_string() == name) return m.as_object();
  }
  return {};
}

int64_t Num(const json::object& o, std::initializer_list<const char*> path) {
  const json::value* v = nullptr;
  const json::object* at = &o;
  for (const char* key : path) {
    if (at == nullptr || !at->contains(key)) return -1;
    v = &at->at(key);
    at = v->is_object() ? &v->as_object() : nullptr;
  }
  return v == nullptr ? -1 : v->to_number<int64_t>();
}

// Waits until no copy of any mirror is in flight.
bool MirrorsSettled(const RecordProcess& rec, int timeout_ms = 10000) {
  return Eventually(
      [&] {
        const json::object s = rec.Status();
        if (!s.contains("mirrors")) return false;
        for (const auto& m : s.at("mirrors").as_array()) {
          if (m.as_object().at("inflight").to_number<int64_t>() != 0) return false;
        }
        return true;
      },
      timeout_ms);
}

// The requests an upstream received with an X-Req-Id starting with `prefix`, by that id.
std::map<std::string, ReceivedRequest> ById(const TestUpstream& up, const std::string& prefix) {
  std::map<std::string, ReceivedRequest> out;
  for (auto& r : up.requests()) {
    const std::string id = r.Header("X-Req-Id");
    if (id.rfind(prefix, 0) == 0) out.emplace(id, std::move(r));
  }
  return out;
}

// Headers as a sorted list of (lower-case name, value), without `skip` (lower-case).
std::vector<std::pair<std::string, std::string>> SortedHeaders(const ReceivedRequest& r,
                                                               const std::string& skip) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, v] : r.headers) {
    std::string lower = n;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower != skip) out.emplace_back(lower, v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int CountHeader(const ReceivedRequest& r, const std::string& name) {
  int n = 0;
  for (const auto& [h, v] : r.headers) n += boost::beast::iequals(h, name);
  return n;
}

// Sends `total` requests over `clients` keep-alive connections in parallel; request i is
// made by `make(i)`. Returns how many were answered 200.
template <class Make>
int SendParallel(uint16_t port, int clients, int total, Make make) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      TestClient client(port);
      for (int i = c; i < total; i += clients) {
        if (client.Send(make(i)).result_int() == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok.load();
}

net::HttpRequest Get(const std::string& target, const std::string& id,
                     const std::string& host = "shop.test:8443") {
  net::HttpRequest r{http::verb::get, target, 11};
  r.set(http::field::host, host);
  r.set("X-Req-Id", id);
  return r;
}

// Resident set size of a process in KiB (VmRSS), -1 on failure.
long RssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A sigma of a binomial count.
double Sigma(int n, double p) { return std::sqrt(n * p * (1 - p)); }

class MirrorCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(std::string("mirror-") +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A `doppel record` in front of primary_ with its own fresh store.
  std::unique_ptr<RecordProcess> Record(std::vector<std::string> extra) {
    const std::string store = dir_ + "/store-" + std::to_string(++stores_);
    extra.insert(extra.begin(), {"--threads", "2", "--session", "s"});
    auto rec = std::make_unique<RecordProcess>(store, primary_.url(), extra);
    EXPECT_TRUE(rec->started()) << rec->child().all_stdout() << rec->child().all_stderr();
    return rec;
  }

  std::string dir_;
  int stores_ = 0;
  TestUpstream primary_;
};

// ---------------------------------------------------------------- 1. share and exact copies

TEST_F(MirrorCliTest, PercentShareAndExactCopies) {
  TestUpstream mirror;
  auto rec = Record({"--sample", "0", "--mirror", mirror.url() + ",percent=30,name=m30"});
  ASSERT_TRUE(rec->started());
  const int n = 2000;
  auto make = [](int i) {
    const std::string id = "p-" + std::to_string(i);
    if (i % 2 == 0)
      return Get("/items/" + std::to_string(i) + "?q=" + std::to_string(i) + "&x=y", id);
    net::HttpRequest r{http::verb::post, "/orders?i=" + std::to_string(i), 11};
    r.set(http::field::host, "shop.test:8443");
    r.set(http::field::content_type, "application/json");
    r.set("X-Req-Id", id);
    r.body() =
        R"({"order":)" + std::to_string(i) + R"(,"pad":")" + std::string(i % 300, 'z') + "\"}";
    r.prepare_payload();
    return r;
  };
  ASSERT_EQ(SendParallel(rec->port(), 4, n, make), n);
  ASSERT_TRUE(MirrorsSettled(*rec));
  const json::object m = MirrorStatus(*rec, "m30");
  const int64_t sent = Num(m, {"sent"});
  const double lo = 0.3 * n - 5 * Sigma(n, 0.3), hi = 0.3 * n + 5 * Sigma(n, 0.3);
  std::cout << "[ mirror ] percent=30 over " << n << " requests: " << sent << " copies (bounds "
            << lo << ".." << hi << ")\n";
  EXPECT_GE(sent, lo);
  EXPECT_LE(sent, hi);
  EXPECT_EQ(Num(m, {"succeeded"}), sent);
  EXPECT_EQ(Num(m, {"dropped", "sampling"}), n - sent);
  EXPECT_EQ(Num(m, {"dropped", "max_inflight"}), 0);

  const auto primary = ById(primary_, "p-");
  const auto copies = ById(mirror, "p-");
  ASSERT_EQ(primary.size(), static_cast<size_t>(n));
  ASSERT_EQ(copies.size(), static_cast<size_t>(sent));
  int posts = 0;
  for (const auto& [id, copy] : copies) {
    const ReceivedRequest& orig = primary.at(id);
    EXPECT_EQ(copy.method, orig.method) << id;
    EXPECT_EQ(copy.target, orig.target) << id;
    EXPECT_EQ(copy.body, orig.body) << id;
    EXPECT_EQ(copy.Header("Host"), "shop.test-shadow:8443") << id;
    EXPECT_EQ(orig.Header("Host"), "shop.test:8443") << id;
    // Everything else is the request as forwarded to the primary (X-Forwarded-*, Via...).
    EXPECT_EQ(SortedHeaders(copy, "host"), SortedHeaders(orig, "host")) << id;
    EXPECT_TRUE(copy.HasHeader("X-Forwarded-For")) << id;
    posts += copy.method == "POST" && !copy.body.empty();
  }
  EXPECT_GT(posts, 0);

  // --no-shadow-suffix: Host unchanged (and the default percent is 100).
  TestUpstream plain;
  auto rec2 = Record({"--sample", "0", "--no-shadow-suffix", "--mirror", plain.url() + ",name=p"});
  ASSERT_TRUE(rec2->started());
  ASSERT_EQ(
      SendParallel(rec2->port(), 1, 20, [](int i) { return Get("/x", "ns-" + std::to_string(i)); }),
      20);
  ASSERT_TRUE(MirrorsSettled(*rec2));
  const auto unsuffixed = ById(plain, "ns-");
  EXPECT_EQ(unsuffixed.size(), 20u);
  for (const auto& [id, r] : unsuffixed) EXPECT_EQ(r.Header("Host"), "shop.test:8443") << id;
}

// ---------------------------------------------------------------- 2. independent vs nested

struct TwoMirrorRun {
  std::set<std::string> a, b;
  size_t both() const {
    size_t k = 0;
    for (const auto& id : b) k += a.count(id);
    return k;
  }
};

TEST_F(MirrorCliTest, TwoMirrorsSampleIndependentlyUnlessSameSample) {
  const int n = 2000;
  auto run = [&](const std::string& tag, bool same) {
    TestUpstream ma, mb;
    std::vector<std::string> args = {"--sample", "0",
                                     "--mirror", ma.url() + ",percent=50,name=a",
                                     "--mirror", mb.url() + ",percent=20,name=b"};
    if (same) args.push_back("--mirror-same-sample");
    auto rec = Record(args);
    TwoMirrorRun out;
    if (!rec->started()) return out;
    EXPECT_EQ(
        SendParallel(rec->port(), 4, n, [&](int i) { return Get("/t", tag + std::to_string(i)); }),
        n);
    EXPECT_TRUE(MirrorsSettled(*rec));
    for (const auto& [id, r] : ById(ma, tag)) out.a.insert(id);
    for (const auto& [id, r] : ById(mb, tag)) out.b.insert(id);
    EXPECT_EQ(static_cast<int64_t>(out.a.size()), Num(MirrorStatus(*rec, "a"), {"sent"}));
    EXPECT_EQ(static_cast<int64_t>(out.b.size()), Num(MirrorStatus(*rec, "b"), {"sent"}));
    return out;
  };
  auto within = [&](double count, double p) { return std::abs(count - n * p) <= 5 * Sigma(n, p); };

  const TwoMirrorRun ind = run("i-", false);
  std::cout << "[ mirror ] independent: a=" << ind.a.size() << " b=" << ind.b.size()
            << " both=" << ind.both() << " (expected 1000, 400, 200)\n";
  EXPECT_TRUE(within(ind.a.size(), 0.5)) << ind.a.size();
  EXPECT_TRUE(within(ind.b.size(), 0.2)) << ind.b.size();
  // Independent draws: P(in both) = 0.5 * 0.2.
  EXPECT_TRUE(within(ind.both(), 0.1)) << ind.both();
  EXPECT_LT(ind.both(), ind.b.size());

  const TwoMirrorRun same = run("s-", true);
  std::cout << "[ mirror ] --mirror-same-sample: a=" << same.a.size() << " b=" << same.b.size()
            << " both=" << same.both() << "\n";
  EXPECT_TRUE(within(same.a.size(), 0.5)) << same.a.size();
  EXPECT_TRUE(within(same.b.size(), 0.2)) << same.b.size();
  EXPECT_GT(same.b.size(), 0u);
  EXPECT_EQ(same.both(), same.b.size()) << "the 20 % mirror's requests are a subset of the 50 %'s";
}

// ---------------------------------------------------------------- 3. rule-scoped mirror

TEST_F(MirrorCliTest, RuleScopedMirrorWhileRecordingEverything) {
  TestUpstream debug;
  auto rec =
      Record({"--sample", "100", "--mirror-match", "name=dbg,header.Cookie~=.*session_id=abc123.*",
              "--mirror", debug.url() + ",rule=dbg,name=debug"});
  ASSERT_TRUE(rec->started());
  const int n = 30;
  auto make = [](int i) {
    net::HttpRequest r = Get("/page/" + std::to_string(i), "r-" + std::to_string(i));
    if (i % 3 == 0) r.set(http::field::cookie, "theme=dark; session_id=abc123; lang=en");
    if (i % 3 == 1) r.set(http::field::cookie, "session_id=zzz999");
    return r;
  };
  ASSERT_EQ(SendParallel(rec->port(), 2, n, make), n);
  ASSERT_TRUE(MirrorsSettled(*rec));
  const auto copies = ById(debug, "r-");
  EXPECT_EQ(copies.size(), 10u);
  for (const auto& [id, r] : copies) {
    EXPECT_EQ(std::stoi(id.substr(2)) % 3, 0) << id;
    EXPECT_EQ(r.Header("Cookie"), "theme=dark; session_id=abc123; lang=en") << id;
  }
  const json::object m = MirrorStatus(*rec, "debug");
  EXPECT_EQ(Num(m, {"sent"}), 10);
  EXPECT_EQ(Num(m, {"dropped", "rule"}), 20);
  EXPECT_EQ(m.at("rule").as_string(), "dbg");
  EXPECT_EQ(ById(primary_, "r-").size(), static_cast<size_t>(n));
  // The mirror rule does not limit recording: all 30 are stored.
  EXPECT_TRUE(Eventually([&] { return rec->StatusStored() == n; })) << rec->StatusStored();
  rec->child().Signal(SIGINT);
  ASSERT_EQ(rec->child().Wait(20000), 0) << rec->child().all_stderr();
  EXPECT_NE(rec->child().all_stdout().find("sampled 30, stored 30"), std::string::npos)
      << rec->child().all_stdout();
  EXPECT_NE(rec->child().all_stdout().find("mirror debug: sent 10, succeeded 10"),
            std::string::npos)
      << rec->child().all_stdout();
}

// ---------------------------------------------------------------- 4. header mutations

TEST_F(MirrorCliTest, HeaderMutationsAndExpect) {
  TestUpstream ma, mb;
  auto rec = Record({"--sample", "0", "--mirror-set-header", "X-Shadow=1", "--mirror-remove-header",
                     "Authorization", "--mirror",
                     ma.url() + ",name=a,set-header=X-Env:staging,set-header=X-Shadow:a,"
                                "remove-header=X-Debug",
                     "--mirror", mb.url() + ",name=b"});
  ASSERT_TRUE(rec->started());
  {
    net::HttpRequest r = Get("/h", "h-1");
    r.set(http::field::authorization, "Bearer secret");
    r.set("X-Debug", "on");
    TestClient c(rec->port());
    ASSERT_EQ(c.Send(std::move(r)).result_int(), 200u);
  }
  {
    // Expect: 100-continue, answered by doppel itself; the body follows the interim answer.
    TestClient c(rec->port());
    ASSERT_TRUE(
        c.Write("POST /upload HTTP/1.1\r\nHost: shop.test\r\nX-Req-Id: h-2\r\n"
                "Authorization: Bearer secret\r\nX-Debug: on\r\n"
                "Expect: 100-continue\r\nContent-Length: 7\r\n\r\n"));
    const std::string interim = c.ReadUntil("\r\n\r\n");
    ASSERT_NE(interim.find("100 Continue"), std::string::npos) << interim;
    ASSERT_TRUE(c.Write("payload"));
    const std::string final = c.ReadUntil("payload");
    EXPECT_NE(final.find("HTTP/1.1 200"), std::string::npos) << final;
  }
  ASSERT_TRUE(MirrorsSettled(*rec));
  const auto primary = ById(primary_, "h-");
  const auto a = ById(ma, "h-");
  const auto b = ById(mb, "h-");
  ASSERT_EQ(primary.size(), 2u);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (const char* id : {"h-1", "h-2"}) {
    const ReceivedRequest& p = primary.at(id);
    EXPECT_EQ(p.Header("Authorization"), "Bearer secret") << id;
    EXPECT_EQ(p.Header("X-Debug"), "on") << id;
    EXPECT_FALSE(p.HasHeader("X-Shadow")) << id;
    EXPECT_FALSE(p.HasHeader("X-Env")) << id;
    EXPECT_FALSE(p.HasHeader("Expect")) << id;

    const ReceivedRequest& ra = a.at(id);
    EXPECT_EQ(CountHeader(ra, "X-Shadow"), 1) << id;
    EXPECT_EQ(ra.Header("X-Shadow"), "a") << id << ": the mirror's own set-header wins";
    EXPECT_EQ(ra.Header("X-Env"), "staging") << id;
    EXPECT_FALSE(ra.HasHeader("Authorization")) << id;
    EXPECT_FALSE(ra.HasHeader("X-Debug")) << id;
    EXPECT_FALSE(ra.HasHeader("Expect")) << id;

    const ReceivedRequest& rb = b.at(id);
    EXPECT_EQ(rb.Header("X-Shadow"), "1") << id;
    EXPECT_FALSE(rb.HasHeader("X-Env")) << id;
    EXPECT_FALSE(rb.HasHeader("Authorization")) << id;
    EXPECT_EQ(rb.Header("X-Debug"), "on") << id;
    EXPECT_FALSE(rb.HasHeader("Expect")) << id;
  }
  EXPECT_EQ(a.at("h-2").body, "payload");
  EXPECT_EQ(b.at("h-2").body, "payload");
  EXPECT_EQ(primary.at("h-2").body, "payload");
}

// ---------------------------------------------------------------- 5. --mirror-diff

net::HttpResponse Json(const std::string& body) {
  net::HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = body;
  return res;
}

TEST_F(MirrorCliTest, MirrorDiffCountsAndNamesTheDifferingPath) {
  TestUpstream candidate;
  primary_.SetHandler([](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    if (r.target.rfind("/differ", 0) == 0) return Json(R"({"price":1,"name":"x"})");
    return std::nullopt;
  });
  candidate.SetHandler([](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    if (r.target.rfind("/differ", 0) == 0) return Json(R"({"price":2,"name":"x"})");
    return std::nullopt;
  });
  auto drive = [](RecordProcess& rec, const std::string& tag) {
    return SendParallel(rec.port(), 1, 15, [&](int i) {
      return i < 10 ? Get("/same/" + std::to_string(i % 2), tag + std::to_string(i))
                    : Get("/differ?i=" + std::to_string(i), tag + std::to_string(i));
    });
  };

  auto rec = Record({"--sample", "0", "--mirror-diff", "--mirror", candidate.url() + ",name=cand"});
  ASSERT_TRUE(rec->started());
  ASSERT_EQ(drive(*rec, "d-"), 15);
  ASSERT_TRUE(Eventually([&] {
    const json::object m = MirrorStatus(*rec, "cand");
    return Num(m, {"diff", "match"}) + Num(m, {"diff", "mismatch"}) == 15;
  })) << json::serialize(rec->Status());
  const json::object m = MirrorStatus(*rec, "cand");
  EXPECT_EQ(Num(m, {"diff", "match"}), 10);
  EXPECT_EQ(Num(m, {"diff", "mismatch"}), 5);
  EXPECT_EQ(Num(m, {"diff", "uncompared"}), 0);
  const json::array& top = m.at("diff").as_object().at("top_paths").as_array();
  ASSERT_FALSE(top.empty()) << json::serialize(m);
  EXPECT_EQ(top[0].as_object().at("endpoint").as_string(), "GET /differ") << json::serialize(top);
  EXPECT_EQ(top[0].as_object().at("path").as_string(), "body.price") << json::serialize(top);
  EXPECT_EQ(top[0].as_object().at("count").to_number<int>(), 5);
  for (const auto& t : top) {
    EXPECT_EQ(t.as_object().at("endpoint").as_string().find("/same"), json::string::npos)
        << json::serialize(top);
  }
  const std::string metrics = rec->Admin("/metrics");
  EXPECT_EQ(MetricIn(metrics, R"(doppel_mirror_diff_total{mirror="cand",result="match"})"), 10);
  EXPECT_EQ(MetricIn(metrics, R"(doppel_mirror_diff_total{mirror="cand",result="mismatch"})"), 5);

  // A rules file that ignores body.price (--mirror-diff-rules implies --mirror-diff).
  const std::string rules = dir_ + "/rules.json";
  std::ofstream(rules)
      << R"({"version": 1, "rules": [{"path": "body.price", "action": "ignore"}]})";
  auto ruled = Record(
      {"--sample", "0", "--mirror-diff-rules", rules, "--mirror", candidate.url() + ",name=cand"});
  ASSERT_TRUE(ruled->started());
  ASSERT_EQ(drive(*ruled, "e-"), 15);
  ASSERT_TRUE(Eventually([&] {
    return Num(MirrorStatus(*ruled, "cand"), {"diff", "match"}) == 15;
  })) << json::serialize(ruled->Status());
  EXPECT_EQ(Num(MirrorStatus(*ruled, "cand"), {"diff", "mismatch"}), 0);
}

// ---------------------------------------------------------------- 6. isolation

struct LoadResult {
  int answered_2xx = 0;
  int total = 0;
  double seconds = 0;
  double rps = 0;
  double p99_ms = 0;
  long max_rss_kib = 0;
  int reusable = 0;  // client connections that still answered after the load
};

// `clients` keep-alive connections × `per_client` requests, closed loop; then one more
// request on each connection. The RSS of `pid` is sampled meanwhile.
LoadResult DriveLoad(uint16_t port, pid_t pid, int clients, int per_client,
                     const std::string& tag) {
  LoadResult out;
  out.total = clients * per_client;
  std::vector<std::unique_ptr<TestClient>> conns;
  for (int c = 0; c < clients; ++c) conns.push_back(std::make_unique<TestClient>(port));
  std::vector<std::vector<double>> lat(clients);
  std::atomic<int> ok{0};
  std::atomic<bool> done{false};
  std::atomic<long> max_rss{RssKiB(pid)};
  std::thread rss([&] {
    while (!done) {
      max_rss = std::max(max_rss.load(), RssKiB(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < per_client; ++i) {
        const auto s = Clock::now();
        const auto res = conns[c]->Send(Get("/api/items?c=" + std::to_string(c),
                                            tag + std::to_string(c) + "-" + std::to_string(i)));
        lat[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        if (res.result_int() / 100 == 2) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  // Copies keep piling up against the bad mirrors for a moment after the load.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  done = true;
  rss.join();
  out.max_rss_kib = max_rss;
  out.answered_2xx = ok;
  out.rps = out.total / out.seconds;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  out.p99_ms = all.empty() ? 0 : all[std::min(all.size() - 1, all.size() * 99 / 100)];
  for (int c = 0; c < clients; ++c) {
    out.reusable +=
        conns[c]->Send(Get("/after", tag + "after-" + std::to_string(c))).result_int() == 200;
  }
  return out;
}

class MirrorIsolationTest : public MirrorCliTest {
 protected:
  void Run(const std::string& sample) {
#if defined(__SANITIZE_ADDRESS__)
    // ASan keeps freed memory in a quarantine (256 MiB by default) that fills with the volume
    // allocated: the run with mirrors allocates more (its copies), so more of its resident
    // memory is freed memory held back (+41 MiB over the run without mirrors in CI with the
    // default quarantine, +20 MiB here with 8 MiB). A small quarantine keeps the growth
    // measured below about live memory.
    const char* asan = std::getenv("ASAN_OPTIONS");
    ::setenv("ASAN_OPTIONS",
             (std::string(asan != nullptr ? asan : "") + ":quarantine_size_mb=8").c_str(), 1);
#endif
    // The three bad mirrors: answers after 2 s, never answers, nothing listening.
    ChildProcess slow(
        {EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--latency", "2s"});
    const unsigned slow_port = PortOf(slow.WaitForLine("listening on "));
    ASSERT_NE(slow_port, 0u) << slow.all_stderr();
    TestUpstream hole;
    hole.SetNeverAnswer(true);
    const std::string dead = "http://127.0.0.1:" + std::to_string(DeadPort());

    const int clients = 8, per_client = 250;
    // Warm-up: connections to the primary opened, code paths touched, and the slow mirror's
    // 1000 in-flight slots filled. Opening those 1000 connections is a one-off burst of work
    // (about as much CPU as the whole measured load on a 2-core machine); measured after it,
    // the run shows the steady state of a slow mirror, as the benchmark does over 10 s.
    const int warmup = 1200;
    auto measure = [&](std::vector<std::string> args, const std::string& tag) {
      auto rec = Record(args);
      LoadResult r;
      if (!rec->started()) return std::make_pair(std::move(rec), r);
      SendParallel(rec->port(), clients, warmup,
                   [&](int i) { return Get("/warm", tag + "w" + std::to_string(i)); });
      r = DriveLoad(rec->port(), rec->child().pid(), clients, per_client, tag);
      return std::make_pair(std::move(rec), r);
    };

    // One run without mirrors and one with the three bad mirrors, each in a fresh process.
    // Isolation is checked causally, not by timing ratios (those are machine-dependent and
    // belong to bench/mirror.sh): every request is answered, keep-alive connections stay
    // usable, memory stays bounded, and no request waits for a mirror. The slow mirror
    // answers after 2 s and the black hole never does, so a request that waited on a copy
    // would take at least 2 s; the p99 bound of 1 s leaves a sanitized build on a loaded
    // 2-core machine an order of magnitude of headroom (it measured ~65 ms under ASan).
    const std::string tag = sample + "-";
    auto base_run = measure({"--sample", sample}, "b" + tag);
    ASSERT_TRUE(base_run.first->started());
    base_run.first.reset();
    const LoadResult base = base_run.second;
    EXPECT_EQ(base.answered_2xx, base.total);
    EXPECT_EQ(base.reusable, clients);

    // The black hole's copies stay out for the whole run (timeout 60 s): they pile up.
    auto mirror_run = measure(
        {"--sample", sample, "--mirror",
         "http://127.0.0.1:" + std::to_string(slow_port) + ",name=slow,timeout=5s", "--mirror",
         hole.url() + ",name=hole,max-inflight=50,timeout=60s", "--mirror", dead + ",name=dead"},
        "m" + tag);
    RecordProcess* rec = mirror_run.first.get();
    ASSERT_TRUE(rec->started());
    const LoadResult mirrored = mirror_run.second;
    std::cout << "[ mirror ] --sample " << sample << ", " << clients << "x" << per_client
              << " keep-alive requests: no mirror " << base.rps << " req/s p99 " << base.p99_ms
              << " ms; 3 bad mirrors " << mirrored.rps << " req/s p99 " << mirrored.p99_ms
              << " ms (throughput ratio " << mirrored.rps / base.rps << ", informational); max RSS "
              << mirrored.max_rss_kib / 1024 << " MiB (no mirror " << base.max_rss_kib / 1024
              << " MiB)\n";
    // Every request answered 2xx, on keep-alive connections that stay usable.
    EXPECT_EQ(mirrored.answered_2xx, mirrored.total);
    EXPECT_EQ(mirrored.answered_2xx, base.answered_2xx);
    EXPECT_EQ(mirrored.reusable, clients) << "client keep-alive connections stay usable";
    EXPECT_LT(mirrored.p99_ms, 1000.0) << "a request waited for a mirror copy";
    // Memory: the copies piling up against the bad mirrors cost a few MiB over the same load
    // without mirrors (+8 MiB measured; +20 under ASan with the small quarantine); one buffer
    // held per dropped copy would be hundreds. Growth, not size: an ASan build starts at about
    // 275 MiB (its 450 MB binary's pages and the sanitizer's shadow memory), which a fixed cap
    // of 300 MiB could not tell apart from a leak.
    EXPECT_GT(base.max_rss_kib, 0);
    EXPECT_LT(mirrored.max_rss_kib - base.max_rss_kib, 64 * 1024);

    const int expected = warmup + mirrored.total + clients;  // warm-up, load, one after
    const json::object slow_m = MirrorStatus(*rec, "slow");
    const json::object hole_m = MirrorStatus(*rec, "hole");
    const json::object dead_m = MirrorStatus(*rec, "dead");
    ASSERT_FALSE(slow_m.empty() || hole_m.empty() || dead_m.empty());
    std::cout << "[ mirror ] slow sent " << Num(slow_m, {"sent"}) << " dropped "
              << json::serialize(slow_m.at("dropped")) << "; hole sent " << Num(hole_m, {"sent"})
              << " dropped " << json::serialize(hole_m.at("dropped")) << "; dead sent "
              << Num(dead_m, {"sent"}) << " failed " << json::serialize(dead_m.at("failed"))
              << " dropped " << json::serialize(dead_m.at("dropped")) << "\n";
    EXPECT_GT(Num(slow_m, {"sent"}), 0);
    EXPECT_EQ(Num(slow_m, {"sent"}) + Num(slow_m, {"dropped", "max_inflight"}), expected);
    EXPECT_EQ(Num(hole_m, {"sent"}), 50) << "the black hole holds its 50 in-flight copies";
    EXPECT_EQ(Num(hole_m, {"inflight"}), 50);
    EXPECT_EQ(Num(hole_m, {"dropped", "max_inflight"}), expected - 50);
    // A refusing mirror is tried again at most every 100 ms; copies in between are
    // dropped as "unavailable" rather than each costing a connection attempt.
    EXPECT_GT(Num(dead_m, {"sent"}), 0);
    EXPECT_GT(Num(dead_m, {"dropped", "unavailable"}), 0);
    EXPECT_EQ(Num(dead_m, {"sent"}) + Num(dead_m, {"dropped", "unavailable"}), expected);
    EXPECT_TRUE(Eventually([&] {
      const json::object d = MirrorStatus(*rec, "dead");
      return Num(d, {"failed", "connect"}) == Num(d, {"sent"});
    })) << json::serialize(MirrorStatus(*rec, "dead"));
    // The primary saw every request exactly once.
    EXPECT_EQ(ById(primary_, "m" + tag).size(), static_cast<size_t>(expected));
    if (sample == "100") {
      EXPECT_TRUE(Eventually([&] { return rec->StatusStored() == expected; }))
          << rec->StatusStored();
    }
  }
};

TEST_F(MirrorIsolationTest, BadMirrorsDoNotSlowMirrorOnlyProxy) { Run("0"); }
TEST_F(MirrorIsolationTest, BadMirrorsDoNotSlowRecordingProxy) { Run("100"); }

// Large bodies to a mirror that never answers: the copies held are capped by bytes across
// all mirrors, not only by count, and the rest are dropped as "max_bytes".
TEST_F(MirrorCliTest, InflightBytesCapDropsCopiesOverIt) {
  TestUpstream hole;
  hole.SetNeverAnswer(true);
  auto rec = Record({"--sample", "0", "--mirror-max-inflight-bytes", "10KiB", "--mirror",
                     hole.url() + ",name=hole,timeout=60s"});
  ASSERT_TRUE(rec->started());
  const std::string body(4000, 'b');
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Fetch(rec->port(), "POST", "/upload/" + std::to_string(i), body).result_int(), 200u);
  }
  const json::object m = MirrorStatus(*rec, "hole");
  EXPECT_EQ(Num(m, {"sent"}), 2) << json::serialize(m);  // 2 x ~4.1 KB fit under 10 KiB
  EXPECT_EQ(Num(m, {"inflight"}), 2);
  EXPECT_EQ(Num(m, {"dropped", "max_bytes"}), 8);
  EXPECT_EQ(Num(m, {"dropped", "max_inflight"}), 0);
  EXPECT_EQ(rec->Metric("doppel_mirror_dropped_total{mirror=\"hole\",reason=\"max_bytes\"}"), 8);
  const double held = rec->Metric("doppel_mirror_inflight_bytes");
  EXPECT_GE(held, 8000);
  EXPECT_LE(held, 10240);
  // A bad size is a usage error naming the flag.
  ChildProcess bad({DoppelBinary(), "--store", dir_ + "/store-bad", "record", "--listen",
                    "127.0.0.1:0", "--upstream", primary_.url(), "--mirror-max-inflight-bytes",
                    "lots", "--mirror", hole.url()});
  EXPECT_EQ(bad.Wait(10000), 2);
  EXPECT_NE(bad.all_stderr().find("--mirror-max-inflight-bytes: 'lots' is not a size"),
            std::string::npos)
      << bad.all_stderr();
}

// ---------------------------------------------------------------- 7. shutdown

TEST_F(MirrorCliTest, SigintWithCopiesInFlightExitsPromptlyWithSummary) {
  TestUpstream hole;
  hole.SetNeverAnswer(true);
  TestUpstream fine;
  auto rec = Record({"--sample", "100", "--mirror", hole.url() + ",name=hole,timeout=60s",
                     "--mirror", fine.url() + ",name=fine"});
  ASSERT_TRUE(rec->started());
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(Fetch(rec->port(), "GET", "/q/" + std::to_string(i)).result_int(), 200u);
  }
  ASSERT_TRUE(Eventually([&] { return Num(MirrorStatus(*rec, "hole"), {"inflight"}) == 20; }))
      << json::serialize(rec->Status());
  ASSERT_TRUE(Eventually([&] { return Num(MirrorStatus(*rec, "fine"), {"succeeded"}) == 20; }));
  const auto t0 = Clock::now();
  rec->child().Signal(SIGINT);
  const int rc = rec->child().Wait(15000);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[ mirror ] SIGINT with 20 copies in flight to a black hole: exit " << rc
            << " after " << secs << " s\n";
  ASSERT_EQ(rc, 0) << rec->child().all_stderr();
  EXPECT_LT(secs, 5.0);
  const std::string out = rec->child().all_stdout();
  EXPECT_NE(out.find("requests 20, sampled 20, stored 20"), std::string::npos) << out;
  EXPECT_NE(out.find("mirror hole: sent 20, succeeded 0, failed 0"), std::string::npos) << out;
  EXPECT_NE(out.find("mirror fine: sent 20, succeeded 20, failed 0"), std::string::npos) << out;
  // The black hole's 20 copies were never answered: the summary says they were abandoned.
  EXPECT_NE(out.find("while unavailable 0, not picked 0, abandoned at exit 20\n"),
            std::string::npos)
      << out;
  const size_t fine_at = out.find("mirror fine:");
  ASSERT_NE(fine_at, std::string::npos) << out;
  EXPECT_EQ(out.substr(fine_at, out.find('\n', fine_at) - fine_at).find("abandoned"),
            std::string::npos)
      << "the answered mirror abandoned nothing: " << out;
}

}  // namespace
}  // namespace doppel::testing
