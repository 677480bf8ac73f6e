#include "diff/significance.h"

#include <gtest/gtest.h>

namespace doppel::diff {
namespace {

TEST(SignificanceTest, RegressionOnANoisyFieldIsCaught) {
  // The field differs 20 % of the time anyway; the candidate makes it 60 %.
  EXPECT_TRUE(IsRegression(60, 100, 20, 100));
  EXPECT_LT(RegressionPValue(60, 100, 20, 100), 0.001);
}

TEST(SignificanceTest, PureNoiseIsNotFlagged) {
  EXPECT_FALSE(IsRegression(20, 100, 20, 100));
  EXPECT_FALSE(IsRegression(22, 100, 20, 100));    // within noise
  EXPECT_FALSE(IsRegression(10, 100, 20, 100));    // better than noise
  EXPECT_FALSE(IsRegression(100, 100, 100, 100));  // always differs on both: no evidence
  EXPECT_DOUBLE_EQ(RegressionPValue(100, 100, 100, 100), 1.0);
}

TEST(SignificanceTest, SmallSamplesAreNotFlagged) {
  EXPECT_FALSE(IsRegression(10, 10, 0, 10));  // 100 % vs 0 %, but only 10 candidates
  EXPECT_FALSE(IsRegression(29, 29, 0, 0));   // fallback also needs min_samples
  EXPECT_TRUE(IsRegression(30, 30, 0, 100));
}

TEST(SignificanceTest, WithoutNoiseDataAnyMismatchCounts) {
  EXPECT_TRUE(IsRegression(1, 30, 0, 0));
  EXPECT_FALSE(IsRegression(0, 1000, 0, 0));
}

TEST(SignificanceTest, MinimumRateDifferenceGuardsAgainstTinySignificantChanges) {
  // 1.5 % vs 1.0 % on a million samples each is significant, but below a 1 % difference.
  EXPECT_LT(RegressionPValue(15000, 1000000, 10000, 1000000), 0.01);
  EXPECT_FALSE(IsRegression(15000, 1000000, 10000, 1000000));
  Thresholds loose;
  loose.min_rate_difference = 0.001;
  EXPECT_TRUE(IsRegression(15000, 1000000, 10000, 1000000, loose));
}

TEST(SignificanceTest, AlphaControlsBorderlineCases) {
  // 30 % vs 20 % with 100 each: z ~ 1.63, one-sided p ~ 0.05.
  double p = RegressionPValue(30, 100, 20, 100);
  EXPECT_GT(p, 0.04);
  EXPECT_LT(p, 0.06);
  EXPECT_FALSE(IsRegression(30, 100, 20, 100));
  Thresholds lenient;
  lenient.alpha = 0.1;
  EXPECT_TRUE(IsRegression(30, 100, 20, 100, lenient));
}

}  // namespace
}  // namespace doppel::diff
