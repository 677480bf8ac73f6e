// Rules files in JSON and YAML, held to the proto schema (v1::MatchRulesFile).
#include "net/rules_file.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "doppel/v1/rules.pb.h"
#include "net/match.h"

namespace doppel::net {
namespace {

const char* MatchName(const MatchRules& rules, std::string_view method, std::string_view target,
                      std::optional<std::string_view> cookie = std::nullopt) {
  RequestView view{method, target,
                   [cookie](std::string_view name) -> std::optional<std::string_view> {
                     if (name == "cookie" || name == "Cookie") return cookie;
                     return std::nullopt;
                   }};
  const MatchBlock* b = rules.Match(view);
  return b ? b->name.c_str() : nullptr;
}

TEST(RulesFileTest, YamlRulesMatchLikeTheirJsonTwin) {
  auto yaml = MatchRules::FromYaml(R"(
rules:
  - name: checkout
    method: POST
    uri: {prefix: /checkout}
  - name: debug
    headers:
      cookie: {regex: ".*session_id=abc123.*"}
    query_params:
      trace: {present: true}
)");
  ASSERT_TRUE(yaml.ok()) << yaml.status().ToString();
  auto json = MatchRules::FromJson(R"({"rules": [
    {"name": "checkout", "method": "POST", "uri": {"prefix": "/checkout"}},
    {"name": "debug", "headers": {"cookie": {"regex": ".*session_id=abc123.*"}},
     "query_params": {"trace": {"present": true}}}]})");
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  for (const MatchRules* r : {&yaml.value(), &json.value()}) {
    EXPECT_STREQ(MatchName(*r, "POST", "/checkout/pay"), "checkout");
    EXPECT_EQ(MatchName(*r, "GET", "/checkout/pay"), nullptr);
    EXPECT_STREQ(MatchName(*r, "GET", "/x?trace", "a=1; session_id=abc123"), "debug");
    EXPECT_EQ(MatchName(*r, "GET", "/x?trace", "session_id=zzz"), nullptr);
    EXPECT_EQ(MatchName(*r, "GET", "/x", "session_id=abc123"), nullptr);
  }
}

TEST(RulesFileTest, YamlBareListAndQuotedScalars) {
  // A top-level list is {"rules": [...]}; a quoted "true" stays a string (exact match).
  auto rules = MatchRules::FromYaml("- uri: /health\n- headers: {x-flag: \"true\"}\n");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ASSERT_EQ(rules->blocks().size(), 2u);
  EXPECT_EQ(rules->blocks()[1].headers[0].second.value(), "true");
}

TEST(RulesFileTest, UnknownFieldIsRefusedWithLineAndKnownFields) {
  auto yaml = MatchRules::FromYaml("rules:\n  - name: a\n    urii: /x\n");
  ASSERT_FALSE(yaml.ok());
  const std::string m = yaml.status().message();
  EXPECT_NE(m.find("line 3, column 5"), std::string::npos) << m;
  EXPECT_NE(m.find("rules[0].urii: unknown field"), std::string::npos) << m;
  EXPECT_NE(m.find("name, method, uri, headers, query_params"), std::string::npos) << m;

  auto json = MatchRules::FromJson("{\"rules\": [\n {\"name\": \"a\",\n  \"urii\": \"/x\"}]}");
  ASSERT_FALSE(json.ok());
  EXPECT_NE(json.status().message().find("line 3"), std::string::npos) << json.status().message();
}

TEST(RulesFileTest, WrongTypesAreRefusedByTheSchema) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"rules: {name: a}\n", "rules: expected a list, got an object"},
      {"rules:\n  - name: [a]\n", "rules[0].name: expected a string, got a list"},
      {"rules:\n  - headers: [x]\n", "rules[0].headers: expected an object of name: value"},
      {"rules:\n  - uri: {present: yes}\n", "rules[0].uri.present: expected true or false"},
      {"rules:\n  - uri: 42\n", "rules[0].uri: expected an object"},
      {"rulez: []\n", "rulez: unknown field (expected one of: rules)"},
      {"[1, 2\n", "invalid YAML"},
      {"rules:\n  - name: a\n    name: b\n", "duplicate key"},
  };
  for (const Case& c : cases) {
    auto r = MatchRules::FromYaml(c.yaml);
    ASSERT_FALSE(r.ok()) << c.yaml;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos)
        << c.yaml << " -> " << r.status().message();
  }
}

TEST(RulesFileTest, SemanticChecksStillApplyAfterTheSchema) {
  auto bad_regex = MatchRules::FromYaml("rules:\n  - uri: {regex: \"(\"}\n");
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_NE(bad_regex.status().message().find("line 2"), std::string::npos)
      << bad_regex.status().message();
  auto two_kinds = MatchRules::FromYaml("rules:\n  - uri: {exact: /a, prefix: /b}\n");
  EXPECT_FALSE(two_kinds.ok());
  auto dup = MatchRules::FromYaml("rules:\n  - name: a\n  - name: a\n");
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("two rules are named 'a'"), std::string::npos);
}

TEST(RulesFileTest, AliasBombIsBounded) {
  // Each level doubles: 2^30 values if expanded blindly.
  std::string y = "a0: &a0 [x, x]\n";
  for (int i = 1; i <= 30; ++i) {
    y += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" + std::to_string(i - 1) +
         ", *a" + std::to_string(i - 1) + "]\n";
  }
  auto doc = ParseConfig(y, ConfigFormat::kYaml);
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("values"), std::string::npos) << doc.status().message();
}

TEST(RulesFileTest, FromFilePicksTheFormatByExtension) {
  EXPECT_EQ(FormatForPath("/x/rules.YAML"), ConfigFormat::kYaml);
  EXPECT_EQ(FormatForPath("rules.yml"), ConfigFormat::kYaml);
  EXPECT_EQ(FormatForPath("rules.json"), ConfigFormat::kJson);
  EXPECT_EQ(FormatForPath("rules"), ConfigFormat::kJson);
  const std::string path = ::testing::TempDir() + "/doppel_rules_test.yaml";
  {
    std::ofstream out(path);
    out << "rules:\n  - name: api\n    uri: {prefix: /api}\n  - name: bad\n    method: {regx: G}\n";
  }
  auto r = MatchRules::FromFile(path);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(r.status().ToString().find(path), std::string::npos) << r.status().ToString();
  EXPECT_NE(m.find("line 5"), std::string::npos) << m;
  EXPECT_NE(m.find("rules[1].method.regx"), std::string::npos) << m;
  {
    std::ofstream out(path);
    out << "rules:\n  - name: api\n    uri: {prefix: /api}\n";
  }
  auto ok = MatchRules::FromFile(path);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_STREQ(MatchName(*ok, "GET", "/api/x"), "api");
  EXPECT_FALSE(MatchRules::FromFile(path + ".missing").ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace doppel::net
