#include "diff/json_diff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/diff/test_util.h"

namespace doppel::diff {
namespace {

using testing::At;
using testing::JsonDiff;
using testing::Summary;
using Paths = std::vector<std::string>;

TEST(JsonDiffTest, EqualDocumentsMatchWhateverTheMemberOrder) {
  DiffResult r = JsonDiff(R"({"a":1,"b":{"c":[1,2,{"d":null}]},"e":true})",
                          R"({"e":true,"b":{"c":[1,2,{"d":null}]},"a":1})");
  EXPECT_TRUE(r.match);
  EXPECT_TRUE(r.diffs.empty());
}

// A zero with an exponent past the double range ("0e400") is zero: Boost.JSON 1.81 parses it
// as NaN, which differed from itself (found by fuzz_json_diff).
TEST(JsonDiffTest, ZeroWithAHugeExponentIsZero) {
  EXPECT_TRUE(JsonDiff(R"({"a":0e400,"b":[-0.0e999]})", R"({"a":0e400,"b":[-0.0e999]})").match);
  EXPECT_TRUE(JsonDiff(R"({"a":0e400})", R"({"a":0})").match);
  EXPECT_EQ(Summary(JsonDiff(R"({"a":0e400})", R"({"a":1})")), (Paths{"body.a:value"}));
}

TEST(JsonDiffTest, EveryKindWithItsPathAndSeverity) {
  DiffResult r = JsonDiff(R"({"gone":1,"t":"1","v":{"x":1},"arr":[1,2,3],"o":[1,2,3]})",
                          R"({"t":1,"v":{"x":2},"arr":[1,2],"o":[3,1,2],"new":true})");
  EXPECT_EQ(Summary(r), (Paths{"body.gone:missing", "body.t:type", "body.v.x:value",
                               "body.arr:array-size", "body.o:order", "body.new:extra"}));
  EXPECT_EQ(At(r, "body.gone")[0].severity, Severity::kHigh);
  EXPECT_EQ(At(r, "body.gone")[0].expected, "1");
  EXPECT_EQ(At(r, "body.gone")[0].actual, "");
  EXPECT_EQ(At(r, "body.t")[0].severity, Severity::kHigh);
  EXPECT_EQ(At(r, "body.t")[0].expected, "\"1\"");
  EXPECT_EQ(At(r, "body.t")[0].detail, "string -> number");
  EXPECT_EQ(At(r, "body.v.x")[0].severity, Severity::kMedium);
  EXPECT_EQ(At(r, "body.arr")[0].severity, Severity::kHigh);  // shrunk
  EXPECT_EQ(At(r, "body.arr")[0].expected, "3 elements");
  EXPECT_EQ(At(r, "body.arr")[0].actual, "2 elements");
  EXPECT_EQ(At(r, "body.new")[0].severity, Severity::kLow);
  EXPECT_FALSE(r.match);
}

TEST(JsonDiffTest, GrownArrayIsLowSeverityAndPrefixIsStillCompared) {
  DiffResult r = JsonDiff(R"({"a":[1,2]})", R"({"a":[1,5,3]})");
  EXPECT_EQ(Summary(r), (Paths{"body.a[1]:value", "body.a:array-size"}));
  EXPECT_EQ(At(r, "body.a")[0].severity, Severity::kLow);
}

TEST(JsonDiffTest, PathsQuoteOddKeysAndIndexArrays) {
  DiffResult r = JsonDiff(R"({"items":[{"price":1},{"price":2},{"price":3},{"price":4}],
                              "odd key":{"a.b":1}})",
                          R"({"items":[{"price":1},{"price":2},{"price":3},{"price":5}],
                              "odd key":{"a.b":2}})");
  EXPECT_EQ(Summary(r), (Paths{"body.items[3].price:value", "body[\"odd key\"][\"a.b\"]:value"}));
}

TEST(JsonDiffTest, TypeDiffsBetweenContainersAndNull) {
  DiffResult r =
      JsonDiff(R"({"a":{},"b":[],"c":null,"d":true})", R"({"a":[],"b":{},"c":0,"d":"true"})");
  EXPECT_EQ(Summary(r), (Paths{"body.a:type", "body.b:type", "body.c:type", "body.d:type"}));
}

TEST(JsonDiffTest, RootTypeChange) {
  DiffResult r = JsonDiff(R"({"a":1})", R"([1])");
  EXPECT_EQ(Summary(r), Paths{"body:type"});
}

TEST(JsonDiffTest, NumbersCompareByValueAcrossRepresentations) {
  DiffResult r = JsonDiff(R"({"a":1,"b":1.0,"c":-0.0,"d":18446744073709551615,"e":100,"f":1e2})",
                          R"({"a":1.0,"b":1,"c":0,"d":18446744073709551615,"e":1e2,"f":100})");
  EXPECT_TRUE(r.match) << ::testing::PrintToString(Summary(r));
  // 2^53 + 1 as an integer is not the double 2^53.
  DiffResult big = JsonDiff(R"({"n":9007199254740993})", R"({"n":9007199254740992.0})");
  EXPECT_EQ(Summary(big), Paths{"body.n:value"});
  DiffResult sign = JsonDiff(R"({"n":-1})", R"({"n":18446744073709551615})");
  EXPECT_EQ(Summary(sign), Paths{"body.n:value"});
  DiffResult frac = JsonDiff(R"({"n":1})", R"({"n":1.5})");
  EXPECT_EQ(Summary(frac), Paths{"body.n:value"});
}

TEST(JsonDiffTest, NumbersRenderAsWritten) {
  DiffResult r = JsonDiff(R"({"p":10.5,"q":-3,"r":[1.5]})", R"({"p":10.25,"q":7,"r":[2]})");
  ASSERT_EQ(Summary(r), (Paths{"body.p:value", "body.q:value", "body.r[0]:value"}));
  EXPECT_EQ(r.diffs[0].expected, "10.5");
  EXPECT_EQ(r.diffs[0].actual, "10.25");
  EXPECT_EQ(r.diffs[1].expected, "-3");
  EXPECT_EQ(r.diffs[2].actual, "2");
  const char* rules =
      R"({"rules":[{"path":"body.p","action":"ignore-if-value","regex":"^10\\.[0-9]+$"}]})";
  EXPECT_TRUE(JsonDiff(R"({"p":10.5})", R"({"p":10.25})", rules).match);
}

TEST(JsonDiffTest, ToleranceAbsoluteAndRelative) {
  const char* rules = R"({"rules":[
    {"path":"body.abs","action":"tolerance","absolute":0.01},
    {"path":"body.rel","action":"tolerance","relative":0.001}]})";
  EXPECT_TRUE(
      JsonDiff(R"({"abs":10.00,"rel":1000})", R"({"abs":10.009,"rel":1000.9})", rules).match);
  DiffResult r = JsonDiff(R"({"abs":10.00,"rel":1000,"other":1.0})",
                          R"({"abs":10.02,"rel":1002,"other":1.001})", rules);
  EXPECT_EQ(Summary(r), (Paths{"body.abs:value", "body.rel:value", "body.other:value"}));
}

TEST(JsonDiffTest, IgnoreRuleWithWildcardIgnoresAndListsEveryElement) {
  const char* rules = R"({"rules":[{"path":"body.items[*].updated_at","action":"ignore"}]})";
  DiffResult r = JsonDiff(R"({"items":[{"id":1,"updated_at":"x"},{"id":2,"updated_at":"y"}]})",
                          R"({"items":[{"id":1,"updated_at":"z"},{"id":2}]})", rules);
  EXPECT_TRUE(r.match) << ::testing::PrintToString(Summary(r));
  EXPECT_EQ(r.ignored, (Paths{"body.items[0].updated_at", "body.items[1].updated_at"}));
}

TEST(JsonDiffTest, IgnoreRuleDoesNotMatchBySubstring) {
  // A rule for body.id must not swallow body.user_id, body.ids or body.meta.id.
  const char* rules = R"({"rules":[{"path":"body.id","action":"ignore"}]})";
  DiffResult r = JsonDiff(R"({"id":1,"user_id":1,"ids":[1],"meta":{"id":1}})",
                          R"({"id":2,"user_id":2,"ids":[2],"meta":{"id":2}})", rules);
  EXPECT_EQ(Summary(r), (Paths{"body.user_id:value", "body.ids[0]:value", "body.meta.id:value"}));
  EXPECT_EQ(r.ignored, Paths{"body.id"});
}

TEST(JsonDiffTest, KeyWildcardMatchesAnyMemberButOnlyOneLevel) {
  const char* rules = R"({"rules":[{"path":"body.*.etag","action":"ignore"}]})";
  DiffResult r = JsonDiff(R"({"a":{"etag":1},"b":{"etag":1},"c":{"d":{"etag":1}}})",
                          R"({"a":{"etag":2},"b":{"etag":3},"c":{"d":{"etag":4}}})", rules);
  EXPECT_EQ(Summary(r), Paths{"body.c.d.etag:value"});
  EXPECT_EQ(r.ignored, (Paths{"body.a.etag", "body.b.etag"}));
  const char* quoted = R"({"rules":[{"path":"body[\"*\"][\"odd key\"]","action":"ignore"}]})";
  EXPECT_TRUE(JsonDiff(R"({"x":{"odd key":1}})", R"({"x":{"odd key":2}})", quoted).match);
}

TEST(JsonDiffTest, IgnoreCoversMissingAndExtraAndWholeSubtrees) {
  const char* rules = R"({"rules":[{"path":"body.debug","action":"ignore"}]})";
  EXPECT_TRUE(JsonDiff(R"({"debug":{"a":[1,2]}})", R"({})", rules).match);
  EXPECT_TRUE(JsonDiff(R"({})", R"({"debug":{"a":[1,2]}})", rules).match);
  EXPECT_TRUE(JsonDiff(R"({"debug":{"a":[1,2]}})", R"({"debug":{"a":[3]}})", rules).match);
}

TEST(JsonDiffTest, IgnoreIfValue) {
  const char* rules =
      R"({"rules":[{"path":"body.token","action":"ignore-if-value","regex":"^tok_[a-z0-9]+$"}]})";
  DiffResult both = JsonDiff(R"({"token":"tok_abc1"})", R"({"token":"tok_zz9"})", rules);
  EXPECT_TRUE(both.match);
  EXPECT_EQ(both.ignored, Paths{"body.token"});
  // Only one side matches: a real difference.
  EXPECT_EQ(Summary(JsonDiff(R"({"token":"tok_abc1"})", R"({"token":"ERROR"})", rules)),
            Paths{"body.token:value"});
  // Missing on one side, the present side matches: ignored.
  EXPECT_TRUE(JsonDiff(R"({"token":"tok_abc1"})", R"({})", rules).match);
  // Numbers are matched by their JSON text.
  const char* numeric =
      R"({"rules":[{"path":"body.n","action":"ignore-if-value","regex":"^[0-9]{3}$"}]})";
  EXPECT_TRUE(JsonDiff(R"({"n":123})", R"({"n":456})", numeric).match);
  EXPECT_FALSE(JsonDiff(R"({"n":123})", R"({"n":4567})", numeric).match);
}

TEST(JsonDiffTest, PresenceOnly) {
  const char* rules = R"({"rules":[{"path":"body.session","action":"presence-only"}]})";
  DiffResult changed = JsonDiff(R"({"session":"a"})", R"({"session":{"x":1}})", rules);
  EXPECT_TRUE(changed.match);
  EXPECT_EQ(changed.ignored, Paths{"body.session"});
  EXPECT_EQ(Summary(JsonDiff(R"({"session":"a"})", R"({})", rules)), Paths{"body.session:missing"});
  EXPECT_EQ(Summary(JsonDiff(R"({})", R"({"session":"a"})", rules)), Paths{"body.session:extra"});
}

TEST(JsonDiffTest, UnorderedArrays) {
  const char* rules = R"({"rules":[{"path":"body.tags","action":"unordered"}]})";
  EXPECT_TRUE(
      JsonDiff(R"({"tags":["a","b",{"x":1},1]})", R"({"tags":[1.0,{"x":1},"b","a"]})", rules)
          .match);
  DiffResult r = JsonDiff(R"({"tags":["a","b","c"]})", R"({"tags":["c","d","a","e"]})", rules);
  EXPECT_EQ(Summary(r),
            (Paths{"body.tags[1]:missing", "body.tags[1]:extra", "body.tags[3]:extra"}));
  // Without the rule the reordering is one "order" diff.
  EXPECT_EQ(Summary(JsonDiff(R"({"tags":["a","b"]})", R"({"tags":["b","a"]})")),
            Paths{"body.tags:order"});
}

TEST(JsonDiffTest, UnorderedPairsElementsThatAreEqualUnderRules) {
  const char* rules = R"({"rules":[{"path":"body.items","action":"unordered"},
                                   {"path":"body.items[*].seen","action":"ignore"}]})";
  DiffResult r = JsonDiff(R"({"items":[{"id":1,"seen":"x"},{"id":2,"seen":"y"}]})",
                          R"({"items":[{"id":2,"seen":"q"},{"id":1,"seen":"p"}]})", rules);
  EXPECT_TRUE(r.match) << ::testing::PrintToString(Summary(r));
  EXPECT_EQ(r.ignored.size(), 2u);
}

TEST(JsonDiffTest, UnorderedByKey) {
  const char* rules = R"({"rules":[{"path":"body.items","action":"unordered-by-key","key":"id"}]})";
  DiffResult r =
      JsonDiff(R"({"items":[{"id":1,"p":10},{"id":2,"p":20},{"id":3,"p":30}]})",
               R"({"items":[{"id":4,"p":40},{"id":3,"p":30},{"id":1.0,"p":11}]})", rules);
  // id 1 paired (1 == 1.0) and compared; id 2 missing; id 4 extra (at its actual index).
  EXPECT_EQ(Summary(r),
            (Paths{"body.items[0].p:value", "body.items[1]:missing", "body.items[0]:extra"}));
  EXPECT_EQ(r.diffs[0].expected, "10");
  EXPECT_EQ(r.diffs[0].actual, "11");
  EXPECT_TRUE(JsonDiff(R"({"items":[{"id":"a"},{"id":"b"}]})",
                       R"({"items":[{"id":"b"},{"id":"a"}]})", rules)
                  .match);
}

TEST(JsonDiffTest, UnorderedByKeyFallsBackForElementsWithoutTheKey) {
  const char* rules = R"({"rules":[{"path":"body.items","action":"unordered-by-key","key":"id"}]})";
  EXPECT_TRUE(JsonDiff(R"({"items":[{"id":1},"loose",{"id":2}]})",
                       R"({"items":[{"id":2},{"id":1},"loose"]})", rules)
                  .match);
  EXPECT_EQ(Summary(JsonDiff(R"({"items":["loose"]})", R"({"items":["other"]})", rules)),
            (Paths{"body.items[0]:missing", "body.items[0]:extra"}));
}

TEST(JsonDiffTest, ReorderingWithAnEqualElementChangeIsNotOrder) {
  // Not the same multiset: element-wise diffs, not "order".
  EXPECT_EQ(Summary(JsonDiff(R"({"a":[1,2,3]})", R"({"a":[3,2,4]})")),
            (Paths{"body.a[0]:value", "body.a[2]:value"}));
}

TEST(JsonDiffTest, ArraySurplusIgnoredByRuleIsNotASizeDiff) {
  const char* rules = R"({"rules":[{"path":"body.a[*]","action":"ignore"}]})";
  DiffResult r = JsonDiff(R"({"a":[1]})", R"({"a":[1,2]})", rules);
  EXPECT_TRUE(r.match);
  EXPECT_EQ(r.ignored, Paths{"body.a[1]"});
}

TEST(JsonDiffTest, DeepNestingIsBoundedWithAClearEntry) {
  std::string e, a;
  for (int i = 0; i < 200; ++i) {
    e += "{\"k\":";
    a += "{\"k\":";
  }
  e += "1";
  a += "2";
  for (int i = 0; i < 200; ++i) {
    e += "}";
    a += "}";
  }
  JsonDiffOptions options;
  options.max_depth = 10;
  DiffResult r = JsonDiff(e, a, "{}", options);
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].kind, DiffKind::kUncompared);
  EXPECT_EQ(r.diffs[0].path, "body.k.k.k.k.k.k.k.k.k.k");
  EXPECT_NE(r.diffs[0].detail.find("nested deeper than 10"), std::string::npos);
  EXPECT_TRUE(JsonDiff(e, e, "{}", options).match);
}

TEST(JsonDiffTest, TooDeepToParseOrNotJsonIsAnError) {
  std::string deep(5000, '[');
  deep += std::string(5000, ']');
  DiffResult r;
  DiffSink sink(&r, 10, 10);
  Status st = DiffJson(deep, "[]", "body", {}, JsonDiffOptions(), &sink);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(st.message().find("expected body is not JSON"), std::string::npos);
  st = DiffJson("{}", "<html>", "body", {}, JsonDiffOptions(), &sink);
  EXPECT_NE(st.message().find("actual body is not JSON"), std::string::npos);
  EXPECT_TRUE(r.match);
}

TEST(JsonDiffTest, RenderingsAreBounded) {
  std::string big = "\"" + std::string(10000, 'x') + "\"";
  DiffResult r = JsonDiff("{\"s\":" + big + "}", R"({"s":"y"})");
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_LE(r.diffs[0].expected.size(), 130u);
  EXPECT_EQ(r.diffs[0].actual, "\"y\"");
}

TEST(JsonDiffTest, DiffCapCountsOmittedDiffs) {
  DiffResult r;
  DiffSink sink(&r, 2, 10);
  ASSERT_TRUE(
      DiffJson(R"([1,2,3,4,5])", R"([6,7,8,9,10])", "body", {}, JsonDiffOptions(), &sink).ok());
  EXPECT_EQ(r.diffs.size(), 2u);
  EXPECT_EQ(r.omitted_diffs, 3u);
  EXPECT_FALSE(r.match);
}

}  // namespace
}  // namespace doppel::diff
