#include "diff/rules.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace doppel::diff {
namespace {

// Asserts that parsing fails with an error at `line` (and `column` when non-zero) whose
// message contains `needle` (most name the field path: "rules[0].action: unknown ...").
void ExpectError(const std::string& text, int line, int column, const std::string& needle,
                 net::ConfigFormat format = net::ConfigFormat::kJson) {
  Result<doppel::v1::DiffRules> r = ParseRules(text, format);
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
      4, 23, "invalid JSON: syntax error");
  ExpectError("{\"version\": 1,\n\n   x}", 3, 4, "invalid JSON");
  ExpectError("{\"rules\": [\n", 2, 1, "invalid JSON");  // cut short
}

TEST(RulesTest, UnknownKeyNamesTheLineOfTheMember) {
  ExpectError(
      "{\n  \"version\": 1,\n  \"rules\": [\n    {\"path\": \"body.a\",\n     \"acton\": "
      "\"ignore\"}\n  ]\n}",
      5, 6, "rules[0].acton: unknown field (expected one of: endpoint, path, action, regex");
  ExpectError("{\"version\": 1,\n \"header\": {}}", 2, 2, "header: unknown field");
  ExpectError("{\"headers\": {\n  \"ignored\": []}}", 2, 3, "headers.ignored: unknown field");
  ExpectError("{\"endpoints\": [\n {\"pattern\": \"/a\",\n  \"name\": \"x\"}]}", 3, 3,
              "endpoints[0].name: unknown field (expected one of: pattern)");
}

TEST(RulesTest, BadActionNamesTheLineOfTheActionMember) {
  ExpectError(R"({"rules": [
  {"path": "body.a", "action": "ignore"},
  {"path": "body.b",
   "action": "ignor"}
]})",
              4, 4,
              "rules[1].action: unknown action \"ignor\" (expected one of: ignore, "
              "ignore-if-value");
}

TEST(RulesTest, SchemaErrorsPointAtTheOffendingMember) {
  ExpectError("{\"rules\": [\n {\"action\": \"ignore\"}]}", 2, 2,
              "rules[0]: rule needs a \"path\"");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\"}]}", 2, 2, "needs an \"action\"");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"body..a\"}]}", 2, 2,
              "rules[0].path: bad path");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"headers.date\"}]}", 2, 2,
              "path must start with \"body\"");
  ExpectError("{\"rules\": [{\"action\": \"ignore\",\n \"path\": \"status.code\"}]}", 2, 2,
              "path must start with \"body\"");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"ignore-if-value\"}]}", 2, 2,
              "needs a \"regex\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore-if-value\",\n"
      "  \"regex\": \"([a-z\"}]}",
      2, 3, "rules[0].regex: ignore-if-value: bad regex \"([a-z\": missing ]");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"tolerance\"}]}", 2, 2,
              "needs \"absolute\" and/or \"relative\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"tolerance\",\n"
      " \"absolute\": -1}]}",
      2, 2, "rules[0].absolute: \"absolute\" must be a finite number >= 0");
  ExpectError("{\"rules\": [\n {\"path\": \"body.a\", \"action\": \"unordered-by-key\"}]}", 2, 2,
              "needs a \"key\"");
  ExpectError("{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore\",\n  \"key\": \"id\"}]}",
              2, 3, "rules[0].key: \"key\" only applies to action \"unordered-by-key\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore\",\n"
      "  \"endpoint\": \"users\"}]}",
      2, 3, "rules[0].endpoint: bad endpoint");
  ExpectError("{\"rules\": [{\"path\": 5,\n \"action\": \"ignore\"}]}", 1, 13,
              "rules[0].path: expected a string, got a number");
  ExpectError("{\n\"rules\": {}}", 2, 1, "rules: expected a list, got an object");
  ExpectError("{\"version\": 2}", 1, 2, "version: unsupported rules version");
  ExpectError("{\"headers\": {\"ignore\": [\"a\",\n 7]}}", 2, 2,
              "headers.ignore[1]: expected a string, got a number");
  ExpectError("{\"endpoints\": [\n {\"pattern\": \"orders\"}]}", 2, 3,
              "endpoints[0].pattern: bad endpoint");
  // A document that is not an object has no member to point at.
  Result<doppel::v1::DiffRules> list = ParseRulesJson("[1, 2]");
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.status().message().find("expected an object with fields version, headers"),
            std::string::npos)
      << list.status().message();
}

TEST(RulesTest, DuplicateKeysAreRejected) {
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\",\n \"path\": \"body.b\", \"action\": \"ignore\"}]}", 2, 2,
      "rules[0].path: duplicate key");
  ExpectError("rules:\n  - path: body.a\n    path: body.b\n", 3, 5, "rules[0].path: duplicate key",
              net::ConfigFormat::kYaml);
}

TEST(RulesTest, YamlIsTheSameSchema) {
  Result<doppel::v1::DiffRules> yaml = ParseRules(R"(
version: 1
headers: {ignore: [X-Build], compare: [Server]}
rules:
  - endpoint: GET /users/{id}
    path: body.items[*].updated_at
    action: ignore
  - {path: body.token, action: ignore-if-value, regex: "^tok_"}
  - {path: body.total, action: tolerance, absolute: 0.01, relative: 0.001}
  - {path: body.items, action: unordered-by-key, key: id}
endpoints:
  - pattern: GET /api/v1/orders/{id}
)",
                                                  net::ConfigFormat::kYaml);
  ASSERT_TRUE(yaml.ok()) << yaml.status().ToString();
  Result<doppel::v1::DiffRules> json = ParseRulesJson(R"({"version": 1,
    "headers": {"ignore": ["X-Build"], "compare": ["Server"]},
    "rules": [
      {"endpoint": "GET /users/{id}", "path": "body.items[*].updated_at", "action": "ignore"},
      {"path": "body.token", "action": "ignore-if-value", "regex": "^tok_"},
      {"path": "body.total", "action": "tolerance", "absolute": 0.01, "relative": 0.001},
      {"path": "body.items", "action": "unordered-by-key", "key": "id"}],
    "endpoints": [{"pattern": "GET /api/v1/orders/{id}"}]})");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_EQ(yaml->SerializeAsString(), json->SerializeAsString());
}

TEST(RulesTest, YamlErrorsNameLineColumnAndField) {
  ExpectError("rules:\n  - path: body.a\n    action: ignor\n", 3, 5,
              "rules[0].action: unknown action \"ignor\"", net::ConfigFormat::kYaml);
  ExpectError("rules:\n  - path: body.a\n    action: ignore\n    regexp: x\n", 4, 5,
              "rules[0].regexp: unknown field", net::ConfigFormat::kYaml);
  ExpectError("rules:\n  - path: body.a\n    action: tolerance\n    absolute: [1]\n", 4, 5,
              "rules[0].absolute: expected a number, got a list", net::ConfigFormat::kYaml);
}

// Regexes are RE2: linear-time matching, so no backreferences or lookaround (a backtracking
// engine accepts these, and can take seconds on a hostile pattern).
TEST(RulesTest, RegexesAreRe2) {
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore-if-value\",\n"
      "  \"regex\": \"(a)\\\\1\"}]}",
      2, 3, "rules[0].regex: ignore-if-value: bad regex \"(a)\\1\"");
  ExpectError(
      "{\"rules\": [{\"path\": \"body.a\", \"action\": \"ignore-if-value\",\n"
      "  \"regex\": \"^(?=a)\"}]}",
      2, 3, "RE2 syntax");
  // Nested stars: a backtracking engine's worst case, linear here.
  Result<doppel::v1::DiffRules> parsed = ParseRulesJson(
      R"({"rules": [{"path": "body.a", "action": "ignore-if-value", "regex": "^(a*)*b$"}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  Result<RuleSet> set = RuleSet::Compile(parsed.value());
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  const CompiledRule* rule = set->ForRequest("GET", "/").at(0);
  EXPECT_FALSE(rule->ValueMatches(std::string(100000, 'a') + "c"));
  EXPECT_TRUE(rule->ValueMatches(std::string(100000, 'a') + "b"));
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

// Writes `text` to a temporary file named `name` and loads it with LoadRulesFile.
Result<doppel::v1::DiffRules> LoadText(const std::string& name, const std::string& text,
                                       std::string* path) {
  *path = ::testing::TempDir() + "/" + name;
  {
    std::ofstream out(*path);
    out << text;
  }
  Result<doppel::v1::DiffRules> r = LoadRulesFile(*path);
  std::remove(path->c_str());
  return r;
}

TEST(RulesTest, LoadRulesFilePrefixesTheFileName) {
  std::string path;
  Result<doppel::v1::DiffRules> r = LoadText(
      "doppel_rules_test.json",
      "{\n  \"rules\": [\n    {\"path\": \"body.a\", \"action\": \"nope\"}\n  ]\n}\n", &path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(path + ": line 3, column 24: rules[0].action:", 0), 0u)
      << r.status().message();
  EXPECT_EQ(LoadRulesFile(path).status().code(), Status::Code::kNotFound);

  // .yaml is read as YAML, against the same schema.
  r = LoadText("doppel_rules_test.yaml", "rules:\n  - path: body.a\n    action: nope\n", &path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(path + ": line 3, column 5: rules[0].action:", 0), 0u)
      << r.status().message();
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
