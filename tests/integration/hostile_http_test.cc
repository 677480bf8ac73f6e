// `doppel record` as a real process, fed malformed and hostile HTTP over TCP. One table of
// cases: the raw bytes, how they are sent (at once or trickled) and what the client does
// next (half-close, hold the connection open, or vanish with a reset), and the outcome: the
// statuses answered in order (none: the connection is closed without an answer) and how
// many requests reach the upstream. After every case a normal request on a fresh connection
// must still be answered, and the upstream must never see a request the client did not
// send as one (no smuggling). At the end the error counters must add up to the table.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "tests/integration/hardening_util.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
using namespace std::string_literals;

enum class Send { kAtOnce, kTrickle };               // trickle: one byte per 100 ms
enum class Then { kHalfClose, kHoldOpen, kVanish };  // vanish: close with a reset

struct Case {
  std::string name;
  std::string bytes;
  Send send = Send::kAtOnce;
  Then then = Then::kHalfClose;
  std::vector<unsigned> statuses;  // answers, in order; empty: closed without an answer
  size_t upstream = 0;             // requests the upstream must see
  // Checks the last request the upstream saw (when upstream > 0).
  std::function<void(const ReceivedRequest&)> check = nullptr;
  std::vector<std::string> bodies = {};  // expected answer bodies (forwarded cases), in order
};

constexpr const char kHost[] = "Host: shop.test\r\n";

std::string Get(const std::string& target, const std::string& version = "HTTP/1.1") {
  return "GET " + target + " " + version + "\r\n" + kHost + "\r\n";
}
std::string Post(const std::string& headers, const std::string& body) {
  return std::string("POST /orders HTTP/1.1\r\n") + kHost + headers + "\r\n" + body;
}

// One row per case: name, bytes, how sent, then what, answers, requests upstream, check.
// clang-format off
std::vector<Case> Cases() {
  constexpr Send kOnce = Send::kAtOnce;
  constexpr Then kHalf = Then::kHalfClose, kHold = Then::kHoldOpen;
  std::vector<Case> c;
  // ---- request lines ----
  c.push_back({"garbage", "GARBAGE\r\n\r\n", kOnce, kHalf, {400}});
  c.push_back({"binary garbage (a TLS hello)", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n"s,
               kOnce, kHalf, {400}});
  c.push_back({"missing version", "GET /\r\nHost: x\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"HTTP/0.9", "GET /\r\n", kOnce, kHalf, {400}});
  c.push_back({"lowercase method (a distinct token: forwarded as is)",
               Get("/lower").replace(0, 3, "get"), kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) { EXPECT_EQ(r.method, "get"); }});
  c.push_back({"HTTP/2.0", Get("/", "HTTP/2.0"), kOnce, kHold, {505}});
  c.push_back({"HTTP/1.2", Get("/", "HTTP/1.2"), kOnce, kHold, {505}});
  // The real preface starts HTTP/2 (tests/recorder/h2_proxy_test.cc); a look-alike is HTTP/1.x.
  c.push_back({"h2 preface look-alike", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", kOnce, kHold,
               {505}});
  c.push_back({"bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", kOnce, kHalf, {400}});
  // RFC 9112 2.2: empty lines before the request line are skipped, up to --max-header-size.
  c.push_back({"empty lines (CRLF) before the request line", "\r\n\r\n" + Get("/crlf-first"),
               kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) { EXPECT_EQ(r.target, "/crlf-first"); }});
  c.push_back({"empty lines (bare LF) before the request line", "\n\n" + Get("/lf-first"), kOnce,
               kHold, {200}, 1,
               [](const ReceivedRequest& r) { EXPECT_EQ(r.target, "/lf-first"); }});
  c.push_back({"a lone LF, then half-close", "\n", kOnce, kHalf, {}});
  c.push_back({"a lone CRLF, then half-close", "\r\n", kOnce, kHalf, {}});
  c.push_back({"CR without LF before the request line", "\r" + Get("/"), kOnce, kHold, {400}});
  {
    std::string lines;
    for (int i = 0; i < 9000; ++i) lines += "\r\n";  // 18000 bytes, over the 16 KiB head limit
    c.push_back({"empty lines past the header size limit", lines + Get("/never"), kOnce, kHold,
                 {400}});
  }
  c.push_back({"NUL in target", "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"s, kOnce, kHold, {400}});
  c.push_back({"CONNECT (authority form): not a tunnel",
               "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test\r\n\r\n", kOnce, kHold, {501}});
  c.push_back({"extension method M-SEARCH", Get("/ssdp").replace(0, 3, "M-SEARCH"), kOnce, kHold,
               {200}, 1, [](const ReceivedRequest& r) { EXPECT_EQ(r.method, "M-SEARCH"); }});
  c.push_back({"extension method unknown to Beast", Get("/x").replace(0, 3, "X-ZAP_1!"), kOnce,
               kHold, {200}, 1, [](const ReceivedRequest& r) { EXPECT_EQ(r.method, "X-ZAP_1!"); }});
  c.push_back({"* with a method other than OPTIONS", "M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n",
               kOnce, kHold, {400}});
  c.push_back({"method with a non-token byte", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", kOnce,
               kHold, {400}});
  c.push_back({"absolute form",
               "GET http://shop.example:81/abs?q=1 HTTP/1.1\r\nHost: other\r\n\r\n", kOnce, kHold,
               {200}, 1, [](const ReceivedRequest& r) {
                 EXPECT_EQ(r.target, "/abs?q=1");
                 EXPECT_EQ(r.Header("Host"), "shop.example:81");
               }});
  c.push_back({"absolute form with user info",
               "GET http://u:p@shop.example/ HTTP/1.1\r\nHost: x\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) { EXPECT_EQ(r.target, "*"); }});
  // ---- Host ----
  c.push_back({"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"HTTP/1.0 without Host", "GET /ten HTTP/1.0\r\n\r\n", kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) {
                 EXPECT_EQ(r.version, 11u);
                 EXPECT_EQ(r.Header("Host").rfind("127.0.0.1:", 0), 0u) << r.Header("Host");
               }});
  // Host syntax (RFC 9110 7.2, RFC 3986 3.2.2): reg-name, IPv4 or [IPv6], optional :port.
  c.push_back({"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"Host with user info", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"Host port over 65535", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"Host port not digits", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"Host bad IPv6 literal", "GET / HTTP/1.1\r\nHost: [::zz]:80\r\n\r\n", kOnce,
               kHold, {400}});
  c.push_back({"Host IPv6 literal with port", "GET /v6 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
               kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) { EXPECT_EQ(r.Header("Host"), "[::1]:8080"); }});
  c.push_back({"absolute form with a bad authority",
               "GET http://[::1/x HTTP/1.1\r\nHost: a\r\n\r\n", kOnce, kHold, {400}});
  // ---- header fields ----
  c.push_back({"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"empty header name", "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", kOnce, kHold,
               {400}});
  c.push_back({"control char in name", "GET / HTTP/1.1\r\nHost: x\r\nX-A\x01: 1\r\n\r\n", kOnce,
               kHold, {400}});
  c.push_back({"control char in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", kOnce,
               kHold, {400}});
  c.push_back({"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0z\r\n\r\n"s, kOnce, kHold,
               {400}});
  c.push_back({"CR inside value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rGET /smuggled\r\n\r\n",
               kOnce, kHold, {400}});
  // RFC 9112 5.2: obs-fold in a request is refused, not unfolded.
  c.push_back({"obs-fold", "GET /fold HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", kOnce,
               kHold, {400}});
  c.push_back({"obs-fold with a tab", "GET /fold HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n",
               kOnce, kHold, {400}});
  c.push_back({"obs-fold in Host (would forward Host: a Folded: x)",
               "GET / HTTP/1.1\r\nHost: a\r\n Folded: x\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"obs-fold in Transfer-Encoding",
               Post("Transfer-Encoding:\r\n chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), kOnce, kHold,
               {400}});
  // ---- framing ----
  c.push_back({"Content-Length and Transfer-Encoding",
               Post("Content-Length: 13\r\nTransfer-Encoding: chunked\r\n",
                    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"),
               kOnce, kHold, {400}});
  c.push_back({"Transfer-Encoding: chunked, chunked",
               Post("Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), kOnce,
               kHold, {400}});
  c.push_back({"Transfer-Encoding: gzip", Post("Transfer-Encoding: gzip\r\n", "xx"), kOnce, kHold,
               {400}});
  c.push_back({"Transfer-Encoding in HTTP/1.0",
               "POST /ten HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n", kOnce, kHold, {400}});
  c.push_back({"two different Content-Lengths",
               Post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), kOnce, kHold, {400}});
  c.push_back({"two equal Content-Lengths (one forwarded)",
               Post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), kOnce, kHold, {200}, 1,
               [](const ReceivedRequest& r) {
                 EXPECT_EQ(r.body, "hello");
                 int lengths = 0;
                 for (const auto& [n, v] : r.headers) lengths += n == "Content-Length";
                 EXPECT_EQ(lengths, 1);
               }});
  c.push_back({"negative Content-Length", Post("Content-Length: -1\r\n", "x"), kOnce, kHold,
               {400}});
  c.push_back({"non-numeric Content-Length", Post("Content-Length: 5a\r\n", "hello"), kOnce,
               kHold, {400}});
  c.push_back({"Content-Length 2^64", Post("Content-Length: 18446744073709551616\r\n", "x"),
               kOnce, kHold, {400}});
  c.push_back({"Content-Length 2^64-1", Post("Content-Length: 18446744073709551615\r\n", "x"),
               kOnce, kHold, {413}});
  c.push_back({"chunk size not hex",
               Post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"), kOnce, kHold,
               {400}});
  c.push_back({"chunk size overflow",
               Post("Transfer-Encoding: chunked\r\n", "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
               kOnce, kHold, {400}});
  c.push_back({"chunk without CRLF after data",
               Post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n"), kOnce, kHold,
               {400}});
  c.push_back({"chunked body that never ends (held open)",
               Post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n"), kOnce, kHold, {}});
  c.push_back({"chunked body that never ends (half-closed)",
               Post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n"), kOnce, kHalf, {}});
  c.push_back({"client vanishes mid-body", Post("Content-Length: 100\r\n", "0123456789"), kOnce,
               Then::kVanish, {}});
  {
    const std::string inner = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    c.push_back({"a request inside a body stays a body",
                 Post("Content-Length: " + std::to_string(inner.size()) + "\r\n", inner), kOnce,
                 kHold, {200}, 1,
                 [inner](const ReceivedRequest& r) {
                   EXPECT_EQ(r.target, "/orders");
                   EXPECT_EQ(r.body, inner);
                 },
                 {inner}});
  }
  c.push_back({"NUL bytes in a body", Post("Content-Length: 5\r\n", "a\0b\0c"s), kOnce, kHold,
               {200}, 1, [](const ReceivedRequest& r) { EXPECT_EQ(r.body, "a\0b\0c"s); },
               {"a\0b\0c"s}});
  // ---- sizes and time ----
  {
    std::string flood = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 10000; ++i) flood += "X-H" + std::to_string(i) + ": v\r\n";
    c.push_back({"10k headers", flood + "\r\n", kOnce, kHold, {431}});
  }
  c.push_back({"10 MB header line",
               "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10 << 20, 'h') + "\r\n\r\n",
               kOnce, kHold, {431}});
  c.push_back({"slowloris (one header byte per 100 ms)",
               "GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(200, 'p') +
                   "\r\n\r\n",
               Send::kTrickle, kHold, {}});
  // ---- pipelining ----
  c.push_back({"three pipelined GETs", Get("/size?n=1") + Get("/size?n=2") + Get("/size?n=3"),
               kOnce, kHold, {200, 200, 200}, 3, nullptr, {"s", "ss", "sss"}});
  c.push_back({"pipelined GET then garbage", Get("/size?n=4") + "GARBAGE\r\n\r\n" + Get("/never"),
               kOnce, kHold, {200, 400}, 1, nullptr, {"ssss"}});
  // Streamed responses (several pieces of net::BodyReader::kPieceBytes) keep the connection in
  // step: the next pipelined request is answered after the whole body, chunked or with
  // Content-Length.
  c.push_back({"pipelined after a large streamed chunked response",
               Get("/chunked?n=1000000") + Get("/size?n=1000000") + Get("/size?n=5"), kOnce, kHold,
               {200, 200, 200}, 3, nullptr,
               {std::string(1000000, 'c'), std::string(1000000, 's'), "sssss"}});
  return c;
}
// clang-format on

struct Outcome {
  std::vector<unsigned> statuses;
  std::vector<std::string> bodies;
  bool closed = false;  // the proxy closed the connection
  double seconds = 0;
};

// Parses complete responses from the front of `raw`.
void ParseResponses(std::string* raw, Outcome* out) {
  for (;;) {
    http::response_parser<http::string_body> p;
    p.eager(true);
    p.body_limit(64 << 20);
    boost::beast::error_code ec;
    const size_t used = p.put(boost::asio::buffer(*raw), ec);
    if (ec || !p.is_done()) return;
    out->statuses.push_back(p.get().result_int());
    out->bodies.push_back(p.get().body());
    raw->erase(0, used);
  }
}

Outcome RunCase(uint16_t port, const Case& c) {
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  const int fd = ConnectToLoopback(port);
  if (fd < 0) return out;
  std::thread sender([&] {
    if (c.send == Send::kAtOnce) {
      SendAll(fd, c.bytes);
    } else {
      for (char ch : c.bytes) {
        if (!SendAll(fd, std::string(1, ch))) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        char probe;
        if (::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) break;  // cut by the proxy
      }
    }
    if (c.then == Then::kHalfClose) ::shutdown(fd, SHUT_WR);
  });
  if (c.then == Then::kVanish) {
    sender.join();
    linger l{1, 0};  // close with a reset
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
    out.closed = true;
    return out;
  }
  // Keep-alive answers to a held connection: stop once they are all there. Otherwise read
  // until the proxy closes (it must: a bad request leaves the rest of the stream unread).
  const bool keep_alive =
      !c.statuses.empty() && c.then == Then::kHoldOpen &&
      std::all_of(c.statuses.begin(), c.statuses.end(), [](unsigned s) { return s < 300; });
  std::string raw;
  const auto deadline = start + std::chrono::seconds(8);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      out.closed = true;
      break;
    }
    raw.append(buf, static_cast<size_t>(n));
    ParseResponses(&raw, &out);
    if (keep_alive && out.statuses.size() >= c.statuses.size()) break;
  }
  ::shutdown(fd, SHUT_RDWR);  // unblocks a sender still trickling or stuck in send()
  sender.join();
  ::close(fd);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

class HostileHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("hostile"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  TestUpstream upstream_;
};

TEST_F(HostileHttpTest, EveryCaseIsAnsweredOrClosedAndNothingIsSmuggled) {
  RecordProcess rec(dir_ + "/store", upstream_.url(),
                    {"--session", "hostile", "--threads", "2", "--idle-timeout", "1s",
                     "--request-timeout", "1s", "--max-request-body", "1MiB"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  const std::vector<Case> cases = Cases();
  std::map<std::string, int> want_errors;  // reason label -> count
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const size_t seen_before = upstream_.requests().size();
    const Outcome out = RunCase(rec.port(), c);
    EXPECT_EQ(out.statuses, c.statuses);
    EXPECT_TRUE(out.closed || !c.statuses.empty()) << "neither answered nor closed: a hang";
    EXPECT_LT(out.seconds, 6.0);
    for (size_t i = 0; i < c.bodies.size() && i < out.bodies.size(); ++i) {
      EXPECT_EQ(out.bodies[i], c.bodies[i]);
    }
    for (unsigned s : c.statuses) {
      if (s == 400 || s == 501 || s == 505) ++want_errors["bad_request"];
      if (s == 413) ++want_errors["body_too_large"];
      if (s == 431) ++want_errors["header_too_large"];
      if (s >= 400) {
        EXPECT_TRUE(out.closed) << "the connection must be closed after " << s;
      }
    }
    if (c.statuses.empty() && c.then == Then::kHoldOpen) ++want_errors["request_timeout"];

    // The proxy still serves a normal request on a fresh connection.
    auto health = Fetch(rec.port(), "GET", "/health");
    EXPECT_EQ(health.result_int(), 200u) << health.body();
    const auto seen = upstream_.requests();
    ASSERT_GE(seen.size(), seen_before + 1);
    EXPECT_EQ(seen.back().target, "/health");
    EXPECT_EQ(seen.size() - seen_before - 1, c.upstream) << "requests the upstream saw";
    if (c.check && c.upstream > 0 && seen.size() >= 2) c.check(seen[seen.size() - 2]);
  }
  for (const auto& r : upstream_.requests()) {
    EXPECT_EQ(r.target.find("smuggled"), std::string::npos) << "smuggled: " << r.target;
    EXPECT_NE(r.target, "/never");
  }
  // Every refusal is counted under its reason.
  for (const char* reason : {"bad_request", "body_too_large", "header_too_large", "request_timeout",
                             "upstream_connect", "upstream_reset"}) {
    const std::string series = std::string("doppel_proxy_errors_total{reason=\"") + reason + "\"}";
    EXPECT_TRUE(Eventually([&] { return rec.Metric(series) == want_errors[reason]; }, 3000))
        << series << " = " << rec.Metric(series) << ", want " << want_errors[reason];
  }
  EXPECT_TRUE(Eventually([&] { return rec.Metric("doppel_connections_active") == 0; }, 3000))
      << rec.Metric("doppel_connections_active");
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(20000), 0) << rec.child().all_stderr();
  std::printf("hostile_http: %zu cases\n", cases.size());
}

}  // namespace
}  // namespace doppel::testing
