#include "net/metrics.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace doppel::net {

std::vector<uint64_t> Histogram::DefaultLatencyBoundsUs() {
  return {50,    100,    250,    500,    1000,    2500,    5000,    10000,   25000,
          50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
}

Histogram::Histogram(std::vector<uint64_t> bounds_us)
    : bounds_us_(std::move(bounds_us)), buckets_(new std::atomic<uint64_t>[bounds_us_.size() + 1]) {
  std::sort(bounds_us_.begin(), bounds_us_.end());
  for (size_t i = 0; i <= bounds_us_.size(); ++i) buckets_[i].store(0);
}

void Histogram::ObserveUs(uint64_t us) {
  const size_t i = std::lower_bound(bounds_us_.begin(), bounds_us_.end(), us) - bounds_us_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(us, std::memory_order_relaxed);
}

uint64_t QuantileUsFromBuckets(const std::vector<uint64_t>& counts,
                               const std::vector<uint64_t>& bounds_us, double q) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < bounds_us.size() && i < counts.size(); ++i) {
    seen += counts[i];
    if (static_cast<double>(seen) >= want) return bounds_us[i];
  }
  return bounds_us.empty() ? 0 : bounds_us.back();
}

uint64_t Histogram::ApproximateQuantileUs(double q) const {
  std::vector<uint64_t> counts(bounds_us_.size() + 1);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = bucket(i);
  return QuantileUsFromBuckets(counts, bounds_us_, q);
}

MetricsRegistry::Entry& MetricsRegistry::Add(const std::string& name, const std::string& help,
                                             const std::string& labels, Type t, bool* created) {
  for (const auto& e : entries_) {
    if (e->name == name && e->labels == labels && e->type == t) {
      *created = false;
      return *e;
    }
  }
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->labels = labels;
  e->type = t;
  entries_.push_back(std::move(e));
  *created = true;
  return *entries_.back();
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Entry& e = Add(name, help, labels, Type::kCounter, &created);
  if (created) e.counter = std::make_unique<Counter>();
  return e.counter.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Entry& e = Add(name, help, labels, Type::kGauge, &created);
  if (created) e.gauge = std::make_unique<Gauge>();
  return e.gauge.get();
}

void MetricsRegistry::AddGaugeFunction(const std::string& name, const std::string& help,
                                       std::function<double()> read, const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Add(name, help, labels, Type::kGaugeFunction, &created).read = std::move(read);
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<uint64_t> bounds_us,
                                         const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  bool created = false;
  Entry& e = Add(name, help, labels, Type::kHistogram, &created);
  if (created) e.histogram = std::make_unique<Histogram>(std::move(bounds_us));
  return e.histogram.get();
}

namespace {

std::string FormatSeconds(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(us) / 1e6);
  return buf;
}

std::string FormatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string Braced(const std::string& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  if (labels.empty()) return "{" + extra + "}";
  if (extra.empty()) return "{" + labels + "}";
  return "{" + labels + "," + extra + "}";
}

}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  // Group by name, keeping first-registration order.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const Entry*>> by_name;
  for (const auto& e : entries_) {
    auto& list = by_name[e->name];
    if (list.empty()) order.push_back(e->name);
    list.push_back(e.get());
  }
  std::string out;
  for (const std::string& name : order) {
    const auto& list = by_name[name];
    const Entry& first = *list.front();
    static constexpr const char* kTypeNames[] = {"counter", "gauge", "gauge", "histogram"};
    out += "# HELP " + name + " " + first.help + "\n";
    out += "# TYPE " + name + " " + kTypeNames[static_cast<int>(first.type)] + "\n";
    for (const Entry* e : list) {
      switch (e->type) {
        case Type::kCounter:
          out += name + Braced(e->labels) + " " + std::to_string(e->counter->value()) + "\n";
          break;
        case Type::kGauge:
          out += name + Braced(e->labels) + " " + std::to_string(e->gauge->value()) + "\n";
          break;
        case Type::kGaugeFunction:
          out += name + Braced(e->labels) + " " + FormatDouble(e->read()) + "\n";
          break;
        case Type::kHistogram: {
          const Histogram& h = *e->histogram;
          uint64_t cumulative = 0;
          for (size_t i = 0; i < h.bounds_us().size(); ++i) {
            cumulative += h.bucket(i);
            out += name + "_bucket" +
                   Braced(e->labels, "le=\"" + FormatSeconds(h.bounds_us()[i]) + "\"") + " " +
                   std::to_string(cumulative) + "\n";
          }
          cumulative += h.bucket(h.bounds_us().size());
          out += name + "_bucket" + Braced(e->labels, "le=\"+Inf\"") + " " +
                 std::to_string(cumulative) + "\n";
          out += name + "_sum" + Braced(e->labels) + " " +
                 FormatDouble(static_cast<double>(h.sum_us()) / 1e6) + "\n";
          // _count equals the +Inf bucket, so a scrape is self-consistent.
          out += name + "_count" + Braced(e->labels) + " " + std::to_string(cumulative) + "\n";
          break;
        }
      }
    }
  }
  return out;
}

}  // namespace doppel::net
