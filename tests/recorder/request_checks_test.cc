// The proxy's request-head checks as pure functions (recorder/request_checks.h); the same
// rules end to end, over sockets, are in proxy_test.cc and the hostile-HTTP table.
#include "recorder/request_checks.h"

#include <gtest/gtest.h>

namespace doppel::recorder {
namespace {

TEST(UnsupportedVersionTest, OnlyWellFormedVersionsOtherThan10And11) {
  EXPECT_TRUE(UnsupportedVersion("GET / HTTP/2.0\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(UnsupportedVersion("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  EXPECT_TRUE(UnsupportedVersion("GET / HTTP/1.2\r\n"));
  EXPECT_TRUE(UnsupportedVersion("GET / HTTP/0.9\r\n"));
  EXPECT_FALSE(UnsupportedVersion("GET / HTTP/1.1\r\n"));
  EXPECT_FALSE(UnsupportedVersion("GET / HTTP/1.0\r\n"));
  EXPECT_FALSE(UnsupportedVersion("GET / HTTP/2.0"));      // no complete line yet
  EXPECT_FALSE(UnsupportedVersion("GET / HTTP/x.0\r\n"));  // malformed: 400, not 505
  EXPECT_FALSE(UnsupportedVersion("GET / HTTP/10.0\r\n"));
  EXPECT_FALSE(UnsupportedVersion("HTTP/2\r\n"));
  EXPECT_FALSE(UnsupportedVersion(""));
}

TEST(CheckRequestTargetTest, OriginFormNeedsOneHostInHttp11) {
  EXPECT_EQ(CheckRequestTarget("GET", "/a?b", 11, 1).error, "");
  EXPECT_FALSE(CheckRequestTarget("GET", "/a?b", 11, 1).absolute);
  EXPECT_EQ(CheckRequestTarget("GET", "/", 11, 0).error, "HTTP/1.1 request without a Host header");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 10, 0).error, "");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 11, 2).error, "more than one Host header");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 10, 2).error, "more than one Host header");
}

TEST(CheckRequestTargetTest, AsteriskOnlyWithOptions) {
  EXPECT_EQ(CheckRequestTarget("OPTIONS", "*", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("options", "*", 11, 1).error, "");  // methods are case-sensitive
  EXPECT_NE(CheckRequestTarget("GET", "*", 11, 1).error, "");
}

TEST(CheckRequestTargetTest, AbsoluteFormIsForwardedInOriginFormWithItsAuthority) {
  TargetCheck t = CheckRequestTarget("GET", "http://shop.example:81/abs?q=1", 11, 1);
  EXPECT_EQ(t.error, "");
  EXPECT_TRUE(t.absolute);
  EXPECT_EQ(t.authority, "shop.example:81");
  EXPECT_EQ(t.origin, "/abs?q=1");
  t = CheckRequestTarget("GET", "HTTPS://shop.example?q", 10, 0);
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.authority, "shop.example");
  EXPECT_EQ(t.origin, "/?q");
  t = CheckRequestTarget("GET", "http://shop.example", 11, 1);
  EXPECT_EQ(t.origin, "/");
}

TEST(CheckRequestTargetTest, OtherFormsAreRefused) {
  EXPECT_NE(CheckRequestTarget("GET", "http://u:p@shop.example/", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("GET", "http:///path", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("GET", "ftp://shop.example/", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("GET", "shop.example:443", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("GET", "", 11, 1).error, "");
  EXPECT_NE(CheckRequestTarget("GET", "a/b", 11, 1).error, "");
}

}  // namespace
}  // namespace doppel::recorder
