// The diff engine's public face: compare a recorded (expected) response with a replayed
// (actual) one and say what differs, with paths, kinds and severities.
//
//   Result<DifferPtr> differ = Differ::Create(config);   // compiles rules once
//   DiffResult r = (*differ)->Compare("GET", "/users/42?x=1", recorded, replayed);
//   r.match; r.diffs[i].path == "body.items[3].price"; r.endpoint == "GET /users/{id}"
//
// What is compared, in report order: the status ("status", kind value), headers
// (headers.h: "headers.<name>"), the body decoded (body.h: "body", "body.a.b[2]").
// A rule with path "status" and action "ignore" ignores status differences.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/rules.pb.h"
#include "diff/normalize.h"
#include "diff/result.h"

namespace doppel::diff {

struct DiffConfig {
  doppel::v1::DiffRules rules;          // from LoadRulesFile / ParseRulesJson; empty = none
  NormalizerOptions normalizers;        // all on by default
  size_t max_diffs = 100;               // FieldDiffs kept per comparison; the rest are counted
  size_t max_listed_paths = 100;        // normalized + ignored paths kept per comparison
  size_t max_decoded_bytes = 64 << 20;  // per body, after Content-Encoding
  size_t max_json_depth = 64;           // levels walked with rules; deeper is compared whole
  size_t max_rendered_bytes = 120;
};

class Differ;
using DifferPtr = std::unique_ptr<Differ>;

class Differ {
 public:
  virtual ~Differ() = default;

  // Validates and compiles the rules (paths, regexes, endpoint patterns). Errors are
  // kInvalidArgument naming the offending rule.
  static Result<DifferPtr> Create(DiffConfig config);

  // Compares `actual` against `expected` (the recording) for the request `method target`.
  // Thread-safe: may be called concurrently on one Differ. Never fails and never throws on
  // any input: what cannot be compared is reported as a kUncompared diff.
  virtual DiffResult Compare(std::string_view method, std::string_view target,
                             const doppel::v1::HttpResponse& expected,
                             const doppel::v1::HttpResponse& actual) const = 0;

  // The endpoint name used to group this request ("GET /users/{id}"): explicit patterns
  // from the rules first, then automatic templating (endpoint.h). Thread-safe.
  virtual std::string Endpoint(std::string_view method, std::string_view target) const = 0;
};

}  // namespace doppel::diff
