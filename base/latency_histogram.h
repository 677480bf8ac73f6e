// LatencyHistogram: log-bucketed (HDR-style) counts of latencies in microseconds.
//
// Values below 256 are counted exactly. Above, each power-of-two range [2^k, 2^(k+1)) is
// split into 128 equal buckets, so a bucket is at most 1/128 (0.78 %) of its values wide and
// a percentile is reported within that precision. Buckets are allocated up to the largest
// value seen (a 60 s maximum needs ~2,600 buckets, ~21 KiB). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace doppel {

// What reports show of a latency distribution.
struct LatencySummary {
  uint64_t count = 0;
  uint64_t sum_us = 0;
  uint64_t p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
  bool operator==(const LatencySummary&) const = default;
};

class LatencyHistogram {
 public:
  void Add(uint64_t value_us, uint64_t count = 1);
  void Merge(const LatencyHistogram& other);
  // Merges a histogram given by its parts (bucket_counts(), sum(), min(), max() of another),
  // as read back from a saved state. False, and nothing merged, when the parts cannot be a
  // histogram's (more buckets than any uint64_t needs, min above max, counts that overflow).
  bool MergeBuckets(const std::vector<uint64_t>& counts, uint64_t sum, uint64_t min, uint64_t max);

  // The smallest bucket value v such that at least `percent` % of the recorded values are
  // <= v (the highest value of that bucket, capped at max()); 0 when empty. `percent` is
  // clamped to [0, 100]; 100 is max().
  uint64_t Percentile(double percent) const;

  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }

  // count, sum, p50, p90, p99, max.
  LatencySummary Summary() const;

  // The count of every bucket, indexed like BucketOf; sized up to the largest value's bucket.
  // For exporting the distribution (report/aggregate.cc coarsens it for percentile plots).
  const std::vector<uint64_t>& bucket_counts() const { return counts_; }

  // Bucket arithmetic, exposed for tests.
  static size_t BucketOf(uint64_t value);
  static uint64_t LowestOf(size_t bucket);
  static uint64_t HighestOf(size_t bucket);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace doppel
