// Structural JSON diff (Boost.JSON): walks both documents together and reports differences
// with paths (body.items[3].price, body["odd key"]) — never by comparing serializations.
//
//   missing     member/element in expected, absent in actual           severity high
//   extra       absent in expected, present in actual                  severity low
//   type        JSON types differ (int and double are both "number")   severity high
//   value       same type, different value                             severity medium
//   array-size  by-index arrays of different length (reported once     high if shrunk,
//               at the array; the common prefix is still compared)     low if grown
//   order       same multiset of elements, different order             severity medium
//   uncompared  nesting deeper than max_depth: that subtree is compared as a whole,
//               without rules, and reported once if it differs         severity medium
// Numbers compare by value across int64/uint64/double (1 == 1.0 == 1u; 2^53+1 != 2^53.0).
// Rules (rules.h) and normalizers (normalize.h) are applied at each path.
#pragma once

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "base/status.h"
#include "diff/normalize.h"
#include "diff/result.h"
#include "diff/rules.h"

namespace doppel::diff {

struct JsonDiffOptions {
  NormalizerOptions normalizers;
  // Levels below the root that are walked with rules; deeper subtrees are compared whole.
  size_t max_depth = 64;
  // Documents nested deeper than this are not parsed (the caller falls back to a text diff).
  size_t max_parse_depth = 1000;
  // Budget of element-pair probes when pairing `unordered` arrays under rules (elements
  // that are not exactly equal). Over budget, leftovers are reported as missing/extra.
  size_t max_unordered_probes = 10000;
  // Bytes of a value rendered into FieldDiff::expected/actual.
  size_t max_rendered_bytes = 120;
};

// A JSON text parsed once, to be compared with many others (a recorded body compared with
// every target's answer). Immutable: concurrent DiffJson calls may share one.
class JsonDocument {
 public:
  // Errors: kInvalidArgument ("<side> body is not JSON: ...") when `text` is not JSON or is
  // nested deeper than options.max_parse_depth.
  static Result<JsonDocument> Parse(std::string_view text, const JsonDiffOptions& options,
                                    std::string_view side);
  const boost::json::value& value() const { return value_; }

 private:
  JsonDocument(std::unique_ptr<boost::json::monotonic_resource> storage, boost::json::value value)
      : storage_(std::move(storage)), value_(std::move(value)) {}
  // Monotonic storage: fast to fill, and freed at once instead of node by node (which would
  // also recurse as deep as the document). Declared first: value_ goes before its storage.
  std::unique_ptr<boost::json::monotonic_resource> storage_;
  boost::json::value value_;
};

// Compares two JSON texts under `rules` (the rules for this request, in precedence order;
// see RuleSet::ForRequest), reporting paths below `root` ("body") into *sink.
// Returns kInvalidArgument, reporting nothing, when either text is not JSON (or is nested
// deeper than max_parse_depth); the message says which side and why.
// Thread-safe as long as *sink is not shared.
Status DiffJson(std::string_view expected, std::string_view actual, std::string_view root,
                std::span<const CompiledRule* const> rules, const JsonDiffOptions& options,
                DiffSink* sink);

// The same with the expected side parsed already; errors only for `actual`.
Status DiffJson(const JsonDocument& expected, std::string_view actual, std::string_view root,
                std::span<const CompiledRule* const> rules, const JsonDiffOptions& options,
                DiffSink* sink);

}  // namespace doppel::diff
