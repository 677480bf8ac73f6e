// Renderings of a Report: JSON (golden file, round trip, errors), JUnit (golden file, a real
// XML parser), HTML (escaping, self-contained), text (sections, verdict line).
//
// Golden files live in tests/testdata/report/. After an intended change to an output, rerun
// with DOPPEL_UPDATE_GOLDEN=1 to rewrite them, and review the diff.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "report/report_html.h"
#include "report/report_json.h"
#include "report/report_junit.h"
#include "report/report_text.h"
#include "tests/base/temp_dir.h"
#include "tests/report/test_util.h"

namespace doppel::report {
namespace {

using testing::Exchange;
using testing::Feeder;
using testing::Response;

// The sample's recording starts at 2026-01-01T00:00:00Z (Envelope.arrival_us, for the timeline).
constexpr uint64_t kSampleStartUs = 1'767'225'600'000'000;

// A small run exercising everything a report can hold: two targets, a secondary, a
// regression, a masked noisy field, normalized and ignored paths, transport errors, a text
// body with markup, control characters and invalid UTF-8, a passing endpoint, and injected
// faults (replay --fault) on both a passing and a failing endpoint.
Report SampleReport() {
  AggregatorOptions options;
  options.targets = {"http://candidate:8080", "http://canary:8081"};
  options.secondary = "http://known-good:8080";
  options.thresholds.min_samples = 5;
  options.run_id = "42";
  options.session = "checkout";
  options.generated_at = "2026-01-01T00:00:00Z";
  options.max_body_bytes = 400;
  Feeder feed(options);
  for (uint32_t target = 0; target < 2; ++target) {
    for (int i = 1; i <= 8; ++i) {
      Exchange x;
      x.target = target;
      x.path = "/users/" + std::to_string(i);
      std::string base = R"({"id":)" + std::to_string(i) + R"(,"price":)";
      std::string recorded_ts = R"(,"ts":"2024-01-01T00:00:00Z","rnd":1})";
      x.recorded = Response(200, base + "10" + recorded_ts, 1000 + i * 10, {{"Date", "Mon"}});
      // Target 0 changed the price on every request; the canary is fine. Both answer with a
      // new timestamp (normalized), a new Date (ignored) and, like the secondary, a new
      // random value on even requests (masked noise).
      std::string rnd = i % 2 == 0 ? "2" : "1";
      std::string price = target == 0 ? "11" : "10";
      x.actual = Response(200, base + price + R"(,"ts":"2025-06-01T12:00:00Z","rnd":)" + rnd + "}",
                          900, {{"Date", "Tue"}});
      x.secondary = Response(200, base + "10" + R"(,"ts":"2024-01-01T00:00:00Z","rnd":)" +
                                      (i % 2 == 0 ? "3" : "1") + "}");
      x.latency_us = 2000 + static_cast<uint64_t>(i) * 100 * (target + 1);
      x.arrival_us = kSampleStartUs + static_cast<uint64_t>(i) * 1'000'000;
      feed.Add(x);
    }
    for (int i = 0; i < 6; ++i) {
      Exchange x;
      x.target = target;
      x.path = "/page?q=<a&b>\"'";
      x.recorded =
          Response(200, std::string("line one\nhello\x01 <b>&\xff\nend\n"), 500, {}, "text/plain");
      if (target == 0) {
        x.actual = Response(200, "line one\nhello </script><b>\nend\n", 700, {}, "text/plain");
      } else if (i == 0) {
        x.error = "timeout";  // one transport error on the canary
      } else {
        x.actual = x.recorded;
      }
      x.latency_us = 700;
      x.arrival_us = kSampleStartUs + static_cast<uint64_t>(i) * 1'500'000;
      feed.Add(x);
    }
  }
  // replay --fault on the canary: an aborted and a delayed request on a passing endpoint, a
  // reset one on the failing endpoint; counted apart, never errors.
  for (const char* fault : {"abort", "delay"}) {
    Exchange x;
    x.target = 1;
    x.path = std::string("/users/") + (fault[0] == 'a' ? "9" : "10");
    x.recorded = Response(200, R"({"id":9})", 1000);
    if (fault[0] == 'a') {
      x.error = "abort";
    } else {
      x.actual = x.recorded;
    }
    x.fault = fault;
    x.arrival_us = kSampleStartUs + 9'000'000;
    feed.Add(x);
  }
  Exchange reset;
  reset.target = 1;
  reset.path = "/page?q=<a&b>\"'";
  reset.recorded = Response(200, "line one\n", 500, {}, "text/plain");
  reset.error = "reset";
  reset.fault = "delay+reset";
  reset.arrival_us = kSampleStartUs + 9'000'000;
  feed.Add(reset);
  return feed.Finish();
}

using doppel::testing::ReadFile;

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/report/" + name;
  if (std::getenv("DOPPEL_UPDATE_GOLDEN") != nullptr) {
    WriteFile(path, actual);
    GTEST_SKIP() << "rewrote " << path;
  }
  std::string expected = ReadFile(path);
  ASSERT_FALSE(expected.empty()) << "missing golden file " << path
                                 << " (run with DOPPEL_UPDATE_GOLDEN=1 to create it)";
  EXPECT_EQ(actual, expected) << "output differs from " << path
                              << "; if intended, rerun with DOPPEL_UPDATE_GOLDEN=1";
}

TEST(ReportSampleTest, HasWhatTheGoldenFilesShouldShow) {
  Report r = SampleReport();
  ASSERT_EQ(r.targets_size(), 2);
  // Candidate: price regression and the text body change; canary: one timeout.
  EXPECT_EQ(r.targets(0).regressions(), 2u);
  EXPECT_EQ(r.targets(0).failed_endpoints(), 2u);
  EXPECT_EQ(r.targets(1).regressions(), 1u);
  EXPECT_EQ(r.targets(1).failed_endpoints(), 1u);
  EXPECT_EQ(r.verdict().exit_code(), 1);
  const EndpointReport* users = testing::FindEndpoint(r, "GET /users/{id}", 1);
  ASSERT_NE(users, nullptr);
  EXPECT_FALSE(users->failed());  // the canary only has masked noise there
  const FieldReport* rnd = testing::FindField(users, "body.rnd");
  ASSERT_NE(rnd, nullptr);
  EXPECT_EQ(rnd->masked(), 4u);
  EXPECT_EQ(rnd->mismatches(), 0u);
  // The injected faults: apart from the errors, on a passing and on a failing endpoint.
  ASSERT_TRUE(users->has_faults());
  EXPECT_EQ(users->faults().injected(), 2u);
  EXPECT_EQ(users->errors(), 0u);
  const EndpointReport* page = testing::FindEndpoint(r, "GET /page", 1);
  ASSERT_NE(page, nullptr);
  EXPECT_EQ(page->errors(), 1u);  // the organic timeout only
  EXPECT_EQ(page->faults().errors_by_reason().at("reset"), 1u);
  EXPECT_EQ(r.targets(1).faults().injected(), 3u);
  EXPECT_FALSE(r.targets(0).has_faults());
}

TEST(ReportJsonTest, MatchesGoldenFile) {
  ExpectGolden("report.json", ReportToJson(SampleReport()));
}

TEST(ReportJsonTest, RoundTripIsIdentical) {
  Report report = SampleReport();
  std::string json = ReportToJson(report);
  Result<Report> parsed = ReportFromJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  std::string differences;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&differences);
  EXPECT_TRUE(differ.Compare(report, parsed.value())) << differences;
  EXPECT_EQ(ReportToJson(parsed.value()), json);
}

// The example in the repository, written by the hand-written writer this replaced, reads
// and is written back byte for byte: every member, its order, its number format.
TEST(ReportJsonTest, ExampleFileRoundTripsFieldForField) {
  std::string example =
      ReadFile(std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/report/report.json");
  ASSERT_FALSE(example.empty());
  Result<Report> parsed = ReportFromJson(example);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->targets(0).endpoints(0).fields(0).p_value(), 1.0);
  EXPECT_EQ(parsed->settings().alpha(), 0.01);
  EXPECT_EQ(boost::json::parse(ReportToJson(parsed.value())), boost::json::parse(example));
  EXPECT_EQ(ReportToJson(parsed.value()), example);
}

// doppel.report/v1 has integers as JSON numbers, though protobuf's JSON mapping writes
// 64-bit integers as strings; past 2^32 and up to 2^64 - 1 they stay exact numbers.
TEST(ReportJsonTest, SixtyFourBitIntegersAreNumbers) {
  Report report = SampleReport();
  TargetReport& t = *report.mutable_targets(0);
  t.mutable_latency()->set_sum_us(5'000'000'000ull);
  t.set_requests(UINT64_MAX);
  (*t.mutable_errors_by_reason())["zz-last"] = 7;
  (*t.mutable_errors_by_reason())["aa-first"] = 9;
  std::string json = ReportToJson(report);
  boost::json::value doc = boost::json::parse(json);
  const boost::json::object& target = doc.at("targets").at(0).as_object();
  ASSERT_TRUE(target.at("latency").at("sum_us").is_number());
  EXPECT_EQ(target.at("latency").at("sum_us").to_number<uint64_t>(), 5'000'000'000ull);
  ASSERT_TRUE(target.at("requests").is_uint64());
  EXPECT_EQ(target.at("requests").get_uint64(), UINT64_MAX);
  EXPECT_TRUE(target.at("index").is_int64());
  EXPECT_TRUE(doc.at("verdict").at("exit_code").is_int64());
  EXPECT_TRUE(target.at("status").at("2xx").is_int64());
  EXPECT_EQ(target.at("errors_by_reason").at("aa-first").as_int64(), 9);
  // Map members in key order, whatever order protobuf's map iterates in.
  EXPECT_LT(json.find("\"aa-first\""), json.find("\"zz-last\""));
  Result<Report> parsed = ReportFromJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->targets(0).requests(), UINT64_MAX);
  EXPECT_EQ(parsed->targets(0).latency().sum_us(), 5'000'000'000ull);
}

TEST(ReportJsonTest, EmptyReportHasEveryObject) {
  Report empty;
  std::string json = ReportToJson(empty);
  EXPECT_EQ(json.find("generated_at"), std::string::npos);
  EXPECT_EQ(json.find("run_id"), std::string::npos);
  boost::json::value doc = boost::json::parse(json);
  EXPECT_EQ(doc.at("schema").as_string(), "doppel.report/v1");
  EXPECT_EQ(doc.at("verdict").at("exit_code").as_int64(), 0);
  EXPECT_EQ(doc.at("settings").at("secondary").as_string(), "");
  EXPECT_TRUE(doc.at("targets").as_array().empty());
  Result<Report> parsed = ReportFromJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(ReportToJson(parsed.value()), json);
}

TEST(ReportJsonTest, UnknownMembersAreIgnoredAndMissingOnesReadAsZero) {
  Result<Report> r =
      ReportFromJson(R"({"schema":"doppel.report/v1","added_in_v1_later":{"x":[1]},)"
                     R"("targets":[{"name":"http://t","requests":"12","new_member":true}]})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->targets_size(), 1);
  EXPECT_EQ(r->targets(0).name(), "http://t");
  EXPECT_EQ(r->targets(0).requests(), 12u);
  EXPECT_EQ(r->targets(0).errors(), 0u);
}

TEST(ReportJsonTest, ErrorsNameTheMember) {
  EXPECT_EQ(ReportFromJson("not json").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ReportFromJson("[]").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(ReportFromJson(R"({"schema":"doppel.report/v9"})").status().code(),
            Status::Code::kUnsupported);
  EXPECT_EQ(ReportFromJson(R"({"targets":[]})").status().code(), Status::Code::kInvalidArgument);

  std::string json = ReportToJson(SampleReport());
  std::string bad = json;
  size_t at = bad.find("\"verdict\": \"regression\"");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, std::string_view("\"verdict\": \"regression\"").size(), "\"verdict\": \"maybe\"");
  Result<Report> r = ReportFromJson(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("targets[0].endpoints[0].fields[0].verdict"),
            std::string::npos)
      << r.status().message();

  bad = json;
  at = bad.find("\"requests\": ");
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, 12, "\"requests\": -");
  r = ReportFromJson(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("targets[0].requests"), std::string::npos)
      << r.status().message();
}

TEST(ReportJUnitTest, MatchesGoldenFile) {
  ExpectGolden("report.junit.xml", RenderJUnit(SampleReport()));
}

TEST(ReportJUnitTest, ParsesWithARealXmlParser) {
  std::string xml = RenderJUnit(SampleReport());
  std::string path = std::string(DOPPEL_BINARY_DIR) + "/report_junit_test.xml";
  WriteFile(path, xml);
  std::string cmd =
      "python3 -c 'import sys,xml.dom.minidom; d=xml.dom.minidom.parse(sys.argv[1]); "
      "s=d.getElementsByTagName(\"testsuite\"); "
      "assert len(s)==2, len(s); "
      "assert s[0].getAttribute(\"name\")==\"http://candidate:8080\"; "
      "assert s[0].getAttribute(\"failures\")==\"2\"; "
      "c=d.getElementsByTagName(\"testcase\"); "
      "assert c[0].getAttribute(\"name\")==\"GET /page\", c[0].getAttribute(\"name\"); "
      "f=c[0].getElementsByTagName(\"failure\")[0]; "
      "assert \"\\n\" in f.firstChild.data' " +
      path;
  // Without python3, xmllint (libxml2-utils) checks well-formedness.
  int rc = std::system("command -v python3 >/dev/null 2>&1") == 0
               ? std::system(cmd.c_str())
               : std::system(("xmllint --noout " + path).c_str());
  EXPECT_EQ(rc, 0) << "JUnit XML rejected by the parser: " << path;
}

TEST(ReportJUnitTest, EscapesMarkupAndControlCharacters) {
  EXPECT_EQ(XmlEscape("a<b>&\"'", true), "a&lt;b&gt;&amp;&quot;&apos;");
  EXPECT_EQ(XmlEscape("a<b>&\"'", false), "a&lt;b&gt;&amp;\"'");
  EXPECT_EQ(XmlEscape("x\x01y\x1b", false), "x\\x01y\\x1b");
  EXPECT_EQ(XmlEscape("l1\nl2\tt\r", true), "l1&#10;l2&#9;t&#13;");
  EXPECT_EQ(XmlEscape("l1\nl2", false), "l1\nl2");
  EXPECT_EQ(XmlEscape("bad\xff", false), "bad\xEF\xBF\xBD");
  EXPECT_EQ(XmlEscape("\xEF\xBF\xBE", false), "\xEF\xBF\xBD");  // U+FFFE
  EXPECT_EQ(XmlEscape("caf\xC3\xA9", false), "caf\xC3\xA9");
}

TEST(ReportJUnitTest, CountsTestsFailuresAndSkipped) {
  Report r;
  TargetReport& t = *r.add_targets();
  t.set_name("http://t");
  EndpointReport& pass = *t.add_endpoints();
  pass.set_name("GET /a");
  pass.set_requests(1);
  pass.set_compared(1);
  pass.set_matched(1);
  EndpointReport& fail = *t.add_endpoints();
  fail.set_name("GET /b");
  fail.set_requests(1);
  fail.set_errors(1);
  fail.set_error_rate_exceeded(true);
  fail.set_failed(true);
  EndpointReport& skip = *t.add_endpoints();
  skip.set_name("GET /c");
  skip.set_requests(1);
  std::string xml = RenderJUnit(r);
  EXPECT_NE(xml.find("<testsuite name=\"http://t\" tests=\"3\" failures=\"1\" errors=\"0\" "
                     "skipped=\"1\""),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("type=\"errors\""), std::string::npos);
  EXPECT_NE(xml.find("<skipped"), std::string::npos);
}

// The text and HTML renderings, byte for byte (the files were written by the renderers as
// they were before the report became a protobuf message).
TEST(ReportTextTest, MatchesGoldenFile) { ExpectGolden("report.txt", RenderText(SampleReport())); }

// The HTML golden file is named .golden, not .html: it is expected output (data), and tools
// that read .html files as source (formatters, the duplicate finder) should leave it alone.
TEST(ReportHtmlTest, MatchesGoldenFile) {
  ExpectGolden("report.html.golden", RenderHtml(SampleReport()));
}

TEST(ReportHtmlTest, EscapesTrafficAndIsSelfContained) {
  std::string html = RenderHtml(SampleReport());
  WriteFile(std::string(DOPPEL_BINARY_DIR) + "/report_sample.html", html);  // to look at
  EXPECT_EQ(html.find("</script><b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;b&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // no script at all, no network
  EXPECT_EQ(html.find("src="), std::string::npos);
  // The only links are to the page's own anchors.
  for (size_t at = html.find("href="); at != std::string::npos; at = html.find("href=", at + 1)) {
    EXPECT_EQ(html.compare(at, 7, "href=\"#"), 0) << html.substr(at, 40);
  }
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("\x01"), std::string::npos);
  EXPECT_NE(html.find("hello\\x01 &lt;b&gt;&amp;\xEF\xBF\xBD"), std::string::npos);
  EXPECT_NE(html.find("/page?q=&lt;a&amp;b&gt;&quot;&#39;"), std::string::npos);
  // The side-by-side view marks the changed line on each side.
  EXPECT_NE(html.find("<td class=\"del\">hello\\x01 &lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"add\">hello &lt;/script&gt;&lt;b&gt;</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>line one</td>"), std::string::npos);
  // Noise, normalized and ignored are shown separately.
  EXPECT_NE(html.find("noise (masked)"), std::string::npos);
  EXPECT_NE(html.find("normalized: <code>body.ts</code>"), std::string::npos);
  EXPECT_NE(html.find("ignored: <code>headers.date</code>"), std::string::npos);
  EXPECT_NE(html.find("3 regressions in 3 endpoints"), std::string::npos);
  EXPECT_EQ(html.rfind("</html>\n"), html.size() - 8);
}

// The summary strip, the charts (inline SVG, no script) and the quiet marking of normalized
// values in the side-by-side view.
TEST(ReportHtmlTest, SummaryStripChartsAndQuietMarking) {
  std::string html = RenderHtml(SampleReport());
  // Strip: verdict, regressions by severity, match rate, p99 change, links to anchors.
  EXPECT_NE(html.find("<div class=\"strip\">"), std::string::npos);
  EXPECT_NE(html.find("<div class=\"k\">regressions</div>"), std::string::npos);
  EXPECT_NE(html.find("<div class=\"k\">match rate</div>"), std::string::npos);
  EXPECT_NE(html.find("p99 vs recorded (target 1)"), std::string::npos);
  size_t link = html.find("<a href=\"#t0-e");
  ASSERT_NE(link, std::string::npos);
  std::string anchor = html.substr(link + 10, html.find('"', link + 10) - (link + 10));
  EXPECT_NE(html.find("id=\"" + anchor + "\""), std::string::npos) << anchor;
  // Charts: a latency plot per target and per endpoint, a timeline per target.
  auto count = [&](std::string_view needle) {
    size_t n = 0;
    for (size_t at = html.find(needle); at != std::string::npos; at = html.find(needle, at + 1))
      ++n;
    return n;
  };
  const size_t endpoints = 4;  // two per target, all shown
  EXPECT_EQ(count("<svg class=\"chart latency\""), 2 + endpoints);
  EXPECT_EQ(count("<svg class=\"chart timeline\""), 2u);
  EXPECT_GE(count("<circle class=\"mark\""), 4 * 2 * (2 + endpoints) - 8);
  EXPECT_NE(html.find("<title>candidate p99.9 "), std::string::npos);
  EXPECT_NE(html.find("<polyline class=\"mismatches\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // body.ts is normalized: its changed line is quiet, the price line is a real change.
  EXPECT_NE(html.find("<td class=\"quiet\">  &quot;ts&quot;: &quot;2025-06-01T12:00:00Z&quot;"),
            std::string::npos);
  EXPECT_EQ(html.find("<td class=\"add\">  &quot;ts&quot;"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"add\">  &quot;price&quot;: 11,"), std::string::npos);
  EXPECT_NE(html.find("normalized or ignored by the diff rules"), std::string::npos);
}

// A target with no responses and an empty timeline still renders, with notes, not charts.
TEST(ReportHtmlTest, ChartsOfAnEmptyTarget) {
  Report r;
  r.add_targets()->set_name("http://nothing");
  std::string html = RenderHtml(r);
  EXPECT_NE(html.find("no latency to plot"), std::string::npos);
  EXPECT_NE(html.find("no timeline"), std::string::npos);
  EXPECT_EQ(html.find("<svg"), std::string::npos);
}

TEST(ReportHtmlTest, CorrelationSectionWithUnansweredSinksMarked) {
  Report r;
  r.add_targets()->set_name("http://candidate");
  EXPECT_EQ(RenderHtml(r).find("Correlation"), std::string::npos);  // absent when off
  auto* c = r.mutable_correlation();
  c->set_mode("auto");
  c->set_substituted(5);
  c->set_unanswered(1);
  auto* ok = c->add_correlations();
  ok->set_source_endpoint("POST /login");
  ok->set_source_location("body.token");
  ok->set_sink_endpoint("GET /account");
  ok->set_sink_location("header:authorization");
  ok->set_recorded(5);
  ok->set_substituted(5);
  auto* cut = c->add_correlations();
  cut->set_source_endpoint("POST /orders");
  cut->set_source_location("body.<id>");
  cut->set_sink_endpoint("GET /orders/{id}");
  cut->set_sink_location("path[1]");
  cut->set_recorded(1);
  cut->set_unanswered(1);
  const std::string html = RenderHtml(r);
  EXPECT_NE(html.find("<h2>Correlation (auto)</h2>"), std::string::npos);
  EXPECT_NE(html.find("5 substituted, 1 sent unchanged"), std::string::npos);
  EXPECT_NE(html.find("<tr><td>POST /login</td><td><code>body.token</code>"), std::string::npos);
  EXPECT_NE(html.find("<tr class=\"warn\"><td>POST /orders</td><td><code>body.&lt;id&gt;</code>"),
            std::string::npos);
}

TEST(ReportHtmlTest, EscapeFunction) {
  EXPECT_EQ(HtmlEscape("</script><b>"), "&lt;/script&gt;&lt;b&gt;");
  EXPECT_EQ(HtmlEscape("a&\"'"), "a&amp;&quot;&#39;");
  EXPECT_EQ(HtmlEscape("x\x1b[31my"), "x\\x1b[31my");
  EXPECT_EQ(HtmlEscape("\xc0\xafz"), "\xEF\xBF\xBD\xEF\xBF\xBDz");  // overlong '/'
}

TEST(ReportTextTest, SummarySectionsAndVerdict) {
  std::string text = RenderText(SampleReport());
  WriteFile(std::string(DOPPEL_BINARY_DIR) + "/report_sample.txt", text);  // to look at
  EXPECT_EQ(text.find('\x1b'), std::string::npos);                         // no color unless asked
  EXPECT_EQ(text.find('\x01'), std::string::npos);
  EXPECT_NE(text.find("TARGET"), std::string::npos);
  EXPECT_NE(text.find("http://candidate:8080"), std::string::npos);
  EXPECT_NE(text.find("regressions on http://candidate:8080"), std::string::npos);
  EXPECT_NE(text.find("body.price"), std::string::npos);
  EXPECT_NE(text.find("10 \xE2\x86\x92 11"), std::string::npos);  // an exemplar
  EXPECT_NE(text.find("errors 1/6 (16.7%): timeout 1"), std::string::npos);
  EXPECT_NE(text.find("noise (masked)"), std::string::npos);
  EXPECT_NE(text.find("body.rnd 4/8"), std::string::npos);
  EXPECT_NE(text.find("normalized"), std::string::npos);
  EXPECT_NE(text.find("body.ts (8\xC3\x97)"), std::string::npos);
  EXPECT_NE(text.find("headers.date (8\xC3\x97)"), std::string::npos);
  EXPECT_NE(text.find("  faults 3 injected (abort 1, delay 2, reset 1): 2 not answered (abort 1, "
                      "reset 1), 1 answered, 0 of them differed\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("faults injected (replay --fault: not errors, never regressions)\n"
                      "  http://canary:8081 GET /page: 1 injected"),
            std::string::npos)
      << text;
  std::string last = "3 regressions in 3 endpoints \xE2\x80\x94 exit 1\n";
  ASSERT_GE(text.size(), last.size());
  EXPECT_EQ(text.substr(text.size() - last.size()), last);

  std::string colored = RenderText(SampleReport(), TextOptions{.color = true});
  EXPECT_NE(colored.find("\x1b[31m"), std::string::npos);
}

TEST(ReportTextTest, TrafficCannotDriveTheTerminal) {
  Report r;
  r.mutable_verdict()->set_exit_code(1);
  r.mutable_verdict()->set_regressions(1);
  r.mutable_verdict()->set_failed_endpoints(1);
  TargetReport& t = *r.add_targets();
  t.set_name("http://t");
  EndpointReport& e = *t.add_endpoints();
  e.set_name("GET /x\x1b[2J");
  e.set_failed(true);
  e.set_regressions(1);
  FieldReport& f = *e.add_fields();
  f.set_path("body.a");
  f.set_verdict("regression");
  f.set_mismatches(40);
  f.set_compared(40);
  Exemplar& x = *f.add_exemplars();
  x.set_method("GET");
  x.set_target("/x");
  x.set_path("body.a");
  x.set_expected("\"\x1b[31mred\"");
  x.set_actual(
      "\"\xC2\x9B"
      "2J\"");  // U+009B, an 8-bit CSI
  std::string text = RenderText(r);
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find("\xC2\x9B"), std::string::npos) << text;
  EXPECT_NE(text.find("GET /x\\x1b[2J"), std::string::npos) << text;
  EXPECT_NE(text.find("\"\\x1b[31mred\" \xE2\x86\x92 \"\\u009b2J\""), std::string::npos) << text;
}

TEST(ReportTextTest, TableColumnsAlign) {
  std::string text = RenderText(SampleReport());
  std::istringstream lines(text);
  std::string header, row;
  std::getline(lines, header);
  while (header.rfind("TARGET", 0) != 0 && std::getline(lines, header)) {
  }
  std::getline(lines, row);
  EXPECT_EQ(header.size(), row.size()) << header << "\n" << row;
}

TEST(ReportTextTest, CleanRunSaysExitZero) {
  Report r;
  r.add_targets()->set_name("http://t");
  EXPECT_EQ(VerdictLine(r), "no regressions \xE2\x80\x94 exit 0");
  std::string text = RenderText(r);
  EXPECT_NE(text.find("no regressions \xE2\x80\x94 exit 0\n"), std::string::npos);
}

}  // namespace
}  // namespace doppel::report
