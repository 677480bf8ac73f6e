// Adaptive mirror percentage (`--mirror URL,percent=30,adaptive` with `--mirror-budget
// p99=20ms,cpu=80%,errors=5%`; docs/mirroring.md, "Adaptive percentage"), as Istio 1.25's
// dynamic sampling does for its mirror percentage: the effective percentage of an adaptive
// mirror backs off while the recorder is over its budget and climbs back while it is within.
//
// The controller is AIMD, the rule TCP uses for its window, for the same reasons: it backs off
// fast when the shared resource (the primary's latency, the process's CPU, the mirror) is
// hurting, probes back slowly, and needs no model of the mirror.
//   - Every tick (1 s), the signals over the last `window` ticks are checked against the
//     budget: the primary's p99 latency, the process CPU (share of all cores), and the
//     mirror's failure rate (copies failed or dropped over copies attempted).
//   - Any signal over its budget: the effective percentage is halved (multiplicative
//     decrease; below 1 % of the configured one it goes to 0).
//   - All within budget: it rises by 10 % of the configured percentage (additive increase), up
//     to the configured one: from 0 back to full in 10 ticks, once the window is clean.
//   - A signal without data (no request in the window) counts as within budget, so a mirror
//     at 0 % is probed again and a healed one recovers.
//
// Thread safety: MirrorBudget and AimdController are plain values, used by one thread (the
// hub's doppel-adapt thread); SignalWindow likewise.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::recorder {

struct MirrorBudget {
  std::optional<uint64_t> p99_us;        // the primary's p99 latency
  std::optional<double> cpu_percent;     // process CPU, % of all cores (100 = every core busy)
  std::optional<double> errors_percent;  // the mirror's failed + dropped copies, % of attempts
  bool empty() const { return !p99_us && !cpu_percent && !errors_percent; }
  std::string ToString() const;
};

// "p99=20ms,cpu=80%,errors=5%" (any subset, at least one).
Result<MirrorBudget> ParseMirrorBudget(std::string_view text);

// What the controller looked at in one tick; nullopt: no data in the window.
struct AdaptiveSignals {
  std::optional<uint64_t> primary_p99_us;
  std::optional<double> cpu_percent;
  std::optional<double> errors_percent;
};

class AimdController {
 public:
  static constexpr double kDecrease = 0.5;       // multiplicative decrease per tick over budget
  static constexpr double kIncreaseShare = 0.1;  // of the configured percentage per tick within
  static constexpr double kFloorShare = 0.01;    // below this share of the configured: 0

  AimdController(double configured_percent, MirrorBudget budget);

  // One tick. Returns the reason when the effective percentage changed ("" when not): which
  // signal was over its budget, or "within budget".
  std::string Tick(const AdaptiveSignals& signals);

  double effective() const { return effective_; }
  double configured() const { return configured_; }
  // "steady" (at the configured percentage), "backing off" (the last tick decreased) or
  // "recovering" (below the configured percentage, increasing).
  const char* state() const;
  const std::string& last_reason() const { return last_reason_; }

 private:
  // The first signal over its budget, described; "" when all are within.
  std::string OverBudget(const AdaptiveSignals& s) const;

  double configured_;
  MirrorBudget budget_;
  double effective_;
  bool decreased_ = false;
  std::string last_reason_;
};

// A sliding window over cumulative counters: Push() a snapshot each tick; Delta() is the
// newest minus the one `ticks` pushes before (or the oldest kept).
class SignalWindow {
 public:
  explicit SignalWindow(size_t ticks) : ticks_(ticks) {}
  // `values` are cumulative counters (same length every push).
  void Push(std::vector<uint64_t> values);
  std::vector<uint64_t> Delta() const;

 private:
  size_t ticks_;
  std::deque<std::vector<uint64_t>> snapshots_;
};

// CPU time (user + system) this process used so far, in microseconds (/proc/self/stat).
uint64_t ProcessCpuUs();

}  // namespace doppel::recorder
