#include "report/aggregate.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <unordered_map>
#include <utility>

#include "base/latency_histogram.h"
#include "report/excerpt.h"
#include "report/noise_mask.h"

namespace doppel::report {
namespace {

// The bucket an endpoint is counted in: its own name while fewer than `max` named endpoints
// exist, else kOtherEndpoints, which is not one of them (so a merged state that lists
// "(other endpoints)" before named ones folds the same endpoints as the run that wrote it).
template <typename Map>
std::string BucketName(const Map& endpoints, std::string_view name, size_t max) {
  const std::string other(kOtherEndpoints);
  if (name == kOtherEndpoints) return other;
  const size_t named = endpoints.size() - endpoints.count(other);
  return named < max ? SanitizeUtf8(name) : other;
}

// The diffs of one comparison grouped by field (FieldOf): one entry per field.
struct FieldGroup {
  const diff::FieldDiff* first = nullptr;  // the first concrete diff, for an exemplar
  diff::Severity severity = diff::Severity::kLow;
  uint32_t kinds = 0;  // bit per DiffKind
};
using Groups = std::map<std::string, FieldGroup>;

Groups GroupDiffs(const diff::DiffResult* result) {
  Groups groups;
  if (result == nullptr) return groups;
  for (const diff::FieldDiff& d : result->diffs) {
    auto [it, inserted] = groups.try_emplace(FieldOf(d.path));
    FieldGroup& g = it->second;
    if (inserted) {
      g.first = &d;
      g.severity = d.severity;
    } else {
      g.severity = std::max(g.severity, d.severity);
    }
    g.kinds |= 1u << static_cast<unsigned>(d.kind);
  }
  return groups;
}

// The names of the kinds in `mask` (a bit per DiffKind), in DiffKind order.
void AddKinds(uint32_t mask, google::protobuf::RepeatedPtrField<std::string>* kinds) {
  for (unsigned k = 0; k <= static_cast<unsigned>(diff::DiffKind::kUncompared); ++k) {
    if (mask & (1u << k)) kinds->Add(std::string(diff::KindName(static_cast<diff::DiffKind>(k))));
  }
}

// Sorted by count (descending), then path.
void AddSortedCounts(const std::unordered_map<std::string, uint64_t>& counts,
                     google::protobuf::RepeatedPtrField<PathCount>* out) {
  std::vector<std::pair<std::string, uint64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  for (auto& [path, count] : sorted) {
    PathCount* c = out->Add();
    c->set_path(std::move(path));
    c->set_count(count);
  }
}

// Reports carry p-values to 6 significant digits: enough to read, and stable across libm
// implementations, so a stored report does not change with the machine that rendered it.
double SixDigits(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return std::strtod(buf, nullptr);
}

double Rate(uint64_t count, uint64_t total) {
  return total == 0 ? 0.0 : static_cast<double>(count) / static_cast<double>(total);
}

// Counts per bucket of whole seconds of the recording's clock, bounded to kMaxTimelineBuckets
// by doubling the bucket width. Buckets are keyed by arrival second / width, so they stay
// aligned whatever order observations come in (a replay completes requests slightly out of
// arrival order).
class TimelineCounter {
 public:
  void Add(uint64_t arrival_us, bool error, bool mismatch) {
    AddAt(arrival_us / 1'000'000, Counts{1, mismatch ? 1u : 0u, error ? 1u : 0u});
  }

  void Save(v1::TimelineState* out) const {
    out->set_bucket_seconds(width_);
    for (const auto& [key, c] : buckets_) {
      out->add_keys(key);
      out->add_requests(c.requests);
      out->add_mismatches(c.mismatches);
      out->add_errors(c.errors);
    }
  }

  // Adds a saved timeline (Save); false, with nothing added, when it is not one.
  bool Merge(const v1::TimelineState& in) {
    const int n = in.keys_size();
    if (n == 0) return true;
    const uint64_t w = in.bucket_seconds();
    if (w == 0 || (w & (w - 1)) != 0 || in.requests_size() != n || in.mismatches_size() != n ||
        in.errors_size() != n) {
      return false;
    }
    for (uint64_t key : in.keys())
      if (key > UINT64_MAX / w) return false;
    while (width_ < w) Coarsen();
    for (int i = 0; i < n; ++i)
      AddAt(in.keys(i) * w, Counts{in.requests(i), in.mismatches(i), in.errors(i)});
    return true;
  }

  v1::Timeline ToProto() const {
    v1::Timeline out;
    if (buckets_.empty()) return out;
    const uint64_t first = buckets_.begin()->first;
    out.set_start_us(first * width_ * 1'000'000);
    out.set_bucket_seconds(static_cast<uint32_t>(width_));
    for (uint64_t key = first; key <= buckets_.rbegin()->first; ++key) {
      auto it = buckets_.find(key);
      const Counts c = it == buckets_.end() ? Counts() : it->second;
      out.add_requests(c.requests);
      out.add_mismatches(c.mismatches);
      out.add_errors(c.errors);
    }
    return out;
  }

 private:
  struct Counts {
    uint64_t requests = 0, mismatches = 0, errors = 0;
  };

  // Adds `add` to the bucket holding second `second` of the recording's clock.
  void AddAt(uint64_t second, const Counts& add) {
    uint64_t key = second / width_;
    if (!buckets_.empty()) {
      uint64_t lo = std::min(key, buckets_.begin()->first);
      uint64_t hi = std::max(key, buckets_.rbegin()->first);
      while (hi - lo >= kMaxTimelineBuckets) {
        Coarsen();
        key /= 2;
        lo /= 2;
        hi /= 2;
      }
    }
    Counts& c = buckets_[key];
    c.requests += add.requests;
    c.mismatches += add.mismatches;
    c.errors += add.errors;
  }

  void Coarsen() {
    std::map<uint64_t, Counts> wider;
    for (const auto& [key, c] : buckets_) {
      Counts& w = wider[key / 2];
      w.requests += c.requests;
      w.mismatches += c.mismatches;
      w.errors += c.errors;
    }
    buckets_ = std::move(wider);
    width_ *= 2;
  }

  uint64_t width_ = 1;  // seconds per bucket
  std::map<uint64_t, Counts> buckets_;
};

// The decision rules `o` aggregates under, as reports show them.
ReportSettings SettingsOf(const AggregatorOptions& o) {
  ReportSettings settings;
  settings.set_fail_threshold_pct(o.fail_threshold_pct);
  settings.set_fail_on(std::string(diff::SeverityName(o.fail_on)));
  settings.set_alpha(o.thresholds.alpha);
  settings.set_min_samples(o.thresholds.min_samples);
  settings.set_min_rate_difference(o.thresholds.min_rate_difference);
  settings.set_secondary(SanitizeUtf8(o.secondary));
  return settings;
}

}  // namespace

struct RunAggregator::State {
  struct Field {
    uint64_t mismatches = 0;
    uint64_t masked = 0;           // candidate mismatches masked by noise
    uint64_t masked_requests = 0;  // compared requests where the field was masked
    uint64_t noise_mismatches = 0;
    uint32_t kinds = 0;
    int severity = -1;        // worst over unmasked candidate mismatches
    int other_severity = -1;  // worst over masked and noise mismatches
    uint64_t offered = 0, noise_offered = 0;
    std::vector<Exemplar> exemplars, noise_exemplars;
  };
  struct Endpoint {
    uint64_t requests = 0, errors = 0, compared = 0, matched = 0, mismatched = 0;
    v1::FaultCounts faults;  // injected; reported when faults.injected() > 0
    uint64_t noise_compared = 0, untracked_fields = 0;
    std::map<std::string, uint64_t> errors_by_reason;
    StatusCounts status;
    LatencyHistogram recorded, latency;
    std::unordered_map<std::string, Field> fields;
    std::unordered_map<std::string, uint64_t> normalized, ignored;
  };
  struct Target {
    std::map<std::string, Endpoint> endpoints;
    TimelineCounter timeline;
  };

  std::vector<Target> targets;
  uint64_t rng = 0;
  size_t body_bytes = 0;  // exemplar bodies held, against max_exemplar_body_bytes

  // Puts `e` at `slot` of a reservoir (appending when slot == size), keeping body_bytes.
  void Place(std::vector<Exemplar>* items, size_t slot, Exemplar e) {
    body_bytes += e.expected_body().size() + e.actual_body().size();
    if (slot == items->size()) {
      items->push_back(std::move(e));
      return;
    }
    Exemplar& old = (*items)[slot];
    body_bytes -= old.expected_body().size() + old.actual_body().size();
    old = std::move(e);
  }

  // splitmix64: a fixed, portable sequence (std distributions differ between libraries).
  uint64_t Next() {
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Reservoir sampling (Algorithm R): the slot the offered item goes to, or nullopt.
  std::optional<size_t> Offer(uint64_t* offered, size_t size, size_t capacity) {
    ++*offered;
    if (capacity == 0) return std::nullopt;
    if (size < capacity) return size;
    uint64_t j = Next() % *offered;
    if (j < capacity) return static_cast<size_t>(j);
    return std::nullopt;
  }
};

RunAggregator::RunAggregator(AggregatorOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {
  state_->targets.resize(options_.targets.size());
  state_->rng = options_.seed;
}

RunAggregator::~RunAggregator() = default;

namespace {

// Bodies rendered at most once per observation, and only when an exemplar needs them.
class LazyBodies {
 public:
  LazyBodies(const doppel::v1::Envelope& envelope, const doppel::v1::HttpResponse* actual,
             size_t max_bytes)
      : envelope_(envelope), actual_(actual), max_bytes_(max_bytes) {}
  const std::string& expected() {
    if (!expected_) {
      const doppel::v1::HttpResponse& r = envelope_.response();
      expected_ = BodyForDisplay(r.headers(), r.body(), r.body_truncated(), max_bytes_);
    }
    return *expected_;
  }
  const std::string& actual() {
    if (!actual_body_) {
      actual_body_ = actual_ == nullptr ? std::string()
                                        : BodyForDisplay(actual_->headers(), actual_->body(),
                                                         actual_->body_truncated(), max_bytes_);
    }
    return *actual_body_;
  }

 private:
  const doppel::v1::Envelope& envelope_;
  const doppel::v1::HttpResponse* actual_;
  size_t max_bytes_;
  std::optional<std::string> expected_, actual_body_;
};

Exemplar MakeExemplar(const doppel::v1::Envelope& envelope, const diff::FieldDiff& d,
                      size_t max_request_body_bytes) {
  Exemplar e;
  e.set_method(SanitizeUtf8(envelope.request().method()));
  e.set_target(SanitizeUtf8(envelope.request().target()));
  e.set_request_body(
      diff::Abbreviate(SanitizeUtf8(envelope.request().body()), max_request_body_bytes));
  e.set_path(SanitizeUtf8(d.path));
  e.set_kind(std::string(diff::KindName(d.kind)));
  e.set_severity(std::string(diff::SeverityName(d.severity)));
  e.set_expected(SanitizeUtf8(d.expected));
  e.set_actual(SanitizeUtf8(d.actual));
  e.set_detail(SanitizeUtf8(d.detail));
  e.set_expected_status(envelope.response().status());
  return e;
}

// Counts a faulted exchange (Observation::fault) into `faults`.
void CountFault(const Observation& obs, const NoiseMask& mask, v1::FaultCounts* faults) {
  faults->set_injected(faults->injected() + 1);
  std::string_view kinds = obs.fault;
  while (!kinds.empty()) {
    const size_t plus = kinds.find('+');
    ++(*faults->mutable_by_kind())[SanitizeUtf8(kinds.substr(0, plus))];
    kinds = plus == std::string_view::npos ? std::string_view() : kinds.substr(plus + 1);
  }
  if (obs.actual == nullptr) {
    faults->set_errors(faults->errors() + 1);
    ++(*faults->mutable_errors_by_reason())[obs.error.empty() ? std::string("unknown")
                                                              : SanitizeUtf8(obs.error)];
    return;
  }
  faults->set_answered(faults->answered() + 1);
  if (obs.diff != nullptr && mask.IsMismatch(*obs.diff))
    faults->set_mismatched(faults->mismatched() + 1);
}

// Adds the counts of `from` to `to`.
void AddFaults(const v1::FaultCounts& from, v1::FaultCounts* to) {
  to->set_injected(to->injected() + from.injected());
  for (const auto& [kind, n] : from.by_kind()) (*to->mutable_by_kind())[kind] += n;
  to->set_errors(to->errors() + from.errors());
  for (const auto& [reason, n] : from.errors_by_reason())
    (*to->mutable_errors_by_reason())[reason] += n;
  to->set_answered(to->answered() + from.answered());
  to->set_mismatched(to->mismatched() + from.mismatched());
}

}  // namespace

Status RunAggregator::Add(const Observation& obs) {
  if (obs.target >= state_->targets.size()) {
    return Status::InvalidArgument("observation for target " + std::to_string(obs.target) +
                                   " but the run has " + std::to_string(state_->targets.size()) +
                                   " targets");
  }
  if (obs.envelope == nullptr) return Status::InvalidArgument("observation without envelope");
  State::Target& target = state_->targets[obs.target];
  auto it = target.endpoints.find(obs.endpoint);
  if (it == target.endpoints.end()) {
    it = target.endpoints
             .try_emplace(BucketName(target.endpoints, obs.endpoint, options_.max_endpoints))
             .first;
  }
  State::Endpoint& ep = it->second;
  ++ep.requests;

  // The field's state, or nullptr when the endpoint tracks too many fields already.
  auto field = [&](const std::string& path) -> State::Field* {
    auto f = ep.fields.find(path);
    if (f != ep.fields.end()) return &f->second;
    if (ep.fields.size() >= options_.max_fields_per_endpoint) return nullptr;
    return &ep.fields.try_emplace(path).first->second;
  };
  const size_t capacity = options_.exemplars_per_field;

  // Noise: the secondary against the recording, whatever happened to the candidate.
  Groups noise = GroupDiffs(obs.noise);
  const NoiseMask mask(obs.noise);
  LazyBodies secondary_bodies(*obs.envelope, obs.secondary, options_.max_body_bytes);
  if (obs.noise != nullptr) {
    ++ep.noise_compared;
    for (const auto& [path, g] : noise) {
      State::Field* f = field(path);
      if (f == nullptr) continue;
      ++f->noise_mismatches;
      f->kinds |= g.kinds;
      f->other_severity = std::max(f->other_severity, static_cast<int>(g.severity));
      if (auto slot = state_->Offer(&f->noise_offered, f->noise_exemplars.size(), capacity)) {
        Exemplar e = MakeExemplar(*obs.envelope, *g.first, options_.max_request_body_bytes);
        if (obs.secondary != nullptr) {
          e.set_actual_status(obs.secondary->status());
          if (state_->body_bytes < options_.max_exemplar_body_bytes) {
            e.set_expected_body(secondary_bodies.expected());
            e.set_actual_body(secondary_bodies.actual());
          }
        }
        state_->Place(&f->noise_exemplars, *slot, std::move(e));
      }
    }
  }

  if (!obs.fault.empty()) {
    // The fault's doing, not the target's: counted apart, and nowhere else.
    CountFault(obs, mask, &ep.faults);
    target.timeline.Add(obs.envelope->arrival_us(), /*error=*/false, /*mismatch=*/false);
    return Status::Ok();
  }
  if (obs.actual == nullptr) {
    target.timeline.Add(obs.envelope->arrival_us(), /*error=*/true, /*mismatch=*/false);
    ++ep.errors;
    ++ep.errors_by_reason[obs.error.empty() ? std::string("unknown") : SanitizeUtf8(obs.error)];
    return Status::Ok();
  }
  AddStatus(obs.actual->status(), &ep.status);
  ep.recorded.Add(obs.envelope->response().latency_us());
  ep.latency.Add(obs.latency_us);
  if (obs.diff == nullptr) {
    target.timeline.Add(obs.envelope->arrival_us(), /*error=*/false, /*mismatch=*/false);
    return Status::Ok();
  }

  ++ep.compared;
  for (const auto& [path, g] : noise) {
    if (State::Field* f = field(path)) ++f->masked_requests;
  }
  LazyBodies bodies(*obs.envelope, obs.actual, options_.max_body_bytes);
  const bool mismatch = mask.IsMismatch(*obs.diff);
  for (const auto& [path, g] : GroupDiffs(obs.diff)) {
    const bool masked = mask.Masks(path);
    State::Field* f = field(path);
    if (f == nullptr) {
      if (!masked) ++ep.untracked_fields;
      continue;
    }
    f->kinds |= g.kinds;
    if (masked) {
      ++f->masked;
      f->other_severity = std::max(f->other_severity, static_cast<int>(g.severity));
      continue;
    }
    ++f->mismatches;
    f->severity = std::max(f->severity, static_cast<int>(g.severity));
    if (auto slot = state_->Offer(&f->offered, f->exemplars.size(), capacity)) {
      Exemplar e = MakeExemplar(*obs.envelope, *g.first, options_.max_request_body_bytes);
      e.set_actual_status(obs.actual->status());
      if (state_->body_bytes < options_.max_exemplar_body_bytes) {
        e.set_expected_body(bodies.expected());
        e.set_actual_body(bodies.actual());
      }
      state_->Place(&f->exemplars, *slot, std::move(e));
    }
  }
  ++(mismatch ? ep.mismatched : ep.matched);
  target.timeline.Add(obs.envelope->arrival_us(), /*error=*/false, mismatch);

  // Normalized and ignored paths, once per request and generalized like fields.
  auto count_paths = [&](const std::vector<std::string>& paths,
                         std::unordered_map<std::string, uint64_t>* counts) {
    std::vector<std::string> seen;
    for (const std::string& p : paths) {
      std::string g = FieldOf(p);
      if (std::find(seen.begin(), seen.end(), g) != seen.end()) continue;
      auto c = counts->find(g);
      if (c == counts->end()) {
        if (counts->size() >= options_.max_fields_per_endpoint) continue;
        c = counts->try_emplace(g, 0).first;
      }
      ++c->second;
      seen.push_back(std::move(g));
    }
  };
  count_paths(obs.diff->normalized, &ep.normalized);
  count_paths(obs.diff->ignored, &ep.ignored);
  return Status::Ok();
}

Report RunAggregator::Finish() const {
  Report report;
  report.set_schema(std::string(kReportSchema));
  if (!options_.run_id.empty()) report.set_run_id(SanitizeUtf8(options_.run_id));
  if (!options_.session.empty()) report.set_session(SanitizeUtf8(options_.session));
  if (!options_.generated_at.empty()) report.set_generated_at(SanitizeUtf8(options_.generated_at));
  *report.mutable_settings() = SettingsOf(options_);

  auto over_threshold = [&](uint64_t count, uint64_t total) {
    return total > 0 && 100.0 * static_cast<double>(count) / static_cast<double>(total) >
                            options_.fail_threshold_pct;
  };

  uint64_t regressions = 0, failed_endpoints = 0;
  for (size_t t = 0; t < state_->targets.size(); ++t) {
    const State::Target& ts = state_->targets[t];
    TargetReport& tr = *report.add_targets();
    tr.set_index(static_cast<uint32_t>(t));
    tr.set_name(SanitizeUtf8(options_.targets[t]));
    LatencyHistogram recorded, latency;
    for (const auto& [name, ep] : ts.endpoints) {
      EndpointReport er;
      er.set_name(name);
      er.set_requests(ep.requests);
      er.set_errors(ep.errors);
      er.mutable_errors_by_reason()->insert(ep.errors_by_reason.begin(), ep.errors_by_reason.end());
      *er.mutable_status() = ep.status;
      er.set_compared(ep.compared);
      er.set_matched(ep.matched);
      er.set_mismatched(ep.mismatched);
      er.set_noise_compared(ep.noise_compared);
      er.set_untracked_fields(ep.untracked_fields);
      *er.mutable_recorded_latency() = LatencyOf(ep.recorded);
      *er.mutable_latency() = LatencyOf(ep.latency);
      std::vector<std::pair<FieldVerdict, FieldReport>> fields;
      for (const auto& [path, f] : ep.fields) {
        FieldReport fr;
        fr.set_path(path);
        fr.set_mismatches(f.mismatches);
        fr.set_compared(ep.compared - std::min(ep.compared, f.masked_requests));
        fr.set_rate(Rate(fr.mismatches(), fr.compared()));
        fr.set_masked(f.masked);
        fr.set_noise_mismatches(f.noise_mismatches);
        fr.set_noise_compared(ep.noise_compared);
        fr.set_noise_rate(Rate(fr.noise_mismatches(), fr.noise_compared()));
        AddKinds(f.kinds, fr.mutable_kinds());
        const auto severity = static_cast<diff::Severity>(
            f.severity >= 0 ? f.severity : std::max(f.other_severity, 0));
        fr.set_severity(std::string(diff::SeverityName(severity)));
        fr.set_p_value(SixDigits(diff::RegressionPValue(
            fr.mismatches(), fr.compared(), fr.noise_mismatches(), fr.noise_compared())));
        FieldVerdict verdict = FieldVerdict::kOk;
        if (diff::IsRegression(fr.mismatches(), fr.compared(), fr.noise_mismatches(),
                               fr.noise_compared(), options_.thresholds)) {
          bool fails =
              over_threshold(fr.mismatches(), fr.compared()) && severity >= options_.fail_on;
          verdict = fails ? FieldVerdict::kRegression : FieldVerdict::kTolerated;
        }
        fr.set_verdict(std::string(VerdictName(verdict)));
        if (verdict == FieldVerdict::kRegression) er.set_regressions(er.regressions() + 1);
        fr.mutable_exemplars()->Add(f.exemplars.begin(), f.exemplars.end());
        fr.mutable_noise_exemplars()->Add(f.noise_exemplars.begin(), f.noise_exemplars.end());
        fields.emplace_back(verdict, std::move(fr));
      }
      std::sort(fields.begin(), fields.end(), [](const auto& x, const auto& y) {
        const FieldReport& a = x.second;
        const FieldReport& b = y.second;
        if (x.first != y.first) return x.first > y.first;
        // The status leads: body differences of an error response follow from it.
        if ((a.path() == "status") != (b.path() == "status")) return a.path() == "status";
        if (a.mismatches() != b.mismatches()) return a.mismatches() > b.mismatches();
        if (a.noise_mismatches() != b.noise_mismatches()) {
          return a.noise_mismatches() > b.noise_mismatches();
        }
        return a.path() < b.path();
      });
      for (auto& [verdict, fr] : fields) er.mutable_fields()->Add(std::move(fr));
      AddSortedCounts(ep.normalized, er.mutable_normalized());
      AddSortedCounts(ep.ignored, er.mutable_ignored());
      if (ep.faults.injected() > 0) *er.mutable_faults() = ep.faults;
      // The organic error rate: exchanges with injected faults are out of both counts.
      er.set_error_rate_exceeded(over_threshold(ep.errors, ep.requests - ep.faults.injected()));
      er.set_failed(er.regressions() > 0 || er.error_rate_exceeded());

      tr.set_requests(tr.requests() + er.requests());
      tr.set_errors(tr.errors() + er.errors());
      tr.set_compared(tr.compared() + er.compared());
      tr.set_matched(tr.matched() + er.matched());
      tr.set_mismatched(tr.mismatched() + er.mismatched());
      AddStatus(er.status(), tr.mutable_status());
      for (const auto& [reason, count] : ep.errors_by_reason) {
        (*tr.mutable_errors_by_reason())[reason] += count;
      }
      if (er.has_faults()) AddFaults(er.faults(), tr.mutable_faults());
      recorded.Merge(ep.recorded);
      latency.Merge(ep.latency);
      tr.set_regressions(tr.regressions() + er.regressions() + (er.error_rate_exceeded() ? 1 : 0));
      if (er.failed()) tr.set_failed_endpoints(tr.failed_endpoints() + 1);
      tr.mutable_endpoints()->Add(std::move(er));
    }
    (void)tr.mutable_status();  // present even when the target saw no response
    *tr.mutable_recorded_latency() = LatencyOf(recorded);
    *tr.mutable_latency() = LatencyOf(latency);
    *tr.mutable_timeline() = ts.timeline.ToProto();
    regressions += tr.regressions();
    failed_endpoints += tr.failed_endpoints();
  }
  v1::ReportVerdict& verdict = *report.mutable_verdict();
  verdict.set_regressions(regressions);
  verdict.set_failed_endpoints(failed_endpoints);
  verdict.set_exit_code(failed_endpoints > 0 ? 1 : 0);
  return report;
}

}  // namespace doppel::report

namespace doppel::report {
namespace {

void SaveHistogram(const LatencyHistogram& h, v1::HistogramState* out) {
  out->mutable_counts()->Add(h.bucket_counts().begin(), h.bucket_counts().end());
  out->set_sum(h.sum());
  out->set_min(h.min());
  out->set_max(h.max());
}

bool MergeHistogram(const v1::HistogramState& in, LatencyHistogram* h) {
  return h->MergeBuckets({in.counts().begin(), in.counts().end()}, in.sum(), in.min(), in.max());
}

bool ValidSeverity(int32_t severity) {
  return severity >= -1 && severity <= static_cast<int32_t>(diff::Severity::kMaxValue);
}

template <typename Map>
void AddCounts(const google::protobuf::Map<std::string, uint64_t>& from, size_t max_keys, Map* to) {
  for (const auto& [key, n] : from) {
    auto it = to->find(key);
    if (it == to->end()) {
      if (to->size() >= max_keys) continue;
      it = to->try_emplace(SanitizeUtf8(key), 0).first;
    }
    it->second += n;
  }
}

}  // namespace

v1::AggregatorState RunAggregator::SaveState() const {
  v1::AggregatorState out;
  for (const std::string& t : options_.targets) out.add_targets(SanitizeUtf8(t));
  *out.mutable_settings() = SettingsOf(options_);
  for (const State::Target& ts : state_->targets) {
    v1::TargetState& to = *out.add_target_states();
    ts.timeline.Save(to.mutable_timeline());
    for (const auto& [name, ep] : ts.endpoints) {
      v1::EndpointState& e = *to.add_endpoints();
      e.set_name(name);
      e.set_requests(ep.requests);
      e.set_errors(ep.errors);
      e.set_compared(ep.compared);
      e.set_matched(ep.matched);
      e.set_mismatched(ep.mismatched);
      if (ep.faults.injected() > 0) *e.mutable_faults() = ep.faults;
      e.set_noise_compared(ep.noise_compared);
      e.set_untracked_fields(ep.untracked_fields);
      e.mutable_errors_by_reason()->insert(ep.errors_by_reason.begin(), ep.errors_by_reason.end());
      *e.mutable_status() = ep.status;
      SaveHistogram(ep.recorded, e.mutable_recorded());
      SaveHistogram(ep.latency, e.mutable_latency());
      e.mutable_normalized()->insert(ep.normalized.begin(), ep.normalized.end());
      e.mutable_ignored()->insert(ep.ignored.begin(), ep.ignored.end());
      std::vector<const std::string*> paths;  // sorted: the same state, the same bytes
      for (const auto& [path, f] : ep.fields) paths.push_back(&path);
      std::sort(paths.begin(), paths.end(), [](auto* a, auto* b) { return *a < *b; });
      for (const std::string* path : paths) {
        const State::Field& f = ep.fields.at(*path);
        v1::FieldState& fs = *e.add_fields();
        fs.set_path(*path);
        fs.set_mismatches(f.mismatches);
        fs.set_masked(f.masked);
        fs.set_masked_requests(f.masked_requests);
        fs.set_noise_mismatches(f.noise_mismatches);
        fs.set_kinds(f.kinds);
        fs.set_severity(f.severity);
        fs.set_other_severity(f.other_severity);
        fs.set_offered(f.offered);
        fs.set_noise_offered(f.noise_offered);
        fs.mutable_exemplars()->Add(f.exemplars.begin(), f.exemplars.end());
        fs.mutable_noise_exemplars()->Add(f.noise_exemplars.begin(), f.noise_exemplars.end());
      }
    }
  }
  return out;
}

Result<AggregatorOptions> RunAggregator::OptionsOf(const v1::AggregatorState& state) {
  AggregatorOptions o;
  o.targets.assign(state.targets().begin(), state.targets().end());
  const ReportSettings& s = state.settings();
  o.secondary = s.secondary();
  o.fail_threshold_pct = s.fail_threshold_pct();
  auto fail_on = ParseSeverity(s.fail_on());
  if (!fail_on.ok()) return fail_on.status().WithContext("saved aggregator state");
  o.fail_on = *fail_on;
  o.thresholds.alpha = s.alpha();
  o.thresholds.min_samples = s.min_samples();
  o.thresholds.min_rate_difference = s.min_rate_difference();
  // What a replay writes: the --fail-threshold range replay checks, and the significance
  // thresholds' sense (a NaN would also make a report differ from itself).
  const auto refuse = [](const std::string& what) {
    return Status::InvalidArgument("saved aggregator state: " + what +
                                   "; it is not one a replay could write");
  };
  if (!(o.fail_threshold_pct >= 0 && o.fail_threshold_pct <= 100)) {
    return refuse("fail_threshold_pct " + std::to_string(o.fail_threshold_pct) +
                  " is not a percentage, 0 to 100");
  }
  if (!(o.thresholds.alpha > 0 && o.thresholds.alpha < 1)) {
    return refuse("alpha " + std::to_string(o.thresholds.alpha) + " is not between 0 and 1");
  }
  if (!(o.thresholds.min_rate_difference >= 0 && o.thresholds.min_rate_difference <= 1)) {
    return refuse("min_rate_difference " + std::to_string(o.thresholds.min_rate_difference) +
                  " is not a rate, 0 to 1");
  }
  return o;
}

Status RunAggregator::MergeState(const v1::AggregatorState& in) {
  const std::vector<std::string> targets(in.targets().begin(), in.targets().end());
  std::vector<std::string> mine;
  for (const std::string& t : options_.targets) mine.push_back(SanitizeUtf8(t));
  if (targets != mine || in.target_states_size() != static_cast<int>(mine.size())) {
    std::string theirs;
    for (const std::string& t : targets) theirs += (theirs.empty() ? "" : ", ") + t;
    return Status::InvalidArgument("the saved state was replayed to other targets (" + theirs +
                                   "); states merge only when their --target lists are equal");
  }
  if (in.settings().SerializeAsString() != SettingsOf(options_).SerializeAsString()) {
    return Status::InvalidArgument(
        "the saved state was aggregated under other settings (--secondary, --fail-threshold, "
        "--fail-on or the significance thresholds differ); states merge only under equal ones");
  }
  const auto bad = [](const std::string& what) {
    return Status::InvalidArgument("the saved state is not one a replay could write: " + what);
  };
  State merged = *state_;  // merged apart, so that an error leaves this aggregator as it was
  const size_t capacity = options_.exemplars_per_field;
  // Keeps up to `capacity` of both reservoirs, each item of `b` with the weight of what `b`
  // was offered against what `a` was.
  auto merge_reservoir = [&](std::vector<Exemplar>* a, uint64_t* a_offered,
                             const google::protobuf::RepeatedPtrField<Exemplar>& b,
                             uint64_t b_offered) {
    std::vector<Exemplar> out;
    size_t ia = 0;
    int ib = 0;
    while (out.size() < capacity && (ia < a->size() || ib < b.size())) {
      bool from_a = ib == b.size();
      if (ia < a->size() && ib < b.size()) {
        const uint64_t total = *a_offered + b_offered;
        from_a = total == 0 || merged.Next() % total < *a_offered;
      }
      out.push_back(from_a ? std::move((*a)[ia++]) : b[ib++]);
    }
    *a = std::move(out);
    *a_offered += b_offered;
  };
  for (int t = 0; t < in.target_states_size(); ++t) {
    const v1::TargetState& ts = in.target_states(t);
    State::Target& target = merged.targets[t];
    if (!target.timeline.Merge(ts.timeline())) return bad("a timeline is malformed");
    for (const v1::EndpointState& e : ts.endpoints()) {
      auto it = target.endpoints.find(e.name());
      if (it == target.endpoints.end()) {
        it = target.endpoints
                 .try_emplace(BucketName(target.endpoints, e.name(), options_.max_endpoints))
                 .first;
      }
      State::Endpoint& ep = it->second;
      ep.requests += e.requests();
      ep.errors += e.errors();
      ep.compared += e.compared();
      ep.matched += e.matched();
      ep.mismatched += e.mismatched();
      AddFaults(e.faults(), &ep.faults);
      ep.noise_compared += e.noise_compared();
      ep.untracked_fields += e.untracked_fields();
      for (const auto& [reason, n] : e.errors_by_reason()) ep.errors_by_reason[reason] += n;
      AddStatus(e.status(), &ep.status);
      if (!MergeHistogram(e.recorded(), &ep.recorded) || !MergeHistogram(e.latency(), &ep.latency))
        return bad("a latency histogram is malformed");
      AddCounts(e.normalized(), options_.max_fields_per_endpoint, &ep.normalized);
      AddCounts(e.ignored(), options_.max_fields_per_endpoint, &ep.ignored);
      for (const v1::FieldState& fs : e.fields()) {
        if (!ValidSeverity(fs.severity()) || !ValidSeverity(fs.other_severity()))
          return bad("field '" + SanitizeUtf8(fs.path()) + "' has an unknown severity");
        if (static_cast<uint64_t>(fs.exemplars_size()) > fs.offered() ||
            static_cast<uint64_t>(fs.noise_exemplars_size()) > fs.noise_offered()) {
          return bad("field '" + SanitizeUtf8(fs.path()) + "' has more exemplars than offered");
        }
        auto f = ep.fields.find(fs.path());
        if (f == ep.fields.end()) {
          if (ep.fields.size() >= options_.max_fields_per_endpoint) {
            ep.untracked_fields += fs.mismatches();
            continue;
          }
          f = ep.fields.try_emplace(SanitizeUtf8(fs.path())).first;
        }
        State::Field& field = f->second;
        field.mismatches += fs.mismatches();
        field.masked += fs.masked();
        field.masked_requests += fs.masked_requests();
        field.noise_mismatches += fs.noise_mismatches();
        field.kinds |= fs.kinds();
        field.severity = std::max(field.severity, fs.severity());
        field.other_severity = std::max(field.other_severity, fs.other_severity());
        merge_reservoir(&field.exemplars, &field.offered, fs.exemplars(), fs.offered());
        merge_reservoir(&field.noise_exemplars, &field.noise_offered, fs.noise_exemplars(),
                        fs.noise_offered());
      }
    }
  }
  // Exemplar bodies past the bound lose their bodies, as Add's would have.
  merged.body_bytes = 0;
  for (State::Target& target : merged.targets) {
    for (auto& [name, ep] : target.endpoints) {
      for (auto& [path, field] : ep.fields) {
        for (auto* items : {&field.exemplars, &field.noise_exemplars}) {
          for (Exemplar& e : *items) {
            const size_t bytes = e.expected_body().size() + e.actual_body().size();
            if (merged.body_bytes + bytes > options_.max_exemplar_body_bytes) {
              e.clear_expected_body();
              e.clear_actual_body();
              continue;
            }
            merged.body_bytes += bytes;
          }
        }
      }
    }
  }
  *state_ = std::move(merged);
  return Status::Ok();
}

}  // namespace doppel::report
