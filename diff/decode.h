// Body decoding before comparison: Content-Encoding undone (net/codings.h: gzip, deflate,
// zstd, br, identity; bounded, so a decompression bomb costs at most the limit) and charset
// (bytes are compared as UTF-8; ISO-8859-1 bodies are converted to UTF-8 first).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::diff {

// The charset parameter of a Content-Type value, lowercased and unquoted ("" if none).
std::string CharsetOf(std::string_view content_type);
// True for the names of ISO-8859-1 ("iso-8859-1", "latin1", "l1", "iso_8859-1", ...).
bool IsLatin1Charset(std::string_view charset);
// Converts ISO-8859-1 bytes to UTF-8.
std::string Latin1ToUtf8(std::string_view latin1);

// net::DecodeContent, then Latin1ToUtf8 when the Content-Type names ISO-8859-1. Every other
// charset is compared as the bytes it is.
Result<std::string> DecodeBody(std::string_view body, std::string_view content_encoding,
                               std::string_view content_type, size_t max_output_bytes);

}  // namespace doppel::diff
