// Making response and request bytes safe and readable inside a report: valid UTF-8 only,
// bounded length, JSON pretty-printed so a side-by-side view can diff it line by line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/utf8.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::report {

// SanitizeUtf8 (base/utf8.h): invalid UTF-8 replaced by U+FFFD.
using doppel::SanitizeUtf8;

// Appends "\xNN" (lower-case hex) for the byte `c`: how the renderers show a control
// character that must not reach a terminal or a page as is.
void AppendHexEscape(unsigned char c, std::string* out);

// Two-space indented JSON, one member or element per line, floating-point numbers in their
// shortest round-trip form; "" when `text` is not JSON. Nesting deeper than 64 levels is
// rendered compactly from there on.
std::string PrettyJson(std::string_view text);

// A message body for display: Content-Encoding undone and ISO-8859-1 converted (decode.h),
// JSON pretty-printed, binary bodies described ("<binary, 1234 bytes>"), the result valid
// UTF-8 and at most `max_bytes` long ("…" marks a cut). `truncated` recordings get
// "… (recording truncated)" appended.
std::string BodyForDisplay(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                           std::string_view body, bool truncated, size_t max_bytes);

}  // namespace doppel::report
