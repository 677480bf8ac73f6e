// Body comparison: decode (decode.h), pick a comparison by content type, report under "body".
//
//   application/json, */*+json            structural JSON diff (json_diff.h); a side that is
//                                          not JSON falls back to the line diff
//   text/*, */*+xml, application/xml,      line diff (text_diff.h)
//   application/javascript, ndjson, yaml
//   application/x-www-form-urlencoded      line diff with '&' as the separator (one field
//                                          per "line")
//   application/grpc, application/grpc+*   the messages as JSON (grpc.h), then the JSON diff
//   anything else                          binary: equal bytes, else one value diff showing
//                                          size and SHA-256 of each side
// The expected side's Content-Type decides (the actual's when the expected has none; the
// bytes are sniffed when neither has one). A rule "ignore" on path "body" ignores the body
// whatever its kind. Truncated recordings (body_truncated) are compared raw by common
// prefix and original size only; undecodable bodies are reported as "uncompared".
// The expected side is a PreparedBody: decoded and parsed once however many answers it is
// compared with.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/once.h"
#include "base/status.h"
#include "diff/grpc.h"
#include "diff/json_diff.h"
#include "diff/result.h"
#include "diff/rules.h"
#include "diff/text_diff.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::diff {

enum class BodyKind { kJson, kText, kForm, kBinary };

// Classifies a Content-Type value; an empty one sniffs `body` (JSON if it starts with '{' or
// '[', text if valid UTF-8 without NUL bytes, else binary).
BodyKind BodyKindOf(std::string_view content_type, std::string_view body);

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// "<size> bytes, sha256 <first 16 hex digits>": how bytes that are compared without a type
// (a binary body, an untyped gRPC message, a binary WebSocket message) are shown.
std::string SizeAndHash(std::string_view bytes);

struct BodyDiffOptions {
  JsonDiffOptions json;
  LineDiffOptions text;
  size_t max_decoded_bytes = 64 << 20;        // per side, after Content-Encoding
  std::function<void()> on_expected_decoded;  // DiffConfig::on_expected_decoded
  const GrpcSchema* grpc = nullptr;           // DiffConfig::grpc_schema
};

// The expected side of body comparisons: its body decoded (decode.h) and, when it is JSON,
// parsed — each at most once, and only when a comparison needs it (byte-equal bodies need
// neither). Thread-safe: concurrent DiffBodies calls may share one.
// REQUIRES: `response` and `options` outlive it.
class PreparedBody {
 public:
  // `path`: the request's path, which names a gRPC call's method.
  PreparedBody(const doppel::v1::HttpResponse& response, const BodyDiffOptions& options,
               std::string_view path = {})
      : response_(response), options_(options), path_(path) {}
  PreparedBody(const PreparedBody&) = delete;
  PreparedBody& operator=(const PreparedBody&) = delete;

  const doppel::v1::HttpResponse& response() const { return response_; }
  const BodyDiffOptions& options() const { return options_; }
  const std::string& path() const { return path_; }
  // The body after Content-Encoding and charset, or why it could not be decoded.
  const Result<std::string>& Decoded() const;
  // Decoded() parsed as JSON, or why it is not JSON. REQUIRES: Decoded().ok().
  const Result<JsonDocument>& Json() const;

 private:
  const doppel::v1::HttpResponse& response_;
  const BodyDiffOptions& options_;
  const std::string path_;
  mutable OnceFlag decoded_once_, json_once_;
  mutable std::optional<Result<std::string>> decoded_;
  mutable std::optional<Result<JsonDocument>> json_;
};

// Compares the bodies of two responses into *sink, under `expected.options()`. Thread-safe if
// *sink is not shared.
void DiffBodies(const PreparedBody& expected, const doppel::v1::HttpResponse& actual,
                std::span<const CompiledRule* const> rules, DiffSink* sink);

}  // namespace doppel::diff
