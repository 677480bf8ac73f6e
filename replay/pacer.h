// Pacer: when each request of a replay is due, relative to the start of the run.
//
// Exactly one mode per run:
//   rate  — open loop: request i is due at the time the (possibly ramped) rate has produced
//           i requests, whatever the responses. Latency is measured from the due time, so a
//           slow target shows up as latency, not as a lower offered rate (no coordinated
//           omission).
//   speed — the recorded gaps divided by X; gaps are capped at max_gap, and a timestamp
//           earlier than its predecessor counts as a zero gap (never a long sleep).
//   max   — closed loop: no schedule; the sender keeps `concurrency` requests in flight.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::replay {

struct PacingSpec {
  enum class Mode { kRate, kSpeed, kMax };
  Mode mode = Mode::kMax;
  double rate_from = 0;              // requests per second (kRate)
  double rate_to = 0;                // equal to rate_from when not ramped
  uint64_t ramp_us = 0;              // time to go from rate_from to rate_to; 0 = no ramp
  double speed = 1;                  // kSpeed
  uint64_t max_gap_us = UINT64_MAX;  // kSpeed: longest recorded gap honoured
  std::string ToString() const;      // "rate=500", "rate=100:2000:60s", "speed=2", "max"

  // A recorded gap inside one connection (the client's think time before a WebSocket message)
  // under this pacing: divided by `speed` and capped at max_gap with --speed, as recorded with
  // --rate (the rate paces connections, not what happens in them), none with --max.
  uint64_t ThinkTimeUs(uint64_t recorded_gap_us) const;
};

// Parses --rate values: "500", "0.5", or a ramp "FROM:TO:OVER" ("100:2000:60s").
Result<PacingSpec> ParseRate(std::string_view text);

class Pacer {
 public:
  explicit Pacer(const PacingSpec& spec) : spec_(spec) {}

  // Due time, in µs after the start of the run, of the next request, whose recorded arrival
  // time is `recorded_us`. Call once per request, in order. Returns 0 for every request in
  // kMax mode.
  uint64_t Next(uint64_t recorded_us);

  // kRate: from the next request on, send this share (0 < share <= 1) of the spec's rate
  // (a worker of a group sends its share of the group's --rate). The schedule goes on from
  // where it is: the next request is due one new-rate gap after the previous one's due time.
  void SetShare(double share);

  // The rate-mode schedule on its own: due time of request `index` (0-based).
  static uint64_t RateDueUs(const PacingSpec& spec, uint64_t index);

 private:
  // Due time of the point of the schedule where `count` requests have been sent (fractional).
  static uint64_t DueOfCount(const PacingSpec& spec, double count);

  PacingSpec spec_;
  uint64_t index_ = 0;
  double share_ = 1;
  uint64_t share_index_ = 0;  // the index from which share_ holds
  double share_count_ = 0;    // the schedule's count at share_index_
  bool have_prev_ = false;
  uint64_t prev_recorded_us_ = 0;
  double due_us_ = 0;  // speed mode accumulates fractional µs
};

}  // namespace doppel::replay
