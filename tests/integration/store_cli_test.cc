// The store commands that remove recorded traffic, with the real doppel binary: `sessions rm`,
// `sessions retain` and `runs rm`. A replay run quotes what it replayed (its per-request
// results and its report's body excerpts), so removing a session's traffic removes its runs.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "storage/store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

uint64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class StoreCliTest : public StoreDirTest {
 protected:
  // Writes a closed session of GET envelopes, one per (arrival_us, target).
  void WriteGets(const std::string& name,
                 const std::vector<std::pair<uint64_t, std::string>>& requests) {
    std::vector<v1::Envelope> batch;
    for (const auto& [arrival, target] : requests) {
      v1::Envelope e;
      e.set_arrival_us(arrival);
      e.set_seq(static_cast<uint32_t>(batch.size()));
      e.mutable_request()->set_method("GET");
      e.mutable_request()->set_target(target);
      e.mutable_request()->set_version(11);
      e.mutable_response()->set_status(200);
      e.mutable_response()->set_body("recorded body of " + target);
      batch.push_back(e);
    }
    Status written = storage::testing::WriteSession(store_, name, batch);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }
  // `doppel --store STORE ARGS...`; the exit code.
  int Doppel(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd);
    return child_->Wait(60000);
  }
  // Replays `session` to `up` (diffing on: the run's report quotes bodies); the new run's id.
  uint32_t ReplayRun(const std::string& session, const TestUpstream& up,
                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay", "--session", session,        "--target",
                                     up.url(), "--max",     "--no-progress"};
    args.insert(args.end(), extra.begin(), extra.end());
    const int code = Doppel(args);
    EXPECT_TRUE(code == 0 || code == 1) << child_->all_stderr();
    const std::string out = child_->all_stdout();
    std::smatch m;
    EXPECT_TRUE(std::regex_search(out, m, std::regex("\\brun ([0-9]+) saved"))) << out;
    return m.empty() ? 0 : static_cast<uint32_t>(std::stoul(m[1]));
  }
  // The run ids `doppel runs list` prints.
  std::set<uint32_t> ListedRuns() {
    EXPECT_EQ(Doppel({"runs", "list"}), 0) << child_->all_stderr();
    std::set<uint32_t> ids;
    std::istringstream lines(child_->all_stdout());
    for (std::string line; std::getline(lines, line);)
      if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))
        ids.insert(static_cast<uint32_t>(std::atoi(line.c_str())));
    return ids;
  }
  // Per-request results stored for a run (read with the storage API).
  uint64_t StoredResults(uint32_t run_id) {
    std::unique_ptr<storage::Store> s;
    storage::StoreOptions o;
    o.read_only = true;
    EXPECT_TRUE(storage::Store::Open(o, store_, &s).ok());
    auto it = s->ScanRunResults(run_id);
    uint64_t n = 0;
    for (; (*it)->Valid(); (*it)->Next()) ++n;
    return n;
  }

  std::unique_ptr<ChildProcess> child_;
};

TEST_F(StoreCliTest, SessionsRmRemovesTheSessionsRuns) {
  WriteGets("s", {{1'000'000, "/a/1"}, {1'001'000, "/a/2"}, {1'002'000, "/b"}});
  WriteGets("t", {{1'000'000, "/c"}});
  TestUpstream up;
  const uint32_t s1 = ReplayRun("s", up), s2 = ReplayRun("s", up), t1 = ReplayRun("t", up);
  ASSERT_EQ(ListedRuns(), (std::set<uint32_t>{s1, s2, t1}));
  ASSERT_EQ(StoredResults(s1), 3u);

  ASSERT_EQ(Doppel({"sessions", "rm", "s"}), 0) << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("removed session 's' (3 envelopes) and its 2 runs"),
            std::string::npos)
      << child_->all_stdout();
  EXPECT_EQ(ListedRuns(), std::set<uint32_t>{t1});
  EXPECT_EQ(StoredResults(s1), 0u);
  EXPECT_EQ(StoredResults(s2), 0u);
  EXPECT_EQ(StoredResults(t1), 1u);
  EXPECT_EQ(Doppel({"report", "--run", std::to_string(s1)}), 2);
  EXPECT_NE(child_->all_stderr().find("no run " + std::to_string(s1)), std::string::npos);
  ASSERT_EQ(Doppel({"sessions", "list"}), 0);
  EXPECT_EQ(child_->all_stdout().find("\ns "), std::string::npos) << child_->all_stdout();

  ASSERT_EQ(Doppel({"sessions", "rm", "t"}), 0) << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("and its 1 run\n"), std::string::npos)
      << child_->all_stdout();
  EXPECT_TRUE(ListedRuns().empty());

  EXPECT_EQ(Doppel({"sessions", "rm", "nope"}), 2);
  EXPECT_NE(child_->all_stderr().find("no session named 'nope'"), std::string::npos)
      << child_->all_stderr();
}

// Envelopes recorded two days ago and just now: retaining a day keeps the new ones, and of
// the runs, the one that replayed only new envelopes.
TEST_F(StoreCliTest, SessionsRetainRemovesTheRunsThatReplayedWhatItDeletes) {
  const uint64_t now = NowUs(), two_days_ago = now - 2 * 86'400'000'000ull;
  WriteGets("s", {{two_days_ago, "/old/1"},
                  {two_days_ago + 1000, "/old/2"},
                  {now - 2000, "/new/1"},
                  {now - 1000, "/new/2"}});
  TestUpstream up;
  const uint32_t everything = ReplayRun("s", up);
  const uint32_t only_new = ReplayRun("s", up, {"--path-regex", "^/new/"});
  ASSERT_EQ(StoredResults(only_new), 2u);

  ASSERT_EQ(Doppel({"sessions", "retain", "s", "--older-than", "1d"}), 0) << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("deleted 2 envelopes older than"), std::string::npos)
      << child_->all_stdout();
  EXPECT_NE(child_->all_stdout().find("and 1 run that replayed envelopes that old"),
            std::string::npos)
      << child_->all_stdout();
  EXPECT_EQ(ListedRuns(), std::set<uint32_t>{only_new});
  EXPECT_EQ(StoredResults(everything), 0u);
  ASSERT_EQ(Doppel({"cat", "s"}), 0) << child_->all_stderr();
  const std::string cat = child_->all_stdout();
  EXPECT_EQ(cat.find("/old/"), std::string::npos) << cat;
  EXPECT_NE(cat.find("/new/1"), std::string::npos) << cat;
  EXPECT_NE(cat.find("/new/2"), std::string::npos) << cat;

  EXPECT_EQ(Doppel({"sessions", "retain", "s", "--older-than", "soon"}), 2);
  EXPECT_NE(child_->all_stderr().find("--older-than"), std::string::npos) << child_->all_stderr();
}

TEST_F(StoreCliTest, RunsRmRemovesTheNamedRunsOrNone) {
  WriteGets("s", {{1'000'000, "/a"}, {1'001'000, "/b"}});
  TestUpstream up;
  const uint32_t r1 = ReplayRun("s", up), r2 = ReplayRun("s", up), r3 = ReplayRun("s", up);

  ASSERT_EQ(Doppel({"runs", "rm", std::to_string(r1), std::to_string(r3)}), 0)
      << child_->all_stderr();
  EXPECT_NE(child_->all_stdout().find("removed run " + std::to_string(r1)), std::string::npos);
  EXPECT_NE(child_->all_stdout().find("removed run " + std::to_string(r3)), std::string::npos);
  EXPECT_EQ(ListedRuns(), std::set<uint32_t>{r2});
  EXPECT_EQ(StoredResults(r1), 0u);
  EXPECT_EQ(StoredResults(r2), 2u);

  // An unknown id: an error naming it, and run r2, named too, is kept.
  EXPECT_EQ(Doppel({"runs", "rm", std::to_string(r2), "99"}), 2);
  EXPECT_NE(child_->all_stderr().find("no run 99"), std::string::npos) << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("nothing removed"), std::string::npos);
  EXPECT_EQ(ListedRuns(), std::set<uint32_t>{r2});

  EXPECT_EQ(Doppel({"runs", "rm"}), 2);
  EXPECT_EQ(Doppel({"runs", "rm", "first"}), 2);
  EXPECT_EQ(ListedRuns(), std::set<uint32_t>{r2});
  EXPECT_EQ(Doppel({"sessions", "list"}), 0);
  EXPECT_NE(child_->all_stdout().find("s "), std::string::npos) << "the session stays";
}

}  // namespace
}  // namespace doppel::testing
