#include "diff/rules.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace doppel::diff {
namespace {

// Asserts that parsing fails with an error at `line` (and `column` when non-zero) whose
// message contains `needle`.
void ExpectError(const std::string& text, int line, int column, const std::string& needle) {
  Result<doppel::v1::DiffRules> r = ParseRulesJson(text);
  ASSERT_FALSE(r.ok()) << "parsed: " << text;
  const std::string& m = r.status().message();
  std::string where = "line " + std::to_string(line) + ", column ";
  EXPECT_EQ(m.rfind(where, 0), 0u) << m;
  if (column > 0) {
    EXPECT_EQ(m.rfind(where + std::to_string(column) + ":", 0), 0u) << m;
  }
  EXPECT_NE(m.find(needle), std::string::npos) << m;
}

TEST(RulesTest, ParsesACompleteFile) {
  Result<doppel::v1::DiffRules> r = ParseRulesJson(R"({
    // comments and trailing commas are fine
    "version": 1,
    "headers": {"ignore": ["X-Build"], "compare": ["Server"]},
    "rules": [
      {"endpoint": "GET /users/{id}", "path": "body.items[*].updated_at", "action": "ignore"},
      {"path": "body.token", "action": "ignore-if-value", "regex": "^tok_"},
      {"path": "body.total", "action": "tolerance", "absolute": 0.01, "relative": 0.001},
      {"path": "body.tags", "action": "unordered"},
      {"path": "body.items", "action": "unordered-by-key", "key": "id"},
      {"path": "body.session", "action": "presence-only"},
    ],
    "endpoints": [{"pattern": "GET /api/v1/orders/{id}"}]
  })");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version(), 1u);
  ASSERT_EQ(r->headers().ignore_size(), 1);
  EXPECT_EQ(r->headers().ignore(0), "X-Build");
  EXPECT_EQ(r->headers().compare(0), "Server");
  ASSERT_EQ(r->rules_size(), 6);
  EXPECT_EQ(r->rules(0).endpoint(), "GET /users/{id}");
  EXPECT_EQ(r->rules(1).regex(), "^tok_");
  EXPECT_TRUE(r->rules(2).has_absolute());
  EXPECT_DOUBLE_EQ(r->rules(2).absolute(), 0.01);
  EXPECT_DOUBLE_EQ(r->rules(2).relative(), 0.001);
  EXPECT_EQ(r->rules(4).key(), "id");
  ASSERT_EQ(r->endpoints_size(), 1);
  EXPECT_EQ(r->endpoints(0).pattern(), "GET /api/v1/orders/{id}");
  Result<RuleSet> set = RuleSet::Compile(r.value());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->size(), 6u);
  EXPECT_EQ(set->header_ignore(), std::vector<std::string>{"x-build"});
  EXPECT_EQ(set->endpoints().Name("GET", "/api/v1/orders/abc"), "GET /api/v1/orders/{id}");
}

TEST(RulesTest, MalformedJsonReportsWhereTheParserStopped) {
  ExpectError(
      "{\n  \"version\": 1,\n  \"rules\": [\n    {\"path\": \"body.a\" \"action\": \"ignore\"}\n  "
      "]\n}",
      4, 23, "malformed JSON: syntax error at '\"action\": \"ignore\"}'");
  ExpectError("{\"version\": 1,\n\n   x}", 3, 4, "malformed JSON");
  ExpectError("{\"rules\": [\n", 2, 1, "at end of input");  // cut short
}

TEST(RulesTest, UnknownKeyNamesTheLineOfTheMember) {
  ExpectError(
      "{\n  \"version\": 1,\n  \"rules\": [\n    {\"path\": \"body.a\",\n     \"acton\": "
      "\"ignore\"}\n  ]\n}",
      5, 6, "unknown key \"acton\" in rules[0]");
  ExpectError("{\"version\": 1,\n \"header\": {}}", 2, 2, "unknown key \"header\"");
  ExpectError("{\"headers\": {\n  \"ignored\": []}}", 2, 3, "unknown key \"ignored\" in headers");
  ExpectError("{\"endpoints\": [\n {\"pattern\": \"/a\",\n  \"name\": \"x\"}]}", 3, 3,
              "unknown key \"name\" in endpoints[0]");
}

TEST(RulesTest, BadActionNamesTheLineOfTheActionMember) {
  ExpectError(R"({"rules": [
  {"path": "body.a", "action": "ignore"},
  {"path": "body.b",
   "action": "ignor"}
]})",
              4, 4, "unknown action \"ignor\" (expected one of: ignore, ignore-if-value");
}

TEST(RulesTest, SchemaErrorsPointAtTheOffendingMember) {
  ExpectError("{\"rules\": [\n {\"action\": \"ignore\"}]}", 2, 2, "needs a \"path\"");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\"}]}", 2, 2, "needs an \"action\"");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"body..a\"}]}", 2, 2, "bad path");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"headers.date\"}]}", 2, 2,
              "path must start with \"body\"");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"status.code\"}]}", 2, 2,
              "path must start with \"body\"");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"ignore-if-value\"}]}", 2, 2,
              "needs a \"regex\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore-if-value\",\n"
      "  \"regex\": \"([a-z\"}]}",
      2, 3, "bad regex");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"tolerance\"}]}", 2, 2,
              "needs \"absolute\" and/or \"relative\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"tolerance\",\n"
      " \"absolute\": -1}]}",
      2, 2, "finite number >= 0");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"unordered-by-key\"}]}", 2, 2,
              "needs a \"key\"");
  ExpectError("{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore\",\n  \"key\": \"id\"}]}",
              2, 3, "only applies to action \"unordered-by-key\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore\",\n"
      "  \"endpoint\": \"users\"}]}",
      2, 3, "bad endpoint");
  ExpectError("{\"rules\": [{\"path\": 5,\n \"action\": \"ignore\"}]}", 1, 13, "must be a string");
  ExpectError("{\n\"rules\": {}}", 2, 1, "\"rules\" must be an array");
  ExpectError("{\"version\": 2}", 1, 2, "unsupported rules version");
  ExpectError("[1, 2]", 1, 1, "must be a JSON object");
  ExpectError("{\"headers\": {\"ignore\": [\"a\",\n 7]}}", 2, 2, "must be a string");
  ExpectError("{\"endpoints\": [\n {\"pattern\": \"orders\"}]}", 2, 3, "bad endpoint");
}

TEST(RulesTest, DuplicateKeysAreRejected) {
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\",\n \"path\": \"body.b\", \"action\": \"ignore\"}]}", 2, 2,
      "duplicate key");
}

TEST(RulesTest, ActionNamesRoundTrip) {
  for (RuleAction a :
       {RuleAction::kIgnore, RuleAction::kIgnoreIfValue, RuleAction::kTolerance,
        RuleAction::kUnordered, RuleAction::kUnorderedByKey, RuleAction::kPresenceOnly}) {
    Result<RuleAction> parsed = ParseRuleAction(RuleActionName(a));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.value(), a);
  }
  EXPECT_FALSE(ParseRuleAction("IGNORE").ok());
}

TEST(RulesTest, LoadRulesFilePrefixesTheFileName) {
  std::string path = ::testing::TempDir() + "/doppel_rules_test.json";
  {
    std::ofstream out(path);
    out << "{\n  \"rules\": [\n    {\"path\": \"body.a\", \"action\": \"nope\"}\n  ]\n}\n";
  }
  Result<doppel::v1::DiffRules> r = LoadRulesFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(path + ": line 3, column 24:", 0), 0u)
      << r.status().message();
  std::remove(path.c_str());
  EXPECT_EQ(LoadRulesFile(path).status().code(), Status::Code::kNotFound);
}

TEST(RulesTest, CompileValidatesProtoBuiltInCode) {
  doppel::v1::DiffRules rules;
  doppel::v1::DiffRule* r = rules.add_rules();
  r->set_path("body.a");
  r->set_action("tolerance");
  Result<RuleSet> set = RuleSet::Compile(rules);
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.status().message().find("rules[0]"), std::string::npos);
  r->set_relative(0.1);
  EXPECT_TRUE(RuleSet::Compile(rules).ok());
}

TEST(RulesTest, ForRequestPutsEndpointRulesBeforeGlobalOnes) {
  Result<doppel::v1::DiffRules> parsed = ParseRulesJson(R"({"rules": [
    {"path": "body.a", "action": "ignore"},
    {"endpoint": "GET /users/{id}", "path": "body.b", "action": "ignore"},
    {"endpoint": "/orders", "path": "body.c", "action": "ignore"}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  Result<RuleSet> set = RuleSet::Compile(parsed.value());
  ASSERT_TRUE(set.ok());
  std::vector<const CompiledRule*> users = set->ForRequest("GET", "/users/42?x=1");
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0]->path.text(), "body.b");
  EXPECT_EQ(users[1]->path.text(), "body.a");
  EXPECT_EQ(set->ForRequest("POST", "/users/42").size(), 1u);
  EXPECT_EQ(set->ForRequest("DELETE", "/orders").size(), 2u);  // no method = any method
}

TEST(RulesTest, ToleranceAndRegexHelpers) {
  CompiledRule r;
  r.has_absolute = true;
  r.absolute = 0.5;
  EXPECT_TRUE(r.WithinTolerance(10, 10.5));
  EXPECT_FALSE(r.WithinTolerance(10, 10.6));
  r.has_absolute = false;
  r.has_relative = true;
  r.relative = 0.01;
  EXPECT_TRUE(r.WithinTolerance(1000, 1010));
  EXPECT_FALSE(r.WithinTolerance(1000, 1011));
  EXPECT_FALSE(r.ValueMatches("anything"));  // no regex compiled
}

}  // namespace
}  // namespace doppel::diff
