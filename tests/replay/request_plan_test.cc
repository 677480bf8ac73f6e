#include "replay/request_plan.h"

#include <gtest/gtest.h>

#include <string>

namespace doppel::replay {
namespace {

doppel::v1::Envelope Env(const std::string& method, const std::string& target, uint64_t t = 1,
                         uint32_t seq = 0) {
  doppel::v1::Envelope e;
  e.set_arrival_us(t);
  e.set_seq(seq);
  e.mutable_request()->set_method(method);
  e.mutable_request()->set_target(target);
  e.mutable_request()->set_version(11);
  auto add = [&](const char* n, const char* v) {
    auto* h = e.mutable_request()->add_headers();
    h->set_name(n);
    h->set_value(v);
  };
  add("Host", "shop.prod");
  add("Accept", "application/json");
  add("Authorization", "hmac:0123abcd");
  add("Content-Length", "0");
  add("X-Session", "abc123");
  return e;
}

TEST(Percent, DeterministicAndNearTheShare) {
  int in = 0;
  for (uint64_t i = 0; i < 20000; ++i) {
    bool a = InPercent(1'700'000'000'000'000 + i * 37, static_cast<uint32_t>(i % 3), 25, 7);
    bool b = InPercent(1'700'000'000'000'000 + i * 37, static_cast<uint32_t>(i % 3), 25, 7);
    ASSERT_EQ(a, b);
    in += a;
  }
  // 25 % of 20000 = 5000, binomial sd ≈ 61: allow 5 sd.
  EXPECT_NEAR(in, 5000, 310);
}

TEST(Percent, SeedsChooseDifferentSubsets) {
  int same = 0, n = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    bool a = InPercent(i * 1000, 0, 50, 1), b = InPercent(i * 1000, 0, 50, 2);
    same += (a == b);
    ++n;
  }
  // Independent halves agree about half of the time.
  EXPECT_NEAR(same, n / 2, 400);
  EXPECT_TRUE(InPercent(5, 5, 100, 9));
  EXPECT_FALSE(InPercent(5, 5, 0, 9));
}

TEST(Selector, UnsafeMethodsAreSkippedUnlessAllowed) {
  auto s = *Selector::Create({});
  EXPECT_EQ(s->Decide(Env("GET", "/a")), Decision::kSend);
  for (const char* m : {"POST", "PUT", "PATCH", "DELETE", "delete"})
    EXPECT_EQ(s->Decide(Env(m, "/a")), Decision::kUnsafe) << m;
  SelectionOptions o;
  o.allow_unsafe = true;
  EXPECT_EQ((*Selector::Create(o))->Decide(Env("POST", "/a")), Decision::kSend);
}

// A relayed WebSocket connection is replayed when it can be sent again as recorded; one whose
// messages were compressed or whose client message was cut, or any with an HTTP/2 target, is
// skipped and counted apart, whatever the other options.
TEST(Selector, WebSocketSessionsThatCannotBeReplayedAreSkippedAndCounted) {
  auto e = Env("GET", "/chat");
  auto* m = e.mutable_websocket()->add_messages();
  m->set_from_client(true);
  m->set_opcode(1);
  m->set_payload("hi");
  SelectionOptions o;
  o.allow_unsafe = true;
  auto s = *Selector::Create(o);
  EXPECT_EQ(s->Decide(e), Decision::kSend);

  auto compressed = e;
  compressed.mutable_websocket()->mutable_messages(0)->set_compressed(true);
  auto cut = e;
  cut.mutable_websocket()->mutable_messages(0)->set_payload_truncated(true);
  auto server_cut = e;  // a cut server message is compared by its first bytes: replayed
  server_cut.mutable_websocket()->mutable_messages(0)->set_from_client(false);
  server_cut.mutable_websocket()->mutable_messages(0)->set_payload_truncated(true);
  EXPECT_EQ(s->Decide(server_cut), Decision::kSend);
  DecisionCounts counts;
  counts.Count(s->Decide(compressed));
  counts.Count(s->Decide(cut));
  counts.Count(s->Decide(Env("GET", "/a")));
  EXPECT_EQ(counts.websocket, 2u);
  EXPECT_EQ(counts.send, 1u);
  EXPECT_EQ(counts.unsafe, 0u);

  o.websocket = false;  // an HTTP/2 target
  EXPECT_EQ((*Selector::Create(o))->Decide(e), Decision::kWebSocket);
}

TEST(Selector, Filters) {
  SelectionOptions o;
  o.methods = {"get"};
  o.path_regex = "^/api/v1/(users|orders)/";
  o.header_regex = {"X-Session: ^abc"};
  auto s = *Selector::Create(o);
  EXPECT_EQ(s->Decide(Env("GET", "/api/v1/users/7")), Decision::kSend);
  EXPECT_EQ(s->Decide(Env("HEAD", "/api/v1/users/7")), Decision::kFiltered);
  EXPECT_EQ(s->Decide(Env("GET", "/api/v1/products/7")), Decision::kFiltered);
  o.header_regex = {"X-Session: ^zzz"};
  EXPECT_EQ((*Selector::Create(o))->Decide(Env("GET", "/api/v1/users/7")), Decision::kFiltered);
}

TEST(Selector, WhatTheProxyRefusedIsNeverSentButUpstreamFailuresAre) {
  SelectionOptions o;
  o.allow_unsafe = true;
  auto s = *Selector::Create(o);
  // A connection that sent a lone "\n": no method, no target.
  doppel::v1::Envelope lone_newline;
  lone_newline.set_error(doppel::v1::PROXY_ERROR_BAD_REQUEST);
  EXPECT_EQ(s->Decide(lone_newline), Decision::kRefused);
  doppel::v1::Envelope e = Env("POST", "/upload");
  e.set_error(doppel::v1::PROXY_ERROR_BODY_TOO_LARGE);
  EXPECT_EQ(s->Decide(e), Decision::kRefused);
  // An error value this build does not know: it may not have reached the primary either.
  e.set_error(static_cast<doppel::v1::ProxyError>(99));
  EXPECT_EQ(s->Decide(e), Decision::kRefused);
  // The proxy forwarded (or tried to reach the primary with) a complete request.
  for (auto err : {doppel::v1::PROXY_ERROR_UPSTREAM_CONNECT, doppel::v1::PROXY_ERROR_UPSTREAM_RESET,
                   doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT}) {
    e.set_error(err);
    EXPECT_EQ(s->Decide(e), Decision::kSend) << doppel::v1::ProxyError_Name(err);
  }
  // Refused comes before the percent subset: it is counted whatever --percent selects.
  o.percent = 0;
  EXPECT_EQ((*Selector::Create(o))->Decide(lone_newline), Decision::kRefused);
}

// The message T::Create (Selector, Rewriter) refuses `o` with; "" (failing the test) when it
// accepts them.
template <class T, class Options>
std::string CreateError(const Options& o) {
  auto created = T::Create(o);
  EXPECT_FALSE(created.ok());
  return created.ok() ? "" : created.status().message();
}

TEST(Selector, BadOptionsAreClearErrors) {
  SelectionOptions o;
  o.path_regex = "([";
  EXPECT_NE(CreateError<Selector>(o).find("--path-regex"), std::string::npos);
  o = {};
  o.header_regex = {"no-colon"};
  EXPECT_NE(CreateError<Selector>(o).find("Name: REGEX"), std::string::npos);
  o = {};
  o.percent = 150;
  EXPECT_FALSE(Selector::Create(o).ok());
}

// The request a Rewriter made from `o` builds for `e` (Rewriter::Build); an empty one, failing
// the test, when `o` is refused.
OutgoingRequest Rewrite(const RewriteOptions& o, const doppel::v1::Envelope& e,
                        const std::string& target_authority, const std::string& base_path,
                        uint64_t* dropped_redacted) {
  auto r = Rewriter::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  OutgoingRequest out;
  if (r.ok()) (*r)->Build(e, target_authority, base_path, &out, dropped_redacted);
  return out;
}

TEST(Rewriter, HostRedactionAndFraming) {
  uint64_t dropped = 0;
  OutgoingRequest out = Rewrite({}, Env("GET", "/a?b=1"), "127.0.0.1:9000", "", &dropped);
  EXPECT_EQ(out.target, "/a?b=1");
  EXPECT_EQ(dropped, 1u);
  std::map<std::string, std::string> h(out.headers.begin(), out.headers.end());
  EXPECT_EQ(h["Host"], "127.0.0.1:9000");
  EXPECT_EQ(h.count("Authorization"), 0u);   // its recorded value is a hash: never sent
  EXPECT_EQ(h.count("Content-Length"), 0u);  // the sender frames the body
  EXPECT_EQ(h["X-Session"], "abc123");
}

TEST(Rewriter, SetRemoveRewriteKeepHost) {
  RewriteOptions o;
  o.set_headers = {{"Authorization", "Bearer test-token"}, {"X-Shadow", "1"}};
  o.remove_headers = {"x-session"};
  o.rewrite_path = {{"^/api/v1/", "/api/v2/"}};
  o.keep_host = true;
  uint64_t dropped = 0;
  OutgoingRequest out =
      Rewrite(o, Env("GET", "/api/v1/users/7"), "staging:9000", "/base", &dropped);
  EXPECT_EQ(out.target, "/base/api/v2/users/7");
  EXPECT_EQ(dropped, 0u);
  std::multimap<std::string, std::string> h(out.headers.begin(), out.headers.end());
  EXPECT_EQ(h.find("Host")->second, "shop.prod");
  EXPECT_EQ(h.count("Authorization"), 1u);
  EXPECT_EQ(h.find("Authorization")->second, "Bearer test-token");
  EXPECT_EQ(h.count("X-Session"), 0u);
  EXPECT_EQ(h.find("X-Shadow")->second, "1");
}

TEST(Rewriter, BadRewriteIsAClearError) {
  RewriteOptions o;
  o.rewrite_path = {{"(", "x"}};
  EXPECT_NE(CreateError<Rewriter>(o).find("--rewrite-path"), std::string::npos);
}

TEST(Rewriter, ReplacementGroupsInEitherSyntax) {
  RewriteOptions o;
  o.rewrite_path = {{"^/v([0-9]+)/(\\w+)", "/$2/v$1$$\\1[$&]"}};
  uint64_t dropped = 0;
  EXPECT_EQ(Rewrite(o, Env("GET", "/v3/users/7"), "h:1", "", &dropped).target,
            "/users/v3$3[/v3/users]/7");
  // Every match is replaced, and a backslash not followed by a digit is kept as it is.
  o.rewrite_path = {{"a", "\\b"}};
  EXPECT_EQ(Rewrite(o, Env("GET", "/a/a"), "h:1", "", &dropped).target, "/\\b/\\b");
  // A group the regex does not have is refused up front, not silently left empty.
  o.rewrite_path = {{"^/(x)", "/$2"}};
  const std::string error = CreateError<Rewriter>(o);
  EXPECT_NE(error.find("--rewrite-path"), std::string::npos) << error;
}

// A pattern that backtracks exponentially in std::regex (it never finished on this input)
// runs in linear time under RE2.
TEST(Selector, HostileRegexRunsInLinearTime) {
  SelectionOptions o;
  o.path_regex = "^/(a+)+x$";
  o.header_regex = {"X-Session: ^(a|aa)+$"};
  auto s = Selector::Create(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto e = Env("GET", "/" + std::string(100000, 'a'));
  EXPECT_EQ((*s)->Decide(e), Decision::kFiltered);
  o.path_regex.clear();
  s = Selector::Create(o);
  ASSERT_TRUE(s.ok());
  auto* h = e.mutable_request()->add_headers();
  h->set_name("X-Session");
  h->set_value(std::string(100000, 'a') + "b");
  EXPECT_EQ((*s)->Decide(e), Decision::kFiltered);
}

// RE2 has no backreferences: the error says so instead of a bare "invalid escape".
TEST(Selector, BackreferenceIsAClearError) {
  SelectionOptions o;
  o.path_regex = "(a)\\1";
  const std::string error = CreateError<Selector>(o);
  EXPECT_NE(error.find("--path-regex"), std::string::npos) << error;
  EXPECT_NE(error.find("no backreferences"), std::string::npos) << error;
}

TEST(SplitAssignment, Forms) {
  std::string l, r;
  ASSERT_TRUE(SplitAssignment("X-A=1=2", &l, &r));
  EXPECT_EQ(l, "X-A");
  EXPECT_EQ(r, "1=2");
  ASSERT_TRUE(SplitAssignment("X-A: v", &l, &r));
  EXPECT_EQ(r, "v");
  EXPECT_FALSE(SplitAssignment("=x", &l, &r));
  EXPECT_FALSE(SplitAssignment("novalue", &l, &r));
}

}  // namespace
}  // namespace doppel::replay
