#include "base/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace doppel {
namespace {

constexpr int kSubBits = 7;                      // 128 buckets per power of two
constexpr uint64_t kSubCount = 1u << kSubBits;   // 128
constexpr uint64_t kExactBelow = kSubCount * 2;  // 256: values below are their own bucket

}  // namespace

size_t LatencyHistogram::BucketOf(uint64_t value) {
  if (value < kExactBelow) return static_cast<size_t>(value);
  int k = 63 - std::countl_zero(value);  // >= 8
  int shift = k - kSubBits;
  return static_cast<size_t>(kExactBelow + static_cast<uint64_t>(k - (kSubBits + 1)) * kSubCount +
                             ((value >> shift) - kSubCount));
}

uint64_t LatencyHistogram::LowestOf(size_t bucket) {
  if (bucket < kExactBelow) return bucket;
  uint64_t octave = (bucket - kExactBelow) / kSubCount;
  uint64_t sub = (bucket - kExactBelow) % kSubCount;
  int shift = static_cast<int>(octave) + 1;  // k - kSubBits with k = octave + 8
  return (kSubCount + sub) << shift;
}

uint64_t LatencyHistogram::HighestOf(size_t bucket) {
  if (bucket < kExactBelow) return bucket;
  uint64_t octave = (bucket - kExactBelow) / kSubCount;
  int shift = static_cast<int>(octave) + 1;
  return LowestOf(bucket) + ((uint64_t{1} << shift) - 1);
}

void LatencyHistogram::Add(uint64_t value_us, uint64_t count) {
  if (count == 0) return;
  size_t b = BucketOf(value_us);
  if (b >= counts_.size()) counts_.resize(b + 1, 0);
  counts_[b] += count;
  count_ += count;
  sum_ += value_us * count;
  min_ = std::min(min_, value_us);
  max_ = std::max(max_, value_us);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (other.counts_.size() > counts_.size()) counts_.resize(other.counts_.size(), 0);
  for (size_t i = 0; i < other.counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

bool LatencyHistogram::MergeBuckets(const std::vector<uint64_t>& counts, uint64_t sum, uint64_t min,
                                    uint64_t max) {
  uint64_t total = 0;
  for (uint64_t c : counts) {
    if (c > UINT64_MAX - total) return false;
    total += c;
  }
  if (total == 0) return true;
  if (counts.size() > BucketOf(UINT64_MAX) + 1 || min > max || BucketOf(max) >= counts.size() ||
      total > UINT64_MAX - count_) {
    return false;
  }
  if (counts.size() > counts_.size()) counts_.resize(counts.size(), 0);
  for (size_t i = 0; i < counts.size(); ++i) counts_[i] += counts[i];
  count_ += total;
  sum_ += sum;
  min_ = std::min(min_, min);
  max_ = std::max(max_, max);
  return true;
}

uint64_t LatencyHistogram::Percentile(double percent) const {
  if (count_ == 0) return 0;
  if (!(percent > 0)) return min_;
  if (percent >= 100) return max_;
  auto rank = static_cast<uint64_t>(std::ceil(percent / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    seen += counts_[b];
    if (seen >= rank) return std::clamp(HighestOf(b), min_, max_);
  }
  return max_;
}

LatencySummary LatencyHistogram::Summary() const {
  LatencySummary s;
  s.count = count_;
  s.sum_us = sum_;
  s.p50_us = Percentile(50);
  s.p90_us = Percentile(90);
  s.p99_us = Percentile(99);
  s.max_us = max();
  return s;
}

}  // namespace doppel
