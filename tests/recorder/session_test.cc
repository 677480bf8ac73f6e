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
  EXPECT_EQ(snap->classes[0].label, hot);
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

}  // namespace
}  // namespace doppel::recorder
