// Body comparison: decode (decode.h), pick a comparison by content type, report under "body".
//
//   application/json, */*+json            structural JSON diff (json_diff.h); a side that is
//                                          not JSON falls back to the line diff
//   text/*, */*+xml, application/xml,      line diff (text_diff.h)
//   application/javascript, ndjson, yaml
//   application/x-www-form-urlencoded      line diff with '&' as the separator (one field
//                                          per "line")
//   anything else                          binary: equal bytes, else one value diff showing
//                                          size and SHA-256 of each side
// The expected side's Content-Type decides (the actual's when the expected has none; the
// bytes are sniffed when neither has one). A rule "ignore" on path "body" ignores the body
// whatever its kind. Truncated recordings (body_truncated) are compared raw by common
// prefix and original size only; undecodable bodies are reported as "uncompared".
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "doppel/v1/envelope.pb.h"
#include "diff/json_diff.h"
#include "diff/result.h"
#include "diff/rules.h"
#include "diff/text_diff.h"

namespace doppel::diff {

enum class BodyKind { kJson, kText, kForm, kBinary };

// Classifies a Content-Type value; an empty one sniffs `body` (JSON if it starts with '{' or
// '[', text if valid UTF-8 without NUL bytes, else binary).
BodyKind BodyKindOf(std::string_view content_type, std::string_view body);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

struct BodyDiffOptions {
  JsonDiffOptions json;
  LineDiffOptions text;
  size_t max_decoded_bytes = 64 << 20;  // per side, after Content-Encoding
};

// Compares the bodies of two responses into *sink. Thread-safe if *sink is not shared.
void DiffBodies(const doppel::v1::HttpResponse& expected, const doppel::v1::HttpResponse& actual,
                std::span<const CompiledRule* const> rules, const BodyDiffOptions& options,
                DiffSink* sink);

}  // namespace doppel::diff
