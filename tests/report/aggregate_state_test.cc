// RunAggregator::SaveState / MergeState: what a worker group's report is built from
// (replay/group.h). Observations split over several aggregators and merged give the report
// one aggregator gives over all of them.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "report/aggregate.h"
#include "tests/report/test_util.h"

namespace doppel::report {
namespace {

using testing::Exchange;
using testing::Feeder;
using testing::OneTarget;
using testing::Response;

// A mix: matches, a changed field on some requests, noise on the secondary, errors, a faulted
// exchange, two endpoints, latencies over a wide range, arrival times over 20 minutes.
std::vector<Exchange> Traffic() {
  std::vector<Exchange> out;
  for (int i = 0; i < 200; ++i) {
    Exchange x;
    x.path = i % 3 == 0 ? "/orders/" + std::to_string(i) : "/users/" + std::to_string(i);
    const std::string id = std::to_string(i);
    x.recorded = Response(200, R"({"id":)" + id + R"(,"name":"ann","n":1})", 500 + i);
    x.actual = Response(200,
                        R"({"id":)" + id + (i % 4 == 0 ? R"(,"name":"bob")" : R"(,"name":"ann")") +
                            R"(,"n":)" + std::to_string(i % 7 == 0 ? 2 : 1) + "}",
                        700 + 13 * i);
    x.secondary = Response(
        200, R"({"id":)" + id + R"(,"name":"ann","n":)" + std::to_string(i % 7 == 0 ? 3 : 1) + "}");
    x.latency_us = 300 + static_cast<uint64_t>(i) * 977;
    x.arrival_us = 1'700'000'000'000'000ull + static_cast<uint64_t>(i) * 6'000'000ull;
    if (i % 25 == 0) x.actual.reset();
    if (i == 101) x.fault = "abort";
    out.push_back(x);
  }
  return out;
}

Report WithoutExemplars(Report r) {
  for (auto& t : *r.mutable_targets())
    for (auto& e : *t.mutable_endpoints())
      for (auto& f : *e.mutable_fields()) {
        f.clear_exemplars();
        f.clear_noise_exemplars();
      }
  return r;
}

TEST(AggregatorStateTest, SplitAndMergedGivesTheSameReportAsOne) {
  const AggregatorOptions options = OneTarget("http://secondary:8080");
  Feeder whole(options);
  Feeder parts[3] = {Feeder(options), Feeder(options), Feeder(options)};
  const std::vector<Exchange> traffic = Traffic();
  for (size_t i = 0; i < traffic.size(); ++i) {
    whole.Add(traffic[i]);
    parts[(i * 7) % 3].Add(traffic[i]);  // not in arrival order per part
  }
  RunAggregator merged(options);
  for (Feeder& p : parts) {
    const v1::AggregatorState state = p.aggregator().SaveState();
    // Through bytes, as the state goes through Redis.
    v1::AggregatorState parsed;
    ASSERT_TRUE(parsed.ParseFromString(state.SerializeAsString()));
    ASSERT_TRUE(merged.MergeState(parsed).ok());
  }
  const Report want = whole.Finish();
  const Report got = merged.Finish();
  ASSERT_GT(want.targets(0).mismatched(), 0u);
  ASSERT_GT(want.targets(0).errors(), 0u);
  ASSERT_EQ(want.verdict().exit_code(), 1);  // the name change is a regression
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(WithoutExemplars(want), WithoutExemplars(got))) << diff;
  // Exemplars: as many as one aggregator keeps, each one of a real mismatch.
  for (const auto& e : got.targets(0).endpoints())
    for (const auto& f : e.fields()) {
      EXPECT_LE(f.exemplars_size(), 3);
      if (f.mismatches() > 0) EXPECT_GT(f.exemplars_size(), 0) << f.path();
      for (const auto& x : f.exemplars()) EXPECT_EQ(x.path().substr(0, 4), f.path().substr(0, 4));
    }
}

TEST(AggregatorStateTest, MergingIntoAnAggregatorWithObservationsAdds) {
  const AggregatorOptions options = OneTarget();
  Feeder a(options), b(options), whole(options);
  const std::vector<Exchange> traffic = Traffic();
  for (size_t i = 0; i < traffic.size(); ++i) {
    (i < 120 ? a : b).Add(traffic[i]);
    whole.Add(traffic[i]);
  }
  ASSERT_TRUE(a.aggregator().MergeState(b.aggregator().SaveState()).ok());
  google::protobuf::util::MessageDifferencer d;
  std::string diff;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(WithoutExemplars(whole.Finish()), WithoutExemplars(a.Finish()))) << diff;
}

TEST(AggregatorStateTest, OptionsOfAStateRebuildTheSettings) {
  AggregatorOptions o = OneTarget("http://sec:1");
  o.fail_threshold_pct = 2.5;
  o.fail_on = diff::Severity::kMedium;
  o.thresholds.min_samples = 7;
  RunAggregator agg(o);
  auto back = RunAggregator::OptionsOf(agg.SaveState());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->targets, o.targets);
  EXPECT_EQ(back->secondary, "http://sec:1");
  EXPECT_EQ(back->fail_threshold_pct, 2.5);
  EXPECT_EQ(back->fail_on, diff::Severity::kMedium);
  EXPECT_EQ(back->thresholds.min_samples, 7u);
  RunAggregator again(*back);
  EXPECT_TRUE(again.MergeState(agg.SaveState()).ok());
}

// A state in Redis can be written by anyone with access to it: settings no replay could
// write (a NaN made a report differ from itself, found by fuzz_aggregator_state) are refused
// with what is wrong, not taken.
TEST(AggregatorStateTest, OptionsOfRefusesSettingsNoReplayWrites) {
  const v1::AggregatorState good = RunAggregator(OneTarget()).SaveState();
  ASSERT_TRUE(RunAggregator::OptionsOf(good).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const struct {
    void (*spoil)(v1::AggregatorState&, double);
    double value;
    const char* named;
  } cases[] = {
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_min_rate_difference(v); },
       nan, "min_rate_difference"},
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_min_rate_difference(v); },
       -0.5, "min_rate_difference"},
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_alpha(v); }, nan, "alpha"},
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_alpha(v); }, 0, "alpha"},
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_fail_threshold_pct(v); },
       101, "fail_threshold_pct"},
      {[](v1::AggregatorState& s, double v) { s.mutable_settings()->set_fail_threshold_pct(v); },
       nan, "fail_threshold_pct"},
  };
  for (const auto& c : cases) {
    v1::AggregatorState bad = good;
    c.spoil(bad, c.value);
    auto options = RunAggregator::OptionsOf(bad);
    ASSERT_FALSE(options.ok()) << c.named << " " << c.value;
    EXPECT_NE(options.status().message().find(c.named), std::string::npos)
        << options.status().ToString();
  }
}

TEST(AggregatorStateTest, StatesOfOtherTargetsOrSettingsDoNotMerge) {
  Feeder a(OneTarget());
  for (const Exchange& x : Traffic()) a.Add(x);
  const v1::AggregatorState state = a.aggregator().SaveState();

  AggregatorOptions other = OneTarget();
  other.targets = {"http://elsewhere:1"};
  RunAggregator b(other);
  Status s = b.MergeState(state);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("--target"), std::string::npos) << s.ToString();

  AggregatorOptions stricter = OneTarget();
  stricter.fail_threshold_pct = 5;
  RunAggregator c(stricter);
  s = c.MergeState(state);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("--fail-threshold"), std::string::npos) << s.ToString();
  EXPECT_EQ(c.Finish().targets(0).requests(), 0u);  // nothing merged
}

TEST(AggregatorStateTest, MalformedStatesAreRefusedAndLeaveTheAggregatorAsItWas) {
  Feeder a(OneTarget());
  for (const Exchange& x : Traffic()) a.Add(x);
  const v1::AggregatorState good = a.aggregator().SaveState();
  ASSERT_GT(good.target_states(0).endpoints_size(), 0);

  std::vector<v1::AggregatorState> bad(5, good);
  // A histogram whose max lies past its buckets.
  bad[0].mutable_target_states(0)->mutable_endpoints(0)->mutable_latency()->set_max(UINT64_MAX);
  // A severity no Severity has.
  auto* ep = bad[1].mutable_target_states(0)->mutable_endpoints(0);
  ASSERT_GT(ep->fields_size(), 0);
  ep->mutable_fields(0)->set_severity(7);
  // A timeline whose arrays disagree, and one with a width that is no power of two.
  bad[2].mutable_target_states(0)->mutable_timeline()->add_requests(1);
  bad[3].mutable_target_states(0)->mutable_timeline()->set_bucket_seconds(3);
  // More exemplars than were offered.
  auto* f = bad[4].mutable_target_states(0)->mutable_endpoints(0)->mutable_fields(0);
  f->set_offered(0);
  f->add_exemplars();

  Feeder b(OneTarget());
  b.Add(Traffic()[1]);
  const Report before = b.Finish();
  for (size_t i = 0; i < bad.size(); ++i) {
    Status s = b.aggregator().MergeState(bad[i]);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << i;
    EXPECT_NE(s.message().find("not one a replay could write"), std::string::npos) << s.ToString();
  }
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, b.Finish()));
}

TEST(AggregatorStateTest, MergedEndpointsStayWithinTheBound) {
  AggregatorOptions o = OneTarget();
  o.max_endpoints = 3;
  Feeder a(o), b(o);
  for (int i = 0; i < 3; ++i) {
    Exchange x;
    x.path = "/a" + std::to_string(i);
    x.recorded = Response(200, "{}");
    x.actual = Response(200, "{}");
    a.Add(x);
    x.path = "/b" + std::to_string(i);
    b.Add(x);
  }
  ASSERT_TRUE(a.aggregator().MergeState(b.aggregator().SaveState()).ok());
  const Report r = a.Finish();
  EXPECT_EQ(r.targets(0).requests(), 6u);
  EXPECT_EQ(r.targets(0).endpoints_size(), 4);  // three, and "(other endpoints)"
}

}  // namespace
}  // namespace doppel::report
