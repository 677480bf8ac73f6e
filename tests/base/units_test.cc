#include "base/units.h"

#include <gtest/gtest.h>

namespace doppel {
namespace {

TEST(UnitsTest, Durations) {
  EXPECT_EQ(*ParseDurationUs("250ms"), 250'000u);
  EXPECT_EQ(*ParseDurationUs("1.5s"), 1'500'000u);
  EXPECT_EQ(*ParseDurationUs("7d"), 7ull * 86'400'000'000ull);
  EXPECT_EQ(*ParseDurationUs("3"), 3'000'000u);  // a bare number is seconds by default
  EXPECT_EQ(*ParseDurationUs("3", 1000), 3'000u);
  EXPECT_FALSE(ParseDurationUs("10 s").ok());
  EXPECT_FALSE(ParseDurationUs("-1s").ok());
  EXPECT_FALSE(ParseDurationUs("").ok());
}

TEST(UnitsTest, Sizes) {
  EXPECT_EQ(*ParseSizeBytes("1048576"), 1048576u);
  EXPECT_EQ(*ParseSizeBytes("512k"), 512u << 10);
  EXPECT_EQ(*ParseSizeBytes("64MiB"), 64ull << 20);
  EXPECT_EQ(*ParseSizeBytes("2GB"), 2ull << 30);
  auto bad = ParseSizeBytes("12 furlongs");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown unit"), std::string::npos);
  EXPECT_FALSE(ParseSizeBytes("MiB").ok());
  // 12 digits of GiB would wrap around 2^64: refused, not wrapped.
  auto huge = ParseSizeBytes("999999999999g");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("too large"), std::string::npos);
}

TEST(UnitsTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(3ull << 20), "3.0 MiB");
  EXPECT_EQ(FormatBytes(1ull << 30), "1.0 GiB");
}

}  // namespace
}  // namespace doppel
