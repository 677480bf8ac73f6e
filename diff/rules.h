// Diff rules: the rules file (JSON or YAML) and its compiled, immutable form.
//
// File schema: doppel.v1.DiffRules in proto/doppel/v1/rules.proto, checked by the same
// loader as match rules (net/rules_file.h); docs/diff-rules.md is the user's spec.
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
// JSON may have comments (// and /* */) and trailing commas; the same document in YAML is
// read from a .yaml/.yml file.
//
// Actions:
//   ignore            differences at the path and below are not reported (listed as ignored)
//   ignore-if-value   ignored when each present side's value matches `regex` (RE2 syntax,
//                     searched: use ^...$ to anchor; strings are matched raw, numbers/bools/
//                     null as JSON); matching time is linear in the value whatever the regex
//   tolerance         numbers equal when |a-b| <= absolute or |a-b| <= relative*max(|a|,|b|)
//   unordered         the array is compared as a multiset
//   unordered-by-key  array elements (objects) are paired by the value of member `key`
//   presence-only     only presence is compared; value and type differences are ignored
// Precedence: rules naming an endpoint come before global ones, then file order; at one
// path the first matching rule of each family wins: {ignore, ignore-if-value,
// presence-only}, {tolerance}, {unordered, unordered-by-key}.
//
// Errors name the line, column and field path: "line 7, column 9: rules[1].action: unknown
// action \"ignor\" (expected one of: ...)".
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "diff/endpoint.h"
#include "diff/path.h"
#include "doppel/v1/rules.pb.h"
#include "net/rules_file.h"

namespace re2 {
class RE2;
}  // namespace re2

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

// Parses and validates rules file text, checked against doppel.v1.DiffRules. Errors read
// "line L, column C: FIELD.PATH: what" (no position for a document that is not an object).
Result<doppel::v1::DiffRules> ParseRules(std::string_view text, net::ConfigFormat format);
inline Result<doppel::v1::DiffRules> ParseRulesJson(std::string_view text) {
  return ParseRules(text, net::ConfigFormat::kJson);
}
// Reads and parses a file: YAML for .yaml/.yml, else JSON. Errors start with "FILE: ".
Result<doppel::v1::DiffRules> LoadRulesFile(const std::string& path);

// The endpoint namer of a rules file: its "endpoints" patterns first, then automatic
// templating (the rest of the file is checked, not used). Request classes use it
// (`--class-rules`, docs/sampling.md).
Result<EndpointNamer> LoadEndpointNamer(const std::string& path);

// One rule, compiled. Immutable; safe to use from many threads.
struct CompiledRule {
  RuleAction action = RuleAction::kIgnore;
  bool has_endpoint = false;
  EndpointTemplate endpoint;  // valid when has_endpoint
  PathPattern path;
  std::shared_ptr<const re2::RE2> regex;  // ignore-if-value
  bool has_absolute = false, has_relative = false;
  double absolute = 0, relative = 0;  // tolerance
  std::string key;                    // unordered-by-key

  // ignore-if-value: true when the regex is found in `value` (time linear in its size).
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
