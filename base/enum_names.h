// Names of enum values from one table, both ways: printing a value and parsing a flag or a
// report field back. One table an enum instead of a switch to print and a loop to parse.
//
//   enum class Severity { kLow, kMedium, kHigh, kMaxValue = kHigh };
//   constexpr EnumNames<Severity, 3> kSeverityNames{{"low", "medium", "high"}};
//   kSeverityNames.Name(Severity::kHigh)      -> "high"
//   kSeverityNames.Parse("HIGH")              -> Severity::kHigh (ASCII case-insensitive)
//   kSeverityNames.ParseOrError("x", "severity") -> "unknown severity "x" (expected ...)"
//   kSeverityNames.List()                     -> "low, medium or high"
//
// The enum's values must be 0..N-1 in order. An enum with a `kMaxValue` enumerator (the last
// one, as in Chromium) gets a compile-time check that the table names every value, so adding
// an enumerator without a name does not build.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/strings.h"

namespace doppel {

template <typename E, size_t N>
struct EnumNames {
  std::array<std::string_view, N> names;
  std::string_view unknown = "unknown";  // what Name() gives for a value outside 0..N-1

  constexpr EnumNames(std::array<std::string_view, N> n) : names(n) {
    if constexpr (requires { E::kMaxValue; }) {
      static_assert(N == static_cast<size_t>(E::kMaxValue) + 1,
                    "EnumNames: the table must name every enumerator, 0..kMaxValue");
    }
  }
  constexpr EnumNames(std::array<std::string_view, N> n, std::string_view unknown_name)
      : EnumNames(n) {
    unknown = unknown_name;
  }

  constexpr std::string_view Name(E value) const {
    const auto i = static_cast<size_t>(value);
    return i < N ? names[i] : unknown;
  }

  std::optional<E> Parse(std::string_view name) const {
    for (size_t i = 0; i < N; ++i) {
      if (EqualsIgnoreCase(name, names[i])) return static_cast<E>(i);
    }
    return std::nullopt;
  }

  // Parse(), or InvalidArgument "unknown WHAT "x" (expected a, b or c)".
  Result<E> ParseOrError(std::string_view name, std::string_view what) const {
    if (std::optional<E> value = Parse(name)) return *value;
    return Status::InvalidArgument("unknown " + std::string(what) + " \"" + std::string(name) +
                                   "\" (expected " + List() + ")");
  }

  // "a, b or c": the accepted names, for an error message.
  std::string List() const {
    std::string out;
    for (size_t i = 0; i < N; ++i) {
      if (i > 0) out += i + 1 == N ? " or " : ", ";
      out += names[i];
    }
    return out;
  }
};

}  // namespace doppel
