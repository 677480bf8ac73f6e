#include "base/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace doppel {
namespace {

// True when `got` is within the histogram's precision (1/128 of the value) of `want`.
bool Close(uint64_t got, uint64_t want) {
  double tolerance = std::max(1.0, static_cast<double>(want) / 128.0);
  return std::fabs(static_cast<double>(got) - static_cast<double>(want)) <= tolerance;
}

TEST(LatencyHistogramTest, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.Summary(), LatencySummary());
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Add(v);
  EXPECT_EQ(h.Percentile(50), 50u);
  EXPECT_EQ(h.Percentile(90), 90u);
  EXPECT_EQ(h.Percentile(99), 99u);
  EXPECT_EQ(h.Percentile(100), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.sum(), 5050u);
}

TEST(LatencyHistogramTest, PercentilesWithinOnePercentOverWideRange) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100'000; ++v) h.Add(v * 37);  // 37 us .. 3.7 s
  EXPECT_TRUE(Close(h.Percentile(50), 50'000 * 37)) << h.Percentile(50);
  EXPECT_TRUE(Close(h.Percentile(90), 90'000 * 37)) << h.Percentile(90);
  EXPECT_TRUE(Close(h.Percentile(99), 99'000 * 37)) << h.Percentile(99);
  EXPECT_EQ(h.Percentile(100), 100'000u * 37);
  EXPECT_EQ(h.max(), 100'000u * 37);
  // Never below the true value: the bucket's highest value is reported.
  EXPECT_GE(h.Percentile(50), 50'000u * 37);
}

TEST(LatencyHistogramTest, SkewedDistributionTail) {
  LatencyHistogram h;
  h.Add(1000, 990);     // 99 % at 1 ms
  h.Add(250'000, 9);    // 0.9 % at 250 ms
  h.Add(2'000'000, 1);  // one 2 s outlier
  EXPECT_TRUE(Close(h.Percentile(50), 1000));
  EXPECT_TRUE(Close(h.Percentile(99), 1000));
  EXPECT_TRUE(Close(h.Percentile(99.5), 250'000));
  EXPECT_EQ(h.Percentile(100), 2'000'000u);
  EXPECT_EQ(h.count(), 1000u);
}

TEST(LatencyHistogramTest, MergeEqualsAddingEverything) {
  LatencyHistogram a, b, all;
  for (uint64_t v = 0; v < 5000; ++v) {
    uint64_t x = (v * 7919) % 100'003 + 1;
    (v % 3 == 0 ? a : b).Add(x);
    all.Add(x);
  }
  LatencyHistogram merged = a;
  merged.Merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.sum(), all.sum());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double p : {1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0}) {
    EXPECT_EQ(merged.Percentile(p), all.Percentile(p)) << p;
  }
  LatencyHistogram empty;
  merged.Merge(empty);
  EXPECT_EQ(merged.count(), all.count());
  empty.Merge(all);
  EXPECT_EQ(empty.Summary(), all.Summary());
}

// A histogram saved as its parts (a worker group's state) and merged back.
TEST(LatencyHistogramTest, MergeBucketsEqualsMerge) {
  LatencyHistogram a, b;
  for (uint64_t v = 1; v < 3000; ++v) (v % 2 ? a : b).Add(v * 37 % 90'001);
  LatencyHistogram want = a;
  want.Merge(b);
  LatencyHistogram got = a;
  ASSERT_TRUE(got.MergeBuckets(b.bucket_counts(), b.sum(), b.min(), b.max()));
  EXPECT_EQ(got.Summary(), want.Summary());
  EXPECT_EQ(got.bucket_counts(), want.bucket_counts());
  EXPECT_EQ(got.min(), want.min());
  // Empty parts merge as nothing.
  ASSERT_TRUE(got.MergeBuckets({}, 0, 0, 0));
  EXPECT_EQ(got.Summary(), want.Summary());
}

TEST(LatencyHistogramTest, MergeBucketsRefusesWhatNoHistogramHas) {
  LatencyHistogram h;
  h.Add(500);
  const LatencySummary before = h.Summary();
  std::vector<uint64_t> counts(LatencyHistogram::BucketOf(1000) + 1, 0);
  counts.back() = 1;
  EXPECT_FALSE(h.MergeBuckets(counts, 1000, 2000, 1000));        // min above max
  EXPECT_FALSE(h.MergeBuckets(counts, 1000, 1000, UINT64_MAX));  // max past the buckets
  EXPECT_FALSE(h.MergeBuckets({UINT64_MAX, 1}, 1, 0, 1));        // counts overflow
  EXPECT_FALSE(h.MergeBuckets(std::vector<uint64_t>(LatencyHistogram::BucketOf(UINT64_MAX) + 2, 1),
                              0, 0, UINT64_MAX));  // more buckets than any value needs
  EXPECT_EQ(h.Summary(), before);
  EXPECT_TRUE(h.MergeBuckets(counts, 1000, 1000, 1000));
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.max(), 1000u);
}

TEST(LatencyHistogramTest, BucketsCoverEveryValueWithBoundedWidth) {
  std::vector<uint64_t> values = {0,
                                  1,
                                  255,
                                  256,
                                  257,
                                  511,
                                  512,
                                  1023,
                                  1024,
                                  99'999,
                                  1ull << 40,
                                  (1ull << 40) + 12345,
                                  UINT64_MAX - 1,
                                  UINT64_MAX};
  for (uint64_t shift = 0; shift < 64; ++shift) values.push_back(1ull << shift);
  for (uint64_t v : values) {
    size_t b = LatencyHistogram::BucketOf(v);
    uint64_t lo = LatencyHistogram::LowestOf(b), hi = LatencyHistogram::HighestOf(b);
    EXPECT_LE(lo, v) << v;
    EXPECT_GE(hi, v) << v;
    EXPECT_LE(static_cast<double>(hi - lo), static_cast<double>(lo) / 128.0) << v;
    if (b > 0) {
      EXPECT_EQ(LatencyHistogram::HighestOf(b - 1) + 1, lo) << v;
    }
  }
  LatencyHistogram h;
  h.Add(UINT64_MAX);
  EXPECT_EQ(h.Percentile(50), UINT64_MAX);
}

TEST(LatencyHistogramTest, SummaryHasTheFourPercentiles) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 1000; ++v) h.Add(v * 1000);
  LatencySummary s = h.Summary();
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.sum_us, 500'500'000u);
  EXPECT_TRUE(Close(s.p50_us, 500'000));
  EXPECT_TRUE(Close(s.p90_us, 900'000));
  EXPECT_TRUE(Close(s.p99_us, 990'000));
  EXPECT_EQ(s.max_us, 1'000'000u);
}

}  // namespace
}  // namespace doppel
