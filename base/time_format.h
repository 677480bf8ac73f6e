// RFC 3339 date-times (the profile of ISO 8601 that HTTP APIs use): read, and written back in
// the form they came in, so that a moved instant looks like the original (replay's
// --shift-time) or a recorded time can be printed (HAR, JSON Lines).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel {

// An instant and the way it was written.
struct DateTime {
  enum class Zone { kZulu, kOffset, kNone };  // "Z", "+02:00" / "+0200", none (read as UTC)

  int64_t unix_us = 0;      // since the Unix epoch, UTC
  int fraction_digits = 0;  // after the seconds (0: no fraction); written back at most 6
  Zone zone = Zone::kZulu;
  int offset_minutes = 0;  // east of UTC (kOffset only)
  bool offset_colon = true;
  char separator = 'T';  // between date and time: 'T', 't' or ' '
};

// "2024-05-01T10:20:30Z", "2024-05-01T10:20:30.123+02:00", "2024-05-01 10:20:30,5" (no zone:
// UTC). Years 1970 to 9999; a leap second (:60) is read as the next second. nullopt for
// anything else, trailing characters included.
std::optional<DateTime> ParseDateTime(std::string_view text);

// `t` in its own form: the same separator, fraction digits (at most 6) and zone; the time of
// day and date are those of `t.unix_us` at the zone's offset.
std::string FormatDateTime(const DateTime& t);

// `unix_us` in UTC with `fraction_digits` (0 to 6) after the seconds:
// "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456Z".
std::string FormatUtc(int64_t unix_us, int fraction_digits = 0);

}  // namespace doppel
