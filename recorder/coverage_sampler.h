// Coverage sampling (`--sample-mode coverage`, docs/sampling.md): spend a capture budget so
// that every class of request (recorder/sample_class.h) gets envelopes, the rare ones first.
//
// Algorithm, per decision (the class is known once the primary answered):
//  * Frequencies: space-saving counters (Metwally et al.) over at most `max_classes`
//    classes, weighted with forward decay (half-life `half_life_us` of the injected clock).
//    A class not in the table replaces the one with the least weight and inherits that
//    weight as its error, so a class with more than 1/max_classes of the traffic is always
//    tracked and every share is over-estimated by at most 1/max_classes.
//  * Water level: the shares s_c are water-filled against the budget's fraction of requests
//    f (a rate budget R/s divided by the arrival rate): t with sum_c min(s_c, t) = 0.9 f.
//    A class is kept with probability p_c = min(1, t / s_c): classes under the level keep
//    everything, the hot ones share what is left. Recomputed every second of the clock
//    and every 1024 decisions (64 for the first 8192).
//  * Minimum: a class keeps all of its requests until it has `per_class_min` envelopes.
//  * Hard cap: a token bucket (rate: R/s, burst R; fraction: f per request, burst
//    max(1, 1000 f)). Every kept envelope takes a token; none left, nothing is kept. A
//    class's first envelope may take the last token; a covered class under the water level
//    leaves one for a class not covered yet; a class over the level only spends the bucket
//    down to a floor proportional to its share (half the bucket for the most frequent
//    class), and never below a tenth of it. So when the budget cannot give every class its
//    minimum, every class gets one envelope first, then the rare classes come first and the
//    minimum gives way, never the budget.
//  * Inclusion probability: p_c (1 under the minimum) times the share of the class's wanted
//    envelopes the bucket let through lately (a moving average over about 20), so that the
//    1/p weights still add up to each class's requests while the budget is short.
//  * The draw is the caller's: a random number, or the hash of a --sample-key value, so a
//    sampled key's requests stay together (p_c nests: a key under p is under every p' > p).
//
// Thread safety: Decide() and the accessors run on one thread (each proxy thread has its own
// sampler, with its share of a rate budget: no lock per request). Published() is thread-safe:
// the owning thread publishes a snapshot each second of the clock and whenever a class is
// first seen or first kept.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace doppel::recorder {

// `--sample-budget`: "200/s" (envelopes per second; "/1m", "/500ms": any base/units.h
// duration) or "5%" (of the requests seen).
struct SampleBudget {
  enum class Kind { kRate, kFraction };
  Kind kind = Kind::kFraction;
  double per_second = 0;  // kRate
  double fraction = 1;    // kFraction: 0 < fraction <= 1
  std::string text;       // as given
};
Result<SampleBudget> ParseSampleBudget(std::string_view text);

struct CoverageOptions {
  SampleBudget budget;
  uint32_t per_class_min = 20;
  size_t max_classes = 4096;           // space-saving counters (memory bound)
  uint64_t half_life_us = 60'000'000;  // frequency decay
  size_t max_label_bytes = 256;        // labels kept for /status are cut here
  // History (recorder/coverage_history.h): requests per class in earlier sessions of the same
  // upstream, seeded into every proxy thread's sampler at start (each gets 1/threads).
  std::vector<std::pair<std::string, double>> history;
  std::vector<std::string> history_sessions;  // where `history` came from (for /status)
};

// One class as /status shows it.
struct ClassStat {
  uint64_t id = 0;
  // Shared with the sampler's table (never null): publishing a snapshot copies no label.
  std::shared_ptr<const std::string> label;
  uint64_t seen = 0;       // decisions since the class entered the table
  uint64_t kept = 0;       // envelopes kept
  double share = 0;        // estimated share of the traffic (decayed)
  double error = 0;        // space-saving error bound on `share`
  double probability = 1;  // current p_c (1 while under the minimum)
};

struct CoverageSnapshot {
  uint64_t decisions = 0;
  uint64_t kept = 0;
  uint64_t denied_by_budget = 0;  // would have been kept, no token left
  double water_level = 0;         // t; +inf when every class keeps everything
  // Tracked classes, most frequent first (from Snapshot and MergeSnapshots; a Published()
  // snapshot is in no particular order).
  std::vector<ClassStat> classes;
};

// Several proxy threads' snapshots as one: classes matched by id, seen and kept summed,
// shares averaged weighted by each thread's decisions, probabilities likewise.
CoverageSnapshot MergeSnapshots(const std::vector<std::shared_ptr<const CoverageSnapshot>>& parts);

class CoverageSampler {
 public:
  struct Decision {
    bool keep = false;
    double probability = 0;  // the envelope's inclusion probability when kept
  };

  // REQUIRES: options.budget parsed by ParseSampleBudget; `clock` outlives the sampler.
  CoverageSampler(CoverageOptions options, const Clock& clock);

  // Whether to keep a request of class `class_id` (`label` names it for /status). `draw` is
  // uniform over 64 bits: a random number, or a key's hash.
  Decision Decide(uint64_t class_id, std::string_view label, uint64_t draw);

  // History (docs/sampling.md): `count` earlier requests of the class, counted as seen one
  // half-life ago. Call before the first Decide; the water level is recomputed on it.
  void Seed(uint64_t class_id, std::string_view label, double count);

  // The current state (owning thread), classes most frequent first.
  CoverageSnapshot Snapshot() const;
  // The last published snapshot (any thread). A snapshot is published whenever a class is
  // first seen or first kept, so it costs O(classes) without a sort or a copied label.
  std::shared_ptr<const CoverageSnapshot> Published() const;
  // Publishes now (owning thread; e.g. before the recorder reports its final counts).
  void Publish();

  const CoverageOptions& options() const { return options_; }

 private:
  struct Entry {
    uint64_t id;
    std::shared_ptr<const std::string> label;
    double weight = 0;  // decayed count, scaled by the forward-decay factor
    double error = 0;
    uint64_t seen = 0;
    uint64_t kept = 0;
    double granted = 1;  // moving average: wanted envelopes the bucket let through
  };

  CoverageSnapshot Unsorted() const;
  double Gain(uint64_t now_us);  // the forward-decay weight of an event now
  Entry& Find(uint64_t class_id, std::string_view label, bool* changed);
  void Refill(uint64_t now_us);
  void Recompute(uint64_t now_us);
  double ProbabilityOf(const Entry& e) const;

  const CoverageOptions options_;
  const Clock& clock_;
  std::vector<Entry> entries_;
  std::unordered_map<uint64_t, size_t> index_;
  double total_weight_ = 0;
  uint64_t decay_origin_us_;
  // Budget.
  double tokens_;
  double capacity_;
  uint64_t last_refill_us_;
  // Arrival rate (rate budgets): requests in the current one-second window, EWMA of windows.
  uint64_t window_start_us_;
  uint64_t window_requests_ = 0;
  double arrival_rate_ = 0;  // 0: not known yet
  double water_level_;
  double max_share_ = 0;  // the largest share at the last recompute
  uint64_t since_recompute_ = 0;
  uint64_t last_recompute_us_;
  uint64_t decisions_ = 0, kept_ = 0, denied_ = 0;
  uint64_t last_publish_us_;
  mutable std::mutex published_mu_;
  std::shared_ptr<const CoverageSnapshot> published_;
};

}  // namespace doppel::recorder
