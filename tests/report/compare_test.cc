// The comparison of two runs' reports (report/compare.h): matching of regressions, latency
// changes, how runs are found, and the three renderings.
#include "report/compare.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "report/report_json.h"
#include "tests/report/test_util.h"

namespace doppel::report {
namespace {

v1::Latency LatencyWith(uint64_t p50, uint64_t p99) {
  LatencyHistogram h;
  h.Add(p50, 98);
  h.Add(p99, 2);
  return LatencyOf(h);
}

// A report of one run: `regressions` are (target, endpoint, path) with verdict regression;
// every endpoint also has an ok field.
struct Spec {
  uint32_t target;
  std::string endpoint, path;
};
Report MakeReport(const std::string& target_name, const std::vector<Spec>& regressions,
                  uint64_t p99 = 10'000) {
  Report r;
  r.set_schema(std::string(kReportSchema));
  for (uint32_t t = 0; t < 2; ++t) {
    TargetReport* tr = r.add_targets();
    tr->set_index(t);
    tr->set_name(target_name + std::to_string(t));
    *tr->mutable_latency() = LatencyWith(1000, p99);
    for (const char* name : {"GET /a", "GET /b<x>"}) {
      EndpointReport* e = tr->add_endpoints();
      e->set_name(name);
      *e->mutable_latency() = LatencyWith(1000, p99);
      FieldReport* ok = e->add_fields();
      ok->set_path("body.ok");
      ok->set_verdict("ok");
      ok->set_severity("low");
      for (const Spec& s : regressions) {
        if (s.target != t || s.endpoint != name) continue;
        if (s.path == kErrorRatePath) {
          e->set_error_rate_exceeded(true);
          e->set_requests(10);
          e->set_errors(5);
          continue;
        }
        FieldReport* f = e->add_fields();
        f->set_path(s.path);
        f->set_verdict("regression");
        f->set_severity("high");
        f->set_rate(0.25);
      }
    }
  }
  return r;
}

std::vector<std::string> Names(const std::vector<RegressionRef>& refs) {
  std::vector<std::string> out;
  for (const RegressionRef& r : refs) {
    out.push_back(std::to_string(r.target) + " " + r.endpoint + " " + r.path);
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST(CompareReportsTest, NewFixedAndStillPresentByTargetPositionEndpointAndPath) {
  // Target names differ between the runs (a new port): positions match them.
  Report a = MakeReport(
      "http://old:",
      {{0, "GET /a", "body.price"}, {0, "GET /a", "status"}, {1, "GET /a", "body.price"}});
  Report b = MakeReport("http://new:", {{0, "GET /a", "body.price"},
                                        {1, "GET /b<x>", "body.price"},
                                        {0, "GET /b<x>", std::string(kErrorRatePath)}});
  Comparison c = CompareReports(a, b, "1", "2");
  EXPECT_EQ(Names(c.new_in_b), (Strings{"0 GET /b<x> (error rate)", "1 GET /b<x> body.price"}));
  EXPECT_EQ(Names(c.fixed_in_b), (Strings{"0 GET /a status", "1 GET /a body.price"}));
  EXPECT_EQ(Names(c.still_present), (Strings{"0 GET /a body.price"}));
  EXPECT_EQ(c.still_present[0].target_name, "http://new:0");  // B's
  EXPECT_EQ(c.new_in_b[0].severity, "");                      // error rate: no severity
  EXPECT_DOUBLE_EQ(c.new_in_b[0].rate, 0.5);
  EXPECT_EQ(c.exit_code(), 1);
  // The other way round, what B fixed is new.
  EXPECT_EQ(CompareReports(b, a, "2", "1").new_in_b.size(), 2u);
  EXPECT_EQ(CompareReports(a, a, "1", "1").exit_code(), 0);
  EXPECT_EQ(CompareReports(a, a, "1", "1").still_present.size(), 3u);
}

TEST(CompareReportsTest, LatencyPerTargetAndEndpointPresentInBoth) {
  Report a = MakeReport("t", {}, 10'000);
  Report b = MakeReport("t", {}, 20'000);
  b.mutable_targets(1)->mutable_endpoints(0)->set_name("GET /only-in-b");
  Comparison c = CompareReports(a, b, "a", "b");
  // Target 0: all + 2 endpoints; target 1: all + 1 endpoint in both.
  ASSERT_EQ(c.latency.size(), 5u);
  EXPECT_EQ(c.latency[0].endpoint, "");
  EXPECT_EQ(c.latency[1].endpoint, "GET /a");
  EXPECT_EQ(c.latency[4].target, 1u);
  EXPECT_EQ(c.latency[4].endpoint, "GET /b<x>");
  EXPECT_EQ(c.latency[1].a.p99_us(), 10'000u);
  EXPECT_EQ(c.latency[1].b.p99_us(), 20'000u);
  // A run with fewer targets: only the positions both have.
  a.mutable_targets()->RemoveLast();
  EXPECT_EQ(CompareReports(a, b, "a", "b").latency.size(), 3u);
}

TEST(CompareReportsTest, RenderingsSayWhatChanged) {
  Report a = MakeReport("t", {{0, "GET /a", "body.price"}}, 10'000);
  Report b = MakeReport("t", {{0, "GET /b<x>", "body.id"}}, 20'000);
  Comparison c = CompareReports(a, b, "7", "b.json");

  std::string text = RenderComparisonText(c);
  EXPECT_NE(text.find("A = 7, B = b.json"), std::string::npos) << text;
  EXPECT_NE(text.find("new in B (1)\n  target 0 GET /b<x> body.id  [high]  25.0%"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("fixed in B (1)\n  target 0 GET /a body.price"), std::string::npos);
  EXPECT_NE(text.find("still present (0)"), std::string::npos);
  EXPECT_NE(text.find("10.0ms -> 20.0ms (+100.0%)"), std::string::npos) << text;
  EXPECT_EQ(text.find(" \n"), std::string::npos) << "no trailing spaces";
  EXPECT_NE(text.find("1 new regressions in B"), std::string::npos);

  boost::json::value doc = boost::json::parse(RenderComparisonJson(c));
  const boost::json::object& o = doc.as_object();
  EXPECT_EQ(o.at("schema").as_string(), "doppel.compare/v1");
  EXPECT_EQ(o.at("exit_code").as_int64(), 1);
  EXPECT_EQ(o.at("new_in_b").as_array().size(), 1u);
  EXPECT_EQ(o.at("new_in_b").as_array()[0].at("path").as_string(), "body.id");
  EXPECT_EQ(o.at("fixed_in_b").as_array().size(), 1u);
  const boost::json::object& first = o.at("latency").as_array()[0].as_object();
  EXPECT_EQ(first.at("a").at("p99_us").to_number<uint64_t>(), 10'000u);
  EXPECT_EQ(first.at("b").at("p99_us").to_number<uint64_t>(), 20'000u);
  EXPECT_TRUE(first.at("b").as_object().contains("p999_us"));

  std::string html = RenderComparisonHtml(c);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("GET /b<x>"), std::string::npos);  // escaped
  EXPECT_NE(html.find("GET /b&lt;x&gt;"), std::string::npos);
  EXPECT_NE(html.find("<svg class=\"chart latency\""), std::string::npos);
  EXPECT_NE(html.find("New in B (1)"), std::string::npos);
}

// Endpoint names and paths come from the traffic: the text cannot drive the terminal.
TEST(CompareReportsTest, TextEscapesControlCharacters) {
  Report a = MakeReport("t", {});
  Report b = MakeReport("t", {});
  b.mutable_targets(0)->mutable_endpoints(0)->set_name("GET /x\x1b[31m");
  FieldReport* f = b.mutable_targets(0)->mutable_endpoints(0)->add_fields();
  f->set_path("body.\x1b]0;t\x07");
  f->set_verdict("regression");
  f->set_severity("low");
  std::string text = RenderComparisonText(CompareReports(a, b, "1\x1b", "2"));
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_NE(text.find("GET /x\\x1b[31m body.\\x1b]0;t\\x07"), std::string::npos) << text;
}

TEST(LoadReportArgTest, RunIdsFromTheStoreAndFilesFromDisk) {
  uint32_t asked = 0;
  auto loader = [&](uint32_t id) -> Result<Report> {
    asked = id;
    if (id == 404) return Status::NotFound("no run 404");
    return MakeReport("t", {});
  };
  ASSERT_TRUE(LoadReportArg("12", loader).ok());
  EXPECT_EQ(asked, 12u);
  Result<Report> missing_run = LoadReportArg("404", loader);
  ASSERT_FALSE(missing_run.ok());
  EXPECT_NE(missing_run.status().ToString().find("run 404"), std::string::npos);
  EXPECT_FALSE(LoadReportArg("99999999999", loader).ok());
  EXPECT_FALSE(LoadReportArg("", loader).ok());

  const std::string dir = ::testing::TempDir();
  const std::string good = dir + "/compare_good.json", bad = dir + "/compare_bad.json";
  std::ofstream(good) << ReportToJson(MakeReport("file", {{0, "GET /a", "body.x"}}));
  std::ofstream(bad) << "{\"schema\": \"doppel.report/v1\", \"targets\": 3}";
  Result<Report> from_file = LoadReportArg(good, loader);
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(from_file->targets(0).name(), "file0");
  Result<Report> broken = LoadReportArg(bad, loader);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().ToString().find(bad), std::string::npos);
  Result<Report> absent = LoadReportArg(dir + "/none.json", loader);
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.status().ToString().find("give a run id"), std::string::npos);
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

}  // namespace
}  // namespace doppel::report
