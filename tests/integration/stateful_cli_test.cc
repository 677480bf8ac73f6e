// Stateful replay end to end (issue #16), real processes on 127.0.0.1: three clients' flows
// (login -> create order -> get order -> account by bearer token and by session cookie -> CSRF
// form) recorded through `doppel record` (redaction on: Authorization, Cookie and Set-Cookie
// are stored as keyed hashes) against one `doppel-echo --stateful`, then replayed with
// --allow-unsafe-methods against fresh ones. Without correlation the fresh process answers
// 401/403/404 and the report has regressions; with --correlate auto it has none and names the
// correlations with their counts.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>

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

class StatefulCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("stateful");
    store_ = dir_ + "/store";
    rules_ = dir_ + "/rules.json";
    // The values handed out are random on every process: not regressions.
    std::ofstream(rules_) << R"({"version": 1, "headers": {"ignore": ["Location"]},
      "rules": [{"path": "body.token", "action": "ignore"},
                {"path": "body.id", "action": "ignore"},
                {"path": "body.csrf", "action": "ignore"}]})";
    ChildProcess primary({EchoBinary(), "--listen", "127.0.0.1:0", "--stateful"});
    unsigned pport = PortOf(primary.WaitForLine("listening on "));
    ASSERT_NE(pport, 0u) << primary.all_stderr();
    ChildProcess recorder({DoppelBinary(), "--store", store_, "record", "--listen", "127.0.0.1:0",
                           "--upstream", "http://127.0.0.1:" + std::to_string(pport), "--session",
                           "flows"});
    unsigned rport = PortOf(recorder.WaitForLine("listening on "));
    ASSERT_NE(rport, 0u) << recorder.all_stderr();
    for (const char* user : {"ada", "grace", "linus"})
      ASSERT_NO_FATAL_FAILURE(RunFlow(rport, user));
    recorder.Signal(SIGINT);
    ASSERT_EQ(recorder.Wait(30000), 0) << recorder.all_stderr();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Replays "flows" against a fresh doppel-echo --stateful; returns the exit code.
  int Replay(const std::string& correlate, json::object* report) {
    ChildProcess fresh({EchoBinary(), "--listen", "127.0.0.1:0", "--stateful"});
    unsigned port = PortOf(fresh.WaitForLine("listening on "));
    if (port == 0) return -2;
    const std::string path = dir_ + "/" + correlate + ".json";
    ChildProcess replay({DoppelBinary(), "--store", store_, "replay", "--session", "flows",
                         "--target", "http://127.0.0.1:" + std::to_string(port), "--max",
                         "--allow-unsafe-methods", "--correlate", correlate, "--rules", rules_,
                         "--min-samples", "1", "--no-progress", "--report-json", path});
    int code = replay.Wait(120000);
    output_ = replay.all_stdout() + replay.all_stderr();
    std::ifstream f(path);
    *report = json::parse(std::string((std::istreambuf_iterator<char>(f)), {})).as_object();
    return code;
  }

  std::string dir_, store_, rules_, output_;
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

}  // namespace
}  // namespace doppel::testing
