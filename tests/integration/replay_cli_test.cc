// The doppel binary in replay mode against real upstreams on loopback.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "base/time_format.h"
#include "doppel/v1/run.pb.h"
#include "net/url.h"
#include "storage/store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

// GET `target` from 127.0.0.1:40000 (Host: shop.prod), the `seq`th request 1 ms apart from
// `start_us`, recorded with a 200 and no headers yet.
v1::Envelope RecordedGet(uint32_t seq, const std::string& target, uint64_t start_us) {
  v1::Envelope e;
  e.set_arrival_us(start_us + seq * 1000);
  e.set_seq(seq);
  e.set_client_addr("127.0.0.1:40000");
  auto* r = e.mutable_request();
  r->set_method("GET");
  r->set_target(target);
  r->set_version(11);
  auto* h = r->add_headers();
  h->set_name("Host");
  h->set_value("shop.prod");
  auto* resp = e.mutable_response();
  resp->set_status(200);
  resp->set_version(11);
  return e;
}

class ReplayCliTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    Status s = storage::testing::WriteReplaySession(store_, "s", kGets, kPosts);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Stores `envelopes` as session `name`; the store is closed again for the doppel process.
  void MakeSession(const std::string& name, const std::vector<v1::Envelope>& envelopes) {
    Status written = storage::testing::WriteSession(store_, name, envelopes);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }
  // GET `target` recorded with the answer a TestUpstream gives it: 200, empty text/plain.
  static v1::Envelope AnsweredGet(uint32_t seq, const std::string& target) {
    v1::Envelope e = RecordedGet(seq, target, 2'000'000);
    auto* resp = e.mutable_response();
    resp->set_reason("OK");
    for (auto [n, v] : {std::pair{"Content-Type", "text/plain"}, {"Content-Length", "0"}}) {
      auto* h = resp->add_headers();
      h->set_name(n);
      h->set_value(v);
    }
    return e;
  }

  // Runs `doppel --store STORE replay --session s ARGS...`, returns the exit code.
  int Replay(std::vector<std::string> args, ChildProcess** keep = nullptr) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_,         "replay",
                                    "--session",    "s",       "--no-progress"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd);
    int code = child_->Wait(60000);
    return code;
  }
  int Doppel(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd);
    return child_->Wait(30000);
  }
  json::object ReadJson(const std::string& path) {
    std::ifstream f(path);
    std::string s((std::istreambuf_iterator<char>(f)), {});
    return json::parse(s).as_object();
  }

  static constexpr int kGets = 200;
  static constexpr int kPosts = 20;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(ReplayCliTest, EverySelectedEnvelopeOncePerTargetWithRewrites) {
  TestUpstream a, b;
  int code =
      Replay({"--target", a.url(), "--target", b.url(), "--max", "--concurrency", "8", "--no-diff",
              "--set-header", "X-Replay=1", "--rewrite-path", "^/items/=/v2/items/"});
  ASSERT_EQ(code, 0) << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("skipping 20 POST/PUT/PATCH/DELETE"), std::string::npos)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("--allow-unsafe-methods"), std::string::npos);
  EXPECT_NE(child_->all_stderr().find("redacted header values were not sent"), std::string::npos);
  for (TestUpstream* up : {&a, &b}) {
    auto reqs = up->requests();
    ASSERT_EQ(reqs.size(), static_cast<size_t>(kGets));
    std::set<std::string> targets;
    for (const auto& r : reqs) {
      EXPECT_EQ(r.method, "GET");
      targets.insert(r.target);
      EXPECT_EQ(r.Header("X-Replay"), "1");
      EXPECT_FALSE(r.HasHeader("Authorization"));  // recorded as a hash: never sent
      EXPECT_EQ(r.Header("Host"), "127.0.0.1:" + std::to_string(up->port()));
    }
    EXPECT_EQ(targets.size(), static_cast<size_t>(kGets));  // each exactly once
    EXPECT_TRUE(targets.count("/v2/items/0") && targets.count("/v2/items/199"));
  }
}

TEST_F(ReplayCliTest, UnsafeMethodsWhenAllowedAndKeepHost) {
  TestUpstream a;
  ASSERT_EQ(Replay({"--target", a.url(), "--max", "--no-diff", "--allow-unsafe-methods",
                    "--keep-host", "--set-header", "Authorization=Bearer t"}),
            0)
      << child_->all_stderr();
  auto reqs = a.requests();
  ASSERT_EQ(reqs.size(), static_cast<size_t>(kGets + kPosts));
  int posts = 0;
  for (const auto& r : reqs) {
    posts += r.method == "POST";
    EXPECT_EQ(r.Header("Host"), "shop.prod");
    EXPECT_EQ(r.Header("Authorization"), "Bearer t");
  }
  EXPECT_EQ(posts, kPosts);
}

TEST_F(ReplayCliTest, PercentIsDeterministicPerSeed) {
  auto run = [&](const std::string& seed) {
    TestUpstream up;
    EXPECT_EQ(
        Replay({"--target", up.url(), "--max", "--no-diff", "--percent", "30", "--seed", seed}), 0)
        << child_->all_stderr();
    std::set<std::string> t;
    for (const auto& r : up.requests()) t.insert(r.target);
    return t;
  };
  auto first = run("5"), again = run("5"), other = run("6");
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  EXPECT_GT(first.size(), 30u);
  EXPECT_LT(first.size(), 90u);
}

TEST_F(ReplayCliTest, DeadTargetDoesNotStallTheLiveOne) {
  TestUpstream live;
  const std::string dead = "http://127.0.0.1:" + std::to_string(DeadPort());
  const std::string report = dir_ + "/report.json";
  auto start = std::chrono::steady_clock::now();
  int code = Replay({"--target", live.url(), "--target", dead, "--rate", "400", "--no-probe",
                     "--timeout", "2s", "--report-json", report});
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(code, 1) << child_->all_stderr();  // the dead target's errors fail the run
  EXPECT_EQ(live.requests().size(), static_cast<size_t>(kGets));
  EXPECT_LT(secs, 20);  // 200 requests at 400/s: the dead target adds no waiting
  auto rep = ReadJson(report);
  auto& targets = rep.at("targets").as_array();
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0].at("errors").as_int64(), 0);
  EXPECT_EQ(targets[1].at("errors").as_int64(), kGets);
  EXPECT_NE(json::serialize(targets[1]).find("connect"), std::string::npos);
}

TEST_F(ReplayCliTest, UnreachableTargetAtStartIsExitTwo) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(DeadPort());
  EXPECT_EQ(Replay({"--target", dead, "--max"}), 2);
  EXPECT_NE(child_->all_stderr().find("not reachable"), std::string::npos) << child_->all_stderr();
}

TEST_F(ReplayCliTest, UsageErrorsAreExitTwoWithAFix) {
  TestUpstream up;
  struct Case {
    std::vector<std::string> args;
    std::string want;
  } cases[] = {
      {{"--max"}, "--target"},
      {{"--target", up.url(), "--rate", "5", "--max"}, "only one of"},
      {{"--target", up.url(), "--rate", "fast"}, "FROM:TO:OVER"},
      {{"--target", "ftp://x"}, "--target"},
      {{"--target", up.url(), "--path-regex", "(["}, "--path-regex"},
      {{"--target", up.url(), "--fail-on", "loud"}, "--fail-on"},
      {{"--target", up.url(), "--rules", "/nonexistent/rules.json"}, "rules.json"},
      // Numbers a flag would otherwise quietly read as something else (--speed 0 as real
      // time, --concurrency 0 as a run that fails once started, --limit 0 as no limit, ...).
      {{"--target", up.url(), "--speed", "0"},
       "--speed: '0' is not a number above 0; 2 replays twice as fast"},
      {{"--target", up.url(), "--speed=-2"}, "--speed: '-2' is not a number above 0"},
      {{"--target", up.url(), "--speed", "nan"}, "--speed: 'nan' is not a number above 0"},
      {{"--target", up.url(), "--rate", "0"}, "--rate '0': not a positive rate"},
      {{"--target", up.url(), "--rate=-5"}, "--rate '-5': not a positive rate"},
      {{"--target", up.url(), "--concurrency", "0"},
       "--concurrency: '0' is not a number above 0; give at least 1"},
      {{"--target", up.url(), "--concurrency=-1"}, "--concurrency: '-1' is not a number above 0"},
      {{"--target", up.url(), "--percent", "101"}, "--percent must be between 0 and 100"},
      {{"--target", up.url(), "--percent=-1"}, "--percent must be between 0 and 100"},
      {{"--target", up.url(), "--duration=-1s"}, "--duration: '-1s' is not a duration"},
      {{"--target", up.url(), "--duration", "0"},
       "--duration '0' is not a positive duration (e.g. 10m); leave"},
      {{"--target", up.url(), "--limit", "0"},
       "--limit: '0' is not a number above 0; leave --limit out"},
      {{"--target", up.url(), "--max", "--max-gap", "2s"},
       "--max-gap caps the recorded gaps of --speed pacing"},
      {{"--target", up.url(), "--rate", "50", "--max-gap", "2s"}, "--max-gap"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Replay(c.args), 2) << c.want;
    EXPECT_NE(child_->all_stderr().find(c.want), std::string::npos) << child_->all_stderr();
  }
  EXPECT_EQ(Doppel({"replay", "--session", "nope", "--target", up.url()}), 2);
  EXPECT_NE(child_->all_stderr().find("no session named 'nope'"), std::string::npos);
  EXPECT_TRUE(up.requests().empty());
  // Refused before a run is stored, too.
  ASSERT_EQ(Doppel({"runs", "list"}), 0);
  EXPECT_EQ(child_->all_stdout().find("FAILED"), std::string::npos) << child_->all_stdout();
  // A valid --speed (with --max-gap) still replays.
  EXPECT_EQ(Replay({"--target", up.url(), "--no-diff", "--speed", "1000", "--max-gap", "1ms",
                    "--limit", "3"}),
            0)
      << child_->all_stderr();
  EXPECT_EQ(up.requests().size(), 3u);
}

// Issue #12: what the recording proxy refused (a connection that sent a lone "\n", a body over
// --max-request-body) never reached the primary. Replay skips and counts it, so an identical
// target passes; an upstream failure did go to the primary and is replayed, uncompared.
TEST_F(ReplayCliTest, WhatTheProxyRefusedIsNotReplayedNorLearnedFrom) {
  std::vector<v1::Envelope> envelopes;
  for (uint32_t i = 0; i < 6; ++i)
    envelopes.push_back(AnsweredGet(i, "/items/" + std::to_string(i % 3)));
  v1::Envelope lone_newline;  // as the proxy stores it: no method, no target
  lone_newline.set_arrival_us(2'000'000 + 6 * 1000);
  lone_newline.set_seq(6);
  lone_newline.set_client_addr("127.0.0.1:40001");
  lone_newline.set_scheme("http");
  lone_newline.set_error(v1::PROXY_ERROR_BAD_REQUEST);
  lone_newline.set_error_detail("bad method");
  envelopes.push_back(lone_newline);
  v1::Envelope too_large = AnsweredGet(7, "/upload");
  too_large.mutable_request()->set_method("PUT");
  too_large.mutable_request()->set_body("first bytes of a big upload");
  too_large.mutable_request()->set_body_truncated(true);
  too_large.clear_response();
  too_large.set_error(v1::PROXY_ERROR_BODY_TOO_LARGE);
  envelopes.push_back(too_large);
  v1::Envelope timed_out = AnsweredGet(8, "/slow-on-the-primary");
  timed_out.clear_response();
  timed_out.set_error(v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  envelopes.push_back(timed_out);
  MakeSession("mixed", envelopes);

  TestUpstream up;
  const std::string report = dir_ + "/report.json";
  ASSERT_EQ(Doppel({"replay", "--session", "mixed", "--target", up.url(), "--max",
                    "--allow-unsafe-methods", "--no-progress", "--report-json", report}),
            0)
      << child_->all_stderr() << child_->all_stdout();
  EXPECT_NE(child_->all_stderr().find("replaying 7 of 9 envelopes"), std::string::npos)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("doppel: 2 envelopes the proxy refused were not replayed"),
            std::string::npos)
      << child_->all_stderr();
  std::multiset<std::string> sent;
  for (const auto& r : up.requests()) sent.insert(r.method + " " + r.target);
  EXPECT_EQ(sent, (std::multiset<std::string>{"GET /items/0", "GET /items/0", "GET /items/1",
                                              "GET /items/1", "GET /items/2", "GET /items/2",
                                              "GET /slow-on-the-primary"}));
  EXPECT_EQ(ReadJson(report).at("targets").at(0).at("errors").as_int64(), 0);

  // `noise learn` leaves them out too, and says so.
  ASSERT_EQ(Doppel({"noise", "learn", "--session", "mixed", "--out", dir_ + "/learned.json"}), 0)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("refused by the proxy  2 envelopes (never reached the "
                                      "primary): not learned from"),
            std::string::npos)
      << child_->all_stdout();
}

// --shift-time: a session recorded on 2026-01-10 asks "since the day before" and "at the time
// of the request"; replayed today, the target is asked the same relative questions.
TEST_F(ReplayCliTest, ShiftTimeMovesRequestTimestampsByTheTimeSinceTheRecording) {
  constexpr uint64_t kRecorded = 1768039200ull * 1000000;  // 2026-01-10T10:00:00Z
  MakeSession("dated", {RecordedGet(0, "/orders?since=2026-01-09T10:00:00Z", kRecorded),
                        RecordedGet(1, "/orders?at=1768039200&id=1234567890", kRecorded)});
  TestUpstream up;
  const int64_t before_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  ASSERT_EQ(Doppel({"replay", "--session", "dated", "--target", up.url(), "--max", "--no-progress",
                    "--no-diff", "--shift-time"}),
            0)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("--shift-time: timestamps in requests move by the time "
                                      "since 2026-01-10T10:00:00Z"),
            std::string::npos)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("2 timestamps moved by --shift-time"), std::string::npos)
      << child_->all_stdout();
  std::map<std::string, std::string> got;  // parameter -> value sent
  for (const auto& r : up.requests()) {
    for (const char* name : {"since", "at"}) {
      if (auto v = net::FindQueryParam(r.target, name)) got[name] = *v;
    }
    if (r.target.find("at=") != std::string::npos) {
      EXPECT_NE(r.target.find("&id=1234567890"), std::string::npos) << "an id is not a time";
    }
  }
  ASSERT_EQ(got.size(), 2u);
  const auto since = ParseDateTime(got["since"]);
  ASSERT_TRUE(since.has_value()) << got["since"];
  constexpr int64_t kDayUs = 86400LL * 1000000, kSlackUs = 600LL * 1000000;
  EXPECT_NEAR(static_cast<double>(since->unix_us), static_cast<double>(before_us - kDayUs),
              kSlackUs)
      << got["since"] << ": one day before the replay, as it was one day before the recording";
  EXPECT_EQ(got["since"].size(), std::string("2026-01-09T10:00:00Z").size()) << got["since"];
  EXPECT_NEAR(std::stod(got["at"]) * 1e6, static_cast<double>(before_us), kSlackUs) << got["at"];

  // Without the flag the recorded values go out as they are; a header alone is refused.
  TestUpstream plain;
  ASSERT_EQ(Doppel({"replay", "--session", "dated", "--target", plain.url(), "--max",
                    "--no-progress", "--no-diff"}),
            0);
  std::set<std::string> sent;
  for (const auto& r : plain.requests()) sent.insert(r.target);
  EXPECT_EQ(sent, (std::set<std::string>{"/orders?since=2026-01-09T10:00:00Z",
                                         "/orders?at=1768039200&id=1234567890"}));
  EXPECT_EQ(Doppel({"replay", "--session", "dated", "--target", plain.url(), "--max",
                    "--shift-time-header", "X-Since"}),
            2);
  EXPECT_NE(child_->all_stderr().find("give --shift-time as well"), std::string::npos)
      << child_->all_stderr();
}

// --retries also covers the requests still in flight when the session runs out (they used to
// fail on their first connection failure). The target fails every other connection at the TLS
// handshake and answers one request per connection, so with one request in flight at a time
// each request's first attempt fails and its retry succeeds, the last one's included.
TEST_F(ReplayCliTest, RetriesCoverTheLastRequestsOfTheSession) {
  std::vector<v1::Envelope> envelopes;
  for (uint32_t i = 0; i < 10; ++i)
    envelopes.push_back(AnsweredGet(i, "/items/" + std::to_string(i)));
  MakeSession("ten", envelopes);
  auto replay = [&](TestTlsUpstream& target, const std::string& retries) {
    // --no-probe: the probe's connection would shift which connections fail.
    return Doppel({"replay", "--session", "ten", "--target", target.url(), "--target-insecure",
                   "--no-probe", "--rate", "1000", "--concurrency", "1", "--retries", retries,
                   "--no-diff", "--no-progress", "--report-json", dir_ + "/report.json"});
  };
  auto every_other = [](uint64_t connection) { return connection % 2 == 1; };

  TestTlsUpstream flaky;
  flaky.SetRefuse(every_other);
  ASSERT_EQ(replay(flaky, "1"), 0) << child_->all_stderr() << child_->all_stdout();
  EXPECT_EQ(ReadJson(dir_ + "/report.json").at("targets").at(0).at("errors").as_int64(), 0);
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back("/items/" + std::to_string(i));
  EXPECT_EQ(flaky.answered(), want);
  EXPECT_EQ(flaky.connections(), 20u);

  // Without retries the same target fails every other request: the failures are real.
  TestTlsUpstream flaky_again;
  flaky_again.SetRefuse(every_other);
  EXPECT_EQ(replay(flaky_again, "0"), 1) << child_->all_stderr();
  EXPECT_EQ(ReadJson(dir_ + "/report.json").at("targets").at(0).at("errors").as_int64(), 5);
  EXPECT_EQ(flaky_again.answered().size(), 5u);
}

TEST_F(ReplayCliTest, RunIsPersistedAndReRendered) {
  TestUpstream up;
  const std::string junit = dir_ + "/junit.xml", json_path = dir_ + "/again.json";
  int code = Replay({"--target", up.url(), "--max"});
  ASSERT_NE(code, 2) << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("run 1 saved"), std::string::npos) << child_->all_stdout();
  ASSERT_EQ(Doppel({"runs", "list"}), 0);
  EXPECT_NE(child_->all_stdout().find("COMPLETED"), std::string::npos) << child_->all_stdout();
  EXPECT_EQ(Doppel({"report", "--run", "1", "--junit", junit, "--report-json", json_path}), code);
  EXPECT_TRUE(std::filesystem::file_size(junit) > 0);
  EXPECT_EQ(ReadJson(json_path).at("run_id").as_string(), "1");
  EXPECT_EQ(Doppel({"report", "--run", "99"}), 2);
  EXPECT_NE(child_->all_stderr().find("no run 99"), std::string::npos);
}

TEST_F(ReplayCliTest, SigintSavesAPartialRunMarkedInterrupted) {
  TestUpstream up;
  ChildProcess replay({DoppelBinary(), "--store", store_, "replay", "--session", "s", "--target",
                       up.url(), "--rate", "40", "--no-diff", "--no-progress"});
  // Interrupt once the replay is well under way (polled, bounded; no fixed sleep).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (up.requests().size() <= 10 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  replay.Signal(SIGINT);
  int code = replay.Wait(20000);
  EXPECT_TRUE(code == 0 || code == 1) << code << replay.all_stderr();
  EXPECT_NE(replay.all_stderr().find("interrupted"), std::string::npos) << replay.all_stderr();
  size_t got = up.requests().size();
  EXPECT_GT(got, 10u);
  EXPECT_LT(got, static_cast<size_t>(kGets));
  ASSERT_EQ(Doppel({"runs", "list"}), 0);
  EXPECT_NE(child_->all_stdout().find("INTERRUPTED"), std::string::npos) << child_->all_stdout();
}

// --limit N stops after N requests; with --loop it goes past the end of the session.
TEST_F(ReplayCliTest, LimitStopsAfterThatManyRequests) {
  {
    TestUpstream up;
    const std::string report = dir_ + "/limit.json";
    ASSERT_EQ(Replay({"--target", up.url(), "--max", "--no-diff", "--limit", "50", "--report-json",
                      report}),
              0)
        << child_->all_stderr();
    EXPECT_EQ(up.requests().size(), 50u);
    EXPECT_NE(child_->all_stderr().find("replaying 50 of 220 envelopes"), std::string::npos)
        << child_->all_stderr();
    EXPECT_EQ(ReadJson(report).at("targets").as_array().at(0).at("requests").as_int64(), 50);
  }
  {
    TestUpstream up;
    ASSERT_EQ(Replay({"--target", up.url(), "--max", "--no-diff", "--loop", "--limit", "450"}), 0)
        << child_->all_stderr();
    auto reqs = up.requests();
    EXPECT_EQ(reqs.size(), 450u);  // 200 GETs, twice, then 50 more
    std::map<std::string, int> times;
    for (const auto& r : reqs) ++times[r.target];
    EXPECT_EQ(times["/items/0"], 3);
    EXPECT_EQ(times["/items/199"], 2);
  }
}

// An answer like the recorded ones (status 200, no headers, no body), or with `status`.
net::HttpResponse Answer(boost::beast::http::status status = boost::beast::http::status::ok,
                         std::string body = "") {
  net::HttpResponse res{status, 11};
  res.body() = std::move(body);
  return res;
}

// The number N of a request for /items/N, -1 for other targets.
int ItemNumber(const ReceivedRequest& r) {
  return r.target.rfind("/items/", 0) == 0 ? std::stoi(r.target.substr(7)) : -1;
}

// A target that answers 500 to every tenth GET, as recorded otherwise: a 10 % status mismatch
// rate on GET /items/{id}. --fail-threshold 15 and 10 tolerate it (exit 0, verdict
// "tolerated": failing takes a rate above the threshold); 5 and the default 0 do not (exit 1,
// "regression").
TEST_F(ReplayCliTest, FailThresholdToleratesAMismatchRateUpToIt) {
  TestUpstream up;
  up.SetHandler([](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    if (ItemNumber(r) % 10 == 0) return Answer(boost::beast::http::status::internal_server_error);
    return Answer();
  });
  auto status_verdict = [&](const std::string& report) {
    const json::object rep = ReadJson(report);
    for (const auto& e : rep.at("targets").as_array().at(0).at("endpoints").as_array()) {
      if (e.at("name").as_string() != "GET /items/{id}") continue;
      EXPECT_EQ(e.at("mismatched").as_int64(), 20);
      for (const auto& f : e.at("fields").as_array())
        if (f.at("path").as_string() == "status") return std::string(f.at("verdict").as_string());
    }
    return std::string("(no status field)");
  };
  struct Case {
    std::string threshold;
    int exit_code;
    std::string verdict;
  } cases[] = {{"15", 0, "tolerated"},
               {"10", 0, "tolerated"},
               {"5", 1, "regression"},
               {"", 1, "regression"}};
  for (const Case& c : cases) {
    SCOPED_TRACE("--fail-threshold " + (c.threshold.empty() ? "(default)" : c.threshold));
    const std::string report = dir_ + "/threshold" + c.threshold + ".json";
    std::vector<std::string> args = {"--target", up.url(), "--max", "--report-json", report};
    if (!c.threshold.empty()) args.insert(args.end(), {"--fail-threshold", c.threshold});
    EXPECT_EQ(Replay(args), c.exit_code) << child_->all_stderr() << child_->all_stdout();
    EXPECT_EQ(status_verdict(report), c.verdict);
  }
}

// The text of an HTML fragment: tags dropped, the entities HtmlEscape writes decoded.
std::string HtmlText(const std::string& html) {
  std::string text;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<') {
      in_tag = true;
    } else if (c == '>') {
      in_tag = false;
    } else if (!in_tag) {
      text += c;
    }
  }
  std::string out;
  for (size_t i = 0; i < text.size();) {
    bool replaced = false;
    for (auto [entity, ch] : {std::pair<const char*, char>{"&lt;", '<'},
                              {"&gt;", '>'},
                              {"&quot;", '"'},
                              {"&#39;", '\''},
                              {"&amp;", '&'}}) {
      const std::string e = entity;
      if (text.compare(i, e.size(), e) == 0) {
        out += ch;
        i += e.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

// The endpoint sections of an HTML report (<section class="endpoint ...">, named by the
// first <code> of their <h3>): name -> whether the section is marked failed, and its text.
struct HtmlEndpoint {
  bool failed = false;
  std::string text;
};
std::map<std::string, HtmlEndpoint> HtmlEndpoints(const std::string& html) {
  std::map<std::string, HtmlEndpoint> out;
  const std::string open = "<section class=\"";
  for (size_t at = html.find(open); at != std::string::npos; at = html.find(open, at + 1)) {
    const size_t cls_begin = at + open.size();
    std::istringstream cls(html.substr(cls_begin, html.find('"', cls_begin) - cls_begin));
    std::set<std::string> classes{std::istream_iterator<std::string>(cls), {}};
    if (!classes.count("endpoint")) continue;
    const std::string section = html.substr(at, html.find("</section>", at) - at);
    const size_t h3 = section.find("<h3>");
    const size_t code = section.find("<code>", h3);
    if (h3 == std::string::npos || code == std::string::npos) continue;
    const size_t name_begin = code + 6;
    const std::string name =
        HtmlText(section.substr(name_begin, section.find("</code>", name_begin) - name_begin));
    out[name] = {classes.count("failed") > 0, HtmlText(section)};
  }
  return out;
}

// --html: every endpoint that fails in the run (per the JSON report of the same run) has a
// section marked failed in the page, naming its regressing fields; `doppel report --html`
// renders the same page again.
TEST_F(ReplayCliTest, HtmlReportShowsEveryRegressingEndpoint) {
  TestUpstream up;
  up.SetHandler([](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    if (r.target == "/orders") return Answer(boost::beast::http::status::not_found, "gone");
    if (ItemNumber(r) % 4 == 0)
      return Answer(boost::beast::http::status::bad_gateway, "<upstream & \"down\">");
    return Answer();
  });
  const std::string html_path = dir_ + "/report.html", json_path = dir_ + "/report.json";
  ASSERT_EQ(Replay({"--target", up.url(), "--max", "--allow-unsafe-methods", "--min-samples", "10",
                    "--html", html_path, "--report-json", json_path}),
            1)
      << child_->all_stderr();

  // Failing endpoints and their regressing fields, from the JSON report.
  std::map<std::string, std::vector<std::string>> failing;
  const json::object rep = ReadJson(json_path);
  for (const auto& e : rep.at("targets").as_array().at(0).at("endpoints").as_array()) {
    if (!e.at("failed").as_bool()) continue;
    auto& fields = failing[std::string(e.at("name").as_string())];
    for (const auto& f : e.at("fields").as_array())
      if (f.at("verdict").as_string() == "regression")
        fields.emplace_back(f.at("path").as_string());
  }
  ASSERT_EQ(failing.size(), 2u);
  ASSERT_TRUE(failing.count("GET /items/{id}") && failing.count("POST /orders"));

  std::ifstream f(html_path);
  const std::string html((std::istreambuf_iterator<char>(f)), {});
  ASSERT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u) << html.substr(0, 200);
  ASSERT_NE(html.find("</html>"), std::string::npos) << "the page is cut off";
  const auto sections = HtmlEndpoints(html);
  for (const auto& [name, fields] : failing) {
    SCOPED_TRACE(name);
    auto it = sections.find(name);
    ASSERT_NE(it, sections.end()) << "no section for the endpoint in the HTML report";
    EXPECT_TRUE(it->second.failed);
    EXPECT_NE(it->second.text.find("FAIL"), std::string::npos) << it->second.text;
    ASSERT_FALSE(fields.empty());
    for (const std::string& field : fields)
      EXPECT_NE(it->second.text.find(field), std::string::npos) << field << "\n" << it->second.text;
  }
  for (const auto& [name, section] : sections)
    EXPECT_EQ(section.failed, failing.count(name) > 0) << name;

  const std::string again = dir_ + "/again.html";
  EXPECT_EQ(Doppel({"report", "--run", "1", "--html", again}), 1) << child_->all_stderr();
  std::ifstream g(again);
  const std::string html_again((std::istreambuf_iterator<char>(g)), {});
  std::set<std::string> names, names_again;
  for (const auto& [name, s] : HtmlEndpoints(html)) names.insert(name);
  for (const auto& [name, s] : HtmlEndpoints(html_again)) names_again.insert(name);
  EXPECT_EQ(names, names_again);
}

// Report files quote recorded traffic: --report-json, --junit and --html (of `replay` and of
// `report`) are created owner-only whatever the umask, and replace an existing file by a
// rename rather than writing through it (a hard link to the old file keeps the old text).
TEST_F(ReplayCliTest, ReportFilesAreOwnerOnlyAndReplacedWhole) {
  const mode_t old_umask = ::umask(022);
  TestUpstream up;
  up.SetHandler(
      [](const ReceivedRequest&) -> std::optional<net::HttpResponse> { return Answer(); });
  const std::vector<std::string> flags = {"--report-json", "--junit", "--html"};
  auto check = [&](const std::string& command, const std::vector<std::string>& paths) {
    for (const std::string& path : paths) {
      SCOPED_TRACE(command + " " + path);
      struct stat st {};
      ASSERT_EQ(::stat(path.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0600u);
      EXPECT_GT(st.st_size, 100);
      EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
      std::ifstream old(path + ".link");
      EXPECT_EQ(std::string((std::istreambuf_iterator<char>(old)), {}), "old report\n");
    }
  };
  auto prepare = [&](const std::string& prefix) {
    std::vector<std::string> args, paths;
    for (size_t i = 0; i < flags.size(); ++i) {
      const std::string path = dir_ + "/" + prefix + std::to_string(i);
      std::ofstream(path) << "old report\n";
      std::filesystem::permissions(path, std::filesystem::perms(0644));
      std::filesystem::create_hard_link(path, path + ".link");
      args.insert(args.end(), {flags[i], path});
      paths.push_back(path);
    }
    return std::make_pair(args, paths);
  };
  auto [replay_args, replay_paths] = prepare("replay");
  replay_args.insert(replay_args.begin(), {"--target", up.url(), "--max"});
  EXPECT_EQ(Replay(replay_args), 0) << child_->all_stderr();
  check("replay", replay_paths);

  auto [report_args, report_paths] = prepare("report");
  report_args.insert(report_args.begin(), {"report", "--run", "1"});
  EXPECT_EQ(Doppel(report_args), 0) << child_->all_stderr();
  check("report", report_paths);
  ::umask(old_umask);
}

// `doppel noise learn` on a session that asked each of 10 quotes 6 times: "nonce" differs
// between the answers to the same request, "price" does not. The rules file it writes names
// the nonce only, and a replay with it passes against a build whose nonces are new, where a
// replay without it fails.
// `doppel replay --fault` (docs/chaos.md, "Replay"): faults on the requests sent to the targets,
// counted apart from the target's own failures.
class ReplayFaultTest : public ReplayCliTest {
 protected:
  // Session `name`: `n` GETs of /items/0 .. /items/N-1, recorded with TestUpstream's answer.
  void MakeItems(const std::string& name, uint32_t n) {
    std::vector<v1::Envelope> envelopes;
    for (uint32_t i = 0; i < n; ++i)
      envelopes.push_back(AnsweredGet(i, "/items/" + std::to_string(i)));
    MakeSession(name, envelopes);
  }
  // The stored per-request results of run `run_id`: the recorded seq -> the result.
  std::map<uint32_t, v1::RunResult> StoredResults(uint32_t run_id) {
    std::unique_ptr<storage::Store> store;
    storage::StoreOptions o;
    o.read_only = true;
    EXPECT_TRUE(storage::Store::Open(o, store_, &store).ok());
    std::map<uint32_t, v1::RunResult> out;
    if (!store) return out;
    auto it = store->ScanRunResults(run_id);
    EXPECT_TRUE(it.ok());
    if (!it.ok()) return out;
    for (; (*it)->Valid(); (*it)->Next()) out[(*it)->result().seq()] = (*it)->result();
    return out;
  }
  static int64_t Count(const json::value& object, const char* key, const char* name) {
    const json::object& o = object.as_object();
    if (!o.contains(key) || !o.at(key).as_object().contains(name)) return 0;
    return o.at(key).at(name).as_int64();
  }
};

// abort:503:50%+delay:50ms:20% with a fixed seed against a target that otherwise matches: the
// aborted requests never reach it, the report counts them (and the delays) apart from errors,
// the exit code stays 0, and the same seed faults the same requests again.
TEST_F(ReplayFaultTest, AbortedRequestsNeverReachTheTargetAndAreCountedApart) {
  constexpr uint32_t kRequests = 100;
  MakeItems("items", kRequests);
  auto replay = [&](TestUpstream& up, const std::string& report) {
    return Doppel({"replay", "--session", "items", "--target", up.url(), "--max", "--concurrency",
                   "4", "--fault", "abort:503:50%+delay:50ms:20%", "--fault-seed", "7",
                   "--no-progress", "--report-json", report, "--junit", dir_ + "/junit.xml",
                   "--html", dir_ + "/report.html"});
  };
  TestUpstream up;
  ASSERT_EQ(replay(up, dir_ + "/report.json"), 0) << child_->all_stderr() << child_->all_stdout();
  EXPECT_NE(child_->all_stderr().find("WARNING: injecting faults into the requests sent to the "
                                      "targets (abort:503:50%+delay:50ms:20%)"),
            std::string::npos)
      << child_->all_stderr();

  const json::object rep = ReadJson(dir_ + "/report.json");
  const json::value& target = rep.at("targets").at(0);
  ASSERT_TRUE(target.as_object().contains("faults")) << json::serialize(target);
  const json::value& faults = target.at("faults");
  const int64_t aborted = Count(faults, "by_kind", "abort");
  const int64_t delayed = Count(faults, "by_kind", "delay");
  const int64_t injected = faults.at("injected").as_int64();
  // About half aborted, a fifth delayed (wide bounds: 100 draws).
  EXPECT_GT(aborted, 25);
  EXPECT_LT(aborted, 75);
  EXPECT_GT(delayed, 5);
  EXPECT_LT(delayed, 40);
  EXPECT_GE(injected, std::max(aborted, delayed));
  EXPECT_LE(injected, aborted + delayed);
  EXPECT_EQ(faults.at("errors").as_int64(), aborted);
  EXPECT_EQ(Count(faults, "errors_by_reason", "abort"), aborted);
  EXPECT_EQ(faults.at("answered").as_int64(), injected - aborted);
  EXPECT_EQ(faults.at("mismatched").as_int64(), 0);
  // Organic: no errors, every unfaulted request compared and matched.
  EXPECT_EQ(target.at("errors").as_int64(), 0);
  EXPECT_EQ(target.at("requests").as_int64(), kRequests);
  EXPECT_EQ(target.at("compared").as_int64(), kRequests - injected);
  EXPECT_EQ(target.at("matched").as_int64(), kRequests - injected);
  EXPECT_EQ(rep.at("verdict").at("exit_code").as_int64(), 0);

  // The target saw every request but the aborted ones, each once.
  const std::vector<ReceivedRequest> seen = up.requests();
  EXPECT_EQ(static_cast<int64_t>(seen.size()), kRequests - aborted);
  std::set<std::string> reached;
  for (const ReceivedRequest& r : seen) reached.insert(r.target);
  EXPECT_EQ(reached.size(), seen.size());
  // The stored results mark each faulted request with its kinds; aborted ones never arrived.
  const std::map<uint32_t, v1::RunResult> results = StoredResults(1);
  ASSERT_EQ(results.size(), kRequests);
  int64_t marked_aborts = 0, marked = 0;
  for (const auto& [seq, r] : results) {
    const bool abort = r.fault().find("abort") != std::string::npos;
    marked += !r.fault().empty();
    marked_aborts += abort;
    EXPECT_EQ(reached.count("/items/" + std::to_string(seq)), abort ? 0u : 1u) << seq;
    if (abort) {
      EXPECT_EQ(r.verdict(), v1::RunResult::VERDICT_ERROR);
      EXPECT_NE(r.error().find("fault injected: abort 503"), std::string::npos) << r.error();
    } else {
      EXPECT_EQ(r.verdict(), v1::RunResult::VERDICT_MATCH) << seq << " " << r.error();
    }
  }
  EXPECT_EQ(marked_aborts, aborted);
  EXPECT_EQ(marked, injected);

  // Every rendering shows the split.
  const std::string out = child_->all_stdout();
  EXPECT_NE(out.find("faults injected: delay " + std::to_string(delayed) + ", abort " +
                     std::to_string(aborted)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("faults injected (replay --fault: not errors, never regressions)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("no regressions"), std::string::npos) << out;
  for (const char* file : {"/junit.xml", "/report.html"}) {
    std::ifstream in(dir_ + file);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find(std::to_string(injected) + " injected (abort " + std::to_string(aborted)),
              std::string::npos)
        << file;
  }

  // The same seed faults the same requests.
  TestUpstream again;
  ASSERT_EQ(replay(again, dir_ + "/again.json"), 0) << child_->all_stderr();
  std::set<std::string> reached_again;
  for (const ReceivedRequest& r : again.requests()) reached_again.insert(r.target);
  EXPECT_EQ(reached_again, reached);
}

// reset: the request is written, then the connection is reset before the answer. The target
// saw each request on a connection of its own; the report counts resets apart from errors.
TEST_F(ReplayFaultTest, ResetRequestsAreSentThenCutAndCountedApart) {
  constexpr uint32_t kRequests = 40;
  MakeItems("items", kRequests);
  TestUpstream up;
  const std::string report = dir_ + "/report.json";
  ASSERT_EQ(Doppel({"replay", "--session", "items", "--target", up.url(), "--max", "--concurrency",
                    "2", "--fault", "reset:30%", "--fault-seed", "3", "--no-progress",
                    "--report-json", report}),
            0)
      << child_->all_stderr() << child_->all_stdout();
  const json::object rep = ReadJson(report);
  const json::value& target = rep.at("targets").at(0);
  const json::value& faults = target.at("faults");
  const int64_t resets = Count(faults, "by_kind", "reset");
  EXPECT_GT(resets, 2);
  EXPECT_LT(resets, 25);
  EXPECT_EQ(faults.at("errors").as_int64(), resets);
  EXPECT_EQ(Count(faults, "errors_by_reason", "reset"), resets);
  EXPECT_EQ(target.at("errors").as_int64(), 0);
  EXPECT_EQ(target.at("matched").as_int64(), kRequests - resets);
  // Each reset request had a connection of its own (plus the probe's and the pooled ones).
  EXPECT_GE(static_cast<int64_t>(up.connections()), resets + 1);
  // The unfaulted requests all arrived; a reset one arrives unless the reset beat it.
  const std::map<uint32_t, v1::RunResult> results = StoredResults(1);
  std::set<std::string> reached;
  for (const ReceivedRequest& r : up.requests()) reached.insert(r.target);
  int64_t marked = 0;
  for (const auto& [seq, r] : results) {
    if (r.fault() == "reset") {
      ++marked;
      EXPECT_NE(r.error().find("fault injected: reset"), std::string::npos) << r.error();
    } else {
      EXPECT_EQ(reached.count("/items/" + std::to_string(seq)), 1u) << seq;
    }
  }
  EXPECT_EQ(marked, resets);
}

// A target that timestamps the request body as it arrives: the slow client's body comes in
// many small pieces over seconds. Answers 200 with no body and closes.
class SlowBodyTarget {
 public:
  SlowBodyTarget() {
    fd_ = ListenOnLoopback(8, &port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~SlowBodyTarget() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  struct Body {
    std::string bytes;
    size_t reads = 0;                            // recv() calls that returned body bytes
    std::chrono::steady_clock::duration span{};  // first body byte to last
  };
  std::vector<Body> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  void Serve() {
    while (!stop_) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string head;
      Body body;
      char buf[4096];
      size_t want = std::string::npos;
      std::chrono::steady_clock::time_point first;
      for (;;) {
        const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        const auto now = std::chrono::steady_clock::now();
        if (want == std::string::npos) {
          head.append(buf, static_cast<size_t>(n));
          const size_t end = head.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          const size_t cl = head.find("Content-Length: ");
          want = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
          body.bytes = head.substr(end + 4);
          if (!body.bytes.empty()) {
            first = now;
            ++body.reads;
          }
        } else {
          if (body.bytes.empty()) first = now;
          body.bytes.append(buf, static_cast<size_t>(n));
          ++body.reads;
        }
        body.span = now - first;
        if (body.bytes.size() >= want) {
          const std::string answer =
              "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          SendAll(c, answer);
          std::lock_guard<std::mutex> lock(mu_);
          bodies_.push_back(body);
          break;
        }
      }
      ::close(c);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Body> bodies_;
  std::thread thread_;
};

// bandwidth: the request (head and body) goes out at the given rate; the target sees the body
// arrive slowly, in many pieces, whole.
TEST_F(ReplayFaultTest, BandwidthSendsASlowBodyTheTargetSeesWhole) {
  v1::Envelope post = AnsweredGet(0, "/upload");
  post.mutable_request()->set_method("POST");
  post.mutable_request()->set_body(std::string(2000, 'u'));
  MakeSession("upload", {post});
  SlowBodyTarget target;
  const std::string report = dir_ + "/report.json";
  ASSERT_EQ(Doppel({"replay", "--session", "upload", "--target", target.url(), "--max",
                    "--allow-unsafe-methods", "--fault", "bandwidth:1KiB:100%", "--no-progress",
                    "--report-json", report}),
            0)
      << child_->all_stderr() << child_->all_stdout();
  const std::vector<SlowBodyTarget::Body> bodies = target.bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0].bytes, std::string(2000, 'u'));
  // 1 KiB/s in tenth-of-a-second slices: ~20 pieces over ~2 s (bounds: throttling is never
  // faster; a loaded machine only merges pieces).
  EXPECT_GE(bodies[0].span, std::chrono::milliseconds(1200));
  EXPECT_GE(bodies[0].reads, 5u);
  const json::object rep = ReadJson(report);
  const json::value& t = rep.at("targets").at(0);
  EXPECT_EQ(Count(t.at("faults"), "by_kind", "bandwidth"), 1);
  EXPECT_EQ(t.at("faults").at("answered").as_int64(), 1);
  EXPECT_EQ(t.at("errors").as_int64(), 0);
}

// Specs the replay cannot use are refused at start (exit 2), naming what is wrong.
TEST_F(ReplayFaultTest, BadSpecsAreExitTwoWithTheReason) {
  TestUpstream up;
  struct Case {
    std::vector<std::string> args;
    std::string want;
  } cases[] = {
      {{"--fault", "delay:50ms"}, "--fault: fault 'delay:50ms'"},
      {{"--fault", "explode:5%"}, "explode"},
      {{"--fault", "abort:503:5%+abort:500:5%"}, "names abort twice"},
      {{"--fault", "reset:5%", "--target", "h2c://127.0.0.1:" + std::to_string(up.port())},
       "--fault reset: reset, truncate and bandwidth shape the HTTP/1.x bytes"},
      {{"--fault", "truncate:5%", "--target", "h2://127.0.0.1:" + std::to_string(up.port())},
       "is HTTP/2; use delay and abort with HTTP/2 targets"},
      {{"--fault-seed", "3"}, "go with --fault SPEC"},
      {{"--fault", "abort:503:5%", "--fault-rule", "api"}, "replay has no named rules"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--target", up.url(), "--max"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    EXPECT_EQ(Replay(args), 2) << c.want;
    EXPECT_NE(child_->all_stderr().find(c.want), std::string::npos) << c.want << "\n"
                                                                    << child_->all_stderr();
  }
  EXPECT_TRUE(up.requests().empty());
}

class NoiseCliTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < 60; ++i) {
      const int k = i % 10;
      v1::Envelope e = RecordedGet(i, "/quote/" + std::to_string(k), 1'000'000);
      e.set_scheme("http");
      auto* res = e.mutable_response();
      auto* h = res->add_headers();
      h->set_name("Content-Type");
      h->set_value("application/json");
      res->set_body(Quote(k, "n" + std::to_string(i * 7919 % 1000)));
      res->set_body_size(res->body().size());
      batch.push_back(e);
    }
    Status written = storage::testing::WriteSession(store_, "quotes", batch);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }

  static std::string Quote(int k, const std::string& nonce) {
    return "{\"id\":" + std::to_string(k) + ",\"price\":" + std::to_string(10 * k) +
           ",\"nonce\":\"" + nonce + "\"}";
  }
  int Doppel(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd);
    return child_->Wait(60000);
  }

  std::unique_ptr<ChildProcess> child_;
};

TEST_F(NoiseCliTest, LearnedRulesIgnoreTheFieldThatVariedAndOnlyIt) {
  const std::string rules = dir_ + "/learned.json";
  ASSERT_EQ(Doppel({"noise", "learn", "--session", "quotes", "--out", rules}), 0)
      << child_->all_stderr();
  const std::string out = child_->all_stdout();
  EXPECT_NE(out.find("envelopes read        60"), std::string::npos) << out;
  EXPECT_NE(out.find("distinct requests     10"), std::string::npos) << out;
  EXPECT_NE(out.find("pairs compared        50"), std::string::npos) << out;
  EXPECT_NE(out.find("wrote " + rules), std::string::npos) << out;

  std::ifstream f(rules);
  json::parse_options with_comments;  // the file explains itself in // comments
  with_comments.allow_comments = true;
  const auto learned =
      json::parse(std::string((std::istreambuf_iterator<char>(f)), {}), {}, with_comments);
  std::set<std::string> paths;
  for (const auto& r : learned.at("rules").as_array()) {
    paths.insert(std::string(r.at("path").as_string()));
    EXPECT_EQ(r.at("endpoint").as_string(), "GET /quote/{id}") << json::serialize(r);
    EXPECT_EQ(r.at("action").as_string(), "ignore") << json::serialize(r);
  }
  EXPECT_EQ(paths, std::set<std::string>{"body.nonce"}) << json::serialize(learned);

  // A build that answers the same prices with fresh nonces.
  TestUpstream candidate;
  candidate.SetHandler([](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    net::HttpResponse res{boost::beast::http::status::ok, 11};
    res.set(boost::beast::http::field::content_type, "application/json");
    res.body() = Quote(std::stoi(r.target.substr(7)), "fresh");
    return res;
  });
  const std::vector<std::string> replay = {"replay",        "--session",     "quotes",
                                           "--target",      candidate.url(), "--max",
                                           "--no-progress", "--min-samples", "10"};
  EXPECT_EQ(Doppel(replay), 1) << "without the rules the nonce is a regression\n"
                               << child_->all_stdout();
  std::vector<std::string> with_rules = replay;
  with_rules.insert(with_rules.end(), {"--rules", rules});
  EXPECT_EQ(Doppel(with_rules), 0) << child_->all_stdout() << child_->all_stderr();

  // The nonce differed in all 50 pairs: --min-pairs 51 learns nothing.
  ASSERT_EQ(Doppel({"noise", "learn", "--session", "quotes", "--out", dir_ + "/none.json",
                    "--min-pairs", "51"}),
            0)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("fields learned        0 (varied in >= 51 pairs; 1 below"),
            std::string::npos)
      << child_->all_stdout();
}

}  // namespace
}  // namespace doppel::testing
