// replay::Run in-process against an in-test upstream: the lifecycle `doppel replay` used to
// run in tools/cmd_replay.cc (store, run record, report files, exit code), without the binary.
#include "replay/run.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/clock.h"
#include "storage/store.h"
#include "tests/base/temp_dir.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::replay {
namespace {

constexpr int kGets = 20;
constexpr int kPosts = 3;
// 2026-01-02T03:04:05Z
constexpr uint64_t kWallUs = 1767323045ull * 1000000;

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = doppel::testing::MakeTempDir(
        std::string("run_test-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_path_ = dir_ + "/store";
    Status s = storage::testing::WriteReplaySession(store_path_, "s", kGets, kPosts);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  RunOptions Options(const std::string& target) {
    RunOptions o;
    o.store_path = store_path_;
    o.session = "s";
    o.targets = {target};
    o.max = true;
    o.selection.percent = 100;
    return o;
  }
  v1::RunInfo StoredRun(uint32_t id) {
    std::unique_ptr<storage::Store> s;
    EXPECT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path_, &s).ok());
    auto run = s->GetRun(id);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : v1::RunInfo();
  }
  // Creates a run with `o` on the system clock and executes it to the end into `out`; the Run
  // is gone (and the store closed) on return.
  void RunToEnd(const RunOptions& o, RunOutcome* out) {
    auto run = Run::Create(o, SystemClock::Instance());
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    auto executed = (*run)->Execute();
    ASSERT_TRUE(executed.ok()) << executed.status().ToString();
    *out = std::move(executed.value());
  }

  std::string dir_, store_path_;
};

// Times in the run record and the report come from the injected clock, not the system's.
TEST_F(RunTest, RecordsTheRunWithTheInjectedClock) {
  testing::TestUpstream up;
  ManualClock clock(kWallUs);
  RunOptions o = Options(up.url());
  o.reports.json = dir_ + "/report.json";
  o.command_line = "doppel replay --max";
  uint32_t run_id = 0;
  {
    auto run = Run::Create(o, clock);
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    const RunPlan& plan = (*run)->plan();
    EXPECT_EQ(plan.session_name, "s");
    EXPECT_EQ(plan.total, static_cast<uint64_t>(kGets + kPosts));
    EXPECT_EQ(plan.to_send, static_cast<uint64_t>(kGets));
    EXPECT_EQ(plan.decisions.unsafe, static_cast<uint64_t>(kPosts));
    EXPECT_EQ(plan.pacing, "max");
    auto out = (*run)->Execute();
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    run_id = out->run_id;
    EXPECT_TRUE(out->run_saved.ok()) << out->run_saved.ToString();
    EXPECT_TRUE(out->results_saved.ok()) << out->results_saved.ToString();
    EXPECT_TRUE(out->report_files.ok()) << out->report_files.ToString();
    EXPECT_EQ(out->exit_code, 0);
    EXPECT_EQ(out->stats.dispatched, static_cast<uint64_t>(kGets));
    EXPECT_EQ(out->stats.skipped.unsafe, static_cast<uint64_t>(kPosts));
    EXPECT_EQ(out->report.generated_at(), "2026-01-02T03:04:05Z");
    EXPECT_EQ(out->report.run_id(), std::to_string(run_id));
    EXPECT_EQ(out->report.session(), "s");
  }
  EXPECT_EQ(up.requests().size(), static_cast<size_t>(kGets));

  v1::RunInfo stored = StoredRun(run_id);
  EXPECT_EQ(stored.state(), v1::RUN_STATE_COMPLETED);
  EXPECT_EQ(stored.started_us(), kWallUs);
  EXPECT_EQ(stored.finished_us(), kWallUs);
  EXPECT_EQ(stored.dispatched(), static_cast<uint64_t>(kGets));
  EXPECT_EQ(stored.settings().command_line(), "doppel replay --max");
  ASSERT_EQ(stored.targets_size(), 1);
  EXPECT_EQ(stored.targets(0).sent(), static_cast<uint64_t>(kGets));
  EXPECT_EQ(stored.targets(0).status_2xx(), static_cast<uint64_t>(kGets));
  // The report is stored as a message; the JSON field is only read from old runs.
  EXPECT_TRUE(stored.has_report());
  EXPECT_EQ(stored.report().targets(0).requests(), static_cast<uint64_t>(kGets));
  EXPECT_TRUE(stored.report_json().empty());

  // `doppel report --run` reads back the same report the run wrote.
  auto again = LoadRunReport(store_path_, run_id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->generated_at(), "2026-01-02T03:04:05Z");
  EXPECT_EQ(again->SerializeAsString(), stored.report().SerializeAsString());
  std::ifstream f(dir_ + "/report.json");
  std::string json((std::istreambuf_iterator<char>(f)), {});
  EXPECT_NE(json.find("\"2026-01-02T03:04:05Z\""), std::string::npos) << json;
}

// A target that answers differently from the recording fails the run: exit code 1.
TEST_F(RunTest, RegressionsGiveExitCodeOne) {
  testing::TestUpstream up;
  up.SetHandler([](const testing::ReceivedRequest&) -> std::optional<net::HttpResponse> {
    net::HttpResponse r;
    r.result(500);
    r.body() = "boom";
    return r;
  });
  RunOptions o = Options(up.url());
  o.min_samples = 1;
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(o, &out));
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_GT(out.report.verdict().regressions(), 0u);
  v1::RunInfo stored = StoredRun(out.run_id);
  EXPECT_EQ(stored.exit_code(), 1);
  EXPECT_EQ(stored.targets(0).status_5xx(), static_cast<uint64_t>(kGets));
}

// A report file that cannot be written is exit 2, and the run record is still saved.
TEST_F(RunTest, UnwritableReportFileIsExitTwoButTheRunIsSaved) {
  testing::TestUpstream up;
  RunOptions o = Options(up.url());
  o.reports.junit = dir_ + "/no/such/dir/junit.xml";
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(o, &out));
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.report_files.ToString().find("junit.xml"), std::string::npos)
      << out.report_files.ToString();
  EXPECT_TRUE(out.run_saved.ok());
  EXPECT_EQ(StoredRun(out.run_id).state(), v1::RUN_STATE_COMPLETED);
}

TEST_F(RunTest, CreateRejectsBadOptionsNamingTheFlag) {
  struct Case {
    std::function<void(RunOptions*)> change;
    std::string expect;
  };
  std::vector<Case> cases = {
      {[](RunOptions* o) { o->targets.clear(); }, "--target"},
      {[](RunOptions* o) { o->from = "x.bundle"; }, "exactly one of --session"},
      {[](RunOptions* o) { o->rate = "10"; }, "only one of --rate"},
      {[](RunOptions* o) { o->timeout = "0"; }, "--timeout"},
      {[](RunOptions* o) { o->set_headers = {"NoEquals"}; }, "--set-header"},
      {[](RunOptions* o) { o->fail_on = "urgent"; }, "--fail-on"},
      {[](RunOptions* o) { o->fail_threshold = 101; }, "--fail-threshold"},
      {[](RunOptions* o) { o->compare_threads = 65; }, "--compare-threads 65 is out of range"},
      {[](RunOptions* o) { o->session = "nope"; }, "nope"},
  };
  for (const auto& c : cases) {
    RunOptions o = Options("http://127.0.0.1:1");
    c.change(&o);
    auto run = Run::Create(o, SystemClock::Instance());
    ASSERT_FALSE(run.ok()) << c.expect;
    EXPECT_NE(run.status().ToString().find(c.expect), std::string::npos) << run.status().ToString();
  }
}

// Every envelope filtered out: Execute fails before creating a run record or sending.
TEST_F(RunTest, NothingToSendCreatesNoRun) {
  testing::TestUpstream up;
  RunOptions o = Options(up.url());
  o.selection.methods = {"DELETE"};
  {
    auto run = Run::Create(o, SystemClock::Instance());
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    EXPECT_EQ((*run)->plan().to_send, 0u);
    auto out = (*run)->Execute();
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.status().ToString().find("nothing to replay"), std::string::npos);
  }
  EXPECT_TRUE(up.requests().empty());
  std::unique_ptr<storage::Store> s;
  ASSERT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path_, &s).ok());
  auto runs = s->ListRuns();
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

// A target that is down fails at the probe, before a run record exists.
TEST_F(RunTest, ProbeFailsOnADeadTarget) {
  RunOptions o = Options("http://127.0.0.1:" + std::to_string(testing::DeadPort()));
  auto run = Run::Create(o, SystemClock::Instance());
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  auto out = (*run)->Execute();
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().ToString().find("not reachable"), std::string::npos)
      << out.status().ToString();
}

// Runs stored before RunInfo.report kept the report as JSON (report_json, field 11):
// `doppel report --run` still reads them.
TEST_F(RunTest, LoadsTheReportOfAnOldRunFromItsJson) {
  std::string json;
  {
    std::ifstream f(std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/report/report.json");
    json.assign(std::istreambuf_iterator<char>(f), {});
  }
  ASSERT_FALSE(json.empty());
  uint32_t run_id = 0;
  {
    std::unique_ptr<storage::Store> store;
    ASSERT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path_, &store).ok());
    v1::RunInfo old;
    old.set_state(v1::RUN_STATE_COMPLETED);
    old.set_exit_code(1);
    old.set_report_json(json);
    auto created = store->CreateRun(old);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    run_id = created->id();
    ASSERT_FALSE(created->has_report());
  }
  auto rep = LoadRunReport(store_path_, run_id);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->session(), "checkout");
  EXPECT_EQ(rep->verdict().exit_code(), 1);
  ASSERT_EQ(rep->targets_size(), 2);
  EXPECT_EQ(rep->targets(0).name(), "http://candidate:8080");

  // A run with neither (it did not finish) is NotFound, with what to do.
  {
    std::unique_ptr<storage::Store> store;
    ASSERT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path_, &store).ok());
    v1::RunInfo unfinished;
    unfinished.set_state(v1::RUN_STATE_INTERRUPTED);
    auto created = store->CreateRun(unfinished);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    run_id = created->id();
  }
  auto none = LoadRunReport(store_path_, run_id);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace doppel::replay
