// Header diff: names case-insensitive, multi-value aware.
//
// Values are compared as lists: every field line of a name is split on commas (outside
// double quotes; not for Set-Cookie, Date-like and auth-challenge headers, whose values hold
// commas), elements trimmed, and the two lists compared as multisets, so "a, b" equals two
// lines "b" and "a". Paths are "headers.<lowercase-name>"; trailers (fields sent after the
// body, gRPC's grpc-status and grpc-message) are compared the same way under
// "trailers.<lowercase-name>", with the same ignore and compare lists. A changed grpc-status,
// in the headers (a trailers-only gRPC answer) or the trailers, is a high-severity
// difference: the call's outcome changed, as with a changed HTTP status class.
//
// Default treatment (what a rules file's "headers" section changes):
//   ignored: date, server, age, via, expires, last-modified, keep-alive, connection,
//     x-request-id, request-id, x-correlation-id, traceparent, tracestate, x-trace-id,
//     x-amzn-trace-id, x-b3-traceid, x-b3-spanid, x-b3-parentspanid, x-b3-sampled, b3,
//     x-cloud-trace-context, x-runtime, x-response-time, x-envoy-upstream-service-time,
//     content-encoding and transfer-encoding (bodies are compared decoded), and gRPC's
//     grpc-encoding (messages are compared decompressed) and grpc-accept-encoding (what the
//     server could decompress: negotiation, absent from trailers-only answers), and
//     sec-websocket-accept (derived from the handshake's random key) and
//     sec-websocket-extensions (negotiation: messages are compared decompressed)
//   content-length: ignored when the bodies were compared (the body diff already says what
//     changed, and a changed body changes its length); compared when the body could not be
//   set-cookie: presence only — a cookie that appears or disappears is reported, a new
//     value is not (session ids differ on every response, and the recorder stores values
//     redacted by a keyed hash)
//   everything else (ETag included) is compared.
// Differences on ignored headers are listed in DiffResult::ignored, not dropped silently.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "diff/result.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::diff {

class HeaderPolicy {
 public:
  // `ignore` and `compare` are header names (any case) from the rules file: `ignore` adds to
  // the defaults, `compare` takes names off them (including content-length and set-cookie).
  HeaderPolicy(const std::vector<std::string>& ignore, const std::vector<std::string>& compare);
  HeaderPolicy() : HeaderPolicy({}, {}) {}

  // Reports header differences into *sink under `section` ("headers" or "trailers").
  // `body_compared`: the bodies were compared (no `uncompared` difference), which makes
  // Content-Length redundant. Thread-safe (const).
  void Diff(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& expected,
            const google::protobuf::RepeatedPtrField<doppel::v1::Header>& actual,
            bool body_compared, DiffSink* sink, std::string_view section = "headers") const;

 private:
  std::unordered_set<std::string> ignored_;
  std::unordered_set<std::string> presence_only_;
  bool content_length_follows_body_ = true;
};

// The values of header `name` (case-insensitive) split into list elements as described
// above, in order. Empty when the header is absent.
std::vector<std::string> HeaderValues(
    const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers, std::string_view name);

// The first value of header `name` (case-insensitive), unsplit; "" when absent.
std::string_view FirstHeader(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                             std::string_view name);

}  // namespace doppel::diff
