// UTF-8 made valid: for text that goes where only UTF-8 may (JSON log lines, reports).
#pragma once

#include <string>
#include <string_view>

namespace doppel {

// The length of the valid UTF-8 sequence starting at s[i] (1 for ASCII), or 0 when the bytes
// there are not one: a bad lead or continuation byte, a cut sequence, an overlong form, a
// surrogate, a value past U+10FFFF. REQUIRES: i < s.size().
size_t Utf8SequenceAt(std::string_view s, size_t i);

// Whether `s` is UTF-8 throughout (no overlong forms, surrogates or code points above
// U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `bytes` with every invalid UTF-8 sequence (and any encoded surrogate or code point above
// U+10FFFF) replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace doppel
