// Learned noise: which response fields vary between identical requests in a recording.
//
// Two envelopes carry the same request when method, target, request body and the values of
// the identity headers (`key_headers`: who is asking, so one user's cart is not compared with
// another's) are equal; body and header values are compared by the first 64 bits of a
// SHA-256 (the recorder stores credentials redacted by a keyed hash, equal for equal values). The
// first complete response seen per request is kept; every later one for the same request is
// compared with it by the diff engine, and each (endpoint, generalized path) that differed is
// counted once per pair. Fields the engine already normalizes (timestamps, UUIDs, ...) or ignores
// never show up as differences, so they are not learned. The result renders as a rules file
// (docs/diff-rules.md) that ignores the fields that varied in at least `min_pairs` pairs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doppel/v1/rules.pb.h"
#include "replay/source.h"

namespace doppel::replay {

struct NoiseLearnOptions {
  // A field is learned when it differed in at least this many pairs.
  uint64_t min_pairs = 3;
  // Bounds on the first responses kept. Once either is reached no new request is kept
  // (later repeats of already-kept requests are still compared); see key_cap_reached.
  size_t max_keys = 100'000;
  size_t max_kept_bytes = 256u << 20;
  // Request headers (lowercase names) whose values are part of the request's identity.
  std::vector<std::string> key_headers = {"authorization", "cookie", "x-api-key"};
  // Rules already in use (endpoint patterns, ignores): what they ignore is not re-learned.
  doppel::v1::DiffRules rules;
};

// One field that varied between identical requests.
struct LearnedField {
  std::string endpoint;  // "GET /api/v1/products/{id}"
  std::string path;      // generalized: "body.items[*].stock", "headers.x-cache"
  uint64_t varied = 0;   // pairs in which it differed
  uint64_t pairs = 0;    // pairs compared for the endpoint
};

struct NoiseLearnResult {
  uint64_t envelopes = 0;           // read from the source
  uint64_t refused = 0;             // skipped: the proxy refused them (storage::ProxyRefused)
  uint64_t incomplete = 0;          // skipped: no primary response (upstream error), or a
                                    // truncated request/response body
  uint64_t keys = 0;                // distinct requests kept
  bool key_cap_reached = false;     // max_keys or max_kept_bytes reached
  uint64_t not_kept = 0;            // envelopes of new requests seen after the cap
  uint64_t pairs = 0;               // repeats compared with the kept response
  uint64_t status_changed = 0;      // repeats not compared: the status differed (not noise)
  uint64_t pairs_with_omitted = 0;  // pairs with more differences than could be attributed
  // Fields with varied >= min_pairs, sorted by endpoint then path. Never includes "status".
  std::vector<LearnedField> fields;
  // Fields that varied, but in fewer than min_pairs pairs (reported, not written).
  uint64_t below_min_pairs = 0;
  // Fields that reached min_pairs but whose endpoint or path a rules file cannot express.
  uint64_t unrepresentable = 0;
};

// Streams `source` once from where it stands. Errors: invalid `options.rules`, or the
// source failing mid-stream (its status).
Result<NoiseLearnResult> LearnNoise(EnvelopeSource& source, const NoiseLearnOptions& options);

// The learned fields as a rules file accepted by ParseRulesJson: body fields as endpoint-
// scoped `ignore` rules, header fields in the (global) headers.ignore list, each preceded by
// a "// varied in X of N identical requests" comment. `origin` names the recording in the
// leading comment. Deterministic: same result, same text.
std::string NoiseRulesJson(const NoiseLearnResult& result, std::string_view origin);

}  // namespace doppel::replay
