// Parsing of durations given on the command line ("250ms", "10s", "5m", "2h", "7d").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel {

// Parses a number (fractions allowed) followed by us, ms, s, m, h or d; a bare number is
// taken in `default_unit_us`. Returns microseconds.
inline Result<uint64_t> ParseDurationUs(std::string_view text, uint64_t default_unit_us = 1000000) {
  std::string s(text);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? std::string(end) : "";
  double mult = unit.empty()   ? static_cast<double>(default_unit_us)
                : unit == "us" ? 1
                : unit == "ms" ? 1e3
                : unit == "s"  ? 1e6
                : unit == "m"  ? 60e6
                : unit == "h"  ? 3600e6
                : unit == "d"  ? 86400e6
                               : -1;
  if (s.empty() || end == s.c_str() || !(v >= 0) || mult < 0 || v * mult > 1.8e19) {
    return Status::InvalidArgument("'" + s +
                                   "' is not a duration; use a number with us, ms, s, m, h or d "
                                   "(e.g. 250ms, 10s, 7d)");
  }
  return static_cast<uint64_t>(v * mult);
}

}  // namespace doppel
