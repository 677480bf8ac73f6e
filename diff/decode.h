// Body decoding before comparison: Content-Encoding (gzip, deflate, zstd, identity) and
// charset (bytes are compared as UTF-8; ISO-8859-1 bodies are converted to UTF-8 first).
//
// Decoding is bounded: output beyond `max_output_bytes` is an error (kResourceExhausted),
// never an allocation of whatever a hostile stream claims, so a decompression bomb costs at
// most the limit.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::diff {

// Undoes the codings named by a Content-Encoding value ("gzip", "deflate", "zstd",
// "identity", "x-gzip", or a comma-separated list applied in order, which is undone in
// reverse). Names are case-insensitive; an empty value means identity. "deflate" accepts
// both zlib-wrapped (RFC 1950, what the RFC says) and raw (RFC 1951, what some servers
// send) streams. Concatenated gzip members are decoded as one body.
// Errors: kUnsupported for an unknown coding (e.g. "br"), kCorruption for a bad or truncated
// stream, kResourceExhausted when the output would exceed max_output_bytes.
Result<std::string> DecodeContent(std::string_view body, std::string_view content_encoding,
                                  size_t max_output_bytes);

// The charset parameter of a Content-Type value, lowercased and unquoted ("" if none).
std::string CharsetOf(std::string_view content_type);
// True for the names of ISO-8859-1 ("iso-8859-1", "latin1", "l1", "iso_8859-1", ...).
bool IsLatin1Charset(std::string_view charset);
// Converts ISO-8859-1 bytes to UTF-8.
std::string Latin1ToUtf8(std::string_view latin1);

// DecodeContent, then Latin1ToUtf8 when the Content-Type names ISO-8859-1. Every other
// charset is compared as the bytes it is.
Result<std::string> DecodeBody(std::string_view body, std::string_view content_encoding,
                               std::string_view content_type, size_t max_output_bytes);

}  // namespace doppel::diff
