#include "diff/path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace doppel::diff {
namespace {

TEST(PathTest, RendersIdentifiersWithDotsAndOtherKeysQuoted) {
  std::vector<PathStep> steps = {PathStep::Key("items"), PathStep::Index(3),
                                 PathStep::Key("price")};
  EXPECT_EQ(RenderPath("body", steps), "body.items[3].price");
  std::vector<PathStep> odd = {PathStep::Key("odd key"), PathStep::Key("a\"b"), PathStep::Key("0"),
                               PathStep::Key("x-y")};
  EXPECT_EQ(RenderPath("body", odd), "body[\"odd key\"][\"a\\\"b\"][\"0\"].x-y");
}

TEST(PathTest, GeneralizeReplacesIndexesButNotQuotedKeys) {
  EXPECT_EQ(GeneralizePath("body.items[3].tags[10]"), "body.items[*].tags[*]");
  EXPECT_EQ(GeneralizePath("body[\"a[1]\"][2]"), "body[\"a[1]\"][*]");
}

TEST(PathPatternTest, ParsesEverySegmentForm) {
  Result<PathPattern> p = PathPattern::Parse("body.items[*][\"odd key\"].*[\"*\"][2]");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->root(), "body");
  EXPECT_EQ(p->depth(), 6u);
  std::vector<PathStep> path = {PathStep::Key("items"),   PathStep::Index(7),
                                PathStep::Key("odd key"), PathStep::Key("any"),
                                PathStep::Key("other"),   PathStep::Index(2)};
  EXPECT_TRUE(p->Matches("body", path));
  path[5] = PathStep::Index(3);
  EXPECT_FALSE(p->Matches("body", path));
}

TEST(PathPatternTest, WildcardsMatchOnlyTheirKindOfSegment) {
  Result<PathPattern> any_index = PathPattern::Parse("body.a[*]");
  Result<PathPattern> any_key = PathPattern::Parse("body.a.*");
  ASSERT_TRUE(any_index.ok());
  ASSERT_TRUE(any_key.ok());
  std::vector<PathStep> element = {PathStep::Key("a"), PathStep::Index(0)};
  std::vector<PathStep> member = {PathStep::Key("a"), PathStep::Key("0")};
  EXPECT_TRUE(any_index->Matches("body", element));
  EXPECT_FALSE(any_index->Matches("body", member));
  EXPECT_TRUE(any_key->Matches("body", member));
  EXPECT_FALSE(any_key->Matches("body", element));
}

TEST(PathPatternTest, NeverMatchesBySubstringPrefixOrSuffix) {
  Result<PathPattern> p = PathPattern::Parse("body.id");
  ASSERT_TRUE(p.ok());
  struct Case {
    std::string what;
    std::string root;
    std::vector<PathStep> path;
    bool expected;
  };
  const Case cases[] = {
      {"exact", "body", {PathStep::Key("id")}, true},
      {"longer key", "body", {PathStep::Key("user_id")}, false},
      {"prefix key", "body", {PathStep::Key("identity")}, false},
      {"deeper", "body", {PathStep::Key("id"), PathStep::Key("x")}, false},
      {"nested", "body", {PathStep::Key("user"), PathStep::Key("id")}, false},
      {"other root", "other", {PathStep::Key("id")}, false},
  };
  for (const Case& c : cases) EXPECT_EQ(p->Matches(c.root, c.path), c.expected) << c.what;
}

TEST(PathPatternTest, DecodesEscapesInQuotedKeys) {
  Result<PathPattern> p = PathPattern::Parse("body[\"a\\\"b\\u00e9\"]");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::vector<PathStep> path = {PathStep::Key("a\"b\xC3\xA9")};
  EXPECT_TRUE(p->Matches("body", path));
}

TEST(PathPatternTest, RenderedKeysParseBack) {
  const std::string key = std::string("tab\there \"quoted\" back\\slash \x01 caf\xC3\xA9 ") + '\0';
  const std::vector<PathStep> path = {PathStep::Key(key), PathStep::Index(2)};
  const std::string rendered = RenderPath("body", path);
  Result<PathPattern> p = PathPattern::Parse(rendered);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->Matches("body", path)) << rendered;
}

TEST(PathPatternTest, RejectsMalformedPaths) {
  for (const char* bad :
       {"", ".a", "body.", "body..a", "body[", "body[x]", "body[1", "body[\"a\"", "body[\"a\"x",
        "body.a b", "body.1a", "body[*", "body[\"a\\x\"]", "body[\"a\\\"]", "body[\"\\u12\"]"}) {
    Result<PathPattern> p = PathPattern::Parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("bad path"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace doppel::diff
