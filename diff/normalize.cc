#include "diff/normalize.h"

#include <boost/json.hpp>
#include <optional>
#include <string>

namespace doppel::diff {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Parses exactly `n` digits at s[pos]; -1 if any is not a digit.
int Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return -1;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!IsDigit(s[pos + i])) return -1;
    v = v * 10 + (s[pos + i] - '0');
  }
  return v;
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (IsDigit(c)) return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::optional<std::string> Base64UrlDecode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

// Splits a compact JWS into its three parts; false unless there are exactly three
// non-empty header and payload parts of base64url characters.
bool SplitJwt(std::string_view s, std::string_view parts[3]) {
  size_t a = s.find('.');
  if (a == std::string_view::npos) return false;
  size_t b = s.find('.', a + 1);
  if (b == std::string_view::npos || s.find('.', b + 1) != std::string_view::npos) return false;
  parts[0] = s.substr(0, a);
  parts[1] = s.substr(a + 1, b - a - 1);
  parts[2] = s.substr(b + 1);
  if (parts[0].size() < 4 || parts[1].empty()) return false;
  for (char c : s) {
    if (c != '.' && Base64UrlValue(c) < 0) return false;
  }
  return true;
}

std::optional<boost::json::object> DecodeJsonObject(std::string_view b64) {
  std::optional<std::string> text = Base64UrlDecode(b64);
  if (!text) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

bool IsRfc3339Timestamp(std::string_view s) {
  // date-time = full-date "T" full-time; full-time = HH:MM:SS[.frac] (Z | +HH:MM | -HH:MM)
  if (s.size() < 20) return false;
  int year = Digits(s, 0, 4), month = Digits(s, 5, 2), day = Digits(s, 8, 2);
  if (year < 0 || s[4] != '-' || s[7] != '-' || month < 1 || month > 12 || day < 1 || day > 31) {
    return false;
  }
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return false;
  int hour = Digits(s, 11, 2), minute = Digits(s, 14, 2), second = Digits(s, 17, 2);
  if (hour < 0 || hour > 23 || s[13] != ':' || minute < 0 || minute > 59 || s[16] != ':' ||
      second < 0 || second > 60) {
    return false;
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  if (s[pos] == 'Z' || s[pos] == 'z') return pos + 1 == s.size();
  if (s[pos] != '+' && s[pos] != '-') return false;
  int oh = Digits(s, pos + 1, 2), om = Digits(s, pos + 4, 2);
  return pos + 6 == s.size() && oh >= 0 && oh <= 23 && s[pos + 3] == ':' && om >= 0 && om <= 59;
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

bool IsUlid(std::string_view s) {
  if (s.size() != 26 || s[0] < '0' || s[0] > '7') return false;
  for (char c : s) {
    char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    bool ok = IsDigit(u) || (u >= 'A' && u <= 'Z' && u != 'I' && u != 'L' && u != 'O' && u != 'U');
    if (!ok) return false;
  }
  return true;
}

bool IsJwt(std::string_view s) {
  std::string_view parts[3];
  if (!SplitJwt(s, parts)) return false;
  std::optional<boost::json::object> header = DecodeJsonObject(parts[0]);
  return header && header->contains("alg");
}

EpochUnit EpochUnitOf(double v) {
  constexpr double kFrom = 946684800.0;  // 2000-01-01T00:00:00Z
  constexpr double kTo = 4102444800.0;   // 2100-01-01T00:00:00Z
  if (v >= kFrom && v < kTo) return EpochUnit::kSeconds;
  if (v >= kFrom * 1000 && v < kTo * 1000) return EpochUnit::kMilliseconds;
  return EpochUnit::kNone;
}

bool JwtClaimsEqual(std::string_view a, std::string_view b) {
  std::string_view pa[3], pb[3];
  if (!SplitJwt(a, pa) || !SplitJwt(b, pb)) return false;
  std::optional<boost::json::object> ca = DecodeJsonObject(pa[1]);
  std::optional<boost::json::object> cb = DecodeJsonObject(pb[1]);
  if (!ca || !cb) return false;
  for (const char* volatile_claim : {"iat", "exp", "nbf", "jti"}) {
    ca->erase(volatile_claim);
    cb->erase(volatile_claim);
  }
  return *ca == *cb;
}

std::string_view NormalizeStrings(std::string_view expected, std::string_view actual,
                                  const NormalizerOptions& options) {
  if (options.rfc3339 && IsRfc3339Timestamp(expected) && IsRfc3339Timestamp(actual)) {
    return "rfc3339";
  }
  if (options.uuid && IsUuid(expected) && IsUuid(actual)) return "uuid";
  if (options.ulid && IsUlid(expected) && IsUlid(actual)) return "ulid";
  if (options.jwt && IsJwt(expected) && IsJwt(actual) && JwtClaimsEqual(expected, actual)) {
    return "jwt";
  }
  return "";
}

std::string_view NormalizeNumbers(double expected, double actual,
                                  const NormalizerOptions& options) {
  if (!options.epoch) return "";
  EpochUnit unit = EpochUnitOf(expected);
  if (unit != EpochUnit::kNone && unit == EpochUnitOf(actual)) return "epoch";
  return "";
}

}  // namespace doppel::diff
