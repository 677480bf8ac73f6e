// recorder::Session in-process: a real store in a temporary directory, the proxy on loopback
// in front of an in-test upstream, time from a ManualClock.
#include "recorder/session.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "net/fault.h"
#include "net/rules_file.h"
#include "storage/store.h"
#include "tests/base/gate.h"
#include "tests/integration/hardening_util.h"  // Eventually
#include "tests/net/test_upstream.h"

namespace doppel::recorder {
namespace {

using testing::Eventually;
using testing::Fetch;
using testing::Gate;
using testing::TestClient;
using testing::TestUpstream;

constexpr uint64_t kStartUs = 1767225600'000000;  // 2026-01-01T00:00:00Z

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = std::filesystem::temp_directory_path() / "doppel-session-XXXXXX";
    dir_ = mkdtemp(t.data());
    options_.store_path = dir_ + "/store";
    options_.name = "s1";
    options_.listen = "127.0.0.1:0";
    options_.upstream = upstream_.url();
    options_.threads = 1;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The store, opened read-only once the session is gone.
  std::unique_ptr<storage::Store> OpenStore() {
    storage::StoreOptions o;
    o.read_only = true;
    o.create_if_missing = false;
    std::unique_ptr<storage::Store> store;
    Status st = storage::Store::Open(o, options_.store_path, &store);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return store;
  }

  std::vector<v1::Envelope> Envelopes(storage::Store* store, const std::string& session) {
    std::vector<v1::Envelope> out;
    auto it = store->Scan(session);
    EXPECT_TRUE(it.ok()) << it.status().ToString();
    if (!it.ok()) return out;
    for (auto& i = it.value(); i->Valid(); i->Next()) out.push_back(i->envelope());
    EXPECT_TRUE(it.value()->status().ok()) << it.value()->status().ToString();
    return out;
  }

  // What a session left in the store: its record, which it must have closed, and its envelopes.
  struct Recorded {
    v1::SessionInfo info;
    std::vector<v1::Envelope> envelopes;
  };
  // REQUIRES: the session is gone (the store is opened read-only).
  void ReadClosedSession(const std::string& name, Recorded* out) {
    std::unique_ptr<storage::Store> store = OpenStore();
    ASSERT_TRUE(store);
    auto info = store->GetSession(name);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->state(), v1::SESSION_STATE_CLOSED);
    out->info = *info;
    out->envelopes = Envelopes(store.get(), name);
  }

  std::string dir_;
  TestUpstream upstream_;
  SessionOptions options_;
  ManualClock clock_{kStartUs};
};

TEST_F(SessionTest, StopClosesTheRecordWithCountsAndTheClocksTimes) {
  auto started = Session::Start(options_, clock_);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  SessionPtr session = std::move(started.value());
  const uint16_t port = session->recorder().listen_address().port;

  clock_.Advance(2'500'000);  // requests arrive 2.5 s after the start
  for (const char* target : {"/a", "/b", "/c"}) {
    ASSERT_EQ(Fetch(port, "GET", target).result_int(), 200u) << target;
  }
  // The /status uptime runs on the injected clock too.
  const boost::json::value status = boost::json::parse(session->recorder().StatusJson());
  EXPECT_DOUBLE_EQ(status.at("uptime_s").to_number<double>(), 2.5);

  clock_.Advance(60'000'000);  // stopped a minute later
  const SessionSummary& summary = session->Stop();
  EXPECT_TRUE(summary.status.ok()) << summary.status.ToString();
  EXPECT_EQ(summary.name, "s1");
  EXPECT_EQ(summary.counts.requests, 3u);
  EXPECT_EQ(summary.counts.sampled, 3u);
  EXPECT_EQ(summary.counts.stored, 3u);
  EXPECT_EQ(summary.counts.dropped, 0u);
  EXPECT_EQ(summary.counts.errors, 0u);
  EXPECT_EQ(&session->Stop(), &summary);  // a second Stop changes nothing
  session.reset();

  Recorded recorded;
  ASSERT_NO_FATAL_FAILURE(ReadClosedSession("s1", &recorded));
  const v1::SessionInfo& info = recorded.info;
  EXPECT_EQ(info.source(), "record");
  EXPECT_EQ(info.upstream(), upstream_.url());
  EXPECT_EQ(info.created_us(), kStartUs);
  EXPECT_EQ(info.closed_us(), kStartUs + 62'500'000);
  EXPECT_EQ(info.counts().requests_seen(), 3u);
  EXPECT_EQ(info.counts().sampled(), 3u);
  EXPECT_EQ(info.counts().envelopes(), 3u);
  EXPECT_EQ(info.counts().dropped(), 0u);
  EXPECT_EQ(info.counts().errors(), 0u);
  EXPECT_EQ(info.counts().first_arrival_us(), kStartUs + 2'500'000);
  EXPECT_EQ(info.counts().last_arrival_us(), kStartUs + 2'500'000);
  ASSERT_EQ(recorded.envelopes.size(), 3u);
  std::set<std::string> targets;
  for (const auto& e : recorded.envelopes) {
    EXPECT_EQ(e.arrival_us(), kStartUs + 2'500'000);
    targets.insert(e.request().target());
  }
  EXPECT_EQ(targets, (std::set<std::string>{"/a", "/b", "/c"}));
}

TEST_F(SessionTest, DefaultNameComesFromTheClock) {
  options_.name.clear();
  auto started = Session::Start(options_, clock_);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ((*started)->name(), "rec-20260101-000000");
  // Dropped without Stop(): the destructor still closes the record.
  started.value().reset();
  Recorded recorded;
  ASSERT_NO_FATAL_FAILURE(ReadClosedSession("rec-20260101-000000", &recorded));
}

TEST_F(SessionTest, AStoreThatCannotBeCreatedIsAClearError) {
  const std::string file = dir_ + "/not-a-directory";
  std::ofstream(file) << "x";
  options_.store_path = file + "/store";
  auto started = Session::Start(options_, clock_);
  ASSERT_FALSE(started.ok());
  const std::string message = started.status().ToString();
  EXPECT_NE(message.find("opening the store " + options_.store_path), std::string::npos) << message;
  EXPECT_NE(message.find("Not a directory"), std::string::npos) << message;
}

TEST_F(SessionTest, AStoreInUseIsAClearErrorAndNothingListens) {
  std::unique_ptr<storage::Store> holder;
  ASSERT_TRUE(storage::Store::Open(storage::StoreOptions{}, options_.store_path, &holder).ok());
  const uint16_t port = testing::DeadPort();
  options_.listen = "127.0.0.1:" + std::to_string(port);
  auto started = Session::Start(options_, clock_);
  ASSERT_FALSE(started.ok());
  const std::string message = started.status().ToString();
  EXPECT_NE(message.find(options_.store_path), std::string::npos) << message;
  EXPECT_NE(message.find("in use by another doppel process"), std::string::npos) << message;
  EXPECT_FALSE(TestClient(port).connected());  // the proxy was never started
}

// Options are checked before the store is touched: a bad flag leaves no store behind.
TEST_F(SessionTest, BadOptionsAreRefusedBeforeTheStoreIsCreated) {
  options_.upstream = "ftp://primary";
  auto started = Session::Start(options_, clock_);
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.status().ToString().find("--upstream"), std::string::npos)
      << started.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(options_.store_path));

  options_.upstream = upstream_.url();
  options_.drain_timeout = "soon";
  started = Session::Start(options_, clock_);
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.status().ToString().find("--drain-timeout: 'soon' is not a duration"),
            std::string::npos)
      << started.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(options_.store_path));
}

TEST_F(SessionTest, ExistingSessionNameIsRefused) {
  {
    auto first = Session::Start(options_, clock_);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_TRUE((*first)->Stop().status.ok());
  }
  auto second = Session::Start(options_, clock_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().ToString().find("session 's1' (pick another --session name)"),
            std::string::npos)
      << second.status().ToString();
}

// Stop() while the primary still holds every request: the drain lets them finish, and each
// one's envelope is in the store before the record is closed.
TEST_F(SessionTest, StopWithRequestsInFlightLosesNoEnvelope) {
  Gate gate(/*open=*/false);  // holds the upstream's answers: the requests stay in flight
  upstream_.SetHandler(
      [&gate](const testing::ReceivedRequest&) -> std::optional<net::HttpResponse> {
        gate.Wait();
        return std::nullopt;  // the echo endpoint answers
      });
  options_.threads = 2;
  options_.drain_timeout = "120s";  // the drain ends when the requests do, not on a timer
  auto started = Session::Start(options_, clock_);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  Session& session = **started;
  const uint16_t port = session.recorder().listen_address().port;

  constexpr int kRequests = 8;
  std::vector<std::future<unsigned>> answers;
  for (int i = 0; i < kRequests; ++i) {
    answers.push_back(std::async(std::launch::async, [port, i] {
      return Fetch(port, "POST", "/order/" + std::to_string(i), "item-" + std::to_string(i))
          .result_int();
    }));
  }
  ASSERT_TRUE(Eventually([&] { return upstream_.requests().size() == kRequests; }, 10000));

  auto stopped = std::async(std::launch::async, [&session] { return session.Stop().counts; });
  // On an early return the gate opens before `stopped` waits for Stop (which waits for it).
  struct OpenOnExit {
    Gate& gate;
    ~OpenOnExit() { gate.Open(); }
  } open_on_exit{gate};
  // Stop has begun once the listener is closed: from then on, new connections are refused.
  ASSERT_TRUE(Eventually([port] { return !TestClient(port).connected(); }, 10000));
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "Stop returned while requests were in flight";
  gate.Open();

  for (auto& a : answers) EXPECT_EQ(a.get(), 200u);
  const RecorderCounts counts = stopped.get();
  EXPECT_EQ(counts.sampled, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(counts.stored, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(counts.dropped, 0u);
  EXPECT_TRUE(session.Stop().status.ok()) << session.Stop().status.ToString();
  started.value().reset();

  Recorded recorded;
  ASSERT_NO_FATAL_FAILURE(ReadClosedSession("s1", &recorded));
  EXPECT_EQ(recorded.info.counts().envelopes(), static_cast<uint64_t>(kRequests));
  std::set<std::string> bodies;
  for (const auto& e : recorded.envelopes) {
    EXPECT_EQ(e.response().status(), 200u);
    EXPECT_EQ(e.response().body(), e.request().body());
    bodies.insert(e.request().body());
  }
  EXPECT_EQ(bodies.size(), static_cast<size_t>(kRequests));
}

// History (issue #19): a coverage session starts with the class frequencies of the earlier
// sessions of its upstream, estimated from their envelopes (sum of 1/p per class).
TEST_F(SessionTest, CoverageSessionStartsWithTheClassHistoryOfItsUpstream) {
  ManualClock clock(kStartUs);
  options_.sample_mode = "coverage";
  options_.sample_budget = "10%";
  options_.per_class_min = 2;
  auto send = [&](const Session& session, const std::string& target, int n) {
    TestClient c(session.recorder().listen_address().port);
    for (int i = 0; i < n; ++i) {
      net::HttpRequest r{boost::beast::http::verb::get, target, 11};
      r.set(boost::beast::http::field::host, "shop.test");
      ASSERT_EQ(c.Send(std::move(r)).result_int(), 200u);
      clock.Advance(1000);
    }
  };
  {
    auto first = Session::Start(options_, clock);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_TRUE((*first)->recorder_options().coverage->history_sessions.empty());
    send(**first, "/hot", 400);
    send(**first, "/rare", 4);
    const SessionSummary& sum = (*first)->Stop();
    ASSERT_TRUE(sum.status.ok()) << sum.status.ToString();
    ASSERT_TRUE(sum.coverage.has_value());
    EXPECT_EQ(sum.coverage->classes.size(), 2u);
  }
  options_.name = "s2";
  auto second = Session::Start(options_, clock);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  const CoverageOptions& cov = *(*second)->recorder_options().coverage;
  EXPECT_EQ(cov.history_sessions, std::vector<std::string>{"s1"});
  ASSERT_EQ(cov.history.size(), 2u);
  std::map<std::string, double> history(cov.history.begin(), cov.history.end());
  // The estimates are the first session's counts: 400 hot requests (estimated from ~40 random
  // draws by 1/p: within a factor of 2.5 at more than 4 standard deviations), 4 rare ones (all
  // kept, p = 1: exact). CoverageSamplerTest checks the estimate's accuracy over many draws.
  const std::string hot = "GET /hot 200 empty", rare = "GET /rare 200 empty";
  ASSERT_TRUE(history.count(hot) && history.count(rare));
  EXPECT_GT(history[hot], 400 / 2.5);
  EXPECT_LT(history[hot], 400 * 2.5);
  EXPECT_NEAR(history[rare], 4, 1e-9);
  // Before its first request the new session knows both classes, and which one is hot.
  const auto snap = (*second)->recorder().coverage();
  ASSERT_TRUE(snap.has_value());
  ASSERT_EQ(snap->classes.size(), 2u);
  EXPECT_EQ(*snap->classes[0].label, hot);
  EXPECT_EQ(snap->classes[0].seen, 0u);
  EXPECT_GT(snap->classes[0].share, 0.9);
  (void)(*second)->Stop();
  second.value().reset();  // closes the store
  // --no-class-history starts from nothing.
  options_.name = "s3";
  options_.no_class_history = true;
  auto third = Session::Start(options_, clock);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_TRUE((*third)->recorder().coverage()->classes.empty());
  (void)(*third)->Stop();
}

// Live reconfiguration: a document applied to the running session changes sampling, rules,
// mirrors and faults for the next requests; a document with an error, or one changing what
// needs a restart, is refused whole and the configuration in force stays.
TEST_F(SessionTest, ReloadChangesWhatIsLiveAndRefusesTheRest) {
  TestUpstream mirror;
  std::vector<ReloadOutcome> told;
  options_.on_reload = [&told](const ReloadOutcome& o) { told.push_back(o); };
  auto started = Session::Start(options_, clock_);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  Session& session = **started;
  const uint16_t port = session.recorder().listen_address().port;
  EXPECT_EQ(session.recorder().generation(), 1u);
  ASSERT_EQ(Fetch(port, "GET", "/before").result_int(), 200u);

  auto reload = [&session](std::string_view yaml) {
    auto doc = net::ParseConfig(yaml, net::ConfigFormat::kYaml);
    EXPECT_TRUE(doc.ok()) << doc.status().ToString();
    return session.Reload(&doc.value(), "test");
  };
  // Only /keep is recorded from now on; every request is mirrored; /boom is aborted.
  ReloadOutcome applied = reload(
      "capture: {match: ['uri^=/keep']}\n"
      "mirroring: {mirrors: ['" +
      mirror.url() +
      ",name=shadow']}\n"
      "faults: {spec: 'abort:418:100%', rule: 'uri=/boom'}\n");
  ASSERT_TRUE(applied.status.ok()) << applied.status.ToString();
  EXPECT_EQ(applied.generation, 2u);
  EXPECT_EQ(session.recorder().generation(), 2u);
  ASSERT_EQ(applied.changed.size(), 4u);  // capture.match, mirroring.mirrors, faults.spec, .rule
  EXPECT_EQ(applied.changed[0], "capture.match: [] -> [\"uri^=/keep\"]");
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].origin, "test");

  ASSERT_EQ(Fetch(port, "GET", "/keep/1").result_int(), 200u);
  ASSERT_EQ(Fetch(port, "GET", "/skip").result_int(), 200u);
  EXPECT_EQ(Fetch(port, "GET", "/boom").result_int(), 418u);
  EXPECT_TRUE(Eventually([&] { return mirror.requests().size() == 2; }))
      << mirror.requests().size();  // /keep/1 and /skip (/boom was aborted before forwarding)
  const boost::json::value status = boost::json::parse(session.recorder().StatusJson());
  EXPECT_EQ(status.at("config_generation").to_number<uint64_t>(), 2u);
  EXPECT_EQ(status.at("mirrors").as_array().size(), 1u);
  EXPECT_NE(session.recorder().MetricsText().find("doppel_config_generation 2"), std::string::npos);

  // Refused whole: a typo (with its line), a restart-only field, a mirror rule naming nothing.
  ReloadOutcome typo = reload("sampling:\n  percnt: 5\n");
  EXPECT_FALSE(typo.status.ok());
  EXPECT_NE(typo.status.message().find("line 2"), std::string::npos) << typo.status.ToString();
  EXPECT_NE(typo.status.message().find("percnt"), std::string::npos) << typo.status.ToString();
  ReloadOutcome restart = reload("listener: {threads: 3}\n");
  EXPECT_FALSE(restart.status.ok());
  EXPECT_NE(restart.status.message().find("listener.threads"), std::string::npos)
      << restart.status.ToString();
  EXPECT_NE(restart.status.message().find("restart"), std::string::npos);
  ReloadOutcome bad_rule =
      reload("mirroring: {mirrors: ['" + mirror.url() + ",rule=nosuchrule']}\n");
  EXPECT_FALSE(bad_rule.status.ok());
  EXPECT_NE(bad_rule.status.message().find("nosuchrule"), std::string::npos)
      << bad_rule.status.ToString();
  EXPECT_EQ(session.recorder().generation(), 2u);
  EXPECT_EQ(told.size(), 4u);
  EXPECT_EQ(told.back().generation, 2u);

  // The configuration in force is still generation 2's.
  ASSERT_EQ(Fetch(port, "GET", "/keep/2").result_int(), 200u);
  EXPECT_TRUE(Eventually([&] { return mirror.requests().size() == 3; }));

  // A document changes the fields it names and leaves the others: an empty one, nothing.
  ReloadOutcome same = reload("{}\n");
  ASSERT_TRUE(same.status.ok()) << same.status.ToString();
  EXPECT_TRUE(same.changed.empty());
  EXPECT_EQ(Fetch(port, "GET", "/boom").result_int(), 418u);
  ReloadOutcome back =
      reload("capture: {match: []}\nmirroring: {mirrors: []}\nfaults: {spec: '', rule: ''}\n");
  ASSERT_TRUE(back.status.ok()) << back.status.ToString();
  EXPECT_EQ(back.generation, 4u);
  EXPECT_EQ(back.changed.size(), 4u);
  EXPECT_EQ(Fetch(port, "GET", "/boom").result_int(), 200u);
  EXPECT_TRUE(session.recorder().mirror_counts().empty());

  const SessionSummary& summary = session.Stop();
  EXPECT_TRUE(summary.status.ok()) << summary.status.ToString();
  EXPECT_EQ(summary.counts.faults[static_cast<int>(net::FaultKind::kAbort)], 2u);
  EXPECT_FALSE(session.Reload(nullptr, "late").status.ok());  // stopping: refused
  started.value().reset();
  Recorded recorded;
  ASSERT_NO_FATAL_FAILURE(ReadClosedSession("s1", &recorded));
  std::vector<std::string> targets;
  for (const auto& e : recorded.envelopes) targets.push_back(e.request().target());
  // /before (everything recorded), /keep/1 and /keep/2 (the rule), the last /boom (no rule).
  EXPECT_EQ(targets, (std::vector<std::string>{"/before", "/keep/1", "/keep/2", "/boom"}));
}

}  // namespace
}  // namespace doppel::recorder
