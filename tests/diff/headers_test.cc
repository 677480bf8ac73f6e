#include "diff/headers.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/diff/test_util.h"

namespace doppel::diff {
namespace {

using testing::Summary;
using Paths = std::vector<std::string>;
using Headers = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

Headers Make(std::vector<std::pair<std::string, std::string>> list) {
  Headers out;
  for (auto& [n, v] : list) {
    doppel::v1::Header* h = out.Add();
    h->set_name(n);
    h->set_value(v);
  }
  return out;
}

DiffResult Diff(const Headers& e, const Headers& a, bool body_compared = true,
                const HeaderPolicy& policy = HeaderPolicy()) {
  DiffResult r;
  DiffSink sink(&r, 100, 100);
  policy.Diff(e, a, body_compared, &sink);
  return r;
}

TEST(HeadersTest, NamesAreCaseInsensitive) {
  EXPECT_TRUE(Diff(Make({{"Content-Type", "application/json"}}),
                   Make({{"content-type", "application/json"}}))
                  .match);
}

TEST(HeadersTest, MissingExtraAndChangedValues) {
  DiffResult r = Diff(Make({{"ETag", "\"v1\""}, {"X-Gone", "1"}, {"Content-Type", "text/plain"}}),
                      Make({{"etag", "\"v2\""}, {"Content-Type", "text/plain"}, {"X-New", "y"}}));
  EXPECT_EQ(Summary(r),
            (Paths{"headers.etag:value", "headers.x-gone:missing", "headers.x-new:extra"}));
  EXPECT_EQ(r.diffs[0].expected, "\"v1\"");
  EXPECT_EQ(r.diffs[0].actual, "\"v2\"");
}

TEST(HeadersTest, MultiValueListsCompareAsMultisets) {
  // Two field lines equal one comma-separated line, in any order.
  EXPECT_TRUE(Diff(Make({{"Vary", "Accept"}, {"Vary", "Accept-Encoding"}}),
                   Make({{"Vary", "Accept-Encoding, Accept"}}))
                  .match);
  DiffResult r =
      Diff(Make({{"Vary", "Accept"}, {"Vary", "Accept-Encoding"}}), Make({{"Vary", "Accept"}}));
  EXPECT_EQ(Summary(r), Paths{"headers.vary:value"});
  EXPECT_EQ(r.diffs[0].expected, "Accept, Accept-Encoding");
  // Commas inside quotes do not split.
  EXPECT_EQ(HeaderValues(Make({{"X-L", "\"a,b\", c"}}), "x-l"),
            (std::vector<std::string>{"\"a,b\"", "c"}));
}

// Past 32 names the lookup switches from a scan to a hash index: the result must be the
// same, in first-appearance order, including names first seen on the actual side and
// repeated lines of one name far apart.
TEST(HeadersTest, ManyHeadersGiveTheSameResultAsFew) {
  std::vector<std::pair<std::string, std::string>> e, a;
  for (int i = 0; i < 100; ++i) {
    e.push_back({"X-H" + std::to_string(i), "v" + std::to_string(i)});
    a.push_back({"x-h" + std::to_string(99 - i), "v" + std::to_string(99 - i)});
  }
  e.push_back({"X-H5", "second"});  // a second line of an early name, after the index exists
  a.push_back({"X-H5", "second"});
  a[10].second = "changed";  // x-h89
  e.push_back({"X-Only-Expected", "1"});
  a.push_back({"X-Only-Actual", "1"});
  DiffResult r = Diff(Make(e), Make(a));
  EXPECT_EQ(Summary(r), (Paths{"headers.x-h89:value", "headers.x-only-expected:missing",
                               "headers.x-only-actual:extra"}));
  EXPECT_EQ(r.diffs[0].expected, "v89");
  EXPECT_EQ(r.diffs[0].actual, "changed");
  EXPECT_TRUE(Diff(Make(e), Make(e)).match);
}

TEST(HeadersTest, DefaultIgnoreListIsReportedAsIgnored) {
  DiffResult r = Diff(Make({{"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                            {"Server", "a"},
                            {"X-Request-Id", "1"},
                            {"traceparent", "00-a"},
                            {"Age", "1"}}),
                      Make({{"Date", "Tue, 02 Jan 2024 00:00:00 GMT"},
                            {"Server", "b"},
                            {"X-Request-Id", "2"},
                            {"Via", "1.1 proxy"}}));
  EXPECT_TRUE(r.match);
  EXPECT_EQ(r.ignored, (Paths{"headers.date", "headers.server", "headers.x-request-id",
                              "headers.traceparent", "headers.age", "headers.via"}));
}

TEST(HeadersTest, ContentLengthOnlyMattersWhenTheBodyWasNotCompared) {
  Headers e = Make({{"Content-Length", "10"}});
  Headers a = Make({{"Content-Length", "12"}});
  DiffResult compared = Diff(e, a, /*body_compared=*/true);
  EXPECT_TRUE(compared.match);
  EXPECT_EQ(compared.ignored, Paths{"headers.content-length"});
  EXPECT_EQ(Summary(Diff(e, a, /*body_compared=*/false)), Paths{"headers.content-length:value"});
}

TEST(HeadersTest, EncodingHeadersAreIgnoredBecauseBodiesAreComparedDecoded) {
  EXPECT_TRUE(Diff(Make({{"Content-Encoding", "gzip"}}), Make({})).match);
  EXPECT_TRUE(Diff(Make({}), Make({{"Transfer-Encoding", "chunked"}})).match);
}

TEST(HeadersTest, SetCookieIsPresenceOnly) {
  EXPECT_TRUE(
      Diff(Make({{"Set-Cookie", "sid=abc; Path=/"}}), Make({{"Set-Cookie", "sid=def; Path=/"}}))
          .match);
  EXPECT_EQ(Summary(Diff(Make({{"Set-Cookie", "sid=abc"}}), Make({}))),
            Paths{"headers.set-cookie:missing"});
  // Set-Cookie values hold commas (Expires=...) and are never split.
  EXPECT_EQ(HeaderValues(Make({{"Set-Cookie", "a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT"}}),
                         "set-cookie")
                .size(),
            1u);
}

TEST(HeadersTest, RulesFileAddsAndRemovesIgnoredHeaders) {
  HeaderPolicy policy({"X-Build"}, {"Server", "Set-Cookie"});
  DiffResult r =
      Diff(Make({{"X-Build", "1"}, {"Server", "a"}, {"Set-Cookie", "x=1"}}),
           Make({{"X-Build", "2"}, {"Server", "b"}, {"Set-Cookie", "x=2"}}), true, policy);
  EXPECT_EQ(Summary(r), (Paths{"headers.server:value", "headers.set-cookie:value"}));
  EXPECT_EQ(r.ignored, Paths{"headers.x-build"});
}

TEST(HeadersTest, EmptyValueStillCountsAsPresent) {
  EXPECT_EQ(Summary(Diff(Make({{"X-Flag", ""}}), Make({}))), Paths{"headers.x-flag:missing"});
  EXPECT_TRUE(Diff(Make({{"X-Flag", ""}}), Make({{"x-flag", ""}})).match);
}

}  // namespace
}  // namespace doppel::diff
