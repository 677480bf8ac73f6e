#include "recorder/coverage_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "base/units.h"

namespace doppel::recorder {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSlack = 0.9;  // the water level aims under the budget so the bucket refills
constexpr uint64_t kSecondUs = 1'000'000;
constexpr uint64_t kRecomputeEvery = 1024;  // decisions
constexpr double kRenormalizeAt = 1e12;     // forward-decay factor before weights are rescaled
constexpr double kGrantedDecay = 0.95;      // moving average of a class's granted tokens
constexpr double kMinProbability = 1e-6;

double ToUnit(uint64_t draw) { return static_cast<double>(draw >> 11) * 0x1.0p-53; }

// Most frequent first; equal shares by label, so the order does not depend on the table's.
void SortByShare(std::vector<ClassStat>* classes) {
  std::sort(classes->begin(), classes->end(), [](const ClassStat& a, const ClassStat& b) {
    return a.share != b.share ? a.share > b.share : *a.label < *b.label;
  });
}

}  // namespace

Result<SampleBudget> ParseSampleBudget(std::string_view text) {
  const std::string s(text);
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--sample-budget '" + s + "': " + why +
                                   "; give a rate such as 200/s (or 50/1m) or a share of the "
                                   "requests such as 5%");
  };
  SampleBudget b;
  b.text = s;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end == s.c_str()) return bad("not a number");
  const std::string rest(end);
  if (rest == "%") {
    if (!(v > 0 && v <= 100)) return bad("the share must be above 0% and at most 100%");
    b.kind = SampleBudget::Kind::kFraction;
    b.fraction = v / 100;
    return b;
  }
  if (rest.empty() || rest.front() != '/') return bad("no unit");
  std::string per = rest.substr(1);
  // "/s" means one second: a bare unit is one of it.
  if (!per.empty() && !std::isdigit(static_cast<unsigned char>(per.front()))) per = "1" + per;
  auto us = ParseDurationUs(per, /*default_unit_us=*/0);
  if (!us.ok() || *us == 0) return bad("'" + rest.substr(1) + "' is not a duration");
  if (!(v > 0) || !std::isfinite(v)) return bad("the rate must be above 0");
  b.kind = SampleBudget::Kind::kRate;
  b.per_second = v * 1e6 / static_cast<double>(*us);
  return b;
}

CoverageSampler::CoverageSampler(CoverageOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  const uint64_t now = clock_.NowUs();
  decay_origin_us_ = last_refill_us_ = window_start_us_ = last_recompute_us_ = now;
  last_publish_us_ = now;
  capacity_ = options_.budget.kind == SampleBudget::Kind::kRate
                  ? std::max(1.0, options_.budget.per_second)
                  : std::max(1.0, 1000 * options_.budget.fraction);
  tokens_ = capacity_;
  water_level_ = kInf;
  entries_.reserve(std::min<size_t>(options_.max_classes, 1024));
  published_ = std::make_shared<CoverageSnapshot>();
}

double CoverageSampler::Gain(uint64_t now_us) {
  const double elapsed = static_cast<double>(now_us - decay_origin_us_);
  double g = std::exp2(elapsed / static_cast<double>(options_.half_life_us));
  if (g > kRenormalizeAt) {
    for (Entry& e : entries_) {
      e.weight /= g;
      e.error /= g;
    }
    total_weight_ /= g;
    decay_origin_us_ = now_us;
    g = 1;
  }
  return g;
}

CoverageSampler::Entry& CoverageSampler::Find(uint64_t class_id, std::string_view label,
                                              bool* changed) {
  auto it = index_.find(class_id);
  if (it != index_.end()) return entries_[it->second];
  *changed = true;
  const std::string_view shown = label.substr(0, options_.max_label_bytes);
  if (entries_.size() < std::max<size_t>(1, options_.max_classes)) {
    index_.emplace(class_id, entries_.size());
    entries_.push_back(Entry{class_id, std::make_shared<const std::string>(shown)});
    return entries_.back();
  }
  // Space-saving: the least weighty class makes room; the newcomer inherits its weight as
  // error (its true weight is at most that much higher than its count).
  size_t min_i = 0;
  for (size_t i = 1; i < entries_.size(); ++i) {
    if (entries_[i].weight < entries_[min_i].weight) min_i = i;
  }
  Entry& e = entries_[min_i];
  index_.erase(e.id);
  index_.emplace(class_id, min_i);
  const double inherited = e.weight;
  e = Entry{class_id, std::make_shared<const std::string>(shown)};
  e.weight = e.error = inherited;
  return e;
}

void CoverageSampler::Refill(uint64_t now_us) {
  if (options_.budget.kind == SampleBudget::Kind::kFraction) {
    tokens_ = std::min(capacity_, tokens_ + options_.budget.fraction);
    return;
  }
  const double elapsed_s = static_cast<double>(now_us - last_refill_us_) / 1e6;
  last_refill_us_ = now_us;
  tokens_ = std::min(capacity_, tokens_ + elapsed_s * options_.budget.per_second);
  ++window_requests_;
  if (now_us - window_start_us_ >= kSecondUs) {
    const double rate = static_cast<double>(window_requests_) * 1e6 /
                        static_cast<double>(now_us - window_start_us_);
    arrival_rate_ = arrival_rate_ == 0 ? rate : 0.5 * arrival_rate_ + 0.5 * rate;
    window_start_us_ = now_us;
    window_requests_ = 0;
  }
}

// Water-filling: the level t with sum_c min(s_c, t) = target.
void CoverageSampler::Recompute(uint64_t now_us) {
  since_recompute_ = 0;
  last_recompute_us_ = now_us;
  double fraction = options_.budget.fraction;
  if (options_.budget.kind == SampleBudget::Kind::kRate) {
    double rate = arrival_rate_;
    if (rate == 0 && now_us > window_start_us_) {
      // The first second is not over: its requests so far.
      rate = static_cast<double>(window_requests_) * 1e6 /
             static_cast<double>(now_us - window_start_us_);
    }
    fraction = rate > 0 ? options_.budget.per_second / rate : 1;
  }
  double remaining = kSlack * fraction;
  if (remaining >= 1 || total_weight_ <= 0) {
    water_level_ = kInf;
    return;
  }
  std::vector<double> shares;
  shares.reserve(entries_.size());
  for (const Entry& e : entries_) shares.push_back(e.weight / total_weight_);
  std::sort(shares.begin(), shares.end());
  max_share_ = shares.empty() ? 0 : shares.back();
  water_level_ = kInf;
  for (size_t i = 0; i < shares.size(); ++i) {
    const double left = static_cast<double>(shares.size() - i);
    if (shares[i] * left > remaining) {
      water_level_ = remaining / left;
      return;
    }
    remaining -= shares[i];
  }
}

double CoverageSampler::ProbabilityOf(const Entry& e) const {
  if (water_level_ == kInf || total_weight_ <= 0) return 1;
  const double share = e.weight / total_weight_;
  return share <= water_level_ ? 1 : water_level_ / share;
}

CoverageSampler::Decision CoverageSampler::Decide(uint64_t class_id, std::string_view label,
                                                  uint64_t draw) {
  const uint64_t now = clock_.NowUs();
  ++decisions_;
  Refill(now);
  const double gain = Gain(now);
  bool changed = false;
  Entry& e = Find(class_id, label, &changed);
  e.weight += gain;
  total_weight_ += gain;
  ++e.seen;
  // Early on the shares move fast: every 64 decisions for the first 8192.
  const uint64_t every = decisions_ < 8192 ? 64 : kRecomputeEvery;
  if (++since_recompute_ >= every || now - last_recompute_us_ >= kSecondUs) {
    Recompute(now);
  }
  const double p = ProbabilityOf(e);
  Decision d;
  const bool minimum = e.kept < options_.per_class_min;
  if (minimum || ToUnit(draw) < p) {
    // Rare first: a class over the water level may only spend the bucket down to a floor
    // that grows with its share, up to half the bucket for the most frequent class, and is
    // at least a tenth of the bucket: that much is kept for the classes under the level.
    // Covered classes leave a token for a class not covered yet: a class's first envelope may
    // take the last one, whatever its share looks like (a class new to a young estimate
    // looks frequent), so while new classes arrive faster than the budget refills (the start
    // of a recording, or hundreds of classes at a small budget) every class seen gets one.
    double floor = 0;
    if (e.kept > 0) {
      floor = std::min(1.0, (capacity_ - 1) / 2);
      if (p < 1 && max_share_ > 0) {
        floor = std::max(std::max(1.0, capacity_ / 10),
                         capacity_ / 2 * std::min(1.0, e.weight / total_weight_ / max_share_));
      }
    }
    const bool granted = tokens_ >= 1 && tokens_ - 1 >= floor - 1e-9;
    // The share of the class's wanted envelopes the bucket lets through (moving average over
    // about 20): the envelope's inclusion probability is p times that, so 1/p weights still
    // add up to the class's requests while the budget is short.
    e.granted = kGrantedDecay * e.granted + (1 - kGrantedDecay) * (granted ? 1 : 0);
    if (granted) {
      tokens_ -= 1;
      d.keep = true;
      d.probability = std::max(kMinProbability, (minimum ? 1 : p) * e.granted);
      if (e.kept++ == 0) changed = true;
      ++kept_;
    } else {
      ++denied_;
    }
  }
  if (changed || now - last_publish_us_ >= kSecondUs) Publish();
  return d;
}

void CoverageSampler::Seed(uint64_t class_id, std::string_view label, double count) {
  if (!(count > 0)) return;
  const uint64_t now = clock_.NowUs();
  // Seen one half-life ago: half the weight of as many requests now.
  const double w = count * Gain(now) / 2;
  bool changed = false;
  Entry& e = Find(class_id, label, &changed);
  e.weight += w;
  total_weight_ += w;
  since_recompute_ = kRecomputeEvery;  // the first Decide recomputes (once for all seeds)
}

CoverageSnapshot CoverageSampler::Unsorted() const {
  CoverageSnapshot s;
  s.decisions = decisions_;
  s.kept = kept_;
  s.denied_by_budget = denied_;
  s.water_level = water_level_;
  s.classes.reserve(entries_.size());
  for (const Entry& e : entries_) {
    ClassStat c;
    c.id = e.id;
    c.label = e.label;
    c.seen = e.seen;
    c.kept = e.kept;
    c.share = total_weight_ > 0 ? e.weight / total_weight_ : 0;
    c.error = total_weight_ > 0 ? e.error / total_weight_ : 0;
    c.probability = e.kept < options_.per_class_min ? 1 : ProbabilityOf(e);
    s.classes.push_back(std::move(c));
  }
  return s;
}

CoverageSnapshot CoverageSampler::Snapshot() const {
  CoverageSnapshot s = Unsorted();
  SortByShare(&s.classes);
  return s;
}

void CoverageSampler::Publish() {
  last_publish_us_ = clock_.NowUs();
  auto snap = std::make_shared<const CoverageSnapshot>(Unsorted());
  std::lock_guard<std::mutex> lock(published_mu_);
  published_ = std::move(snap);
}

std::shared_ptr<const CoverageSnapshot> CoverageSampler::Published() const {
  std::lock_guard<std::mutex> lock(published_mu_);
  return published_;
}

CoverageSnapshot MergeSnapshots(const std::vector<std::shared_ptr<const CoverageSnapshot>>& parts) {
  CoverageSnapshot out;
  if (parts.size() == 1 && parts[0]) {
    out = *parts[0];
    SortByShare(&out.classes);
    return out;
  }
  out.water_level = kInf;
  std::unordered_map<uint64_t, size_t> index;
  std::vector<double> weight_sum;  // per merged class: the decisions its shares were weighted by
  for (const auto& p : parts) {
    if (!p) continue;
    out.decisions += p->decisions;
    out.kept += p->kept;
    out.denied_by_budget += p->denied_by_budget;
    out.water_level = std::min(out.water_level, p->water_level);
    const double w = static_cast<double>(std::max<uint64_t>(1, p->decisions));
    for (const ClassStat& c : p->classes) {
      auto [it, inserted] = index.emplace(c.id, out.classes.size());
      if (inserted) {
        out.classes.push_back(c);
        out.classes.back().share = c.share * w;
        out.classes.back().error = c.error * w;
        out.classes.back().probability = c.probability * w;
        weight_sum.push_back(w);
        continue;
      }
      ClassStat& m = out.classes[it->second];
      m.seen += c.seen;
      m.kept += c.kept;
      m.share += c.share * w;
      m.error += c.error * w;
      m.probability += c.probability * w;
      weight_sum[it->second] += w;
    }
  }
  double total = 0;
  for (const auto& p : parts) {
    if (p) total += static_cast<double>(std::max<uint64_t>(1, p->decisions));
  }
  for (size_t i = 0; i < out.classes.size(); ++i) {
    ClassStat& c = out.classes[i];
    c.probability /= weight_sum[i];
    // A thread that never saw the class saw a share of 0 of it.
    c.share /= total;
    c.error /= total;
  }
  SortByShare(&out.classes);
  return out;
}

}  // namespace doppel::recorder
