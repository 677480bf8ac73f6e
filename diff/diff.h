// The diff engine's public face: compare a recorded (expected) response with a replayed
// (actual) one and say what differs, with paths, kinds and severities.
//
//   Result<DifferPtr> differ = Differ::Create(config);   // compiles rules once
//   DiffResult r = (*differ)->Compare("GET", "/users/42?x=1", recorded, replayed);
//   r.match; r.diffs[i].path == "body.items[3].price"; r.endpoint == "GET /users/{id}"
//
// One recording compared with several answers (targets, a secondary) is prepared once, so
// its body is decoded and parsed once:
//   ExpectedPtr e = (*differ)->Prepare("GET", "/users/42?x=1", recorded);
//   DiffResult a = (*differ)->Compare(*e, from_target_a), b = (*differ)->Compare(*e, ...);
//
// What is compared, in report order: the status ("status", kind value), headers
// (headers.h: "headers.<name>"), the body decoded (body.h: "body", "body.a.b[2]"), and for
// a WebSocket handshake the server's messages (websocket.h: "websocket[0].a").
// A rule with path "status" and action "ignore" ignores status differences.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "diff/grpc.h"
#include "diff/normalize.h"
#include "diff/result.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/rules.pb.h"

namespace doppel::diff {

struct DiffConfig {
  doppel::v1::DiffRules rules;          // from LoadRulesFile / ParseRulesJson; empty = none
  NormalizerOptions normalizers;        // all on by default
  size_t max_diffs = 100;               // FieldDiffs kept per comparison; the rest are counted
  size_t max_listed_paths = 100;        // normalized + ignored paths kept per comparison
  size_t max_decoded_bytes = 64 << 20;  // per body, after Content-Encoding
  size_t max_json_depth = 64;           // levels walked with rules; deeper is compared whole
  size_t max_rendered_bytes = 120;
  // Tests: called each time a recorded (expected) body is decoded. Must be thread-safe.
  std::function<void()> on_expected_decoded;
  // gRPC message types (`--proto-set`); null: gRPC messages are compared by bytes (grpc.h).
  std::shared_ptr<const GrpcSchema> grpc_schema;
};

class Differ;
using DifferPtr = std::unique_ptr<Differ>;

// A recorded response prepared by Differ::Prepare for comparison with any number of actual
// responses: the request's endpoint and rules looked up once, the body decoded and parsed
// at most once (when a comparison first needs it). Immutable to its users and thread-safe:
// concurrent Compare calls may share one. Only the Differ that made it can use it.
class Expected {
 public:
  virtual ~Expected() = default;
  // The endpoint name of the request (as Differ::Endpoint).
  virtual const std::string& endpoint() const = 0;
};
using ExpectedPtr = std::unique_ptr<const Expected>;

class Differ {
 public:
  virtual ~Differ() = default;

  // Validates and compiles the rules (paths, regexes, endpoint patterns). Errors are
  // kInvalidArgument naming the offending rule.
  static Result<DifferPtr> Create(DiffConfig config);

  // Prepares `expected` (the recording of the request `method target`) for Compare.
  // `websocket`: the connection that followed, when the request was a WebSocket handshake the
  // primary accepted (Envelope.websocket); null otherwise.
  // Thread-safe. REQUIRES: `expected`, `websocket` and this Differ outlive the result.
  virtual ExpectedPtr Prepare(std::string_view method, std::string_view target,
                              const doppel::v1::HttpResponse& expected,
                              const doppel::v1::WebSocketSession* websocket) const = 0;
  ExpectedPtr Prepare(std::string_view method, std::string_view target,
                      const doppel::v1::HttpResponse& expected) const {
    return Prepare(method, target, expected, nullptr);
  }

  // Compares `actual` against `expected` (the recording). When the recording has a WebSocket
  // connection, its server messages are compared with those of `websocket` (the replayed
  // connection; null or empty when there was none) under the path root `websocket`
  // (diff/websocket.h). Thread-safe: may be called concurrently on one Differ, with one
  // Expected. Never fails and never throws on any input: what cannot be compared is reported
  // as a kUncompared diff.
  // REQUIRES: `expected` came from this Differ's Prepare.
  virtual DiffResult Compare(const Expected& expected, const doppel::v1::HttpResponse& actual,
                             const doppel::v1::WebSocketSession* websocket) const = 0;
  DiffResult Compare(const Expected& expected, const doppel::v1::HttpResponse& actual) const {
    return Compare(expected, actual, nullptr);
  }

  // One comparison: Compare(*Prepare(method, target, expected), actual).
  DiffResult Compare(std::string_view method, std::string_view target,
                     const doppel::v1::HttpResponse& expected,
                     const doppel::v1::HttpResponse& actual) const;

  // The endpoint name used to group this request ("GET /users/{id}"): explicit patterns
  // from the rules first, then automatic templating (endpoint.h). Thread-safe.
  virtual std::string Endpoint(std::string_view method, std::string_view target) const = 0;
};

}  // namespace doppel::diff
