#include "diff/decode.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <string>

namespace doppel::diff {
namespace {

// window_bits: 15 + 16 gzip, 15 zlib, -15 raw deflate.
std::string Deflate(const std::string& in, int window_bits) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Zstd(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

const std::string kText = "{\"hello\":\"world\",\"n\":[1,2,3]}";

TEST(DecodeTest, IdentityAndEmptyEncodingReturnTheBody) {
  EXPECT_EQ(DecodeContent(kText, "", 1024).value(), kText);
  EXPECT_EQ(DecodeContent(kText, "identity", 1024).value(), kText);
}

TEST(DecodeTest, Gzip) {
  Result<std::string> r = DecodeContent(Deflate(kText, 15 + 16), "gzip", 1024);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), kText);
  EXPECT_EQ(DecodeContent(Deflate(kText, 15 + 16), " X-GZIP ", 1024).value(), kText);
}

TEST(DecodeTest, ConcatenatedGzipMembersAreOneBody) {
  std::string two = Deflate("abc", 15 + 16) + Deflate("def", 15 + 16);
  EXPECT_EQ(DecodeContent(two, "gzip", 1024).value(), "abcdef");
}

TEST(DecodeTest, DeflateZlibWrappedAndRaw) {
  EXPECT_EQ(DecodeContent(Deflate(kText, 15), "deflate", 1024).value(), kText);
  EXPECT_EQ(DecodeContent(Deflate(kText, -15), "deflate", 1024).value(), kText);
}

TEST(DecodeTest, Zstd) {
  Result<std::string> r = DecodeContent(Zstd(kText), "zstd", 1024);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value(), kText);
}

TEST(DecodeTest, StackedCodingsAreUndoneInReverse) {
  std::string body = Zstd(Deflate(kText, 15 + 16));  // gzip first, then zstd
  EXPECT_EQ(DecodeContent(body, "gzip, zstd", 1024).value(), kText);
}

TEST(DecodeTest, GzipBombStopsAtTheLimit) {
  std::string zeros(10 << 20, '\0');  // 10 MiB compresses to ~10 KiB
  std::string bomb = Deflate(zeros, 15 + 16);
  ASSERT_LT(bomb.size(), 64u << 10);
  Result<std::string> r = DecodeContent(bomb, "gzip", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kResourceExhausted);
  EXPECT_TRUE(DecodeContent(bomb, "gzip", 10 << 20).ok());
}

TEST(DecodeTest, ZstdBombStopsAtTheLimit) {
  std::string bomb = Zstd(std::string(10 << 20, 'a'));
  Result<std::string> r = DecodeContent(bomb, "zstd", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kResourceExhausted);
}

TEST(DecodeTest, IdentityOverTheLimitIsRefused) {
  EXPECT_EQ(DecodeContent(std::string(100, 'x'), "identity", 99).status().code(),
            Status::Code::kResourceExhausted);
}

TEST(DecodeTest, CorruptAndTruncatedStreamsAreErrors) {
  std::string gz = Deflate(kText, 15 + 16);
  Result<std::string> cut = DecodeContent(gz.substr(0, gz.size() / 2), "gzip", 1024);
  EXPECT_EQ(cut.status().code(), Status::Code::kCorruption);
  Result<std::string> garbage = DecodeContent("this is not gzip", "gzip", 1024);
  EXPECT_EQ(garbage.status().code(), Status::Code::kCorruption);
  std::string zs = Zstd(kText);
  EXPECT_EQ(DecodeContent(zs.substr(0, zs.size() - 3), "zstd", 1024).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecodeContent("not zstd at all", "zstd", 1024).status().code(),
            Status::Code::kCorruption);
}

TEST(DecodeTest, UnknownCodingIsUnsupported) {
  Result<std::string> r = DecodeContent("x", "br", 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(r.status().message().find("br"), std::string::npos);
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
