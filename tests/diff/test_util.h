// Helpers shared by the diff engine tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "diff/json_diff.h"
#include "diff/result.h"
#include "diff/rules.h"

namespace doppel::diff::testing {

// Compiles rules file text; fails the test on error.
inline RuleSet MustCompile(std::string_view rules_json) {
  Result<doppel::v1::DiffRules> parsed = ParseRulesJson(rules_json);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  if (!parsed.ok()) return RuleSet();
  Result<RuleSet> set = RuleSet::Compile(parsed.value());
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  if (!set.ok()) return RuleSet();
  return std::move(set).value();
}

// Structural diff of two JSON texts under a rules file, for request GET /.
inline DiffResult JsonDiff(std::string_view expected, std::string_view actual,
                           std::string_view rules_json = "{}",
                           JsonDiffOptions options = JsonDiffOptions()) {
  RuleSet set = MustCompile(rules_json);
  std::vector<const CompiledRule*> rules = set.ForRequest("GET", "/");
  DiffResult result;
  DiffSink sink(&result, 1000, 1000);
  Status st = DiffJson(expected, actual, "body", rules, options, &sink);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return result;
}

// The diffs at `path`.
inline std::vector<FieldDiff> At(const DiffResult& r, std::string_view path) {
  std::vector<FieldDiff> out;
  for (const FieldDiff& d : r.diffs) {
    if (d.path == path) out.push_back(d);
  }
  return out;
}

// "path:kind" for every diff, in order — compact to assert on.
inline std::vector<std::string> Summary(const DiffResult& r) {
  std::vector<std::string> out;
  for (const FieldDiff& d : r.diffs) out.push_back(d.path + ":" + std::string(KindName(d.kind)));
  return out;
}

}  // namespace doppel::diff::testing
