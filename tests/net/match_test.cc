#include "net/match.h"

#include <gtest/gtest.h>

#include <map>

namespace doppel::net {
namespace {

struct Req {
  std::string method = "GET";
  std::string target = "/";
  std::map<std::string, std::string> headers;  // lower-case names
  std::string client_cert_subject;
  RequestView View() const {
    return {method, target,
            [this](std::string_view name) -> std::optional<std::string_view> {
              std::string lower(name);
              for (char& c : lower) c = static_cast<char>(std::tolower(c));
              auto it = headers.find(lower);
              if (it == headers.end()) return std::nullopt;
              return std::string_view(it->second);
            },
            client_cert_subject};
  }
};

const char* MatchName(const MatchRules& rules, const Req& r) {
  const MatchBlock* b = rules.Match(r.View());
  return b ? b->name.c_str() : "";
}

TEST(MatchTest, EmptyRulesMatchNothing) {
  MatchRules rules;
  EXPECT_TRUE(rules.empty());
  EXPECT_EQ(rules.Match(Req{}.View()), nullptr);
}

TEST(MatchTest, FlagsFieldsAreAndedBlocksOred) {
  auto rules = MatchRules::FromFlags({"name=checkout,method=POST,uri^=/checkout,header.X-User~=a.*",
                                      "name=debug,query.debug", "uri=/exact"});
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  Req r;
  r.method = "POST";
  r.target = "/checkout/cart?x=1";
  r.headers["x-user"] = "alice";
  EXPECT_STREQ(MatchName(*rules, r), "checkout");
  r.headers["x-user"] = "bob";  // regex must match the whole value
  EXPECT_STREQ(MatchName(*rules, r), "");
  r.headers["x-user"] = "alice";
  r.method = "GET";
  EXPECT_STREQ(MatchName(*rules, r), "");
  r.target = "/other?debug";  // present, empty value
  EXPECT_STREQ(MatchName(*rules, r), "debug");
  r.target = "/exact";
  EXPECT_STREQ(MatchName(*rules, r), "match-3");
  r.target = "/exact/more";
  EXPECT_STREQ(MatchName(*rules, r), "");
  r.target = "/exact?q=1";  // uri is matched on the path only
  EXPECT_STREQ(MatchName(*rules, r), "match-3");
}

// mTLS: the verified client certificate's subject, in the flag syntax (a literal comma of an
// RFC 2253 name as "\\,") and in rules files; without a certificate nothing matches it.
TEST(MatchTest, ClientCertSubjectInFlagsAndFiles) {
  auto flags = MatchRules::FromFlags({"name=billing,client_cert_subject=CN=billing\\,O=Example",
                                      "name=ops,client_cert_subject^=CN=ops-",
                                      "name=any,client_cert_subject,uri^=/any"});
  ASSERT_TRUE(flags.ok()) << flags.status().ToString();
  auto file = MatchRules::FromYaml(
      "rules:\n"
      "  - name: billing\n"
      "    client_cert_subject: \"CN=billing,O=Example\"\n"
      "  - name: ops\n"
      "    client_cert_subject: {regex: \"CN=ops-[a-z]+(,.*)?\"}\n"
      "  - name: any\n"
      "    uri: {prefix: /any}\n"
      "    client_cert_subject: {present: true}\n");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  for (const MatchRules* rules : {&*flags, &*file}) {
    Req r;
    r.client_cert_subject = "CN=billing,O=Example";
    EXPECT_STREQ(MatchName(*rules, r), "billing");
    r.client_cert_subject = "CN=ops-eu,O=Example";
    EXPECT_STREQ(MatchName(*rules, r), "ops");
    r.client_cert_subject = "CN=someone,O=Example";
    EXPECT_STREQ(MatchName(*rules, r), "");
    r.target = "/any/thing";
    EXPECT_STREQ(MatchName(*rules, r), "any");
    r.client_cert_subject = "";  // no client certificate: not even "present" matches
    EXPECT_STREQ(MatchName(*rules, r), "");
  }
  auto bad = MatchRules::FromJson(R"({"rules": [{"client_cert_subject": {"suffix": "x"}}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("client_cert_subject"), std::string::npos)
      << bad.status().message();
}

// "(a+)+x" backtracks exponentially in std::regex; RE2 answers in linear time.
TEST(MatchTest, HostileRegexRunsInLinearTime) {
  auto rules = MatchRules::FromFlags({"name=slow,uri~=/(a+)+x"});
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  Req r;
  r.target = "/" + std::string(100000, 'a');
  EXPECT_STREQ(MatchName(*rules, r), "");
  r.target += "x";
  EXPECT_STREQ(MatchName(*rules, r), "slow");
}

TEST(MatchTest, HeaderPresentAndPrefixAndQueryDecode) {
  auto rules = MatchRules::FromFlags({"header.X-Trace,query.user^=al\\,ice"});
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  Req r;
  r.target = "/?user=al%2Cice%20smith";
  EXPECT_STREQ(MatchName(*rules, r), "");
  r.headers["x-trace"] = "";
  EXPECT_STREQ(MatchName(*rules, r), "match-1");
}

TEST(MatchTest, FlagErrors) {
  EXPECT_FALSE(MatchRules::FromFlags({"bogus=1"}).ok());
  EXPECT_FALSE(MatchRules::FromFlags({"uri~=("}).ok());
  EXPECT_FALSE(MatchRules::FromFlags({"method"}).ok());
  EXPECT_FALSE(MatchRules::FromFlags({"name=a,uri=/", "name=a,uri=/b"}).ok());
}

TEST(MatchTest, JsonRules) {
  auto rules = MatchRules::FromJson(R"({"rules": [
    {"name": "api", "method": {"exact": "GET"}, "uri": {"prefix": "/api"},
     "headers": {"x-user": {"regex": "[a-z]+"}},
     "query_params": {"v": {"present": true}}},
    {"uri": "/health"}
  ]})");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  ASSERT_EQ(rules->blocks().size(), 2u);
  Req r;
  r.target = "/api/items?v=2";
  r.headers["x-user"] = "carol";
  EXPECT_STREQ(MatchName(*rules, r), "api");
  r.target = "/health";
  EXPECT_STREQ(MatchName(*rules, r), "rule-2");
}

TEST(MatchTest, JsonSyntaxErrorNamesLine) {
  auto rules = MatchRules::FromJson("{\"rules\": [\n  {\"uri\": \"/a\"},\n  {\"uri\": }\n]}");
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(rules.status().message().find("line 3"), std::string::npos) << rules.status().message();
}

TEST(MatchTest, JsonSemanticErrorNamesLineAndField) {
  auto rules = MatchRules::FromJson(
      "{\"rules\": [\n  {\"uri\": \"/a\"},\n  {\"name\": \"x\",\n   \"uri\": {\"exakt\": "
      "\"/b\"}}\n]}");
  ASSERT_FALSE(rules.ok());
  const std::string& m = rules.status().message();
  EXPECT_NE(m.find("line 4"), std::string::npos) << m;
  EXPECT_NE(m.find("rules[1].uri.exakt"), std::string::npos) << m;
  auto bad_regex = MatchRules::FromJson("{\"rules\": [{\"uri\": {\"regex\": \"(\"}}]}");
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_NE(bad_regex.status().message().find("bad regex"), std::string::npos);
  EXPECT_FALSE(MatchRules::FromJson("{\"rulez\": []}").ok());
  EXPECT_FALSE(MatchRules::FromJson("{\"rules\": [{\"method\": {\"present\": true}}]}").ok());
}

}  // namespace
}  // namespace doppel::net
