// `doppel replay --shift-time`: the timestamps in a recorded request move by the time between
// the recording and the replay, so that "orders since yesterday" asks for the same relative
// window instead of one that is weeks old (docs/stateful-replay.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "replay/request_plan.h"

namespace doppel::replay {

struct TimeShiftOptions {
  int64_t delta_us = 0;  // the replay's start minus the recording's
  // The recording's first and last arrival: epoch numbers count as timestamps only near them.
  uint64_t recorded_from_us = 0, recorded_to_us = 0;
  std::vector<std::string> headers;  // header names (any case) whose values move as well
};

// What is a timestamp:
// - an RFC 3339 date-time ("2026-05-01T10:20:30Z", with a fraction or an offset): always;
// - a whole number of 10 digits read as epoch seconds, or of 13 digits read as epoch
//   milliseconds, when that instant lies within 366 days of the recording (so ids, prices and
//   counters are left alone).
// Where: each query parameter's value, each string and integer of a JSON request body (one not
// under a Content-Encoding, at most 8 MiB), and the whole value of each header named in
// `headers`. A moved value keeps its form: the same fraction digits and offset, the same
// number of digits, percent-encoded when the original value was.
class TimeShifter {
 public:
  explicit TimeShifter(TimeShiftOptions options);

  // Moves the timestamps of `r`; returns how many values moved.
  uint64_t Shift(OutgoingRequest* r) const;

  // Moves one whole value; false (and `value` untouched) when it is not a timestamp.
  bool ShiftValue(std::string* value) const;

 private:
  bool ShiftEpoch(int64_t* number, int digits) const;
  uint64_t ShiftQuery(std::string* target) const;
  uint64_t ShiftJsonBody(std::string* body) const;

  TimeShiftOptions opts_;
  int64_t window_from_us_, window_to_us_;
};

}  // namespace doppel::replay
