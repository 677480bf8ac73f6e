// A tiny metrics registry: counters, gauges and fixed-bucket latency histograms, rendered in
// the Prometheus text exposition format (version 0.0.4).
//
// Thread safety: metrics are registered at start-up (not thread-safe); updating a metric and
// rendering are safe from any thread (relaxed atomics: a scrape may see a histogram whose
// count and buckets are a few observations apart).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace doppel::net {

class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { value_.fetch_add(d, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Upper bound (µs) of the bucket holding quantile q (0..1) of non-cumulative bucket `counts`
// with upper bounds `bounds_us` (counts has one more entry: the +Inf overflow, reported as
// the last bound); 0 when every count is 0. Coarse by design.
uint64_t QuantileUsFromBuckets(const std::vector<uint64_t>& counts,
                               const std::vector<uint64_t>& bounds_us, double q);

// Latency histogram with fixed upper bounds in microseconds; rendered in seconds.
class Histogram {
 public:
  // Default buckets: 50 µs .. 10 s.
  static std::vector<uint64_t> DefaultLatencyBoundsUs();
  explicit Histogram(std::vector<uint64_t> bounds_us);
  void ObserveUs(uint64_t us);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum_us() const { return sum_us_.load(std::memory_order_relaxed); }
  const std::vector<uint64_t>& bounds_us() const { return bounds_us_; }
  // Non-cumulative count of bucket i (i == bounds.size() is the +Inf overflow bucket).
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  // Upper bound (µs) of the bucket holding quantile q (0..1); 0 when empty. Coarse by design.
  uint64_t ApproximateQuantileUs(double q) const;

 private:
  std::vector<uint64_t> bounds_us_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

class MetricsRegistry {
 public:
  // `labels` is the label set as Prometheus text without braces, e.g. `class="2xx"`; metrics
  // sharing a name share one HELP/TYPE header. The returned pointer lives as long as the
  // registry. Adding a series that exists (same name, labels and type) returns the existing
  // one, so a part rebuilt at run time (a reloaded mirror) keeps counting where it was; a
  // gauge function added again replaces the old one. Thread-safe.
  Counter* AddCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Gauge* AddGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  // A gauge read by calling `read` at render time (must be thread-safe).
  void AddGaugeFunction(const std::string& name, const std::string& help,
                        std::function<double()> read, const std::string& labels = "");
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<uint64_t> bounds_us = Histogram::DefaultLatencyBoundsUs(),
                          const std::string& labels = "");

  std::string RenderPrometheus() const;

 private:
  enum class Type { kCounter, kGauge, kGaugeFunction, kHistogram };
  struct Entry {
    std::string name, help, labels;
    Type type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::function<double()> read;
    std::unique_ptr<Histogram> histogram;
  };
  // The series (name, labels), new or existing; *created tells which. REQUIRES: mu_ held.
  Entry& Add(const std::string& name, const std::string& help, const std::string& labels, Type t,
             bool* created);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

}  // namespace doppel::net
