// Durations and sizes as people write them on the command line ("250ms", "10s", "7d";
// "64MiB", "512k") and as doppel prints sizes ("1.5 MiB").
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// Parses "64MiB", "1M", "512k", "1048576" (bytes; binary multiples; b, k/kb/kib, m/mb/mib,
// g/gb/gib, any case). Errors say what a size looks like.
inline Result<uint64_t> ParseSizeBytes(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 12)
    return Status::InvalidArgument("'" + std::string(text) + "' is not a size (e.g. 64MiB)");
  uint64_t n = 0;
  std::from_chars(text.data(), text.data() + i, n);
  std::string unit(text.substr(i));
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  if (unit == "k" || unit == "kb" || unit == "kib") shift = 10;
  if (unit == "m" || unit == "mb" || unit == "mib") shift = 20;
  if (unit == "g" || unit == "gb" || unit == "gib") shift = 30;
  if (shift < 0)
    return Status::InvalidArgument("unknown unit in '" + std::string(text) +
                                   "' (use KiB, MiB, GiB)");
  if (n > (UINT64_MAX >> shift))
    return Status::InvalidArgument("'" + std::string(text) + "' is too large a size");
  return n << shift;
}

// "512 B", "1.5 KiB", "3.2 MiB", "1.0 GiB".
inline std::string FormatBytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof(buf), "%.1f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", b / double(1ull << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof(buf), "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace doppel
