#include "replay/run_sink.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

}  // namespace
}  // namespace doppel::replay
