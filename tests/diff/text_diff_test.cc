#include "diff/text_diff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace doppel::diff {
namespace {

std::vector<LineHunk> Hunks(std::string_view e, std::string_view a,
                            LineDiffOptions options = LineDiffOptions(),
                            bool* approximate = nullptr) {
  return DiffLines(SplitLines(e, options.separator), SplitLines(a, options.separator), options,
                   approximate);
}

TEST(TextDiffTest, SplitLinesDropsCarriageReturns) {
  EXPECT_EQ(SplitLines("a\r\nb\nc", '\n'), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(SplitLines("", '\n'), (std::vector<std::string_view>{""}));
  EXPECT_EQ(SplitLines("a=1&b=2", '&'), (std::vector<std::string_view>{"a=1", "b=2"}));
}

TEST(TextDiffTest, EqualTextsHaveNoHunks) {
  EXPECT_TRUE(Hunks("a\nb\nc", "a\nb\nc").empty());
  EXPECT_TRUE(Hunks("a\r\nb", "a\nb").empty());
}

TEST(TextDiffTest, ChangedInsertedAndDeletedLines) {
  // line 2 changed, line 4 deleted, a line inserted after line 5.
  std::vector<LineHunk> h = Hunks("1\n2\n3\n4\n5\n6", "1\nTWO\n3\n5\nnew\n6");
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0], (LineHunk{1, 1, 1, 1}));
  EXPECT_EQ(h[1], (LineHunk{3, 1, 3, 0}));
  EXPECT_EQ(h[2], (LineHunk{5, 0, 4, 1}));
}

TEST(TextDiffTest, EntirelyDifferentAndEmptySides) {
  EXPECT_EQ(Hunks("a\nb", "c\nd"), (std::vector<LineHunk>{{0, 2, 0, 2}}));
  EXPECT_EQ(Hunks("a", "a\nb\nc"), (std::vector<LineHunk>{{1, 0, 1, 2}}));
}

TEST(TextDiffTest, BoundedEffortGivesOneApproximateHunk) {
  std::string e, a;
  for (int i = 0; i < 3000; ++i) {
    e += "e" + std::to_string(i) + "\n";
    a += "a" + std::to_string(i) + "\n";
  }
  e = "same\n" + e + "tail";
  a = "same\n" + a + "tail";
  LineDiffOptions options;
  options.max_edit_distance = 100;
  bool approximate = false;
  std::vector<LineHunk> h = Hunks(e, a, options, &approximate);
  EXPECT_TRUE(approximate);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0], (LineHunk{1, 3000, 1, 3000}));
}

TEST(TextDiffTest, LargeInputWithFewChangesIsExact) {
  std::string e, a;
  for (int i = 0; i < 100000; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    e += line;
    a += (i == 500 || i == 90000) ? "changed\n" : line;
  }
  bool approximate = true;
  std::vector<LineHunk> h = Hunks(e, a, LineDiffOptions(), &approximate);
  EXPECT_FALSE(approximate);
  EXPECT_EQ(h, (std::vector<LineHunk>{{500, 1, 500, 1}, {90000, 1, 90000, 1}}));
}

TEST(TextDiffTest, ReportUsesUnifiedHunkHeaders) {
  DiffResult r;
  DiffSink sink(&r, 10, 10);
  ReportTextDiff("a\nb\nc\nd", "a\nB\nc\nd\ne", "body", LineDiffOptions(), &sink);
  ASSERT_EQ(r.diffs.size(), 2u);
  EXPECT_EQ(r.diffs[0].path, "body");
  EXPECT_EQ(r.diffs[0].kind, DiffKind::kValue);
  EXPECT_EQ(r.diffs[0].detail, "@@ -2,1 +2,1 @@");
  EXPECT_EQ(r.diffs[0].expected, "b");
  EXPECT_EQ(r.diffs[0].actual, "B");
  EXPECT_EQ(r.diffs[1].detail, "@@ -4,0 +5,1 @@");
  EXPECT_EQ(r.diffs[1].actual, "e");
}

}  // namespace
}  // namespace doppel::diff
