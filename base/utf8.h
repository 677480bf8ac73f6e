// UTF-8 made valid: for text that goes where only UTF-8 may (JSON log lines, reports).
#pragma once

#include <string>
#include <string_view>

namespace doppel {

// Whether `s` is UTF-8 throughout (no overlong forms, surrogates or code points above
// U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `bytes` with every invalid UTF-8 sequence (and any encoded surrogate or code point above
// U+10FFFF) replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace doppel
