#include "diff/body.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/codings.h"
#include "tests/diff/test_util.h"

namespace doppel::diff {
namespace {

using testing::Summary;
using Paths = std::vector<std::string>;

std::string Gzip(const std::string& in) { return net::EncodeContent(in, "gzip").value(); }

doppel::v1::HttpResponse Response(const std::string& content_type, const std::string& body,
                                  const std::string& content_encoding = "") {
  doppel::v1::HttpResponse r;
  r.set_status(200);
  if (!content_type.empty()) {
    doppel::v1::Header* h = r.add_headers();
    h->set_name("Content-Type");
    h->set_value(content_type);
  }
  if (!content_encoding.empty()) {
    doppel::v1::Header* h = r.add_headers();
    h->set_name("Content-Encoding");
    h->set_value(content_encoding);
  }
  r.set_body(body);
  return r;
}

DiffResult Diff(const doppel::v1::HttpResponse& e, const doppel::v1::HttpResponse& a,
                std::string_view rules_json = "{}", BodyDiffOptions options = BodyDiffOptions()) {
  RuleSet set = testing::MustCompile(rules_json);
  std::vector<const CompiledRule*> rules = set.ForRequest("GET", "/");
  DiffResult r;
  DiffSink sink(&r, 100, 100);
  DiffBodies(PreparedBody(e, options), a, rules, &sink);
  return r;
}

TEST(BodyTest, KindByContentType) {
  EXPECT_EQ(BodyKindOf("application/json; charset=utf-8", ""), BodyKind::kJson);
  EXPECT_EQ(BodyKindOf("application/problem+json", ""), BodyKind::kJson);
  EXPECT_EQ(BodyKindOf("text/html", ""), BodyKind::kText);
  EXPECT_EQ(BodyKindOf("application/atom+xml", ""), BodyKind::kText);
  EXPECT_EQ(BodyKindOf("application/x-www-form-urlencoded", ""), BodyKind::kForm);
  EXPECT_EQ(BodyKindOf("image/png", ""), BodyKind::kBinary);
  EXPECT_EQ(BodyKindOf("", " {\"a\":1}"), BodyKind::kJson);
  EXPECT_EQ(BodyKindOf("", "plain words"), BodyKind::kText);
  EXPECT_EQ(BodyKindOf("", std::string("\x89PNG\0\0", 6)), BodyKind::kBinary);
}

TEST(BodyTest, JsonBodiesAreComparedStructurallyAfterDecoding) {
  std::string e = R"({"a":1,"b":[1,2]})";
  std::string a = R"({"b":[1,2],"a":1.0})";
  EXPECT_TRUE(
      Diff(Response("application/json", e), Response("application/json", Gzip(a), "gzip")).match);
  DiffResult r = Diff(Response("application/json", e),
                      Response("application/json", Gzip(R"({"a":2,"b":[1,2]})"), "gzip"));
  EXPECT_EQ(Summary(r), Paths{"body.a:value"});
}

TEST(BodyTest, InvalidJsonFallsBackToTextDiff) {
  DiffResult r = Diff(Response("application/json", "{\"a\":1}"),
                      Response("application/json", "<html>\nerror\n</html>"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].path, "body");
  EXPECT_EQ(r.diffs[0].kind, DiffKind::kValue);
  EXPECT_EQ(r.diffs[0].detail, "@@ -1,1 +1,3 @@");
}

TEST(BodyTest, TextBodiesGetALineDiff) {
  DiffResult r =
      Diff(Response("text/plain", "one\ntwo\nthree"), Response("text/plain", "one\n2\nthree"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].detail, "@@ -2,1 +2,1 @@");
  EXPECT_EQ(r.diffs[0].expected, "two");
  EXPECT_EQ(r.diffs[0].actual, "2");
}

TEST(BodyTest, FormBodiesDiffByField) {
  DiffResult r = Diff(Response("application/x-www-form-urlencoded", "a=1&b=2&c=3"),
                      Response("application/x-www-form-urlencoded", "a=1&b=9&c=3"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].expected, "b=2");
  EXPECT_EQ(r.diffs[0].actual, "b=9");
}

TEST(BodyTest, Latin1AndUtf8OfTheSameTextAreEqual) {
  EXPECT_TRUE(Diff(Response("text/plain; charset=iso-8859-1", "caf\xE9"),
                   Response("text/plain; charset=utf-8", "caf\xC3\xA9"))
                  .match);
}

TEST(BodyTest, BinaryBodiesCompareBySizeAndHash) {
  std::string png1("\x89PNG\r\n\x1a\n\x00\x01", 10), png2("\x89PNG\r\n\x1a\n\x00\x02", 10);
  EXPECT_TRUE(Diff(Response("image/png", png1), Response("image/png", png1)).match);
  DiffResult r = Diff(Response("image/png", png1), Response("image/png", png2));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].path, "body");
  EXPECT_EQ(r.diffs[0].expected, "10 bytes, sha256 " + Sha256Hex(png1).substr(0, 16));
  EXPECT_NE(r.diffs[0].expected, r.diffs[0].actual);
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(BodyTest, UndecodableBodyIsUncompared) {
  DiffResult r =
      Diff(Response("application/json", "{}"), Response("application/json", "garbage", "gzip"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].kind, DiffKind::kUncompared);
  EXPECT_NE(r.diffs[0].detail.find("actual body"), std::string::npos);
}

TEST(BodyTest, DecompressionBombIsUncomparedNotAllocated) {
  BodyDiffOptions options;
  options.max_decoded_bytes = 1 << 20;
  DiffResult r =
      Diff(Response("text/plain", "x"),
           Response("text/plain", Gzip(std::string(8 << 20, 'x')), "gzip"), "{}", options);
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_EQ(r.diffs[0].kind, DiffKind::kUncompared);
  EXPECT_NE(r.diffs[0].detail.find("exceeds the limit"), std::string::npos);
}

TEST(BodyTest, TruncatedRecordingComparesPrefixAndSize) {
  doppel::v1::HttpResponse e = Response("application/json", "{\"a\":[1,2");
  e.set_body_truncated(true);
  e.set_body_size(14);
  EXPECT_TRUE(Diff(e, Response("application/json", "{\"a\":[1,2,3]}\n")).match);
  DiffResult r = Diff(e, Response("application/json", "{\"a\":[9]}"));
  ASSERT_EQ(r.diffs.size(), 1u);
  EXPECT_NE(r.diffs[0].detail.find("truncated"), std::string::npos);
}

TEST(BodyTest, IgnoreRuleOnTheBodyRootIgnoresAnyKind) {
  DiffResult r = Diff(Response("image/png", "a"), Response("image/png", "b"),
                      R"({"rules":[{"path":"body","action":"ignore"}]})");
  EXPECT_TRUE(r.match);
  EXPECT_EQ(r.ignored, Paths{"body"});
}

TEST(BodyTest, PresenceOnlyOnTheBodyRoot) {
  const char* rules = R"({"rules":[{"path":"body","action":"presence-only"}]})";
  EXPECT_TRUE(Diff(Response("text/plain", "a"), Response("text/plain", "b"), rules).match);
  DiffResult gone = Diff(Response("text/plain", "abc"), Response("text/plain", ""), rules);
  EXPECT_EQ(Summary(gone), Paths{"body:missing"});
  EXPECT_EQ(gone.diffs[0].expected, "3 bytes");
  EXPECT_EQ(Summary(Diff(Response("text/plain", ""), Response("text/plain", "x"), rules)),
            Paths{"body:extra"});
}

}  // namespace
}  // namespace doppel::diff
