// Small ASCII string helpers shared by the HTTP code (header names are ASCII and
// case-insensitive; optional whitespace is space or tab).
#pragma once

#include <string>
#include <string_view>

namespace doppel {

inline char AsciiLowerChar(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLowerChar(c);
  return out;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (AsciiLowerChar(a[i]) != AsciiLowerChar(b[i])) return false;
  return true;
}

// Strips spaces and tabs at both ends (HTTP's optional whitespace).
inline std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Bytes >= 0x80 as %XX (upper-case hex), everything else as is. For text that goes into
// proto3 `string` fields (an envelope's target and reason phrase): protobuf serializes bytes
// that are not UTF-8 but refuses to parse them back, so one such request would make a stored
// session unreadable. For a request target this is the RFC 3986 spelling of the same URI.
inline std::string PercentEncodeNonAscii(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  // Almost every target is ASCII: copied whole (this runs for every recorded request).
  size_t ascii = 0;
  while (ascii < s.size() && static_cast<unsigned char>(s[ascii]) < 0x80) ++ascii;
  if (ascii == s.size()) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  out.append(s.substr(0, ascii));
  for (const char c : s.substr(ascii)) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

}  // namespace doppel
