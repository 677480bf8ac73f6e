#include "base/time_format.h"

#include <gtest/gtest.h>

namespace doppel {
namespace {

constexpr int64_t kMay1 = 1714558830;  // 2024-05-01T10:20:30Z

TEST(TimeFormatTest, ReadsTheInstantWhateverTheForm) {
  struct Case {
    const char* text;
    int64_t unix_us;
  };
  const Case cases[] = {
      {"2024-05-01T10:20:30Z", kMay1 * 1000000},
      {"2024-05-01t10:20:30z", kMay1 * 1000000},
      {"2024-05-01 10:20:30", kMay1 * 1000000},  // no zone: UTC
      {"2024-05-01T10:20:30.123Z", kMay1 * 1000000 + 123000},
      {"2024-05-01T10:20:30,5Z", kMay1 * 1000000 + 500000},
      {"2024-05-01T10:20:30.123456789Z", kMay1 * 1000000 + 123456},
      {"2024-05-01T12:20:30+02:00", kMay1 * 1000000},
      {"2024-05-01T05:50:30-0430", kMay1 * 1000000},
      {"2024-05-01T10:20:60Z", (kMay1 + 30) * 1000000},  // a leap second: the next second
  };
  for (const Case& c : cases) {
    const auto t = ParseDateTime(c.text);
    ASSERT_TRUE(t.has_value()) << c.text;
    EXPECT_EQ(t->unix_us, c.unix_us) << c.text;
  }
}

TEST(TimeFormatTest, RejectsWhatIsNotADateTime) {
  for (const char* bad :
       {"", "2024-05-01", "2024-05-01T10:20Z", "2024-13-01T10:20:30Z", "2024-02-30T10:20:30Z",
        "2024-05-01T24:00:00Z", "2024-05-01T10:20:30.Z", "2024-05-01T10:20:30Zjunk",
        "2024-05-01T10:20:30+2400", "1969-12-31T23:59:59Z", "2024-05-01X10:20:30Z",
        "hello world, not a time"}) {
    EXPECT_FALSE(ParseDateTime(bad).has_value()) << bad;
  }
}

TEST(TimeFormatTest, WritesAMovedInstantInTheFormItCameIn) {
  struct Case {
    const char* in;
    int64_t move_us;
    const char* out;
  };
  const Case cases[] = {
      {"2024-05-01T10:20:30Z", 86400000000, "2024-05-02T10:20:30Z"},
      {"2024-05-01 10:20:30", -3600000000, "2024-05-01 09:20:30"},
      {"2024-05-01T10:20:30.120Z", 5000, "2024-05-01T10:20:30.125Z"},
      {"2024-05-01T10:20:30.123456789Z", 0, "2024-05-01T10:20:30.123456Z"},
      {"2024-12-31T23:30:00+02:00", 3600000000, "2025-01-01T00:30:00+02:00"},
      {"2024-05-01T05:50:30-0430", 0, "2024-05-01T05:50:30-0430"},
      {"2024-02-28T23:59:59.9Z", 100000, "2024-02-29T00:00:00.0Z"},
  };
  for (const Case& c : cases) {
    auto t = ParseDateTime(c.in);
    ASSERT_TRUE(t.has_value()) << c.in;
    t->unix_us += c.move_us;
    EXPECT_EQ(FormatDateTime(*t), c.out) << c.in;
  }
}

}  // namespace
}  // namespace doppel
