#include "replay/correlate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/rules_file.h"
#include "redact/redactor.h"
#include "replay/replay.h"
#include "tests/net/test_upstream.h"
#include "tests/replay/vector_source.h"

namespace doppel::replay {
namespace {

using doppel::v1::Envelope;

struct Msg {
  std::string method, target;
  std::vector<std::pair<std::string, std::string>> req_headers;
  std::string req_body;
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> resp_headers;
  std::string resp_body;
  std::string client = "10.0.0.1:5000";
};

void AddHeaders(const std::vector<std::pair<std::string, std::string>>& headers,
                google::protobuf::RepeatedPtrField<v1::Header>* out) {
  for (const auto& [n, v] : headers) {
    auto* h = out->Add();
    h->set_name(n);
    h->set_value(v);
  }
}

Envelope Make(const Msg& m) {
  Envelope e;
  e.set_client_addr(m.client);
  auto* q = e.mutable_request();
  q->set_method(m.method);
  q->set_target(m.target);
  AddHeaders(m.req_headers, q->mutable_headers());
  q->set_body(m.req_body);
  auto* r = e.mutable_response();
  r->set_status(m.status);
  AddHeaders(m.resp_headers, r->mutable_headers());
  r->set_body(m.resp_body);
  return e;
}

const std::string kToken = "4f9a0c2e7b1d4e6f8a3c5b7d9e1f2a4c";
const std::string kId = "7a1b2c3d4e5f6071";

// A client's login -> create order -> get order -> account flow.
std::vector<Envelope> Flow(const std::string& client, const std::string& token,
                           const std::string& id, const std::string& auth) {
  const std::string json = "application/json";
  return {
      Make({"POST",
            "/login",
            {{"Content-Type", json}},
            R"({"user":"ada","password":"pw"})",
            200,
            {{"Content-Type", json}},
            R"({"token":")" + token + R"(","user":"ada"})",
            client}),
      Make({"POST",
            "/orders",
            {{"Authorization", auth}},
            "{}",
            201,
            {{"Location", "/orders/" + id}},
            R"({"id":")" + id + R"("})",
            client}),
      Make({"GET",
            "/orders/" + id,
            {{"Authorization", auth}},
            "",
            200,
            {},
            R"({"id":")" + id + R"(","state":"open"})",
            client}),
      Make(
          {"GET", "/account", {{"Authorization", auth}}, "", 200, {}, R"({"user":"ada"})", client}),
  };
}

const Correlation* Find(const CorrelationPlan& p, std::string_view sink_endpoint,
                        std::string_view sink_location) {
  for (const auto& c : p.correlations)
    if (c.sink_endpoint == sink_endpoint && c.sink_location == sink_location) return &c;
  return nullptr;
}

TEST(CorrelateTest, EvidenceRule) {
  EXPECT_FALSE(IsEvidence("", false));
  EXPECT_FALSE(IsEvidence("short", false));    // shorter than kMinValueLength
  EXPECT_FALSE(IsEvidence("1234567", false));  // 7 characters
  EXPECT_TRUE(IsEvidence("12345678", false));  // a string of 8
  EXPECT_FALSE(IsEvidence("999", true));       // a small integer
  EXPECT_FALSE(IsEvidence("-999", true));
  EXPECT_TRUE(IsEvidence("1000", true));
  EXPECT_TRUE(IsEvidence("99999999999999999999999", true));  // beyond int64: an id
  EXPECT_FALSE(IsEvidence("1234.5", true));                  // fractions are measurements, not ids
}

TEST(CorrelateTest, LearnsTokenAndIdFromAClientsFlow) {
  CorrelationLearner learner("", nullptr);
  for (const auto& e : Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken)) learner.Add(e);
  CorrelationPlan plan = learner.Finish();

  const Correlation* bearer = Find(plan, "GET /account", "header:authorization#bearer");
  ASSERT_NE(bearer, nullptr);
  EXPECT_EQ(bearer->source_endpoint, "POST /login");
  EXPECT_EQ(bearer->source_location, "body.token");
  EXPECT_EQ(bearer->recorded, 1u);
  const Correlation* id = Find(plan, "GET /orders/{id}", "path:1");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->source_endpoint, "POST /orders");
  EXPECT_EQ(id->source_location, "body.id");  // the body comes before the Location header
  // The login user "ada" is too short; the order's own response is no source for its request.
  EXPECT_EQ(Find(plan, "POST /login", "body.user"), nullptr);
  EXPECT_EQ(plan.values.count(kToken), 1u);
  EXPECT_EQ(plan.values.count("ada"), 0u);
}

TEST(CorrelateTest, ValuesOfOtherClientsAndSharedValuesAreNoEvidence) {
  CorrelationLearner learner("", nullptr);
  // Client A logs in; client B (another address) sends A's token: not a correlation.
  auto a = Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken);
  learner.Add(a[0]);
  auto b = Flow("10.0.0.2:6000", "ffffffffffffffffffffffffffffffff", "1111111111111111",
                "Bearer " + kToken);
  learner.Add(b[3]);
  EXPECT_TRUE(learner.Finish().correlations.empty());

  // A constant that every client's response carries is dropped, even where it correlates.
  CorrelationLearner shared("", nullptr);
  const std::string constant = "v2-api-constant";
  for (const char* client : {"10.0.0.1:1", "10.0.0.2:2"}) {
    shared.Add(
        Make({"GET", "/config", {}, "", 200, {}, R"({"version":")" + constant + R"("})", client}));
    shared.Add(Make({"GET", "/things?v=" + constant, {}, "", 200, {}, "{}", client}));
  }
  EXPECT_TRUE(shared.Finish().correlations.empty());

  // A value the client sent before any response had it (its own choice) is no source.
  CorrelationLearner own("", nullptr);
  own.Add(Make({"PUT", "/names/my-chosen-name", {}, "", 200, {}, R"({"name":"my-chosen-name"})"}));
  own.Add(Make({"GET", "/names/my-chosen-name", {}, "", 200, {}, "{}"}));
  EXPECT_TRUE(own.Finish().correlations.empty());
}

TEST(CorrelateTest, SampleKeyGroupsRequestsOfDifferentConnections) {
  CorrelationLearner by_address("", nullptr);
  CorrelationLearner by_key("header:X-User", nullptr);
  auto flow = Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken);
  for (size_t i = 0; i < flow.size(); ++i) {
    flow[i].set_client_addr("10.0.0.1:" + std::to_string(5000 + i));  // a connection each
    auto* h = flow[i].mutable_request()->add_headers();
    h->set_name("X-User");
    h->set_value("ada");
    by_address.Add(flow[i]);
    by_key.Add(flow[i]);
  }
  EXPECT_TRUE(by_address.Finish().correlations.empty());
  EXPECT_EQ(by_key.Finish().correlations.size(), 4u);  // token x3, id x1
}

TEST(CorrelateTest, RedactedAuthorizationCorrelatesThroughTheKeyedHash) {
  auto redactor = redact::Redactor::WithKey(std::string(32, 'k'), {});
  ASSERT_TRUE(redactor.ok()) << redactor.status().ToString();
  const redact::Redactor& r = **redactor;
  CorrelationLearner learner("", [&](std::string_view v) { return r.Hash(v); });
  for (auto e : Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken)) {
    r.Redact(&e);  // Authorization is hashed, the login body is not
    ASSERT_TRUE(e.request().target() == "/login" ||
                e.request().headers(0).value().starts_with("hmac:"));
    learner.Add(e);
  }
  CorrelationPlan plan = learner.Finish();
  const Correlation* c = Find(plan, "GET /account", "header:authorization");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->source_location, "body.token");
  ASSERT_EQ(plan.hashed.size(), 1u);
  EXPECT_EQ(plan.hashed.begin()->second.first, kToken);
  EXPECT_EQ(plan.hashed.begin()->second.second, "Bearer ");

  // Live: the login's live token replaces the hash, in the form the header had.
  LiveCorrelator live(plan, 2);
  auto flow = Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken);
  for (auto& e : flow) r.Redact(&e);
  Envelope account = flow[3], patched;
  EXPECT_FALSE(live.Patch(0, "addr:10.0.0.1:5000", account, &patched));  // nothing live yet
  uint64_t unanswered = 0;
  for (uint64_t n : live.counts().unanswered) unanswered += n;
  EXPECT_EQ(unanswered, 1u);
  auto answer = Make({"POST", "/login", {}, "", 200, {}, R"({"token":"LIVE-TOKEN-ON-LANE-0"})"});
  live.Observe(0, "addr:10.0.0.1:5000", flow[0], answer.response());
  ASSERT_TRUE(live.Patch(0, "addr:10.0.0.1:5000", account, &patched));
  EXPECT_EQ(patched.request().headers(0).value(), "Bearer LIVE-TOKEN-ON-LANE-0");
  // Lane 1 (another target) has its own values: none yet.
  EXPECT_FALSE(live.Patch(1, "addr:10.0.0.1:5000", account, &patched));
}

TEST(CorrelateTest, ReplaceAtEachRequestLocation) {
  auto e = Make({"POST",
                 "/orders/7a1b2c3d4e5f6071/items?ref=7a1b2c3d4e5f6071&x=1",
                 {{"Authorization", "Bearer OLDTOKEN1"}, {"Cookie", "a=1; sid=OLDSID123"}},
                 R"({"order":{"id":"7a1b2c3d4e5f6071","n":1}})"});
  auto* q = e.mutable_request();
  EXPECT_TRUE(ReplaceAt("path:1", kId, "", "NEWID", q));
  EXPECT_EQ(q->target(), "/orders/NEWID/items?ref=7a1b2c3d4e5f6071&x=1");
  EXPECT_TRUE(ReplaceAt("query:ref", kId, "", "NEWREF", q));
  EXPECT_EQ(q->target(), "/orders/NEWID/items?ref=NEWREF&x=1");
  EXPECT_FALSE(ReplaceAt("query:x", kId, "", "NOPE", q));  // holds another value
  EXPECT_TRUE(ReplaceAt("header:authorization#bearer", "OLDTOKEN1", "", "NEWTOKEN", q));
  EXPECT_EQ(q->headers(0).value(), "Bearer NEWTOKEN");
  EXPECT_TRUE(ReplaceAt("cookie:sid", "OLDSID123", "", "NEWSID", q));
  EXPECT_EQ(q->headers(1).value(), "a=1; sid=NEWSID");
  EXPECT_TRUE(ReplaceAt("body.order.id", kId, "", "NEWBODYID", q));
  EXPECT_EQ(q->body(), R"({"order":{"id":"NEWBODYID","n":1}})");

  auto form = Make({"POST",
                    "/form",
                    {{"Content-Type", "application/x-www-form-urlencoded"}},
                    "comment=hi&csrf=OLDCSRF99"});
  EXPECT_TRUE(ReplaceAt("form:csrf", "OLDCSRF99", "", "NEWCSRF", form.mutable_request()));
  EXPECT_EQ(form.request().body(), "comment=hi&csrf=NEWCSRF");
}

TEST(CorrelateTest, CookieJarAppliesLiveSetCookieToTheClientsCookieHeader) {
  CorrelationPlan plan;  // nothing learned: the jar works on its own
  LiveCorrelator live(plan, 1);
  auto login = Make({"POST", "/login", {}, "", 200, {{"Set-Cookie", "sid=LIVESID; Path=/"}}, "{}"});
  live.Observe(0, "c1", login, login.response());
  auto account = Make({"GET", "/account", {{"Cookie", "hmac:abcdef"}}, ""});
  Envelope patched;
  ASSERT_TRUE(live.Patch(0, "c1", account, &patched));
  EXPECT_EQ(patched.request().headers(0).value(), "sid=LIVESID");
  EXPECT_EQ(live.counts().cookies_applied, 1u);
  // Another client's jar is empty; a request without a Cookie header gets none.
  EXPECT_FALSE(live.Patch(0, "c2", account, &patched));
  EXPECT_FALSE(live.Patch(0, "c1", Make({"GET", "/account", {}, ""}), &patched));
}

// ---- explicit rules (replay/correlate_rules.h) through the same learner and correlator ----

std::shared_ptr<const CorrelationRules> Rules(std::string_view yaml) {
  auto rules = ParseCorrelationRules(yaml, net::ConfigFormat::kYaml);
  EXPECT_TRUE(rules.ok()) << rules.status().ToString();
  return std::make_shared<const CorrelationRules>(rules.ok() ? *rules : CorrelationRules{});
}

// A ticket in a text body, sent back as a query parameter: nothing learning looks at. The
// rule is the documented example's (docs/examples/correlation-rules.yaml).
std::string TicketRule() {
  std::ifstream in(std::string(DOPPEL_SOURCE_DIR) + "/docs/examples/correlation-rules.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<Envelope> TicketFlow(const std::string& client, const std::string& ticket) {
  return {Make({"POST",
                "/tickets",
                {},
                "",
                201,
                {{"Content-Type", "text/plain"}},
                "ticket " + ticket + "\n",
                client}),
          Make({"GET", "/tickets/check?code=" + ticket, {}, "", 200, {}, "{}", client})};
}

TEST(CorrelateRulesTest, ARuleCarriesAValueLearningCannotSee) {
  CorrelationLearner automatic("", nullptr);
  for (const auto& e : TicketFlow("10.0.0.1:1", "0a1b2c3d4e5f6789")) automatic.Add(e);
  EXPECT_TRUE(automatic.Finish().correlations.empty());

  CorrelationLearner learner("", nullptr, Rules(TicketRule()));
  auto flow = TicketFlow("10.0.0.1:1", "0a1b2c3d4e5f6789");
  for (const auto& e : flow) learner.Add(e);
  CorrelationPlan plan = learner.Finish();
  EXPECT_EQ(plan.mode, "rules");
  ASSERT_EQ(plan.correlations.size(), 1u);
  const Correlation& c = plan.correlations[0];
  EXPECT_EQ(c.rule, "ticket");
  EXPECT_EQ(c.source_endpoint, "POST /tickets");
  EXPECT_EQ(c.source_location, "body ~ /ticket ([0-9a-f]+)/");
  EXPECT_EQ(c.sink_endpoint, "GET /tickets/check");
  EXPECT_EQ(c.sink_location, "query:code");
  EXPECT_EQ(c.recorded, 1u);

  LiveCorrelator live(plan, 1);
  const std::string client = "addr:10.0.0.1:1";
  Envelope patched;
  EXPECT_FALSE(live.Patch(0, client, flow[1], &patched));  // the source has not answered
  EXPECT_EQ(live.counts().unanswered[0], 1u);
  auto answer = Make({"POST", "/tickets", {}, "", 201, {}, "ticket ffff0000aaaa1111\n"});
  live.Observe(0, client, flow[0], answer.response());
  ASSERT_TRUE(live.Patch(0, client, flow[1], &patched));
  EXPECT_EQ(patched.request().target(), "/tickets/check?code=ffff0000aaaa1111");
  EXPECT_EQ(live.counts().substituted[0], 1u);
  // Per client: another client's request with the same recorded value gets nothing (its
  // source has not answered for that client: unanswered).
  EXPECT_FALSE(live.Patch(0, "addr:10.0.0.9:9", flow[1], &patched));
  EXPECT_EQ(live.counts().unanswered[0], 2u);

  doppel::v1::CorrelationReport report;
  FillCorrelationReport(plan, live.counts(), &report);
  EXPECT_EQ(report.mode(), "rules");
  ASSERT_EQ(report.correlations_size(), 1);
  EXPECT_EQ(report.correlations(0).rule(), "ticket");
  EXPECT_EQ(report.correlations(0).substituted(), 1u);
  EXPECT_EQ(report.correlations(0).unanswered(), 2u);
}

TEST(CorrelateRulesTest, RulesAddToLearningUnlessTheFileSaysNot) {
  auto flow = Flow("10.0.0.1:5000", kToken, kId, "Bearer " + kToken);
  for (const auto& e : TicketFlow("10.0.0.1:5000", "0a1b2c3d4e5f6789")) flow.push_back(e);
  CorrelationLearner both("", nullptr, Rules(TicketRule()));
  for (const auto& e : flow) both.Add(e);
  CorrelationPlan plan = both.Finish();
  // Learned ones first (token x3, id x1), then the rule.
  ASSERT_EQ(plan.correlations.size(), 5u);
  EXPECT_EQ(plan.correlations.back().rule, "ticket");
  EXPECT_EQ(plan.correlations.back().recorded, 1u);

  CorrelationLearner only("", nullptr, Rules(TicketRule() + "auto_learn: false\n"));
  for (const auto& e : flow) only.Add(e);
  CorrelationPlan rules_only = only.Finish();
  ASSERT_EQ(rules_only.correlations.size(), 1u);
  EXPECT_EQ(rules_only.correlations[0].rule, "ticket");
}

TEST(CorrelateRulesTest, AHeaderValueGoesToARedactedBearerAndAShortIdToAPath) {
  auto redactor = redact::Redactor::WithKey(std::string(32, 'k'), {});
  ASSERT_TRUE(redactor.ok()) << redactor.status().ToString();
  const redact::Redactor& r = **redactor;
  // A session handed out in a header (not Location), sent as a Bearer token; a short id
  // (too short for the evidence rule) from a JSON body, sent in the path.
  auto rules = Rules(R"(
rules:
  - name: session
    extract: {endpoint: {uri: /session}, location: header:X-Session}
    inject: {location: "header:authorization#bearer"}
  - name: item
    extract: {endpoint: {method: POST, uri: /items}, location: body.item.id}
    inject: {endpoint: {method: GET, uri: {regex: "/items/[0-9]+"}}, location: "path:1"}
)");
  std::vector<Envelope> flow = {
      Make({"POST", "/session", {}, "", 200, {{"X-Session", "sess-1234"}}, "{}"}),
      Make({"POST",
            "/items",
            {{"Authorization", "Bearer sess-1234"}},
            "",
            201,
            {},
            R"({"item":{"id":42}})"}),
      Make({"GET", "/items/42", {{"Authorization", "Bearer sess-1234"}}, "", 200, {}, "{}"}),
  };
  CorrelationLearner learner(
      "", [&](std::string_view v) { return r.Hash(v); }, rules);
  for (auto& e : flow) {
    r.Redact(&e);
    learner.Add(e);
  }
  CorrelationPlan plan = learner.Finish();
  std::map<std::string, uint64_t> recorded;
  for (const auto& c : plan.correlations) recorded[c.rule] += c.recorded;
  EXPECT_EQ(recorded["session"], 2u);  // POST /items and GET /items/42
  EXPECT_EQ(recorded["item"], 1u);

  LiveCorrelator live(plan, 1);
  const std::string client = "addr:10.0.0.1:5000";
  live.Observe(
      0, client, flow[0],
      Make({"POST", "/session", {}, "", 200, {{"x-session", "LIVE-SESSION"}}, "{}"}).response());
  live.Observe(0, client, flow[1],
               Make({"POST", "/items", {}, "", 201, {}, R"({"item":{"id":7}})"}).response());
  Envelope patched;
  ASSERT_TRUE(live.Patch(0, client, flow[2], &patched));
  EXPECT_EQ(patched.request().target(), "/items/7");
  EXPECT_EQ(patched.request().headers(0).value(), "Bearer LIVE-SESSION");
}

// ---- the engine with a correlator: one request in flight per client, in recorded order ----

// Sends each client's previous live answer along (X-Previous), as a live value would be.
class ChainCorrelator : public RequestCorrelator {
 public:
  std::string ClientOf(const Envelope& e) const override { return e.client_addr(); }
  bool Patch(size_t lane, const std::string& client, const Envelope& recorded,
             Envelope* patched) override {
    *patched = recorded;
    auto* h = patched->mutable_request()->add_headers();
    h->set_name("X-Previous");
    h->set_value(previous_[{lane, client}]);
    return true;
  }
  void Observe(size_t lane, const std::string& client, const Envelope&,
               const doppel::v1::HttpResponse& live) override {
    previous_[{lane, client}] = live.body();
  }

 private:
  std::map<std::pair<size_t, std::string>, std::string> previous_;
};

class NullSink : public ResultSink {
 public:
  void OnCompleted(const Completed&) override {}
};

TEST(CorrelateEngineTest, AClientsNextRequestWaitsForTheAnswerToItsPrevious) {
  testing::TestUpstream up;
  std::mutex mu;
  std::map<std::string, int> in_flight, max_in_flight;
  up.SetHandler([&](const testing::ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    const std::string client = r.Header("X-Client");
    {
      std::lock_guard<std::mutex> lock(mu);
      max_in_flight[client] = std::max(max_in_flight[client], ++in_flight[client]);
    }
    // Slow enough that requests sent without waiting would overlap.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    {
      std::lock_guard<std::mutex> lock(mu);
      --in_flight[client];
    }
    net::HttpResponse res{boost::beast::http::status::ok, 11};
    res.body() = "answer-to-" + r.target;
    res.prepare_payload();
    return res;
  });

  std::vector<Envelope> envelopes;
  for (int i = 0; i < 4; ++i) {
    for (const char* client : {"a", "b"}) {
      Envelope e = Make({"GET",
                         "/" + std::string(client) + std::to_string(i),
                         {{"X-Client", client}},
                         "",
                         200,
                         {},
                         "",
                         std::string(client)});
      e.set_arrival_us(1000 + i);
      envelopes.push_back(e);
    }
  }
  VectorSource source(envelopes);
  auto selector = Selector::Create({});
  auto rewriter = Rewriter::Create({});
  ASSERT_TRUE(selector.ok() && rewriter.ok());
  ReplayOptions options;
  auto url = net::ParseUrl(up.url());
  ASSERT_TRUE(url.ok());
  options.targets = {*url};
  options.pacing.mode = PacingSpec::Mode::kMax;
  options.concurrency = 8;
  ChainCorrelator correlator;
  options.correlator = &correlator;
  NullSink sink;
  auto stats = RunReplay(options, source, **selector, **rewriter, sink);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->completed, 8u);

  EXPECT_EQ(max_in_flight["a"], 1);
  EXPECT_EQ(max_in_flight["b"], 1);
  // Each request carried its client's previous live answer: recorded order, one at a time.
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& r : up.requests()) {
    const std::string client = r.Header("X-Client");
    const std::string expected = seen[client].empty() ? "" : "answer-to-" + seen[client].back();
    EXPECT_EQ(r.Header("X-Previous"), expected) << r.target;
    seen[client].push_back(r.target);
  }
  EXPECT_EQ(seen["a"], (std::vector<std::string>{"/a0", "/a1", "/a2", "/a3"}));
  EXPECT_EQ(seen["b"], (std::vector<std::string>{"/b0", "/b1", "/b2", "/b3"}));
}

}  // namespace
}  // namespace doppel::replay
