// Stateful replay end to end (issue #16), real processes on 127.0.0.1: three clients' flows
// (login -> create order -> get order -> account by bearer token and by session cookie -> CSRF
// form) recorded through `doppel record` (redaction on: Authorization, Cookie and Set-Cookie
// are stored as keyed hashes) against one `doppel-echo --stateful`, then replayed with
// --allow-unsafe-methods against fresh ones. Without correlation the fresh process answers
// 401/403/404 and the report has regressions; with --correlate auto it has none and names the
// correlations with their counts. A ticket handed out in a text body (which learning does not
// read) needs an explicit rule: auto alone leaves 404s, --correlate rules FILE none. A JWT
// that expired since the recording, and was signed with another key than the fresh target's,
// is refused (401) unless --jwt-resign signs it again with fresh times.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "replay/jwt_resign.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"

namespace doppel::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

// One client: one keep-alive connection (the recorder groups a client's requests by it).
class Client {
 public:
  explicit Client(unsigned port) : stream_(io_) {
    asio::ip::tcp::resolver resolver(io_);
    stream_.expires_after(std::chrono::seconds(10));
    stream_.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  }
  http::response<http::string_body> Send(http::verb method, const std::string& target,
                                         const std::string& body = "",
                                         const std::string& content_type = "",
                                         std::vector<std::pair<std::string, std::string>> h = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    for (const auto& [n, v] : h) req.set(n, v);
    req.body() = body;
    req.prepare_payload();
    stream_.expires_after(std::chrono::seconds(10));
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    return res;
  }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string Field(const std::string& body, const char* name) {
  return std::string(json::parse(body).as_object().at(name).as_string());
}

// One client's whole flow; every answer must be the happy one while recording.
void RunFlow(unsigned port, const std::string& user) {
  Client c(port);
  auto login = c.Send(http::verb::post, "/login", R"({"user":")" + user + R"(","password":"pw"})",
                      "application/json");
  ASSERT_EQ(login.result_int(), 200);
  const std::string bearer = "Bearer " + Field(login.body(), "token");
  std::string sid(login[http::field::set_cookie]);
  sid = sid.substr(0, sid.find(';'));
  auto created =
      c.Send(http::verb::post, "/orders", "{}", "application/json", {{"Authorization", bearer}});
  ASSERT_EQ(created.result_int(), 201);
  const std::string id = Field(created.body(), "id");
  EXPECT_EQ(
      c.Send(http::verb::get, "/orders/" + id, "", "", {{"Authorization", bearer}}).result_int(),
      200);
  EXPECT_EQ(c.Send(http::verb::get, "/account", "", "", {{"Authorization", bearer}}).result_int(),
            200);
  EXPECT_EQ(c.Send(http::verb::get, "/account", "", "", {{"Cookie", sid}}).result_int(), 200);
  auto form = c.Send(http::verb::get, "/form");
  ASSERT_EQ(form.result_int(), 200);
  const std::string csrf = Field(form.body(), "csrf");
  EXPECT_EQ(c.Send(http::verb::post, "/form", "comment=hello&csrf=" + csrf,
                   "application/x-www-form-urlencoded", {{"Cookie", "csrf=" + csrf}})
                .result_int(),
            200);
}

// A login, then a ticket (POST /tickets answers "ticket K" as text/plain) checked with
// GET /tickets/check?code=K: the ticket's source is a text body, which learning does not read.
void RunTicketFlow(unsigned port, const std::string& user) {
  Client c(port);
  auto login = c.Send(http::verb::post, "/login", R"({"user":")" + user + R"(","password":"pw"})",
                      "application/json");
  ASSERT_EQ(login.result_int(), 200);
  const std::string bearer = "Bearer " + Field(login.body(), "token");
  auto ticket = c.Send(http::verb::post, "/tickets", "", "", {{"Authorization", bearer}});
  ASSERT_EQ(ticket.result_int(), 201);
  ASSERT_TRUE(ticket.body().starts_with("ticket ")) << ticket.body();
  const std::string code = ticket.body().substr(7, 16);
  EXPECT_EQ(
      c.Send(http::verb::get, "/tickets/check?code=" + code, "", "", {{"Authorization", bearer}})
          .result_int(),
      200);
}

// Records one session ("flows") of three clients' `flow` against one doppel-echo --stateful
// (`echo_args` added) through `doppel record` (`record_args` added) into a store in dir_ (made
// unless set), and replays it against fresh ones.
class StatefulCliTest : public ::testing::Test {
 protected:
  using Flow = std::function<void(unsigned port, const std::string& user)>;

  void SetUp() override { Record(RunFlow); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Record(const Flow& flow, const std::vector<std::string>& echo_args = {},
              const std::vector<std::string>& record_args = {}) {
    if (dir_.empty()) dir_ = MakeTempDir("stateful");
    store_ = dir_ + "/store";
    rules_ = dir_ + "/rules.json";
    // The values handed out are random on every process: not regressions.
    std::ofstream(rules_) << R"({"version": 1, "headers": {"ignore": ["Location"]},
      "rules": [{"path": "body.token", "action": "ignore"},
                {"path": "body.id", "action": "ignore"},
                {"path": "body.csrf", "action": "ignore"},
                {"endpoint": "POST /tickets", "path": "body", "action": "ignore"}]})";
    std::vector<std::string> echo = {EchoBinary(), "--listen", "127.0.0.1:0", "--stateful"};
    echo.insert(echo.end(), echo_args.begin(), echo_args.end());
    ChildProcess primary(echo);
    unsigned pport = PortOf(primary.WaitForLine("listening on "));
    ASSERT_NE(pport, 0u) << primary.all_stderr();
    std::vector<std::string> record = {
        DoppelBinary(), "--store",     store_,       "record",
        "--listen",     "127.0.0.1:0", "--upstream", "http://127.0.0.1:" + std::to_string(pport),
        "--session",    "flows"};
    record.insert(record.end(), record_args.begin(), record_args.end());
    ChildProcess recorder(record);
    unsigned rport = PortOf(recorder.WaitForLine("listening on "));
    ASSERT_NE(rport, 0u) << recorder.all_stderr();
    for (const char* user : {"ada", "grace", "linus"}) ASSERT_NO_FATAL_FAILURE(flow(rport, user));
    recorder.Signal(SIGINT);
    ASSERT_EQ(recorder.Wait(30000), 0) << recorder.all_stderr();
  }

  // Replays "flows" against a fresh doppel-echo --stateful (`echo_args` added) with
  // --correlate `correlate` (its words: "auto", or "rules" FILE) and `args`; returns the exit
  // code.
  int Replay(const std::vector<std::string>& correlate, json::object* report,
             const std::vector<std::string>& args = {},
             const std::vector<std::string>& echo_args = {}) {
    std::vector<std::string> echo = {EchoBinary(), "--listen", "127.0.0.1:0", "--stateful"};
    echo.insert(echo.end(), echo_args.begin(), echo_args.end());
    ChildProcess fresh(echo);
    unsigned port = PortOf(fresh.WaitForLine("listening on "));
    if (port == 0) return -2;
    const std::string path = dir_ + "/" + correlate[0] + std::to_string(++replays_) + ".json";
    std::vector<std::string> replay_args = {DoppelBinary(),
                                            "--store",
                                            store_,
                                            "replay",
                                            "--session",
                                            "flows",
                                            "--target",
                                            "http://127.0.0.1:" + std::to_string(port),
                                            "--max",
                                            "--rules",
                                            rules_,
                                            "--min-samples",
                                            "1",
                                            "--no-progress",
                                            "--report-json",
                                            path,
                                            "--correlate"};
    replay_args.insert(replay_args.end(), correlate.begin(), correlate.end());
    replay_args.insert(replay_args.end(), args.begin(), args.end());
    ChildProcess replay(replay_args);
    int code = replay.Wait(120000);
    output_ = replay.all_stdout() + replay.all_stderr();
    std::ifstream f(path);
    *report = json::parse(std::string((std::istreambuf_iterator<char>(f)), {})).as_object();
    return code;
  }
  int Replay(const std::string& correlate, json::object* report) {
    return Replay({correlate}, report, {"--allow-unsafe-methods"});
  }

  std::string dir_, store_, rules_, output_;
  int replays_ = 0;
};

TEST_F(StatefulCliTest, WithoutCorrelationAFreshTargetAnswers401And404) {
  json::object report;
  ASSERT_EQ(Replay("off", &report), 1) << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  // /account (x2), /orders (POST, GET) 401; /form POST 403: everything after each login.
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 3 * 5) << output_;
  EXPECT_GT(report.at("verdict").at("regressions").as_int64(), 0);
  EXPECT_FALSE(report.contains("correlation"));
}

TEST_F(StatefulCliTest, CorrelateAutoCarriesTokensIdsCsrfAndCookies) {
  json::object report;
  ASSERT_EQ(Replay("auto", &report), 0) << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 0) << output_;
  EXPECT_EQ(report.at("verdict").at("regressions").as_int64(), 0);
  EXPECT_NE(output_.find("correlations learned"), std::string::npos) << output_;

  const auto& c = report.at("correlation").as_object();
  EXPECT_EQ(c.at("mode").as_string(), "auto");
  EXPECT_EQ(c.at("unanswered").as_int64(), 0);
  // Cookie session and CSRF cookie: both recorded as hashes, both from the jar.
  EXPECT_EQ(c.at("cookies_applied").as_int64(), 3 * 2);
  std::map<std::string, int64_t> substituted;
  for (const auto& k : c.at("correlations").as_array()) {
    const auto& o = k.as_object();
    EXPECT_EQ(o.at("substituted"), o.at("recorded")) << json::serialize(o);
    substituted[std::string(o.at("source_endpoint").as_string()) + " " +
                std::string(o.at("source_location").as_string()) + " -> " +
                std::string(o.at("sink_endpoint").as_string()) + " " +
                std::string(o.at("sink_location").as_string())] = o.at("substituted").as_int64();
  }
  // The redacted Authorization header correlates with the login's token through the hash.
  EXPECT_EQ((substituted["POST /login body.token -> GET /account header:authorization"]), 3);
  EXPECT_EQ((substituted["POST /login body.token -> POST /orders header:authorization"]), 3);
  EXPECT_EQ((substituted["POST /login body.token -> GET /orders/{id} header:authorization"]), 3);
  EXPECT_EQ((substituted["POST /orders body.id -> GET /orders/{id} path:1"]), 3);
  EXPECT_EQ((substituted["GET /form body.csrf -> POST /form form:csrf"]), 3);
}

TEST(StatefulUsageTest, UnknownCorrelateModeIsExitTwoWithTheModes) {
  const std::string dir = MakeTempDir("stateful-usage");
  ChildProcess replay({DoppelBinary(), "--store", dir + "/store", "replay", "--session", "s",
                       "--target", "http://127.0.0.1:9", "--correlate", "sometimes"});
  EXPECT_EQ(replay.Wait(30000), 2);
  EXPECT_NE(replay.all_stderr().find("--correlate 'sometimes' is not a mode: give auto"),
            std::string::npos)
      << replay.all_stderr();
  std::filesystem::remove_all(dir);
}

TEST(StatefulUsageTest, RulesWithoutAFileAndAFileWithoutRulesAreExitTwo) {
  const std::string dir = MakeTempDir("stateful-usage");
  for (const auto& [words, error] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"rules"}, "--correlate rules needs the rules file: --correlate rules FILE"},
           {{"auto", "rules.yaml"}, "--correlate auto takes no file"},
       }) {
    std::vector<std::string> args = {
        DoppelBinary(),       "--store",    dir + "/store", "replay", "--session", "s", "--target",
        "http://127.0.0.1:9", "--correlate"};
    args.insert(args.end(), words.begin(), words.end());
    ChildProcess replay(args);
    EXPECT_EQ(replay.Wait(30000), 2);
    EXPECT_NE(replay.all_stderr().find(error), std::string::npos) << replay.all_stderr();
  }
  std::filesystem::remove_all(dir);
}

// ---- explicit rules: a ticket in a text body, sent back as a query parameter ----

class StatefulRulesCliTest : public StatefulCliTest {
 protected:
  void SetUp() override {
    Record(RunTicketFlow);
    // The documented example (README, docs/stateful-replay.md).
    correlation_rules_ = std::string(DOPPEL_SOURCE_DIR) + "/docs/examples/correlation-rules.yaml";
  }
  std::string correlation_rules_;
};

TEST_F(StatefulRulesCliTest, AutoAloneCannotSeeATicketInATextBody) {
  json::object report;
  ASSERT_EQ(Replay("auto", &report), 1) << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  // The token is carried (POST /tickets answers 201), the ticket is not: 3 checks answer 404.
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 3) << output_;
  EXPECT_GT(report.at("verdict").at("regressions").as_int64(), 0);
}

TEST_F(StatefulRulesCliTest, CorrelateRulesCarriesTheTicketAndAutoTheToken) {
  json::object report;
  ASSERT_EQ(Replay({"rules", correlation_rules_}, &report, {"--allow-unsafe-methods"}), 0)
      << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 0) << output_;
  EXPECT_EQ(report.at("verdict").at("regressions").as_int64(), 0);
  EXPECT_NE(output_.find("correlation on: 1 explicit rules"), std::string::npos) << output_;
  const auto& c = report.at("correlation").as_object();
  EXPECT_EQ(c.at("mode").as_string(), "rules");
  EXPECT_EQ(c.at("unanswered").as_int64(), 0);
  std::map<std::string, int64_t> by_rule;  // "" for learned ones
  for (const auto& k : c.at("correlations").as_array()) {
    const auto& o = k.as_object();
    EXPECT_EQ(o.at("substituted"), o.at("recorded")) << json::serialize(o);
    by_rule[std::string(o.at("rule").as_string())] += o.at("substituted").as_int64();
  }
  EXPECT_EQ(by_rule["ticket"], 3);  // counted under the rule's name
  EXPECT_EQ(by_rule[""], 3 * 2);    // the learned token: POST /tickets and GET /tickets/check
  EXPECT_NE(output_.find("rule ticket: POST /tickets body ~ /ticket ([0-9a-f]+)/ \xE2\x86\x92 GET "
                         "/tickets/check query:code  3/3 substituted"),
            std::string::npos)
      << output_;
}

TEST_F(StatefulRulesCliTest, ABadRulesFileIsExitTwoNamingLineAndField) {
  correlation_rules_ = dir_ + "/correlation.yaml";
  std::ofstream(correlation_rules_) << "rules:\n  - name: ticket\n    extract: {location: body}\n"
                                       "    inject: {location: \"qurey:code\"}\n";
  ChildProcess replay({DoppelBinary(), "--store", store_, "replay", "--session", "flows",
                       "--target", "http://127.0.0.1:9", "--correlate", "rules",
                       correlation_rules_});
  EXPECT_EQ(replay.Wait(30000), 2);
  EXPECT_NE(replay.all_stderr().find(correlation_rules_ +
                                     ": line 4, column 14: rules[0].inject.location: unknown "
                                     "location 'qurey:code'"),
            std::string::npos)
      << replay.all_stderr();
}

// ---- --jwt-resign: an expired token signed with another key than the fresh target's ----

std::string MintJwt(const std::string& secret, const std::string& sub, int64_t lifetime_s) {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::string input = replay::Base64UrlEncode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                            replay::Base64UrlEncode(json::serialize(json::object{
                                {"sub", sub}, {"iat", now}, {"exp", now + lifetime_s}}));
  auto key = replay::JwtKey::FromBytes(secret, std::nullopt);
  return key.ok() ? input + "." + replay::Base64UrlEncode(*key->Sign(input)) : "";
}

class JwtResignCliTest : public StatefulCliTest {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("stateful-jwt");
    recording_key_ = dir_ + "/recording.key";
    fresh_key_ = dir_ + "/fresh.key";
    std::ofstream(recording_key_) << "the production issuer's secret\n";
    std::ofstream(fresh_key_) << "pre-prod test issuer\n";
    // Tokens valid for 2 s; stored in clear (--no-redact: a hashed token cannot be re-signed).
    Record(
        [](unsigned port, const std::string& user) {
          Client c(port);
          auto me = c.Send(
              http::verb::get, "/jwt/me", "", "",
              {{"Authorization", "Bearer " + MintJwt("the production issuer's secret", user, 2)}});
          EXPECT_EQ(me.result_int(), 200) << me.body();
        },
        {"--jwt-key", recording_key_}, {"--no-redact"});
    std::this_thread::sleep_for(std::chrono::seconds(3));  // every recorded token has expired
  }
  std::string recording_key_, fresh_key_;
};

TEST_F(JwtResignCliTest, WithoutResigningTheFreshTargetRefusesTheRecordedTokens) {
  json::object report;
  ASSERT_EQ(Replay({"off"}, &report, {}, {"--jwt-key", fresh_key_}), 1) << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 3) << output_;
}

TEST_F(JwtResignCliTest, ResignedTokensPassTheTargetsSignatureAndExpiryChecks) {
  json::object report;
  ASSERT_EQ(Replay({"off"}, &report, {"--jwt-resign", fresh_key_}, {"--jwt-key", fresh_key_}), 0)
      << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(target.at("status").at("2xx").as_int64(), 3) << output_;
  EXPECT_EQ(target.at("status").at("4xx").as_int64(), 0) << output_;
  EXPECT_NE(output_.find("3 JWTs re-signed by --jwt-resign"), std::string::npos) << output_;
  EXPECT_NE(output_.find("are signed HS256"), std::string::npos) << output_;
}

TEST(JwtResignUsageTest, AKeyThatCannotSignTheAlgIsExitTwo) {
  const std::string dir = MakeTempDir("stateful-jwt-usage");
  std::ofstream(dir + "/secret") << "a raw secret\n";
  ChildProcess replay({DoppelBinary(), "--store", dir + "/store", "replay", "--session", "s",
                       "--target", "http://127.0.0.1:9", "--jwt-resign", dir + "/secret",
                       "--jwt-alg", "ES256"});
  EXPECT_EQ(replay.Wait(30000), 2);
  EXPECT_NE(replay.all_stderr().find("--jwt-alg ES256 signs with a PEM EC P-256 private key, but "
                                     "the key file holds a raw secret (not PEM), which signs "
                                     "HS256"),
            std::string::npos)
      << replay.all_stderr();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace doppel::testing
