#include "replay/pacer.h"

#include <gtest/gtest.h>

namespace doppel::replay {
namespace {

// --speed X: the recorded gaps divided by `speed`.
PacingSpec Speed(double speed) {
  PacingSpec spec;
  spec.mode = PacingSpec::Mode::kSpeed;
  spec.speed = speed;
  return spec;
}

TEST(ParseRate, PlainAndRamp) {
  auto r = ParseRate("500");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rate_from, 500);
  EXPECT_EQ(r->rate_to, 500);
  EXPECT_EQ(r->ramp_us, 0u);
  EXPECT_EQ(r->ToString(), "rate=500");
  auto ramp = ParseRate("100:2000:60s");
  ASSERT_TRUE(ramp.ok());
  EXPECT_EQ(ramp->rate_from, 100);
  EXPECT_EQ(ramp->rate_to, 2000);
  EXPECT_EQ(ramp->ramp_us, 60'000'000u);
  EXPECT_EQ(ramp->ToString(), "rate=100:2000:60s");
}

TEST(ParseRate, ErrorsSayWhatToUse) {
  for (const char* bad : {"", "0", "-5", "fast", "100:200", "100:x:10s", "1:2:0s", "1:2:soon"}) {
    auto r = ParseRate(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("FROM:TO:OVER"), std::string::npos);
  }
}

TEST(Pacer, RateScheduleIsOpenLoop) {
  PacingSpec spec = *ParseRate("2000");
  Pacer p(spec);
  for (uint64_t i = 0; i < 10000; ++i) ASSERT_EQ(p.Next(/*recorded=*/7), i * 500) << i;
}

TEST(Pacer, FractionalRate) {
  PacingSpec spec = *ParseRate("3");
  EXPECT_EQ(Pacer::RateDueUs(spec, 1), 333333u);
  EXPECT_EQ(Pacer::RateDueUs(spec, 3), 1000000u);
}

TEST(Pacer, RampRisesLinearlyThenHolds) {
  PacingSpec spec = *ParseRate("100:1000:10s");
  // Requests by the end of the ramp: 100*10 + 900*10/2 = 5500.
  EXPECT_NEAR(Pacer::RateDueUs(spec, 5500) / 1e6, 10.0, 1e-3);
  // At the start the gap is ~1/100 s, near the end ~1/1000 s, after it exactly 1/1000 s.
  double first_gap = (Pacer::RateDueUs(spec, 1) - Pacer::RateDueUs(spec, 0)) / 1e6;
  EXPECT_NEAR(first_gap, 0.01, 0.0005);
  double late_gap = (Pacer::RateDueUs(spec, 5499) - Pacer::RateDueUs(spec, 5498)) / 1e6;
  EXPECT_NEAR(late_gap, 0.001, 0.00005);
  EXPECT_EQ(Pacer::RateDueUs(spec, 6500) - Pacer::RateDueUs(spec, 5500), 1'000'000u);
  // Monotonic everywhere.
  for (uint64_t i = 1; i < 8000; ++i)
    ASSERT_LE(Pacer::RateDueUs(spec, i - 1), Pacer::RateDueUs(spec, i)) << i;
  // Requests sent by time t match the integral of the rate at a few points.
  for (double t : {1.0, 2.5, 5.0, 7.5}) {
    double n = 100 * t + 900 * t * t / (2 * 10);
    EXPECT_NEAR(Pacer::RateDueUs(spec, static_cast<uint64_t>(n)) / 1e6, t, 0.002) << t;
  }
}

// A worker of a group sends its share of the group's --rate; the schedule goes on from the
// next request's due time at the new rate.
TEST(Pacer, ShareStretchesTheScheduleFromTheNextRequest) {
  Pacer p(*ParseRate("100"));
  for (uint64_t i = 0; i < 10; ++i) ASSERT_EQ(p.Next(0), i * 10'000);
  p.SetShare(0.5);  // two workers: 50 req/s each
  for (uint64_t i = 0; i < 10; ++i) ASSERT_EQ(p.Next(0), 100'000 + i * 20'000) << i;
  p.SetShare(0.25);  // four
  EXPECT_EQ(p.Next(0), 300'000u);
  EXPECT_EQ(p.Next(0), 340'000u);
  p.SetShare(1);  // alone again
  EXPECT_EQ(p.Next(0), 380'000u);
  EXPECT_EQ(p.Next(0), 390'000u);
  // Out of range: ignored.
  p.SetShare(0);
  p.SetShare(2);
  EXPECT_EQ(p.Next(0), 400'000u);
}

TEST(Pacer, ShareOfARampFollowsTheRampsClock) {
  const PacingSpec spec = *ParseRate("100:1000:10s");
  Pacer half(spec);
  half.SetShare(0.5);
  // Every other request of the whole schedule: two workers together send it all.
  for (uint64_t i = 0; i < 3000; ++i) ASSERT_EQ(half.Next(0), Pacer::RateDueUs(spec, 2 * i)) << i;
}

TEST(Pacer, DownwardRamp) {
  PacingSpec spec = *ParseRate("1000:100:10s");
  for (uint64_t i = 1; i < 6000; ++i)
    ASSERT_LE(Pacer::RateDueUs(spec, i - 1), Pacer::RateDueUs(spec, i));
  EXPECT_NEAR(Pacer::RateDueUs(spec, 5500) / 1e6, 10.0, 1e-3);
}

TEST(Pacer, SpeedDividesRecordedGaps) {
  Pacer p(Speed(2));
  EXPECT_EQ(p.Next(1'000'000), 0u);
  EXPECT_EQ(p.Next(1'100'000), 50'000u);
  EXPECT_EQ(p.Next(1'400'000), 200'000u);
}

TEST(Pacer, OutOfOrderTimestampsNeverSleepLong) {
  Pacer p(Speed(1));
  EXPECT_EQ(p.Next(5'000'000), 0u);
  EXPECT_EQ(p.Next(1'000'000), 0u);    // earlier: zero gap
  EXPECT_EQ(p.Next(5'000'100), 100u);  // measured from the latest seen, not the outlier
  EXPECT_EQ(p.Next(5'000'200), 200u);
}

TEST(Pacer, HugeGapsAreCapped) {
  PacingSpec spec = Speed(1);
  spec.max_gap_us = 2'000'000;
  Pacer p(spec);
  p.Next(0);
  EXPECT_EQ(p.Next(3600ull * 1'000'000), 2'000'000u);  // an hour of silence -> 2 s
  EXPECT_EQ(p.Next(3600ull * 1'000'000 + 10), 2'000'010u);
}

// The think time inside a connection (a WebSocket client's gap before a message).
TEST(Pacer, ThinkTimeFollowsTheMode) {
  PacingSpec speed = Speed(4);
  speed.max_gap_us = 2'000'000;
  EXPECT_EQ(speed.ThinkTimeUs(1'000'000), 250'000u);
  EXPECT_EQ(speed.ThinkTimeUs(3'600'000'000), 500'000u);  // capped at 2 s, then divided
  auto rate = ParseRate("500");
  ASSERT_TRUE(rate.ok());
  EXPECT_EQ(rate->ThinkTimeUs(1'000'000), 1'000'000u);  // --rate paces connections only
  EXPECT_EQ(PacingSpec{}.ThinkTimeUs(1'000'000), 0u);   // --max
}

TEST(Pacer, MaxModeHasNoSchedule) {
  Pacer p(PacingSpec{});
  EXPECT_EQ(p.Next(1), 0u);
  EXPECT_EQ(p.Next(100000), 0u);
}

}  // namespace
}  // namespace doppel::replay
