// The report's views with real processes (issue #21): `doppel report --compare` on two real
// replay runs, the HTML report rendered by headless Chromium (screenshot, DOM, console), and
// the Grafana dashboard's metrics against a live recorder's /metrics.
#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace json = boost::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

constexpr int kPerEndpoint = 40;

// The body an endpoint answers: /items/<i> has a price, /users/<i> a name.
std::string Body(const std::string& target, bool changed) {
  const bool items = target.rfind("/items/", 0) == 0;
  const std::string id = target.substr(target.rfind('/') + 1);
  return items ? R"({"id":)" + id + R"(,"price":)" + (changed ? "11" : "10") + "}"
               : R"({"id":)" + id + R"(,"name":")" + (changed ? "Bo" : "Al") + R"("})";
}

// A candidate that changed `changed_prefix` ("/items/" or "/users/"), nothing else.
void AnswerLike(TestUpstream* up, const std::string& changed_prefix) {
  up->SetHandler([changed_prefix](const ReceivedRequest& r) -> std::optional<net::HttpResponse> {
    net::HttpResponse res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = Body(r.target, r.target.rfind(changed_prefix, 0) == 0);
    return res;
  });
}

class ReportViewsTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    // 80 GETs recorded over 20 seconds: the timeline has 20 one-second buckets whatever the
    // replay's speed.
    std::vector<v1::Envelope> envelopes;
    for (int i = 0; i < 2 * kPerEndpoint; ++i) {
      v1::Envelope e;
      e.set_arrival_us(1'767'225'600'000'000 + static_cast<uint64_t>(i) * 250'000);
      e.set_seq(static_cast<uint32_t>(i));
      auto* req = e.mutable_request();
      req->set_method("GET");
      req->set_target((i % 2 == 0 ? "/items/" : "/users/") + std::to_string(i));
      req->set_version(11);
      auto* resp = e.mutable_response();
      resp->set_status(200);
      resp->set_version(11);
      resp->set_latency_us(800 + static_cast<uint64_t>(i) * 10);
      auto* ct = resp->add_headers();
      ct->set_name("Content-Type");
      ct->set_value("application/json");
      resp->set_body(Body(req->target(), false));
      envelopes.push_back(std::move(e));
    }
    Status s = storage::testing::WriteSession(store_, "s", envelopes);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // `doppel --store STORE ARGS...`; the exit code, output kept in child_.
  int Doppel(std::vector<std::string> args, int timeout_ms = 60000) {
    args.insert(args.begin(), {DoppelBinary(), "--store", store_});
    child_ = std::make_unique<ChildProcess>(args);
    return child_->Wait(timeout_ms);
  }

  // One replay run of session "s" against `target`; its exit code.
  int Replay(const TestUpstream& target, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"replay",        "--session",     "s",
                                     "--target",      target.url(),    "--max",
                                     "--no-progress", "--min-samples", "10"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Doppel(args);
  }

  std::string Output() const { return child_->all_stdout() + child_->all_stderr(); }

  std::unique_ptr<ChildProcess> child_;
};

// Run 1 regresses /items, run 2 /users: comparing them, /users is new and /items fixed; the
// exit code is 1 only when B has something new; JSON files work like run ids.
TEST_F(ReportViewsTest, CompareTwoRealRuns) {
  TestUpstream items_changed, users_changed;
  AnswerLike(&items_changed, "/items/");
  AnswerLike(&users_changed, "/users/");
  ASSERT_EQ(Replay(items_changed, {"--report-json", dir_ + "/run1.json"}), 1) << Output();
  ASSERT_EQ(Replay(users_changed), 1) << Output();

  ASSERT_EQ(Doppel({"report", "--compare", "1", "2", "--html", dir_ + "/compare.html"}), 1)
      << Output();
  const std::string text = child_->all_stdout();
  EXPECT_NE(text.find("new in B (1)\n  target 0 GET /users/{id} body.name"), std::string::npos)
      << text;
  EXPECT_NE(text.find("fixed in B (1)\n  target 0 GET /items/{id} body.price"), std::string::npos)
      << text;
  EXPECT_NE(text.find("still present (0)"), std::string::npos) << text;
  EXPECT_NE(text.find("target 0 GET /users/{id}"), std::string::npos);
  const std::string html = ReadAll(dir_ + "/compare.html");
  EXPECT_NE(html.find("<svg class=\"chart latency\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);

  // B fixed what A had and added nothing: exit 0. A JSON report file stands for run 1.
  ASSERT_EQ(Doppel({"report", "--compare", "2", dir_ + "/run1.json", "--format", "json"}), 1)
      << Output();
  json::value doc = json::parse(child_->all_stdout());
  EXPECT_EQ(doc.at("new_in_b").as_array().size(), 1u);
  EXPECT_EQ(doc.at("new_in_b").as_array()[0].at("path").as_string(), "body.price");
  EXPECT_EQ(Doppel({"report", "--compare", "1", "1"}), 0) << Output();
  EXPECT_NE(child_->all_stdout().find("still present (1)"), std::string::npos);

  // Bad input: exit 2 with what to do.
  EXPECT_EQ(Doppel({"report", "--compare", "1", dir_ + "/missing.json"}), 2);
  EXPECT_NE(Output().find("give a run id"), std::string::npos) << Output();
  EXPECT_EQ(Doppel({"report", "--compare", "1", "77"}), 2);
  EXPECT_NE(Output().find("run 77"), std::string::npos) << Output();
  EXPECT_EQ(Doppel({"report", "--compare", "1"}), 2);
  EXPECT_EQ(Doppel({"report", "--compare", "1", "2", "--run", "1"}), 2);
  EXPECT_EQ(Doppel({"report"}), 2);
  EXPECT_NE(Output().find("--run ID, --compare RUN_A RUN_B or --from URL --group NAME"),
            std::string::npos)
      << Output();
  EXPECT_EQ(Doppel({"report", "--compare", "1", "2", "--format", "xml"}), 2);
  EXPECT_EQ(Doppel({"report", "--compare", "1", "2", "--junit", dir_ + "/j.xml"}), 2);
  EXPECT_NE(Output().find("--junit are for one run"), std::string::npos) << Output();
  // The stored run re-renders with its charts.
  ASSERT_EQ(Doppel({"report", "--run", "2", "--html", dir_ + "/run2.html"}), 1) << Output();
  EXPECT_EQ(Count(ReadAll(dir_ + "/run2.html"), "<svg class=\"chart timeline\""), 1u);
}

// Headless Chromium: `chromium --headless ...` with a bound on the child's time.
class Chromium {
 public:
  explicit Chromium(std::string profile) : profile_(std::move(profile)) {}
  // Runs chromium with `args` then the page's file:// URL; false on a timeout or failure.
  bool Run(const std::vector<std::string>& args, const std::string& page, std::string* out,
           std::string* err) {
    std::vector<std::string> cmd = {"/usr/bin/chromium",
                                    "--headless",
                                    "--disable-gpu",
                                    "--no-sandbox",
                                    "--user-data-dir=" + profile_,
                                    "--enable-logging=stderr",
                                    "--v=0"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    cmd.push_back("file://" + page);
    ChildProcess p(cmd);
    const int rc = p.Wait(90000);  // killed on destruction when it hangs
    *out = p.all_stdout();
    *err = p.all_stderr();
    return rc == 0;
  }

 private:
  std::string profile_;
};

// The console lines Chromium logs for a page ("...:CONSOLE:1] "message", source: ...").
std::vector<std::string> ConsoleLines(const std::string& stderr_text) {
  std::vector<std::string> out;
  std::istringstream in(stderr_text);
  for (std::string line; std::getline(in, line);) {
    if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
  }
  return out;
}

// A real run's HTML report in a real browser: the PNG is a real picture, the DOM has the
// charts, and the page logs nothing to the console. The same command (see docs/report-format.md)
// made docs/report.png.
TEST_F(ReportViewsTest, HtmlReportRendersInHeadlessChromium) {
  TestUpstream items_changed;
  AnswerLike(&items_changed, "/items/");
  const std::string page = dir_ + "/report.html";
  ASSERT_EQ(Replay(items_changed, {"--html", page}), 1) << Output();
  Chromium chromium(dir_ + "/chromium-profile");

  const std::string png = dir_ + "/report.png";
  std::string out, err;
  ASSERT_TRUE(chromium.Run({"--screenshot=" + png, "--window-size=1280,2400", "--hide-scrollbars"},
                           page, &out, &err))
      << err;
  const std::string picture = ReadAll(png);
  ASSERT_GT(picture.size(), 20'000u) << "a blank page compresses to a few KB";
  EXPECT_EQ(picture.substr(1, 3), "PNG");
  EXPECT_TRUE(ConsoleLines(err).empty()) << err;

  ASSERT_TRUE(chromium.Run({"--dump-dom"}, page, &out, &err)) << err;
  // The DOM as the browser parsed it: the charts are SVG elements, not text.
  EXPECT_EQ(Count(out, "<svg class=\"chart latency\""), 3u) << "a target, two endpoints";
  EXPECT_EQ(Count(out, "<svg class=\"chart timeline\""), 1u);
  EXPECT_GE(Count(out, "<polyline"), 4u);
  EXPECT_GE(Count(out, "<circle class=\"mark\""), 8u);
  EXPECT_NE(out.find("<div class=\"strip\">"), std::string::npos);
  EXPECT_EQ(out.find("<script"), std::string::npos);
  EXPECT_TRUE(ConsoleLines(err).empty()) << err;

  // The console check sees a page's console output (so an empty result above means a clean
  // page, not a check that cannot fire).
  const std::string noisy = dir_ + "/noisy.html";
  std::ofstream(noisy) << "<html><body><script>console.error('doppel-test')</script></body></html>";
  ASSERT_TRUE(chromium.Run({"--dump-dom"}, noisy, &out, &err)) << err;
  EXPECT_EQ(ConsoleLines(err).size(), 1u) << err;
}

// Every metric docs/grafana/doppel-recorder.json queries exists in a live recorder's /metrics
// (with a mirror and --mirror-diff, so the mirror series are there too).
TEST_F(ReportViewsTest, GrafanaDashboardQueriesOnlyExistingMetrics) {
  const std::string dashboard =
      ReadAll(std::string(DOPPEL_SOURCE_DIR) + "/docs/grafana/doppel-recorder.json");
  json::value doc = json::parse(dashboard);
  std::set<std::string> queried;
  const std::regex metric(R"(\bdoppel_[a-z0-9_]+)");
  size_t exprs = 0;
  auto scan = [&](const std::string& expr) {
    ++exprs;
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
      queried.insert(it->str());
    }
  };
  for (const json::value& panel : doc.at("panels").as_array()) {
    if (!panel.as_object().contains("targets")) continue;
    for (const json::value& t : panel.at("targets").as_array()) {
      scan(std::string(t.at("expr").as_string()));
    }
  }
  for (const json::value& v : doc.at("templating").at("list").as_array()) {
    if (v.at("type").as_string() == "query") scan(std::string(v.at("query").as_string()));
  }
  ASSERT_GT(exprs, 10u);
  // What the issue asks the dashboard to show.
  for (const char* m :
       {"doppel_requests_total", "doppel_requests_sampled_total", "doppel_envelopes_dropped_total",
        "doppel_mirror_sent_total", "doppel_mirror_latency_seconds_bucket",
        "doppel_mirror_primary_latency_seconds_bucket", "doppel_capture_queue_depth"}) {
    EXPECT_TRUE(queried.count(m)) << m;
  }

  TestUpstream primary, mirror;
  RecordProcess rec(store_, primary.url(),
                    {"--session", "m", "--mirror", mirror.url() + ",name=shadow", "--mirror-diff"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  TestClient client(rec.port());
  net::HttpRequest req{http::verb::get, "/items/1", 11};
  req.set(http::field::host, "shop.test");
  EXPECT_EQ(client.Send(req).result_int(), 200);
  std::string page;
  // The mirror's latency series exist once its copy is answered.
  ASSERT_TRUE(Eventually(
      [&] {
        page = rec.Admin("/metrics");
        return page.find("doppel_mirror_latency_seconds_count{mirror=\"shadow\"} 1") !=
               std::string::npos;
      },
      10000))
      << page;
  std::set<std::string> exposed;
  std::istringstream lines(page);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    exposed.insert(line.substr(0, line.find_first_of("{ ")));
  }
  for (const std::string& m : queried) EXPECT_TRUE(exposed.count(m)) << m << " is not in /metrics";
}

}  // namespace
}  // namespace doppel::testing
