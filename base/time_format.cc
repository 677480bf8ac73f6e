#include "base/time_format.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace doppel {
namespace {

// The `n` digits at `pos` as a number; false when any is not a digit or the text ends first.
bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

}  // namespace

std::optional<DateTime> ParseDateTime(std::string_view s) {
  DateTime t;
  int year, month, day, hour, minute, second;
  if (s.size() < 19 || !Digits(s, 0, 4, &year) || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return std::nullopt;
  }
  t.separator = s[10];
  size_t i = 19;
  int64_t frac_us = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    int64_t scale = 100000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (t.fraction_digits < 6) frac_us += (s[i] - '0') * scale, scale /= 10;
      ++i, ++t.fraction_digits;
    }
    if (t.fraction_digits == 0) return std::nullopt;
  }
  t.zone = DateTime::Zone::kNone;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    t.zone = DateTime::Zone::kZulu;
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh, om;
    t.offset_colon = i + 3 < s.size() && s[i + 3] == ':';
    if (!Digits(s, i + 1, 2, &oh) || !Digits(s, i + (t.offset_colon ? 4 : 3), 2, &om) || oh > 23 ||
        om > 59) {
      return std::nullopt;
    }
    t.zone = DateTime::Zone::kOffset;
    t.offset_minutes = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    i += t.offset_colon ? 6 : 5;
  }
  if (i != s.size()) return std::nullopt;
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year(year), std::chrono::month(unsigned(month)),
                           std::chrono::day(unsigned(day))};
  if (!ymd.ok() || year < 1970 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const int64_t days = sys_days(ymd).time_since_epoch().count();
  const int64_t secs =
      days * 86400 + hour * 3600 + minute * 60 + second - int64_t{t.offset_minutes} * 60;
  t.unix_us = secs * 1000000 + frac_us;
  return t;
}

std::string FormatDateTime(const DateTime& t) {
  using namespace std::chrono;
  const int64_t local_us = t.unix_us + int64_t{t.offset_minutes} * 60'000'000;
  const int64_t secs = FloorDiv(local_us, 1000000);
  const int64_t frac_us = local_us - secs * 1000000;
  const int64_t day_number = FloorDiv(secs, 86400);
  const int64_t rem = secs - day_number * 86400;
  const year_month_day ymd{sys_days{std::chrono::days(day_number)}};
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u%c%02d:%02d:%02d", int(ymd.year()),
                        unsigned(ymd.month()), unsigned(ymd.day()), t.separator, int(rem / 3600),
                        int(rem / 60 % 60), int(rem % 60));
  std::string out(buf, static_cast<size_t>(n));
  if (t.fraction_digits > 0) {
    std::snprintf(buf, sizeof(buf), "%06lld", static_cast<long long>(frac_us));
    out += '.';
    out.append(buf, static_cast<size_t>(std::min(t.fraction_digits, 6)));
  }
  switch (t.zone) {
    case DateTime::Zone::kZulu:
      out += 'Z';
      break;
    case DateTime::Zone::kOffset: {
      const int m = t.offset_minutes < 0 ? -t.offset_minutes : t.offset_minutes;
      std::snprintf(buf, sizeof(buf), "%c%02d%s%02d", t.offset_minutes < 0 ? '-' : '+', m / 60,
                    t.offset_colon ? ":" : "", m % 60);
      out += buf;
      break;
    }
    case DateTime::Zone::kNone:
      break;
  }
  return out;
}

std::string FormatUtc(int64_t unix_us, int fraction_digits) {
  DateTime t;
  t.unix_us = unix_us;
  t.fraction_digits = fraction_digits;
  return FormatDateTime(t);
}

}  // namespace doppel
