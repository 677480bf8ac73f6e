#include "net/url.h"

#include <gtest/gtest.h>

namespace doppel::net {
namespace {

TEST(UrlTest, ParsesHttpWithPortAndBase) {
  auto u = ParseUrl("http://127.0.0.1:9000/api/v1/");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 9000);
  EXPECT_EQ(u->base_path, "/api/v1");
  EXPECT_EQ(u->TargetFor("/x?y=1"), "/api/v1/x?y=1");
  EXPECT_EQ(u->Authority(), "127.0.0.1:9000");
}

TEST(UrlTest, DefaultPortsAndCase) {
  auto u = ParseUrl("HTTPS://example.com");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->tls());
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->Authority(), "example.com");
  EXPECT_EQ(u->TargetFor("/a"), "/a");
  auto h = ParseUrl("http://example.com/");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->port, 80);
  EXPECT_EQ(h->base_path, "");
}

TEST(UrlTest, Ipv6) {
  auto u = ParseUrl("http://[::1]:8080");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->Authority(), "[::1]:8080");
}

TEST(UrlTest, Rejects) {
  EXPECT_FALSE(ParseUrl("ftp://x").ok());
  EXPECT_FALSE(ParseUrl("127.0.0.1:9000").ok());
  EXPECT_FALSE(ParseUrl("http://x:9000/?q=1").ok());
  EXPECT_FALSE(ParseUrl("http://user:pw@x/").ok());
  EXPECT_FALSE(ParseUrl("http://x:0").ok());
  EXPECT_FALSE(ParseUrl("not a url").ok());
}

TEST(HostPortTest, Parses) {
  auto a = ParseHostPort("127.0.0.1:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 0);
  auto b = ParseHostPort("[::1]:9901");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->ToString(), "[::1]:9901");
  auto c = ParseHostPort(":8080");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_FALSE(ParseHostPort("localhost").ok());
  EXPECT_FALSE(ParseHostPort("x:70000").ok());
  EXPECT_FALSE(ParseHostPort("x:").ok());
  EXPECT_FALSE(ParseHostPort("::1:80").ok());
}

}  // namespace
}  // namespace doppel::net
