#include "replay/run_sink.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/codings.h"
#include "report/report_json.h"
#include "tests/base/gate.h"
#include "tests/base/temp_dir.h"
#include "tests/diff/gated_differ.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::replay {
namespace {

doppel::v1::HttpResponse JsonResponse(std::string body) {
  doppel::v1::HttpResponse r;
  r.set_status(200);
  doppel::v1::Header* ct = r.add_headers();
  ct->set_name("Content-Type");
  ct->set_value("application/json");
  r.set_body(std::move(body));
  return r;
}

diff::DifferPtr MakeDiffer() {
  Result<diff::DifferPtr> differ = diff::Differ::Create(diff::DiffConfig());
  EXPECT_TRUE(differ.ok()) << differ.status().ToString();
  return std::move(differ).value();
}

// One request through a RunSink that feeds an aggregator: what the sink counted (its stored
// verdicts) and what the report says.
struct Outcome {
  uint64_t sink_compared = 0, sink_mismatches = 0;
  report::Report report;
};

Outcome RunOne(std::string recorded, std::string candidate, std::string secondary) {
  diff::DifferPtr differ = MakeDiffer();
  report::AggregatorOptions options;
  options.targets = {"http://candidate"};
  report::RunAggregator aggregator(options);
  RunSink sink(differ.get(), &aggregator, /*store=*/nullptr, /*run_id=*/1);

  doppel::v1::Envelope envelope;
  envelope.mutable_request()->set_method("GET");
  envelope.mutable_request()->set_target("/items");
  *envelope.mutable_response() = JsonResponse(std::move(recorded));
  std::vector<TargetOutcome> targets(1);
  targets[0].response = JsonResponse(std::move(candidate));
  TargetOutcome second;
  second.response = JsonResponse(std::move(secondary));
  sink.OnCompleted({0, &envelope, &targets, &second});
  EXPECT_TRUE(sink.Flush().ok());  // the comparison is done on a compare thread
  return {sink.compared(), sink.mismatches(), aggregator.Finish()};
}

// The per-request verdict RunSink counts (and stores) and the report's endpoint counts come
// from one noise model: a candidate difference at body.items[1].x is noise when the
// secondary differed at body.items[0].x for the same request, because noise is per field
// (array indexes generalized to [*]), not per concrete path.
TEST(RunSink, NoiseMaskingAgreesWithTheReport) {
  Outcome o = RunOne(R"({"items": [{"x": 1}, {"x": 1}]})", R"({"items": [{"x": 1}, {"x": 2}]})",
                     R"({"items": [{"x": 2}, {"x": 1}]})");
  ASSERT_EQ(o.report.targets_size(), 1);
  const report::TargetReport& t = o.report.targets(0);
  EXPECT_EQ(t.compared(), 1u);
  EXPECT_EQ(t.matched(), 1u);  // the report: noise, not a mismatch
  EXPECT_EQ(o.sink_compared, t.compared());
  EXPECT_EQ(o.sink_mismatches, t.mismatched());  // the stored verdict says the same
}

// A real difference at another field is a mismatch for both.
TEST(RunSink, UnmaskedDifferenceIsAMismatchForBoth) {
  Outcome o = RunOne(R"({"items": [{"x": 1}], "total": 1})", R"({"items": [{"x": 1}], "total": 2})",
                     R"({"items": [{"x": 2}], "total": 1})");
  ASSERT_EQ(o.report.targets_size(), 1);
  EXPECT_EQ(o.report.targets(0).mismatched(), 1u);
  EXPECT_EQ(o.sink_mismatches, 1u);
}

// The recorded body is decoded (here: gzip, then parsed as JSON) once per request, however
// many answers it is compared with: the secondary's and two targets' here.
TEST(RunSink, DecodesTheRecordedBodyOncePerRequest) {
  std::atomic<int> decodes{0};
  diff::DiffConfig config;
  config.on_expected_decoded = [&decodes] { decodes.fetch_add(1); };
  Result<diff::DifferPtr> differ = diff::Differ::Create(config);
  ASSERT_TRUE(differ.ok()) << differ.status().ToString();
  report::AggregatorOptions options;
  options.targets = {"http://a", "http://b"};
  report::RunAggregator aggregator(options);
  RunSink sink(differ.value().get(), &aggregator, /*store=*/nullptr, /*run_id=*/1);

  doppel::v1::Envelope envelope;
  envelope.mutable_request()->set_method("GET");
  envelope.mutable_request()->set_target("/items");
  *envelope.mutable_response() =
      JsonResponse(net::EncodeContent(R"({"items": [1, 2, 3], "page": 1})", "gzip").value());
  doppel::v1::Header* ce = envelope.mutable_response()->add_headers();
  ce->set_name("Content-Encoding");
  ce->set_value("gzip");
  std::vector<TargetOutcome> targets(2);
  targets[0].response = JsonResponse(R"({"items": [1, 2, 4], "page": 1})");
  targets[1].response = JsonResponse(R"({"items": [1, 2, 3], "page": 2})");
  TargetOutcome second;
  second.response = JsonResponse(R"({"items": [1, 2, 3], "page": 1, "extra": true})");
  sink.OnCompleted({0, &envelope, &targets, &second});
  ASSERT_TRUE(sink.Flush().ok());
  EXPECT_EQ(decodes.load(), 1);
  EXPECT_EQ(sink.compared(), 2u);
  EXPECT_EQ(sink.mismatches(), 2u);
}

doppel::v1::Envelope Recorded(int i, std::string body) {
  doppel::v1::Envelope e;
  e.set_seq(i);
  e.set_arrival_us(1000 * i);
  e.mutable_request()->set_method("GET");
  e.mutable_request()->set_target("/items/" + std::to_string(i % 7));
  *e.mutable_response() = JsonResponse(std::move(body));
  return e;
}

// The engine thread hands a finished request over and returns, while the comparisons are
// blocked: up to the compare threads plus the queue; nothing is dropped, every one is
// compared once the comparisons go on.
TEST(RunSink, EngineThreadReturnsWhileComparisonsAreBlocked) {
  testing::Gate gate;
  diff::testing::GatedDiffer differ(MakeDiffer(), &gate);
  report::AggregatorOptions options;
  options.targets = {"http://candidate"};
  report::RunAggregator aggregator(options);
  RunSinkOptions so;
  so.compare_threads = 2;
  so.compare_queue = 8;
  constexpr int kRequests = 10;  // 2 comparing + 8 queued
  RunSink sink(&differ, &aggregator, /*store=*/nullptr, /*run_id=*/1, so);

  std::mutex mu;
  std::condition_variable cv;
  bool handed_over = false;
  std::thread engine([&] {
    for (int i = 0; i < kRequests; ++i) {
      doppel::v1::Envelope e = Recorded(i, R"({"n": 1})");
      std::vector<TargetOutcome> targets(1);
      targets[0].response = JsonResponse(i % 2 ? R"({"n": 2})" : R"({"n": 1})");
      sink.OnCompleted({static_cast<uint64_t>(i), &e, &targets, nullptr});
    }
    std::lock_guard<std::mutex> lock(mu);
    handed_over = true;
    cv.notify_all();
  });
  {
    // Bounded, so the old design (comparing on the engine thread) fails instead of hanging.
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::seconds(30), [&] { return handed_over; });
    EXPECT_TRUE(handed_over) << "OnCompleted waited for a blocked comparison";
  }
  EXPECT_TRUE(gate.AwaitWaiting(2));  // both compare threads are held
  EXPECT_EQ(sink.compared(), 0u);
  gate.Open();
  engine.join();
  ASSERT_TRUE(sink.Flush().ok());
  EXPECT_EQ(sink.compared(), static_cast<uint64_t>(kRequests));
  EXPECT_EQ(sink.mismatches(), static_cast<uint64_t>(kRequests / 2));
  EXPECT_EQ(aggregator.Finish().targets(0).compared(), static_cast<uint64_t>(kRequests));
}

// What one run of many completions leaves: the sink's counts, the report, the stored results.
struct RunOutput {
  uint64_t compared = 0, mismatches = 0;
  std::string report_json;
  std::vector<std::string> stored;  // serialized RunResults, in store order
};

// Feeds the same 300 completions (2 targets and a secondary; matches, mismatches, noise,
// transport errors) through a sink with `threads` compare threads and a small queue.
RunOutput ManyCompletions(size_t threads, const std::string& store_path) {
  RunOutput out;
  diff::DifferPtr differ = MakeDiffer();
  report::AggregatorOptions options;
  options.targets = {"http://a", "http://b"};
  options.secondary = "http://secondary";
  options.thresholds.min_samples = 1;
  options.generated_at = "2026-01-02T03:04:05Z";
  report::RunAggregator aggregator(options);
  std::unique_ptr<storage::Store> store;
  EXPECT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path, &store).ok());
  auto run = store->CreateRun(doppel::v1::RunInfo());
  EXPECT_TRUE(run.ok());
  {
    RunSinkOptions so;
    so.compare_threads = threads;
    so.compare_queue = 4;
    so.result_batch = 50;
    so.write_queue = 1;
    RunSink sink(differ.get(), &aggregator, store.get(), run->id(), so);
    for (int i = 0; i < 300; ++i) {
      // {"id": i, "price": P, "ts": T, "tags": TAGS}
      auto body = [i](int price, int ts, const char* tags) {
        return R"({"id": )" + std::to_string(i) + R"(, "price": )" + std::to_string(price) +
               R"(, "ts": )" + std::to_string(ts) + R"(, "tags": )" + tags + "}";
      };
      doppel::v1::Envelope e = Recorded(i, body(10, 1, R"(["a", "b"])"));
      std::vector<TargetOutcome> targets(2);
      // Target a: price and tags differ on every third request (mismatches).
      targets[0].response =
          JsonResponse(i % 3 == 0 ? body(11, 2, R"(["a"])") : body(10, 1, R"(["a", "b"])"));
      // Target b: times out on every 11th, differs only at "ts" (noise) on every 5th.
      if (i % 11 == 0) {
        targets[1].error = "timeout";
      } else {
        targets[1].response = JsonResponse(body(10, i % 5 == 0 ? 3 : 1, R"(["a", "b"])"));
      }
      TargetOutcome second;  // "ts" is noise: the known-good build differs there too
      second.response = JsonResponse(body(10, 9, R"(["a", "b"])"));
      sink.OnCompleted({static_cast<uint64_t>(i), &e, &targets, &second});
    }
    Status flushed = sink.Flush();
    EXPECT_TRUE(flushed.ok()) << flushed.ToString();
    out.compared = sink.compared();
    out.mismatches = sink.mismatches();
  }
  out.report_json = report::ReportToJson(aggregator.Finish());
  auto it = store->ScanRunResults(run->id());
  EXPECT_TRUE(it.ok());
  for (; (*it)->Valid(); (*it)->Next()) out.stored.push_back((*it)->result().SerializeAsString());
  EXPECT_TRUE((*it)->status().ok());
  return out;
}

// Comparing on four threads, or inline on the engine's thread (0), gives what comparing on one
// gives: the same counts, the same report (exemplars included) and the same stored results in
// the same order.
TEST(RunSink, ManyCompareThreadsGiveTheSameOutputAsOne) {
  const std::string dir = doppel::testing::MakeTempDir("run_sink_test-threads");
  const RunOutput one = ManyCompletions(1, dir + "/one");
  const RunOutput four = ManyCompletions(4, dir + "/four");
  const RunOutput inline_ = ManyCompletions(0, dir + "/inline");
  std::filesystem::remove_all(dir);
  EXPECT_EQ(one.compared, 300u + 300u - 28u);  // target b timed out on 28 requests
  EXPECT_EQ(one.mismatches, 100u + 0u);        // a: price and tags; b: only noise ("ts")
  EXPECT_EQ(four.compared, one.compared);
  EXPECT_EQ(four.mismatches, one.mismatches);
  EXPECT_EQ(four.report_json, one.report_json);
  EXPECT_EQ(one.stored.size(), 600u);
  EXPECT_EQ(four.stored, one.stored);
  EXPECT_EQ(inline_.compared, one.compared);
  EXPECT_EQ(inline_.mismatches, one.mismatches);
  EXPECT_EQ(inline_.report_json, one.report_json);
  EXPECT_EQ(inline_.stored, one.stored);
}

}  // namespace
}  // namespace doppel::replay
