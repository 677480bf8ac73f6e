// The doppel binary in replay mode against real upstreams on loopback.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "storage/store.h"
#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

class ReplayCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_ = dir_ + "/store";
    Status s = storage::testing::WriteReplaySession(store_, "s", kGets, kPosts);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `doppel --store STORE replay --session s ARGS...`, returns the exit code.
  int Replay(std::vector<std::string> args, ChildProcess** keep = nullptr) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_, "replay", "--session", "s",
                                    "--no-progress"};
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
  std::string dir_, store_;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(ReplayCliTest, EverySelectedEnvelopeOncePerTargetWithRewrites) {
  TestUpstream a, b;
  int code = Replay({"--target", a.url(), "--target", b.url(), "--max", "--concurrency", "8",
                     "--no-diff", "--set-header", "X-Replay=1", "--rewrite-path",
                     "^/items/=/v2/items/"});
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
    EXPECT_EQ(Replay({"--target", up.url(), "--max", "--no-diff", "--percent", "30", "--seed",
                      seed}),
              0)
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
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Replay(c.args), 2) << c.want;
    EXPECT_NE(child_->all_stderr().find(c.want), std::string::npos) << child_->all_stderr();
  }
  EXPECT_EQ(Doppel({"replay", "--session", "nope", "--target", up.url()}), 2);
  EXPECT_NE(child_->all_stderr().find("no session named 'nope'"), std::string::npos);
  EXPECT_TRUE(up.requests().empty());
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

}  // namespace
}  // namespace doppel::testing
