// Fault injection (issue #17, docs/chaos.md) with real processes: `doppel record --fault ...`
// between test clients and a TestUpstream primary. Checks what a chaos experiment relies on:
// each kind does what it says to the client, the primary never sees aborted or reset requests,
// faults are counted apart from proxy errors (metrics, /status, the summary), rules and
// headers scope them, the seed repeats them, and mirror copies take delays and aborts.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

int64_t Injected(const json::object& faults, const char* kind) {
  if (!faults.contains("injected")) return -1;
  return faults.at("injected").at(kind).to_number<int64_t>();
}

double ProxyErrors(const RecordProcess& rec) {
  double total = 0;
  for (const char* reason : {"bad_request", "header_too_large", "body_too_large", "request_timeout",
                             "upstream_connect", "upstream_reset", "upstream_timeout"}) {
    const double v =
        rec.Metric(std::string("doppel_proxy_errors_total{reason=\"") + reason + "\"}");
    if (v > 0) total += v;
  }
  return total;
}

size_t CountTarget(const TestUpstream& up, const std::string& prefix) {
  size_t n = 0;
  for (const auto& r : up.requests()) n += r.target.rfind(prefix, 0) == 0;
  return n;
}

class ChaosCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(std::string("chaos-") +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RecordProcess> Record(std::vector<std::string> extra) {
    const std::string store = dir_ + "/store-" + std::to_string(++stores_);
    extra.insert(extra.begin(), {"--session", "s"});
    auto rec = std::make_unique<RecordProcess>(store, primary_.url(), extra);
    EXPECT_TRUE(rec->started()) << rec->child().all_stdout() << rec->child().all_stderr();
    return rec;
  }

  // `doppel --store ... record ARGS` expected to refuse its flags: exit code and stderr.
  std::pair<int, std::string> RecordRefused(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store",     dir_ + "/refused",
                                    "record",       "--listen",    "127.0.0.1:0",
                                    "--upstream",   primary_.url()};
    cmd.insert(cmd.end(), args.begin(), args.end());
    ChildProcess p(cmd);
    const int code = p.Wait(20000);
    return {code, p.all_stderr()};
  }

  std::string dir_;
  int stores_ = 0;
  TestUpstream primary_;
};

TEST_F(ChaosCliTest, AbortAnswersForThePrimaryWithinItsRuleAndCountsApart) {
  auto rec = Record({"--fault", "abort:503:100%", "--fault-rule", "name=api,uri^=/api"});
  ASSERT_TRUE(rec->started());
  for (int i = 0; i < 10; ++i) {
    net::HttpResponse api = Fetch(rec->port(), "GET", "/api/items/" + std::to_string(i));
    EXPECT_EQ(api.result_int(), 503u);
    EXPECT_NE(api.body().find("fault injected"), std::string::npos) << api.body();
    EXPECT_EQ(api["x-doppel-fault"], "abort");
    EXPECT_EQ(Fetch(rec->port(), "GET", "/health").result_int(), 200u);
  }
  // The primary never saw an aborted request; only the others were captured.
  EXPECT_EQ(CountTarget(primary_, "/api"), 0u);
  EXPECT_EQ(CountTarget(primary_, "/health"), 10u);
  EXPECT_TRUE(Eventually([&] { return rec->StatusStored() == 10; })) << rec->StatusStored();
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"abort\",where=\"primary\"}"), 10);
  EXPECT_EQ(ProxyErrors(*rec), 0);
  const json::object status = rec->Status();
  ASSERT_TRUE(status.contains("faults")) << json::serialize(status);
  EXPECT_EQ(Injected(status.at("faults").as_object(), "abort"), 10);
  EXPECT_EQ(status.at("faults").at("rule").as_string(), "api");

  rec->child().Signal(SIGINT);
  EXPECT_EQ(rec->child().Wait(), 0) << rec->child().all_stderr();
  EXPECT_NE(rec->child().all_stdout().find("faults injected: abort 10"), std::string::npos)
      << rec->child().all_stdout();
  EXPECT_NE(rec->child().all_stderr().find("WARNING: injecting faults into the proxied traffic "
                                           "(abort:503:100%, rule 'api')"),
            std::string::npos)
      << rec->child().all_stderr();
}

TEST_F(ChaosCliTest, HeaderFaultsDelayAndAbortOneRequest) {
  auto rec = Record({"--fault-headers"});
  ASSERT_TRUE(rec->started());
  const auto start = SteadyClock::now();
  net::HttpResponse delayed =
      Fetch(rec->port(), "GET", "/delayed", "", {{"x-doppel-fault-delay-ms", "300"}});
  const auto took = SteadyClock::now() - start;
  EXPECT_EQ(delayed.result_int(), 200u);
  EXPECT_GE(took, std::chrono::milliseconds(300));  // a delay is never shorter
  net::HttpResponse aborted =
      Fetch(rec->port(), "GET", "/aborted", "", {{"x-doppel-fault-abort", "429"}});
  EXPECT_EQ(aborted.result_int(), 429u);
  EXPECT_EQ(Fetch(rec->port(), "GET", "/plain").result_int(), 200u);
  // The control headers do not reach the primary.
  bool saw_delayed = false;
  for (const auto& r : primary_.requests()) {
    EXPECT_FALSE(r.HasHeader("x-doppel-fault-delay-ms")) << r.target;
    EXPECT_NE(r.target, "/aborted");
    saw_delayed = saw_delayed || r.target == "/delayed";
  }
  EXPECT_TRUE(saw_delayed);
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"delay\",where=\"primary\"}"), 1);
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"abort\",where=\"primary\"}"), 1);
}

TEST_F(ChaosCliTest, ResetClosesWithoutAnAnswer) {
  auto rec = Record({"--fault", "reset:100%"});
  ASSERT_TRUE(rec->started());
  TestClient client(rec->port());
  ASSERT_TRUE(client.Write("GET /r HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(client.ReadAll(5000), "");
  EXPECT_TRUE(client.PeerClosed());
  EXPECT_EQ(CountTarget(primary_, "/r"), 0u);
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"reset\",where=\"primary\"}"), 1);
  EXPECT_EQ(ProxyErrors(*rec), 0);
  EXPECT_EQ(rec->StatusStored(), 0);
}

TEST_F(ChaosCliTest, TruncateCutsTheBodyHalfwayAndIsNotCaptured) {
  auto rec = Record({"--fault", "truncate:100%"});
  ASSERT_TRUE(rec->started());
  TestClient client(rec->port());
  ASSERT_TRUE(client.Write("GET /size?n=10000 HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string got = client.ReadAll(5000);
  const size_t head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << got;
  EXPECT_NE(got.find("Content-Length: 10000"), std::string::npos) << got.substr(0, head_end);
  EXPECT_EQ(got.size() - head_end - 4, 5000u);  // half, then the connection closed
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"truncate\",where=\"primary\"}"), 1);
  EXPECT_EQ(ProxyErrors(*rec), 0);
  EXPECT_EQ(rec->Metric("doppel_responses_cut_total{reason=\"upstream_reset\"}"), 0);
  // A whole response the client did not get whole is not what the primary is: not stored.
  EXPECT_EQ(rec->StatusStored(), 0);
}

TEST_F(ChaosCliTest, BandwidthThrottlesTheBodyAndKeepsEveryByte) {
  auto rec = Record({"--fault", "bandwidth:20KiB:100%"});
  ASSERT_TRUE(rec->started());
  const auto start = SteadyClock::now();
  net::HttpResponse res = Fetch(rec->port(), "GET", "/size?n=40960");
  const auto took = SteadyClock::now() - start;
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), std::string(40960, 's'));
  // 40 KiB at 20 KiB/s: the last slice leaves no earlier than ~1.9 s after the first.
  EXPECT_GE(took, std::chrono::milliseconds(1800));
  EXPECT_TRUE(Eventually([&] { return rec->StatusStored() == 1; }));  // captured whole
}

TEST_F(ChaosCliTest, SameSeedSameFaultedRequests) {
  auto pattern = [&](const std::string& seed) {
    auto rec = Record({"--threads", "1", "--fault", "abort:500:50%", "--fault-seed", seed});
    std::string out;
    TestClient client(rec->port());
    for (int i = 0; i < 40; ++i) {
      net::HttpRequest r{http::verb::get, "/p", 11};
      r.set(http::field::host, "x");
      out += client.Send(std::move(r)).result_int() == 500 ? 'A' : '.';
    }
    return out;
  };
  const std::string a = pattern("7"), b = pattern("7"), c = pattern("8");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a.find('A'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

TEST_F(ChaosCliTest, MirrorCopiesTakeDelaysAndAborts) {
  TestUpstream delayed_mirror, aborted_mirror;
  auto rec = Record({"--sample", "0", "--mirror",
                     delayed_mirror.url() + ",name=slow,fault=delay:200ms:100%", "--mirror",
                     aborted_mirror.url() + ",name=gone,fault=abort:503:100%"});
  ASSERT_TRUE(rec->started());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Fetch(rec->port(), "GET", "/m").result_int(), 200u);
  EXPECT_TRUE(Eventually([&] { return delayed_mirror.requests().size() == 5; }));
  EXPECT_EQ(aborted_mirror.requests().size(), 0u);
  const json::object status = rec->Status();
  ASSERT_TRUE(status.contains("mirrors"));
  for (const auto& m : status.at("mirrors").as_array()) {
    const json::object& o = m.as_object();
    ASSERT_TRUE(o.contains("faults")) << json::serialize(o);
    if (o.at("name").as_string() == "slow") {
      EXPECT_EQ(Injected(o.at("faults").as_object(), "delay"), 5);
      EXPECT_EQ(o.at("sent").to_number<int64_t>(), 5);
    } else {
      EXPECT_EQ(Injected(o.at("faults").as_object(), "abort"), 5);
      EXPECT_EQ(o.at("sent").to_number<int64_t>(), 0);
    }
  }
  EXPECT_EQ(rec->Metric("doppel_faults_injected_total{kind=\"delay\",where=\"mirror:slow\"}"), 5);
}

// Adaptive mirror percentage (issue #17): a mirror that turns slow (2 s an answer) behind a
// small in-flight cap (32: at ~5,000 copies a second a healthy mirror on a loaded machine can
// have 4 in flight, which read as failures and backed it off before it was slow; a 2 s mirror
// fills 32 in milliseconds) is backed off below 20 % of its configured percentage within 10 s, the
// primary keeps its throughput, and once the mirror heals the percentage is back within 30 s.
// Everything is read from /metrics; the bounds are generous (a loaded 2-core machine).
TEST_F(ChaosCliTest, AdaptiveMirrorBacksOffASlowMirrorAndRecovers) {
  TestUpstream mirror;
  std::atomic<bool> slow{false};
  mirror.SetHandler([&slow](const ReceivedRequest&) -> std::optional<net::HttpResponse> {
    if (!slow.load()) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::seconds(2));
    return std::nullopt;
  });
  // Requests a second through `port` over 4 keep-alive connections while `run` holds.
  auto load = [](uint16_t port, std::atomic<bool>& run, std::atomic<uint64_t>& done) {
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, port] {
        TestClient client(port);
        while (run.load()) {
          net::HttpRequest r{http::verb::get, "/load", 11};
          r.set(http::field::host, "x");
          if (client.Send(std::move(r)).result_int() == 200) ++done;
        }
      });
    }
    return clients;
  };
  auto rate = [&](uint16_t port, int ms) {
    std::atomic<bool> run{true};
    std::atomic<uint64_t> done{0};
    auto clients = load(port, run, done);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    run = false;
    for (auto& t : clients) t.join();
    return static_cast<double>(done.load()) * 1000.0 / ms;
  };

  // The primary's throughput through a recorder without mirrors.
  double baseline = 0;
  {
    auto plain = Record({"--sample", "0"});
    ASSERT_TRUE(plain->started());
    baseline = rate(plain->port(), 2000);
  }
  const std::string audit = dir_ + "/audit.log";
  auto rec = Record({"--sample", "0", "--mirror",
                     mirror.url() + ",percent=50,adaptive,max-inflight=32,name=adapt",
                     "--mirror-budget", "errors=5%", "--audit-log", audit});
  ASSERT_TRUE(rec->started());
  const std::string effective = "doppel_mirror_effective_percent{mirror=\"adapt\"}";
  EXPECT_EQ(rec->Metric(effective), 50);

  std::atomic<bool> run{true};
  std::atomic<uint64_t> done{0};
  auto clients = load(rec->port(), run, done);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(rec->Metric(effective), 50);  // healthy: no back-off
  slow = true;
  const auto slow_at = SteadyClock::now();
  const uint64_t done_at_slow = done.load();
  EXPECT_TRUE(Eventually([&] { return rec->Metric(effective) < 10; }, 10000))
      << rec->Metric(effective) << "\n"
      << rec->Admin("/status");
  const double slow_secs = std::chrono::duration<double>(SteadyClock::now() - slow_at).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const double slow_rate = static_cast<double>(done.load() - done_at_slow) /
                           (std::chrono::duration<double>(SteadyClock::now() - slow_at).count());
  std::cout << "[ adaptive ] backed off below 10% in " << slow_secs
            << " s; primary req/s without mirror " << baseline << ", with the slow mirror "
            << slow_rate << " (" << slow_rate / baseline << "x)\n";
  // The primary never waits for a mirror; the bound leaves room for a loaded machine.
  EXPECT_GT(slow_rate, 0.5 * baseline);
  const json::object status = rec->Status();
  const json::object& adaptive =
      status.at("mirrors").as_array().at(0).as_object().at("adaptive").as_object();
  EXPECT_NE(std::string(adaptive.at("last_change").as_string()).find("mirror failures"),
            std::string::npos)
      << json::serialize(adaptive);

  slow = false;
  EXPECT_TRUE(Eventually([&] { return rec->Metric(effective) == 50; }, 30000))
      << rec->Metric(effective) << "\n"
      << rec->Admin("/status");
  run = false;
  for (auto& t : clients) t.join();
  rec->child().Signal(SIGINT);
  EXPECT_EQ(rec->child().Wait(), 0);
  // Every change was logged with its reason.
  EXPECT_NE(rec->child().all_stderr().find("mirror 'adapt' at 25% (was 50%): mirror failures"),
            std::string::npos)
      << rec->child().all_stderr();
  EXPECT_NE(rec->child().all_stderr().find("(was 45%): within budget"), std::string::npos);
  // The audit log sums the changes up (a line a minute at most, and one at the end).
  std::istringstream lines(ReadFile(audit));
  uint64_t changes = 0;
  double last_percent = -1;
  for (std::string line; std::getline(lines, line);) {
    const json::value v = json::parse(line);
    const json::value* event = v.as_object().if_contains("event");
    if (event == nullptr || *event != json::value("adaptive")) continue;
    const json::object& m = v.at("mirrors").at(0).as_object();
    EXPECT_EQ(m.at("mirror").as_string(), "adapt");
    changes += m.at("changes").to_number<uint64_t>();
    last_percent = m.at("effective_percent").to_number<double>();
  }
  EXPECT_GE(changes, 4u) << ReadFile(audit);  // 50 -> 25 -> 12.5 -> 6.25 ... and back
  EXPECT_EQ(last_percent, 50) << ReadFile(audit);
}

TEST_F(ChaosCliTest, BadFaultFlagsAreRefusedWithTheReason) {
  auto [code, err] = RecordRefused({"--fault", "delay:200ms:10"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("--fault"), std::string::npos) << err;
  EXPECT_NE(err.find("write it with %"), std::string::npos) << err;

  std::tie(code, err) = RecordRefused({"--fault", "abort:503:5%", "--fault-rule", "nope"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("--fault-rule 'nope' names no rule"), std::string::npos) << err;

  std::tie(code, err) = RecordRefused({"--fault-seed", "3"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("need --fault SPEC"), std::string::npos) << err;

  std::tie(code, err) = RecordRefused({"--mirror", primary_.url() + ",fault=truncate:5%"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("a mirror takes delay and abort faults"), std::string::npos) << err;

  std::tie(code, err) = RecordRefused({"--mirror", primary_.url() + ",adaptive"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("an adaptive mirror needs --mirror-budget"), std::string::npos) << err;

  std::tie(code, err) = RecordRefused({"--mirror", primary_.url(), "--mirror-budget", "errors=5%"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("add ',adaptive' to a --mirror"), std::string::npos) << err;

  std::tie(code, err) =
      RecordRefused({"--mirror", primary_.url() + ",adaptive", "--mirror-budget", "p99=soon"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(err.find("p99='soon' must be a duration"), std::string::npos) << err;
}

}  // namespace
}  // namespace doppel::testing
