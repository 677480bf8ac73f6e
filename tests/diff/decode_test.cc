#include "diff/decode.h"

#include <gtest/gtest.h>

#include <string>

#include "net/codings.h"

namespace doppel::diff {
namespace {

TEST(DecodeTest, BodyIsContentDecodedThenConvertedFromLatin1) {
  std::string gz = net::EncodeContent("caf\xE9", "gzip").value();
  EXPECT_EQ(DecodeBody(gz, "gzip", "text/plain; charset=latin1", 1024).value(), "caf\xC3\xA9");
  EXPECT_EQ(DecodeBody(gz, "gzip", "text/plain", 1024).value(), "caf\xE9");
}

TEST(DecodeTest, DecodingErrorsComeThrough) {
  EXPECT_EQ(DecodeBody("x", "compress", "text/plain", 1024).status().code(),
            Status::Code::kUnsupported);
  EXPECT_EQ(DecodeBody(std::string(100, 'x'), "", "text/plain", 99).status().code(),
            Status::Code::kResourceExhausted);
}

TEST(DecodeTest, CharsetParsing) {
  EXPECT_EQ(CharsetOf("text/html; charset=ISO-8859-1"), "iso-8859-1");
  EXPECT_EQ(CharsetOf("text/html;charset=\"utf-8\"; q=1"), "utf-8");
  EXPECT_EQ(CharsetOf("application/json"), "");
  EXPECT_TRUE(IsLatin1Charset("ISO-8859-1"));
  EXPECT_TRUE(IsLatin1Charset("latin1"));
  EXPECT_FALSE(IsLatin1Charset("utf-8"));
}

TEST(DecodeTest, Latin1BodiesBecomeUtf8) {
  std::string latin1 = "caf\xE9";
  EXPECT_EQ(Latin1ToUtf8(latin1), "caf\xC3\xA9");
  EXPECT_EQ(DecodeBody(latin1, "", "text/plain; charset=iso-8859-1", 1024).value(), "caf\xC3\xA9");
  EXPECT_EQ(DecodeBody(latin1, "", "text/plain; charset=utf-8", 1024).value(), latin1);
}

}  // namespace
}  // namespace doppel::diff
