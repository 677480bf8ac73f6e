#include "diff/normalize.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/diff/test_util.h"

namespace doppel::diff {
namespace {

using testing::JsonDiff;

std::string Base64Url(const std::string& in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::string Jwt(const std::string& claims, const std::string& signature = "c2lnbmF0dXJl") {
  return Base64Url(R"({"alg":"HS256","typ":"JWT"})") + "." + Base64Url(claims) + "." + signature;
}

// One input to a predicate and the answer it must give.
struct Case {
  std::string input;
  bool expected;
};

TEST(NormalizeTest, Rfc3339) {
  const Case cases[] = {
      {"2024-05-01T12:00:00Z", true},
      {"2024-05-01t12:00:00.123456+02:00", true},
      {"2024-05-01 12:00:00-05:30", true},
      // Not timestamps:
      {"2024-05-01", false},            // a date is data, not noise
      {"2024-13-01T12:00:00Z", false},  // month 13
      {"2024-05-01T24:00:00Z", false},  // hour 24
      {"2024-05-01T12:00:00", false},   // no offset
      {"2024-05-01T12:00:00Zjunk", false},
      {"2024-05-01T12:00:00.Z", false},
      {"hello world, not a time", false},
  };
  for (const Case& c : cases) EXPECT_EQ(IsRfc3339Timestamp(c.input), c.expected) << c.input;
}

TEST(NormalizeTest, Uuid) {
  const Case cases[] = {
      {"123e4567-e89b-12d3-a456-426614174000", true},
      {"123E4567-E89B-12D3-A456-426614174000", true},
      // Not UUIDs:
      {"123e4567e89b12d3a456426614174000", false},
      {"123e4567-e89b-12d3-a456-42661417400g", false},
      {"123e4567-e89b-12d3-a456-4266141740000", false},
  };
  for (const Case& c : cases) EXPECT_EQ(IsUuid(c.input), c.expected) << c.input;
}

TEST(NormalizeTest, Ulid) {
  const Case cases[] = {
      {"01ARZ3NDEKTSV4RRFFQ69G5FAV", true},
      {"01arz3ndektsv4rrffq69g5fav", true},
      // Not ULIDs:
      {"81ARZ3NDEKTSV4RRFFQ69G5FAV", false},  // first char over 7: overflows
      {"01ARZ3NDEKTSV4RRFFQ69G5FAI", false},  // I is not Crockford base32
      {"01ARZ3NDEKTSV4RRFFQ69G5FA", false},
  };
  for (const Case& c : cases) EXPECT_EQ(IsUlid(c.input), c.expected) << c.input;
}

TEST(NormalizeTest, EpochRanges) {
  EXPECT_EQ(EpochUnitOf(1700000000), EpochUnit::kSeconds);
  EXPECT_EQ(EpochUnitOf(1700000000.5), EpochUnit::kSeconds);
  EXPECT_EQ(EpochUnitOf(1700000000123.0), EpochUnit::kMilliseconds);
  EXPECT_EQ(EpochUnitOf(42), EpochUnit::kNone);
  EXPECT_EQ(EpochUnitOf(5000000000.0), EpochUnit::kNone);  // year 2128: not plausible
  EXPECT_EQ(NormalizeNumbers(1700000000, 1700000500, {}), "epoch");
  EXPECT_EQ(NormalizeNumbers(1700000000, 1700000000500.0, {}), "");  // different units
  EXPECT_EQ(NormalizeNumbers(1700000000, 12, {}), "");
  NormalizerOptions off;
  off.epoch = false;
  EXPECT_EQ(NormalizeNumbers(1700000000, 1700000500, off), "");
}

TEST(NormalizeTest, JwtClaimsComparedWithoutVolatileClaims) {
  std::string a = Jwt(R"({"sub":"u1","role":"admin","iat":1,"exp":2,"nbf":3,"jti":"x"})");
  std::string b = Jwt(R"({"jti":"y","sub":"u1","iat":10,"exp":20,"role":"admin"})", "b3RoZXI");
  std::string c = Jwt(R"({"sub":"u2","role":"admin","iat":1})");
  EXPECT_TRUE(IsJwt(a));
  EXPECT_TRUE(JwtClaimsEqual(a, b));
  EXPECT_FALSE(JwtClaimsEqual(a, c));
  EXPECT_EQ(NormalizeStrings(a, b, {}), "jwt");
  EXPECT_EQ(NormalizeStrings(a, c, {}), "");
  EXPECT_FALSE(IsJwt("a.b.c"));
  EXPECT_FALSE(IsJwt("www.example.com"));
  EXPECT_FALSE(IsJwt(Base64Url(R"({"typ":"JWT"})") + "." + Base64Url("{}") + ".sig"));  // no alg
}

TEST(NormalizeTest, StringsNormalizeOnlyWhenBothAreOfTheSameKind) {
  EXPECT_EQ(NormalizeStrings("2024-05-01T12:00:00Z", "2025-01-01T00:00:00.5+01:00", {}), "rfc3339");
  EXPECT_EQ(NormalizeStrings("123e4567-e89b-12d3-a456-426614174000",
                             "00000000-0000-0000-0000-000000000000", {}),
            "uuid");
  EXPECT_EQ(NormalizeStrings("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01BX5ZZKBKACTAV9WEVGEMMVRZ", {}),
            "ulid");
  EXPECT_EQ(NormalizeStrings("2024-05-01T12:00:00Z", "123e4567-e89b-12d3-a456-426614174000", {}),
            "");
  EXPECT_EQ(NormalizeStrings("2024-05-01T12:00:00Z", "yesterday", {}), "");
  NormalizerOptions off;
  off.uuid = false;
  EXPECT_EQ(NormalizeStrings("123e4567-e89b-12d3-a456-426614174000",
                             "00000000-0000-0000-0000-000000000000", off),
            "");
}

TEST(NormalizeTest, NormalizedFieldsAreReportedNotDropped) {
  DiffResult r = JsonDiff(
      R"({"at":"2024-05-01T12:00:00Z","id":"123e4567-e89b-12d3-a456-426614174000",
          "ts":1700000000,"ms":1700000000000,"name":"a"})",
      R"({"at":"2024-05-02T08:00:00Z","id":"9b2e4567-e89b-12d3-a456-426614174999",
          "ts":1700000999,"ms":1700000000999,"name":"a"})");
  EXPECT_TRUE(r.match);
  EXPECT_EQ(r.normalized, (std::vector<std::string>{"body.at", "body.id", "body.ts", "body.ms"}));
}

TEST(NormalizeTest, ValueThatOnlyOneSideHasAsTimestampIsAValueDiff) {
  DiffResult r =
      JsonDiff(R"({"at":"2024-05-01T12:00:00Z","n":1700000000})", R"({"at":"soon","n":17})");
  EXPECT_EQ(testing::Summary(r), (std::vector<std::string>{"body.at:value", "body.n:value"}));
  EXPECT_TRUE(r.normalized.empty());
}

TEST(NormalizeTest, JwtWithDifferentClaimsIsAValueDiff) {
  std::string a = Jwt(R"({"sub":"u1","iat":1})");
  std::string b = Jwt(R"({"sub":"u1","iat":2})");
  std::string c = Jwt(R"({"sub":"u2","iat":1})");
  DiffResult same = JsonDiff("{\"t\":\"" + a + "\"}", "{\"t\":\"" + b + "\"}");
  EXPECT_TRUE(same.match);
  EXPECT_EQ(same.normalized, std::vector<std::string>{"body.t"});
  DiffResult differ = JsonDiff("{\"t\":\"" + a + "\"}", "{\"t\":\"" + c + "\"}");
  EXPECT_EQ(testing::Summary(differ), std::vector<std::string>{"body.t:value"});
}

}  // namespace
}  // namespace doppel::diff
