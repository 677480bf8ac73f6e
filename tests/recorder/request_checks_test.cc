// The proxy's request-head checks as pure functions (recorder/request_checks.h); the same
// rules end to end, over sockets, are in proxy_test.cc and the hostile-HTTP table.
#include "recorder/request_checks.h"

#include <gtest/gtest.h>

#include <string>

namespace doppel::recorder {
namespace {

// One input to a predicate and the answer it must give.
struct Case {
  std::string input;
  bool expected;
};

TEST(UnsupportedVersionTest, OnlyWellFormedVersionsOtherThan10And11) {
  const Case cases[] = {
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", true},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true},
      {"GET / HTTP/1.2\r\n", true},
      {"GET / HTTP/0.9\r\n", true},
      // Supported versions, incomplete and malformed heads:
      {"GET / HTTP/1.1\r\n", false},
      {"GET / HTTP/1.0\r\n", false},
      {"GET / HTTP/2.0", false},      // no complete line yet
      {"GET / HTTP/x.0\r\n", false},  // malformed: 400, not 505
      {"GET / HTTP/10.0\r\n", false},
      // A bare CR or LF in the line (found by tests/fuzz/http_framing: a 505 when the line
      // came whole, a 400 in pieces).
      {"~OST / H\rPOST / HTTP/0.1\r\n", false},
      {"GET / HTTP/1.1\nX / HTTP/2.0\r\n", false},
      {"HTTP/2\r\n", false},
      {"", false},
  };
  for (const Case& c : cases) EXPECT_EQ(UnsupportedVersion(c.input), c.expected) << c.input;
}

// "chunked, \x91zip" found by tests/fuzz/http_smuggling
// (regressions/http_smuggling/chunked_then_non_token_coding.http): Beast stopped reading the
// list at the non-token byte and took the body as chunked; chunked was not the last coding.
TEST(IsChunkedAloneTest, OnlyOneFieldThatIsChunked) {
  EXPECT_TRUE(IsChunkedAlone(1, "chunked"));
  EXPECT_TRUE(IsChunkedAlone(1, "Chunked"));
  EXPECT_TRUE(IsChunkedAlone(1, " chunked\t"));
  EXPECT_FALSE(IsChunkedAlone(2, "chunked"));
  EXPECT_FALSE(IsChunkedAlone(1, "chunked, chunked"));
  EXPECT_FALSE(IsChunkedAlone(1, "gzip, chunked"));
  EXPECT_FALSE(IsChunkedAlone(1, "chunked, gzip"));
  EXPECT_FALSE(IsChunkedAlone(1, "chunked, \x91zip"));
  EXPECT_FALSE(IsChunkedAlone(1, "chunked;q=1"));
  EXPECT_FALSE(IsChunkedAlone(1, ""));
}

TEST(CheckRequestTargetTest, OriginFormNeedsOneHostInHttp11) {
  EXPECT_EQ(CheckRequestTarget("GET", "/a?b", 11, 1, "x").error, "");
  EXPECT_FALSE(CheckRequestTarget("GET", "/a?b", 11, 1, "x").absolute);
  EXPECT_EQ(CheckRequestTarget("GET", "/", 11, 0, "").error,
            "HTTP/1.1 request without a Host header");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 10, 0, "").error, "");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 11, 2, "a").error, "more than one Host header");
  EXPECT_EQ(CheckRequestTarget("GET", "/", 10, 2, "a").error, "more than one Host header");
}

TEST(CheckRequestTargetTest, AsteriskOnlyWithOptions) {
  EXPECT_EQ(CheckRequestTarget("OPTIONS", "*", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("options", "*", 11, 1, "x").error,
            "");  // methods are case-sensitive
  EXPECT_NE(CheckRequestTarget("GET", "*", 11, 1, "x").error, "");
}

TEST(CheckRequestTargetTest, AbsoluteFormIsForwardedInOriginFormWithItsAuthority) {
  TargetCheck t = CheckRequestTarget("GET", "http://shop.example:81/abs?q=1", 11, 1, "x");
  EXPECT_EQ(t.error, "");
  EXPECT_TRUE(t.absolute);
  EXPECT_EQ(t.authority, "shop.example:81");
  EXPECT_EQ(t.origin, "/abs?q=1");
  t = CheckRequestTarget("GET", "HTTPS://shop.example?q", 10, 0, "");
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.authority, "shop.example");
  EXPECT_EQ(t.origin, "/?q");
  t = CheckRequestTarget("GET", "http://shop.example", 11, 1, "x");
  EXPECT_EQ(t.origin, "/");
}

TEST(CheckRequestTargetTest, OtherFormsAreRefused) {
  EXPECT_NE(CheckRequestTarget("GET", "http://u:p@shop.example/", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "http:///path", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "ftp://shop.example/", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "shop.example:443", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "a/b", 11, 1, "x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "l6:?", 11, 1, "x").error, "");  // Boost.URL asserts on it
}

// Found by tests/fuzz/http_smuggling (regressions/http_smuggling/absolute_form_port_not_digits):
// Boost.URL 1.81 parses "http://h:=x" as authority "h:" and path "=x", so the proxy forwarded
// "GET =x HTTP/1.1", a target in no form the primary can read as the client meant.
TEST(CheckRequestTargetTest, AnAbsoluteTargetsPathIsEmptyOrStartsWithSlash) {
  for (const char* target :
       {"http://h:=%26", "http://h:8a/x", "http://h:=/x", "http://h:8=?q", "http://h:@x/"}) {
    const TargetCheck t = CheckRequestTarget("GET", target, 11, 1, "x");
    EXPECT_NE(t.error, "") << target << " -> " << t.authority << " " << t.origin;
  }
  const TargetCheck t = CheckRequestTarget("GET", "http://h:/x", 11, 1, "x");
  EXPECT_EQ(t.error, "");
  EXPECT_EQ(t.origin, "/x");
}

TEST(CheckRequestTargetTest, TheForwardedHostMustBeValid) {
  EXPECT_EQ(CheckRequestTarget("GET", "/", 11, 1, "a b").error, CheckHost("a b"));
  EXPECT_NE(CheckRequestTarget("GET", "/", 11, 1, "a b").error, "");
  EXPECT_NE(CheckRequestTarget("OPTIONS", "*", 11, 1, "a:x").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "http://[::1/x", 11, 1, "ok").error, "");
  EXPECT_NE(CheckRequestTarget("GET", "http://a:70000/x", 11, 1, "ok").error, "");
  // Absolute form: the client's Host is replaced, so only the target's authority counts.
  EXPECT_EQ(CheckRequestTarget("GET", "http://shop.example/x", 11, 1, "a b").error, "");
}

TEST(LeadingEmptyLinesTest, CrlfAndBareLfLinesAtTheFront) {
  EXPECT_EQ(LeadingEmptyLines(""), 0u);
  EXPECT_EQ(LeadingEmptyLines("GET / HTTP/1.1\r\n"), 0u);
  EXPECT_EQ(LeadingEmptyLines("\r\nGET"), 2u);
  EXPECT_EQ(LeadingEmptyLines("\n\nGET"), 2u);
  EXPECT_EQ(LeadingEmptyLines("\r\n\n\r\n"), 5u);
  EXPECT_EQ(LeadingEmptyLines("\r\n\r"), 2u);    // the last CR waits for its LF
  EXPECT_EQ(LeadingEmptyLines("\rGET"), 0u);     // a bare CR is not a line end
  EXPECT_EQ(LeadingEmptyLines(" \r\nGET"), 0u);  // nor is a line with a space empty
}

TEST(HasObsFoldTest, ALineBreakFollowedBySpaceOrTab) {
  const Case cases[] = {
      {"Host: a\r\n Folded: x\r\n", true},
      {"X-A: a\r\n\tb\r\n", true},
      {"X-A: a\n b", true},
      // No folded line:
      {"GET / HTTP/1.1\r\nHost: a b\r\nX-A: \tc\r\n\r\n", false},
      {"X-A: a\r\n", false},  // a line break at the very end
      {"", false},
  };
  for (const Case& c : cases) EXPECT_EQ(HasObsFold(c.input), c.expected) << c.input;
}

TEST(CheckMethodTest, EveryTokenButConnectIsForwarded) {
  for (const char* m : {"GET", "get", "PURGE", "M-SEARCH", "PROPFIND", "X-ZAP_1!", "~`|^"}) {
    EXPECT_EQ(CheckMethod(m), MethodCheck::kForward) << m;
  }
  EXPECT_EQ(CheckMethod("CONNECT"), MethodCheck::kConnect);
  EXPECT_EQ(CheckMethod("connect"), MethodCheck::kForward);  // a different, unknown method
  for (const char* m : {"", "GE T", "GE(T", "GET\r", "M\xc3\xa9"}) {
    EXPECT_EQ(CheckMethod(m), MethodCheck::kNotToken) << m;
  }
}

TEST(CheckHostTest, RegNameIpv4AndIpLiteralsWithAnOptionalPort) {
  for (const char* h :
       {"shop.example", "shop.example:8080", "a", "A-b_c~d.", "10.0.0.1:80", "[::1]", "[::1]:443",
        "[2001:db8::7]:0", "[::ffff:10.0.0.1]", "[v1.fe80::a+b]", "xn--bcher-kva.example", "a%2Db",
        "a:", "a:065535", "!$&'()*+,;="}) {
    EXPECT_EQ(CheckHost(h), "") << h;
  }
}

TEST(CheckHostTest, RefusesWhatAUriHostCannotHold) {
  for (const char* h : {"",
                        ":80",
                        "a b",
                        "a\tb",
                        "u@a",
                        "a/b",
                        "a?b",
                        "a#b",
                        "a:b:c",
                        "a:65536",
                        "a:99999999999999999999",
                        "a:-1",
                        "a: 80",
                        "a%2",
                        "a%zz",
                        "[::1",
                        "::1",
                        "[::zz]",
                        "[::1]80",
                        "[::1]:x",
                        "[]",
                        "[v1.]",
                        "[vx.a]",
                        "[fe80::1%eth0]",
                        "a\"b",
                        "a<b",
                        "\xc3\xa9.example"}) {
    EXPECT_NE(CheckHost(h), "") << h;
  }
}

// The HTTP/2 preface is recognised whole, waited for while only a prefix of it arrived, and
// anything else (an HTTP/1.x request, a look-alike) stays HTTP/1.x.
TEST(MatchH2Preface, WholePrefixOrNot) {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  EXPECT_EQ(MatchH2Preface(preface), PrefaceMatch::kYes);
  EXPECT_EQ(MatchH2Preface(preface + "\x00\x00\x00\x04"), PrefaceMatch::kYes);
  EXPECT_EQ(MatchH2Preface("P"), PrefaceMatch::kPrefix);
  EXPECT_EQ(MatchH2Preface(preface.substr(0, 23)), PrefaceMatch::kPrefix);
  EXPECT_EQ(MatchH2Preface("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), PrefaceMatch::kNo);
  EXPECT_EQ(MatchH2Preface("POST / HTTP/1.1\r\n"), PrefaceMatch::kNo);
  EXPECT_EQ(MatchH2Preface("GET"), PrefaceMatch::kNo);
}

}  // namespace
}  // namespace doppel::recorder
