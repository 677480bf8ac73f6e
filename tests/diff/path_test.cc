#include "diff/path.h"

#include <gtest/gtest.h>

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
  std::vector<PathStep> exact = {PathStep::Key("id")};
  std::vector<PathStep> longer_key = {PathStep::Key("user_id")};
  std::vector<PathStep> prefix_key = {PathStep::Key("identity")};
  std::vector<PathStep> deeper = {PathStep::Key("id"), PathStep::Key("x")};
  std::vector<PathStep> nested = {PathStep::Key("user"), PathStep::Key("id")};
  EXPECT_TRUE(p->Matches("body", exact));
  EXPECT_FALSE(p->Matches("body", longer_key));
  EXPECT_FALSE(p->Matches("body", prefix_key));
  EXPECT_FALSE(p->Matches("body", deeper));
  EXPECT_FALSE(p->Matches("body", nested));
  EXPECT_FALSE(p->Matches("other", exact));
}

TEST(PathPatternTest, DecodesEscapesInQuotedKeys) {
  Result<PathPattern> p = PathPattern::Parse("body[\"a\\\"b\\u00e9\"]");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::vector<PathStep> path = {PathStep::Key("a\"b\xC3\xA9")};
  EXPECT_TRUE(p->Matches("body", path));
}

TEST(PathPatternTest, RejectsMalformedPaths) {
  for (const char* bad : {"", ".a", "body.", "body..a", "body[", "body[x]", "body[1", "body[\"a\"",
                          "body[\"a\"x", "body.a b", "body.1a", "body[*"}) {
    Result<PathPattern> p = PathPattern::Parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("bad path"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace doppel::diff
