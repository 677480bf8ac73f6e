// Diff rules: the rules file (JSON) and its compiled, immutable form.
//
// File schema (the same fields as doppel.v1.DiffRules in proto/doppel/v1/rules.proto):
//   {
//     "version": 1,                                   // optional; only 1 is accepted
//     "headers": {"ignore": ["X-Build"],              // added to the default ignore list
//                 "compare": ["Server"]},             // taken off the default ignore list
//     "rules": [
//       {"endpoint": "GET /users/{id}",               // optional: absent = every endpoint
//        "path": "body.items[*].updated_at",          // exact path, see path.h
//        "action": "ignore"},
//       {"path": "body.token", "action": "ignore-if-value", "regex": "^tok_"},
//       {"path": "body.total", "action": "tolerance", "absolute": 0.01, "relative": 0.001},
//       {"path": "body.tags", "action": "unordered"},
//       {"path": "body.items", "action": "unordered-by-key", "key": "id"},
//       {"path": "body.session", "action": "presence-only"}
//     ],
//     "endpoints": [{"pattern": "GET /api/v1/orders/{id}"}]   // explicit endpoint names
//   }
// Comments (// and /* */) and trailing commas are accepted.
//
// Actions:
//   ignore            differences at the path and below are not reported (listed as ignored)
//   ignore-if-value   ignored when each present side's value matches `regex` (searched, use
//                     ^...$ to anchor; strings are matched raw, numbers/bools/null as JSON)
//   tolerance         numbers equal when |a-b| <= absolute or |a-b| <= relative*max(|a|,|b|)
//   unordered         the array is compared as a multiset
//   unordered-by-key  array elements (objects) are paired by the value of member `key`
//   presence-only     only presence is compared; value and type differences are ignored
// Precedence: rules naming an endpoint come before global ones, then file order; at one
// path the first matching rule of each family wins: {ignore, ignore-if-value,
// presence-only}, {tolerance}, {unordered, unordered-by-key}.
//
// Errors name the line and column: the parser's stop position for malformed JSON, the
// offending member for schema errors ("line 7, column 9: unknown action \"ignor\" ...").
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doppel/v1/rules.pb.h"
#include "diff/endpoint.h"
#include "diff/path.h"

namespace doppel::diff {

enum class RuleAction {
  kIgnore,
  kIgnoreIfValue,
  kTolerance,
  kUnordered,
  kUnorderedByKey,
  kPresenceOnly,
};

// "ignore", "ignore-if-value", ... as written in the rules file.
std::string_view RuleActionName(RuleAction action);
// Errors list the valid names.
Result<RuleAction> ParseRuleAction(std::string_view name);

// Parses and validates rules file text. Errors start with "line L, column C: ".
Result<doppel::v1::DiffRules> ParseRulesJson(std::string_view text);
// Reads and parses a file. Errors start with "FILE: ".
Result<doppel::v1::DiffRules> LoadRulesFile(const std::string& path);

class ValueRegex;  // a compiled regex; defined in rules.cc

// One rule, compiled. Immutable; safe to use from many threads.
struct CompiledRule {
  RuleAction action = RuleAction::kIgnore;
  bool has_endpoint = false;
  EndpointTemplate endpoint;  // valid when has_endpoint
  PathPattern path;
  std::shared_ptr<const ValueRegex> regex;  // ignore-if-value
  bool has_absolute = false, has_relative = false;
  double absolute = 0, relative = 0;  // tolerance
  std::string key;                    // unordered-by-key

  // ignore-if-value: true when the regex is found in `value`. Values over 64 KiB and
  // matches the regex engine gives up on (too complex) count as no match.
  bool ValueMatches(std::string_view value) const;
  // tolerance: true when a and b are within the absolute or relative tolerance.
  bool WithinTolerance(double a, double b) const;
};

// All rules of a file, compiled: paths parsed, regexes built. Immutable after Compile.
class RuleSet {
 public:
  RuleSet() = default;
  // Validates as ParseRulesJson does (without line numbers: the input has none).
  static Result<RuleSet> Compile(const doppel::v1::DiffRules& rules);

  // The rules that apply to one request: endpoint-specific ones (in file order) first,
  // then global ones. Pointers stay valid as long as this RuleSet.
  std::vector<const CompiledRule*> ForRequest(std::string_view method,
                                              std::string_view target) const;
  // Lowercased header names.
  const std::vector<std::string>& header_ignore() const { return header_ignore_; }
  const std::vector<std::string>& header_compare() const { return header_compare_; }
  const EndpointNamer& endpoints() const { return endpoints_; }
  size_t size() const { return rules_.size(); }

 private:
  std::vector<CompiledRule> rules_;
  std::vector<std::string> header_ignore_, header_compare_;
  EndpointNamer endpoints_;
};

}  // namespace doppel::diff
