#include "diff/diff.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "diff/rules.h"
#include "net/codings.h"
#include "tests/diff/test_util.h"

namespace doppel::diff {
namespace {

using testing::Summary;
using Paths = std::vector<std::string>;

doppel::v1::HttpResponse Json(uint32_t status, const std::string& body,
                              std::vector<std::pair<std::string, std::string>> headers = {}) {
  doppel::v1::HttpResponse r;
  r.set_status(status);
  doppel::v1::Header* ct = r.add_headers();
  ct->set_name("Content-Type");
  ct->set_value("application/json");
  for (auto& [n, v] : headers) {
    doppel::v1::Header* h = r.add_headers();
    h->set_name(n);
    h->set_value(v);
  }
  r.set_body(body);
  return r;
}

DifferPtr MustCreate(std::string_view rules_json = "{}") {
  DiffConfig config;
  Result<doppel::v1::DiffRules> rules = ParseRulesJson(rules_json);
  EXPECT_TRUE(rules.ok()) << rules.status().ToString();
  if (rules.ok()) config.rules = rules.value();
  Result<DifferPtr> differ = Differ::Create(std::move(config));
  EXPECT_TRUE(differ.ok()) << differ.status().ToString();
  return std::move(differ).value();
}

TEST(DifferTest, IdenticalResponsesMatch) {
  DifferPtr d = MustCreate();
  doppel::v1::HttpResponse r = Json(200, R"({"a":1})", {{"Date", "x"}});
  DiffResult result = d->Compare("GET", "/users/7", r, r);
  EXPECT_TRUE(result.match);
  EXPECT_TRUE(result.diffs.empty());
  EXPECT_EQ(result.endpoint, "GET /users/{id}");
}

TEST(DifferTest, StatusClassChangeIsHighSeverity) {
  DifferPtr d = MustCreate();
  DiffResult cls = d->Compare("GET", "/a", Json(200, "{}"), Json(503, "{}"));
  ASSERT_EQ(cls.diffs.size(), 1u);
  EXPECT_EQ(cls.diffs[0].severity, Severity::kHigh);
  DiffResult same_class = d->Compare("GET", "/a", Json(200, "{}"), Json(203, "{}"));
  ASSERT_EQ(same_class.diffs.size(), 1u);
  EXPECT_EQ(same_class.diffs[0].severity, Severity::kMedium);
}

TEST(DifferTest, ReportsStatusThenHeadersThenBody) {
  DifferPtr d = MustCreate();
  DiffResult r = d->Compare("GET", "/a", Json(200, R"({"a":1})", {{"ETag", "1"}, {"Date", "Mon"}}),
                            Json(500, R"({"a":2})", {{"ETag", "2"}, {"Date", "Tue"}}));
  EXPECT_EQ(Summary(r), (Paths{"status:value", "headers.etag:value", "body.a:value"}));
  EXPECT_EQ(r.diffs[0].expected, "200");
  EXPECT_EQ(r.diffs[0].actual, "500");
  EXPECT_EQ(r.ignored, Paths{"headers.date"});
  EXPECT_FALSE(r.match);
}

// Content-Length follows the body: the body diff says what changed, so a length change is
// listed as ignored rather than reported a second time.
TEST(DifferTest, ContentLengthFollowsTheBody) {
  DifferPtr d = MustCreate(R"({"rules":[{"path":"body.t","action":"ignore"}]})");
  DiffResult equal = d->Compare("GET", "/", Json(200, R"({"t":"aa"})", {{"Content-Length", "8"}}),
                                Json(200, R"({"t":"aaa"})", {{"Content-Length", "9"}}));
  EXPECT_TRUE(equal.match) << ::testing::PrintToString(Summary(equal));
  EXPECT_EQ(equal.ignored, (Paths{"headers.content-length", "body.t"}));
  DiffResult differ = d->Compare("GET", "/", Json(200, R"({"u":"aa"})", {{"Content-Length", "8"}}),
                                 Json(200, R"({"u":"aaa"})", {{"Content-Length", "9"}}));
  EXPECT_EQ(Summary(differ), (Paths{"body.u:value"}));
  EXPECT_EQ(differ.ignored, (Paths{"headers.content-length"}));
}

TEST(DifferTest, EndpointRulesApplyOnlyToTheirEndpoint) {
  DifferPtr d = MustCreate(R"({
    "rules": [{"endpoint": "GET /users/{id}", "path": "body.seen", "action": "ignore"}],
    "endpoints": [{"pattern": "GET /users/{id}"}]})");
  doppel::v1::HttpResponse e = Json(200, R"({"seen":1})"), a = Json(200, R"({"seen":2})");
  DiffResult users = d->Compare("GET", "/users/alice", e, a);
  EXPECT_TRUE(users.match);
  EXPECT_EQ(users.endpoint, "GET /users/{id}");
  EXPECT_FALSE(d->Compare("GET", "/orders/1", e, a).match);
  EXPECT_EQ(d->Endpoint("GET", "/orders/1?x=2"), "GET /orders/{id}");
}

TEST(DifferTest, StatusCanBeIgnoredByRule) {
  DifferPtr d = MustCreate(R"({"rules":[{"path":"status","action":"ignore"}]})");
  DiffResult r = d->Compare("GET", "/", Json(200, "{}"), Json(201, "{}"));
  EXPECT_TRUE(r.match);
  EXPECT_EQ(r.ignored, Paths{"status"});
}

TEST(DifferTest, CapsDiffsAndCountsTheRest) {
  DiffConfig config;
  config.max_diffs = 3;
  Result<DifferPtr> d = Differ::Create(config);
  ASSERT_TRUE(d.ok());
  DiffResult r = d.value()->Compare("GET", "/", Json(200, "[1,2,3,4,5]"), Json(500, "[5,6,7,8,9]"));
  EXPECT_EQ(r.diffs.size(), 3u);
  EXPECT_EQ(r.omitted_diffs, 3u);  // status + 5 elements = 6 differences
  EXPECT_FALSE(r.match);
}

TEST(DifferTest, CreateRejectsBadRules) {
  DiffConfig config;
  doppel::v1::DiffRule* rule = config.rules.add_rules();
  rule->set_path("body.a");
  rule->set_action("ignore-if-value");
  rule->set_regex("(unclosed");
  Result<DifferPtr> d = Differ::Create(config);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(d.status().message().find("rules[0].regex"), std::string::npos) << d.status().message();
}

TEST(DifferTest, ConcurrentComparesOnOneDifferAgree) {
  DifferPtr d = MustCreate(R"({"rules":[
    {"path":"body.items","action":"unordered-by-key","key":"id"},
    {"path":"body.token","action":"ignore-if-value","regex":"^t[0-9]+$"}]})");
  doppel::v1::HttpResponse e =
      Json(200, R"({"items":[{"id":1,"v":"a"},{"id":2,"v":"b"}],"token":"t1","n":1})");
  doppel::v1::HttpResponse a =
      Json(200, R"({"items":[{"id":2,"v":"b"},{"id":1,"v":"c"}],"token":"t2","n":2})");
  Paths want = {"body.items[0].v:value", "body.n:value"};
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        if (Summary(d->Compare("GET", "/", e, a)) != want) ++failures[t];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(DifferTest, ArbitraryBytesNeverCrash) {
  DifferPtr d = MustCreate(R"({"rules":[{"path":"body[*].a","action":"unordered"}]})");
  std::mt19937 rng(12345);
  const std::vector<std::string> types = {"application/json", "text/plain", "",
                                          "application/x-www-form-urlencoded", "image/png"};
  const std::vector<std::string> encodings = {"", "gzip", "deflate", "zstd", "br"};
  const std::string alphabet = "{}[]\":,0123456789.eE+-truefalsn \n\\u\x1f\xc3\xa9\xff";
  for (int i = 0; i < 2000; ++i) {
    auto random_body = [&] {
      std::string s(rng() % 64, ' ');
      for (char& c : s) c = alphabet[rng() % alphabet.size()];
      return s;
    };
    doppel::v1::HttpResponse e = Json(200, random_body(), {{"Content-Type", types[rng() % 5]}});
    doppel::v1::HttpResponse a = Json(200, random_body());
    doppel::v1::Header* h = a.add_headers();
    h->set_name("Content-Encoding");
    h->set_value(encodings[rng() % 5]);
    DiffResult r = d->Compare("GET", random_body(), e, a);
    EXPECT_EQ(r.match, r.diffs.empty() && r.omitted_diffs == 0);
  }
}

// A Differ without rules that counts the recorded bodies it decodes in *decodes.
DifferPtr DecodeCountingDiffer(std::atomic<int>* decodes) {
  DiffConfig config;
  config.on_expected_decoded = [decodes] { decodes->fetch_add(1); };
  Result<DifferPtr> created = Differ::Create(config);
  EXPECT_TRUE(created.ok());
  return std::move(created).value();
}

// A recording prepared once is decoded (gzip) and parsed once for any number of answers,
// concurrent ones included, and each comparison says what a one-shot Compare says.
TEST(DifferTest, PreparedExpectedIsDecodedOnceForManyAnswers) {
  std::atomic<int> decodes{0};
  const DifferPtr differ = DecodeCountingDiffer(&decodes);
  const Differ& d = *differ;
  doppel::v1::HttpResponse recorded =
      Json(200, net::EncodeContent(R"({"id":7,"items":[1,2,3]})", "gzip").value(),
           {{"Content-Encoding", "gzip"}});
  const std::vector<doppel::v1::HttpResponse> answers = {
      Json(200, R"({"id":7,"items":[1,2,4]})"), Json(200, R"({"id":8,"items":[1,2,3]})"),
      Json(200, R"({"id":7,"items":[1,2,3]})"), Json(500, R"({"error":"x"})")};

  ExpectedPtr expected = d.Prepare("GET", "/users/7", recorded);
  EXPECT_EQ(expected->endpoint(), d.Endpoint("GET", "/users/7"));
  std::vector<DiffResult> results(answers.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < answers.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = d.Compare(*expected, answers[i]); });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(decodes.load(), 1);

  decodes = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    const DiffResult one_shot = d.Compare("GET", "/users/7", recorded, answers[i]);
    EXPECT_EQ(Summary(results[i]), Summary(one_shot)) << i;
    EXPECT_EQ(results[i].match, one_shot.match) << i;
    EXPECT_EQ(results[i].endpoint, one_shot.endpoint) << i;
  }
  EXPECT_EQ(Summary(results[0]), (Paths{"body.items[2]:value"}));
  EXPECT_TRUE(results[2].match);
  EXPECT_EQ(decodes.load(), static_cast<int>(answers.size()));  // one-shot: once each
}

// Byte-equal bodies are equal however they are encoded: preparing decodes nothing.
TEST(DifferTest, PreparedExpectedDecodesNothingForByteEqualBodies) {
  std::atomic<int> decodes{0};
  const DifferPtr d = DecodeCountingDiffer(&decodes);
  doppel::v1::HttpResponse recorded = Json(200, R"({"a":1})");
  ExpectedPtr expected = d->Prepare("GET", "/", recorded);
  EXPECT_TRUE(d->Compare(*expected, recorded).match);
  EXPECT_EQ(decodes.load(), 0);
}

// A WebSocket handshake's comparison covers the server's data messages, in order, as JSON
// values under `websocket`: JSON text by field, other text and binary whole, a message the
// recording cut by its size and first bytes; control frames and the client's messages are not
// compared, and a recording that kept only its first messages compares only those.
TEST(DifferTest, WebSocketServerMessagesAreComparedInOrderUnderWebsocket) {
  DifferPtr d = MustCreate();
  auto session = [](std::vector<std::tuple<bool, uint32_t, std::string>> messages) {
    doppel::v1::WebSocketSession s;
    for (auto& [from_client, opcode, payload] : messages) {
      auto* m = s.add_messages();
      m->set_from_client(from_client);
      m->set_opcode(opcode);
      m->set_payload(payload);
      m->set_payload_size(payload.size());
    }
    return s;
  };
  doppel::v1::HttpResponse handshake;
  handshake.set_status(101);
  const auto recorded = session({{true, 1, "{\"q\":1}"},
                                 {false, 1, "{\"price\":10,\"sku\":\"A\"}"},
                                 {false, 9, "ping"},
                                 {false, 1, "plain text"},
                                 {false, 2, std::string("\x00\x01", 2)}});
  const ExpectedPtr e = d->Prepare("GET", "/chat", handshake, &recorded);
  EXPECT_TRUE(d->Compare(*e, handshake, &recorded).match);

  const auto changed = session({{true, 1, "{\"q\":2}"},  // the client's side: not compared
                                {false, 1, "{\"price\":11,\"sku\":\"A\"}"},
                                {false, 1, "other text"},
                                {false, 2, std::string("\x00\x02", 2)},
                                {false, 1, "one more"}});
  DiffResult r = d->Compare(*e, handshake, &changed);
  EXPECT_FALSE(r.match);
  // One message more: the list's size differs, as for any JSON array.
  EXPECT_EQ(Summary(r), (Paths{"websocket[0].price:value", "websocket[1]:value",
                               "websocket[2]:value", "websocket:array-size"}));

  // No replayed connection at all (the target refused the handshake): no message came.
  r = d->Compare(*e, handshake, nullptr);
  EXPECT_EQ(Summary(r), (Paths{"websocket:array-size"}));
  EXPECT_EQ(r.diffs[0].expected, "3 elements") << r.diffs[0].expected;

  // The recording kept only its first messages: later replayed ones are not compared.
  auto kept = recorded;
  kept.set_messages_truncated(true);
  const ExpectedPtr k = d->Prepare("GET", "/chat", handshake, &kept);
  auto longer = recorded;
  *longer.add_messages() = longer.messages(1);
  EXPECT_TRUE(d->Compare(*k, handshake, &longer).match);

  // A message the recording cut after 4 bytes: equal when the replayed one starts the same and
  // has the recorded size.
  auto cut = session({{false, 1, "abcd"}});
  cut.mutable_messages(0)->set_payload_truncated(true);
  cut.mutable_messages(0)->set_payload_size(8);
  const ExpectedPtr c = d->Prepare("GET", "/chat", handshake, &cut);
  for (const auto& [payload, match] : std::vector<std::pair<std::string, bool>>{
           {"abcdefgh", true}, {"abcdefghi", false}, {"abcXefgh", false}}) {
    const auto replayed = session({{false, 1, payload}});
    EXPECT_EQ(d->Compare(*c, handshake, &replayed).match, match) << payload;
  }

  // Rules reach into messages.
  DifferPtr ruled = MustCreate(R"({"rules":[{"path":"websocket[*].price","action":"ignore"}]})");
  const ExpectedPtr p = ruled->Prepare("GET", "/chat", handshake, &recorded);
  auto priced = recorded;
  priced.mutable_messages(1)->set_payload("{\"price\":99,\"sku\":\"A\"}");
  EXPECT_TRUE(ruled->Compare(*p, handshake, &priced).match);
}

}  // namespace
}  // namespace doppel::diff
