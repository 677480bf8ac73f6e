// The correlation rules loader (replay/correlate_rules.h): a good file in YAML and JSON, and
// bad files whose errors name line, column and field path. Applying rules:
// tests/replay/correlate_test.cc (CorrelateRulesTest).
#include "replay/correlate_rules.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/base/temp_dir.h"

namespace doppel::replay {
namespace {

using net::ConfigFormat;

constexpr std::string_view kGood = R"yaml(version: 1
auto_learn: false
rules:
  - name: ticket
    extract:
      endpoint: {method: POST, uri: /tickets}
      location: body
      regex: "ticket ([0-9a-f]+)"
    inject:
      endpoint: {method: GET, uri: {prefix: /tickets/}}
      location: query:code
  - name: session
    extract:
      endpoint:
        uri: {regex: "/v[12]/session"}
        headers: {x-tenant: {present: true}}
      location: header:X-Session
    inject:
      location: header:Authorization#bearer
)yaml";

TEST(CorrelationRulesTest, ReadsAGoodYamlFile) {
  auto rules = ParseCorrelationRules(kGood, ConfigFormat::kYaml);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_FALSE(rules->auto_learn);
  ASSERT_EQ(rules->rules.size(), 2u);
  const CorrelationRule& t = rules->rules[0];
  EXPECT_EQ(t.name, "ticket");
  EXPECT_EQ(t.extract_location, "body");
  ASSERT_NE(t.regex, nullptr);
  EXPECT_EQ(t.inject_location, "query:code");
  EXPECT_EQ(t.source_endpoint, "POST /tickets");
  EXPECT_EQ(t.source_location, "body ~ /ticket ([0-9a-f]+)/");
  EXPECT_EQ(t.sink_endpoint, "GET /tickets/*");
  const CorrelationRule& s = rules->rules[1];
  EXPECT_EQ(s.extract_location, "header:x-session");  // header names lower-cased
  EXPECT_EQ(s.regex, nullptr);
  EXPECT_EQ(s.inject_location, "header:authorization#bearer");
  EXPECT_EQ(s.source_endpoint, "* ~//v[12]/session/ [x-tenant]");
  EXPECT_EQ(s.sink_endpoint, "* *");  // no endpoint: every request

  doppel::v1::HttpRequest req;
  req.set_method("POST");
  req.set_target("/v2/session?x=1");
  EXPECT_FALSE(MatchesEndpoint(s.extract_endpoint, req));  // no X-Tenant header
  auto* h = req.add_headers();
  h->set_name("X-Tenant");
  h->set_value("a");
  EXPECT_TRUE(MatchesEndpoint(s.extract_endpoint, req));
}

TEST(CorrelationRulesTest, ReadsTheSameRulesFromJsonAndExtractsValues) {
  auto rules = ParseCorrelationRules(R"yaml({"rules": [{"name": "t",
      "extract": {"endpoint": {"uri": "/a"}, "location": "body.data.token"},
      "inject": {"location": "cookie:t"}},
    {"name": "c", "extract": {"location": "set-cookie:sid"}, "inject": {"location": "form:sid"}},
    {"name": "h", "extract": {"location": "header:X-Code", "regex": "code=(\\w+)"},
     "inject": {"location": "path:0"}}]})yaml",
                                     ConfigFormat::kJson);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_TRUE(rules->auto_learn);  // absent: learning stays on

  doppel::v1::HttpResponse r;
  r.set_status(200);
  auto add = [&](const char* n, const char* v) {
    auto* h = r.add_headers();
    h->set_name(n);
    h->set_value(v);
  };
  add("Content-Type", "application/json");
  add("Set-Cookie", "sid=S123; Path=/");
  add("X-Code", "v=1; code=abc_9; x");
  r.set_body(R"({"data": {"token": "T-1"}})");
  EXPECT_EQ(ExtractValue(rules->rules[0], r), "T-1");
  EXPECT_EQ(ExtractValue(rules->rules[1], r), "S123");
  EXPECT_EQ(ExtractValue(rules->rules[2], r), "abc_9");
  r.set_body("{}");
  EXPECT_EQ(ExtractValue(rules->rules[0], r), std::nullopt);  // absent
}

// The error of `text` (YAML) as a string.
std::string Error(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  auto rules = ParseCorrelationRules(text, format);
  return rules.ok() ? "ok" : rules.status().ToString();
}

TEST(CorrelationRulesTest, BadFilesNameLineColumnAndField) {
  EXPECT_EQ(Error(R"(rules:
  - name: t
    extract:
      endpoint: {uri: /a}
      locaton: body
    inject: {location: "query:q"}
)"),
            "line 5, column 7: rules[0].extract.locaton: unknown field "
            "(expected one of: endpoint, location, regex)");
  EXPECT_EQ(Error(R"(rules:
  - name: t
    extract: {location: body.token}
    inject:
      location: querry:q
)"),
            "line 5, column 7: rules[0].inject.location: unknown location "
            "'querry:q' (expected path:N, query:NAME, header:NAME, header:NAME#bearer, "
            "cookie:NAME, body.PATH or form:NAME)");
  EXPECT_EQ(Error(R"yaml(rules:
  - name: t
    extract:
      location: body
      regex: "(a)(b)"
    inject: {location: "query:q"}
)yaml"),
            "line 5, column 7: rules[0].extract.regex: needs exactly one "
            "capture group (the value), has 2");
  EXPECT_EQ(Error(R"(rules:
  - extract: {location: body.token}
    inject: {location: "query:q"}
)"),
            "line 2, column 5: rules[0].name: required: the report counts "
            "substitutions under it");
  EXPECT_EQ(Error(R"(rules:
  - name: t
    extract: {location: body.a}
    inject: {location: "query:q"}
  - name: t
    extract: {location: body.b}
    inject: {location: "query:r"}
)"),
            "line 5, column 5: rules[1].name: two rules are named 't'");
  EXPECT_EQ(Error(R"(rules:
  - name: t
    extract:
      endpoint: {method: {prefx: P}}
      location: body.a
    inject: {location: "query:q"}
)"),
            "line 4, column 27: rules[0].extract.endpoint.method.prefx: "
            "unknown field (expected one of: exact, prefix, regex, present)");
  EXPECT_EQ(Error(R"({"rules": [{"name": "t", "extract": {"location": "body.a"},
  "inject": {"location": "path:x"}}]})",
                  ConfigFormat::kJson),
            "line 2, column 14: rules[0].inject.location: unknown location "
            "'path:x' (expected path:N, query:NAME, header:NAME, header:NAME#bearer, "
            "cookie:NAME, body.PATH or form:NAME)");
  EXPECT_EQ(Error("version: 2\nrules: []\n"),
            "line 1, column 1: version: unsupported version (this doppel reads "
            "version 1)");
  EXPECT_EQ(Error("rules: []\n"),
            "line 1, column 1: rules: no rules: give at least one {name, "
            "extract, inject}");
}

TEST(CorrelationRulesTest, TheDocumentedExampleLoads) {
  auto rules = LoadCorrelationRules(std::string(DOPPEL_SOURCE_DIR) +
                                    "/docs/examples/correlation-rules.yaml");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ASSERT_EQ(rules->rules.size(), 1u);
  EXPECT_EQ(rules->rules[0].name, "ticket");
}

TEST(CorrelationRulesTest, LoadPrefixesTheFileName) {
  const std::string dir = testing::MakeTempDir("correlation-rules");
  const std::string path = dir + "/rules.yaml";
  std::ofstream(path) << "rules:\n  - name: t\n    extract: {location: body}\n";
  auto rules = LoadCorrelationRules(path);
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.status().ToString(),
            "" + path + ": line 2, column 5: rules[0].inject: required: {endpoint, location}");
  EXPECT_EQ(LoadCorrelationRules(dir + "/missing.yaml").status().code(), Status::Code::kNotFound);
}

}  // namespace
}  // namespace doppel::replay
