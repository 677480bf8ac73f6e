#include "report/report_html.h"

#include <algorithm>
#include <cstdio>

#include "diff/text_diff.h"
#include "report/excerpt.h"

namespace doppel::report {
namespace {

constexpr std::string_view kStyle = R"css(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d1d1f;
  background:#fff}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
h4{font-size:13px;margin:12px 0 4px;color:#555}
table{border-collapse:collapse;margin:6px 0}
th,td{padding:3px 8px;border:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f5f5f7;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.meta{color:#666}
.verdict{font-size:16px;font-weight:600;padding:6px 10px;display:inline-block;border-radius:4px}
.pass{background:#e6f4ea;color:#137333}
.fail{background:#fce8e6;color:#a50e0e}
.warn{background:#fef7e0;color:#8a5a00}
section.endpoint{border-left:4px solid #ddd;padding-left:12px;margin:14px 0}
section.endpoint.failed{border-left-color:#d93025}
section.endpoint.tolerated{border-left-color:#f9ab00}
.badge{font-size:11px;padding:1px 6px;border-radius:3px;margin-left:6px;vertical-align:middle}
table.sbs{width:100%;table-layout:fixed}
table.sbs td{white-space:pre-wrap;word-break:break-all;border:none;padding:0 6px}
table.sbs td.ln{width:3em;color:#999;text-align:right;user-select:none}
table.sbs td.del{background:#fce8e6}
table.sbs td.add{background:#e6f4ea}
table.sbs td.gap{background:#f5f5f7}
details{margin:6px 0}
summary{cursor:pointer}
.change{margin:4px 0}
)css";

std::string E(std::string_view s) { return HtmlEscape(s); }

std::string Td(std::string_view text, bool numeric = false) {
  return numeric ? "<td class=\"n\">" + E(text) + "</td>" : "<td>" + E(text) + "</td>";
}

std::string Kinds(const FieldReport& f) {
  std::string out;
  for (const std::string& k : f.kinds()) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out;
}

std::string LatencyCells(const v1::Latency& l) {
  if (l.count() == 0) return Td("-", true) + Td("-", true) + Td("-", true) + Td("-", true);
  return Td(FormatLatency(l.p50_us()), true) + Td(FormatLatency(l.p90_us()), true) +
         Td(FormatLatency(l.p99_us()), true) + Td(FormatLatency(l.max_us()), true);
}

std::string Counts(const google::protobuf::RepeatedPtrField<PathCount>& items) {
  std::string out;
  for (const PathCount& c : items) {
    if (!out.empty()) out += ", ";
    out += "<code>" + E(c.path()) + "</code> (" + std::to_string(c.count()) + "\xC3\x97)";
  }
  return out;
}

// Expected and actual bodies as two columns of lines, aligned by a line diff, differing
// lines highlighted.
std::string SideBySide(const Exemplar& x, std::string_view right_label = "actual") {
  std::vector<std::string_view> left = diff::SplitLines(x.expected_body(), '\n');
  std::vector<std::string_view> right = diff::SplitLines(x.actual_body(), '\n');
  // A final newline is not a line of its own here.
  if (left.size() > 1 && left.back().empty()) left.pop_back();
  if (right.size() > 1 && right.back().empty()) right.pop_back();
  std::vector<diff::LineHunk> hunks = diff::DiffLines(left, right, diff::LineDiffOptions());
  std::string rows;
  auto cell = [](const char* cls, size_t line, std::string_view text, bool present) {
    if (!present) return std::string("<td class=\"ln\"></td><td class=\"gap\"></td>");
    std::string c = cls[0] != '\0' ? std::string(" class=\"") + cls + "\"" : std::string();
    return "<td class=\"ln\">" + std::to_string(line + 1) + "</td><td" + c + ">" + E(text) +
           "</td>";
  };
  size_t l = 0, r = 0;
  auto equal_until = [&](size_t left_end) {
    while (l < left_end && l < left.size() && r < right.size()) {
      rows += "<tr>" + cell("", l, left[l], true) + cell("", r, right[r], true) + "</tr>\n";
      ++l;
      ++r;
    }
  };
  for (const diff::LineHunk& h : hunks) {
    equal_until(h.expected_begin);
    size_t n = std::max(h.expected_count, h.actual_count);
    for (size_t k = 0; k < n; ++k) {
      bool has_left = k < h.expected_count && l < left.size();
      bool has_right = k < h.actual_count && r < right.size();
      rows += "<tr>" + cell("del", l, has_left ? left[l] : "", has_left) +
              cell("add", r, has_right ? right[r] : "", has_right) + "</tr>\n";
      if (has_left) ++l;
      if (has_right) ++r;
    }
  }
  equal_until(left.size());
  return "<table class=\"sbs mono\"><tr><th colspan=\"2\">expected (recorded, status " +
         std::to_string(x.expected_status()) + ")</th><th colspan=\"2\">" +
         std::string(right_label) + " (status " + std::to_string(x.actual_status()) +
         ")</th></tr>\n" + rows + "</table>\n";
}

std::string ExemplarHtml(const Exemplar& x, size_t n, bool open) {
  std::string out = std::string("<details") + (open ? " open" : "") + "><summary>exemplar " +
                    std::to_string(n) + ": <code>" + E(x.method()) + " " + E(x.target()) +
                    "</code></summary>\n";
  out += "<p class=\"change mono\"><code>" + E(x.path()) + "</code> " + E(x.kind()) + ": " +
         (x.expected().empty() ? "(absent)" : E(x.expected())) + " \xE2\x86\x92 " +
         (x.actual().empty() ? "(absent)" : E(x.actual())) +
         (x.detail().empty() ? "" : " <span class=\"meta\">" + E(x.detail()) + "</span>") +
         "</p>\n";
  if (!x.request_body().empty()) {
    out += "<p class=\"meta\">request body: <code>" + E(x.request_body()) + "</code></p>\n";
  }
  if (!x.expected_body().empty() || !x.actual_body().empty()) out += SideBySide(x);
  out += "</details>\n";
  return out;
}

std::string FieldRow(const FieldReport& f) {
  std::string cls = Is(f, FieldVerdict::kRegression)  ? " class=\"fail\""
                    : Is(f, FieldVerdict::kTolerated) ? " class=\"warn\""
                                                      : "";
  return "<tr" + cls + "><td><code>" + E(f.path()) + "</code></td>" + Td(Kinds(f)) +
         Td(f.severity()) +
         Td(std::to_string(f.mismatches()) + "/" + std::to_string(f.compared()), true) +
         Td(FormatRate(f.mismatches(), f.compared()), true) +
         Td(FormatRate(f.noise_mismatches(), f.noise_compared()), true) +
         Td(f.noise_compared() > 0 ? FormatPValue(f.p_value()) : "-", true) + Td(f.verdict()) +
         "</tr>\n";
}

std::string EndpointHtml(const EndpointReport& e, const HtmlOptions& options) {
  bool tolerated = std::any_of(e.fields().begin(), e.fields().end(), [](const FieldReport& f) {
    return Is(f, FieldVerdict::kTolerated);
  });
  std::string cls = e.failed() ? " failed" : tolerated ? " tolerated" : "";
  std::string badge = e.failed()  ? "<span class=\"badge fail\">FAIL</span>"
                      : tolerated ? "<span class=\"badge warn\">TOLERATED</span>"
                                  : "<span class=\"badge pass\">PASS</span>";
  std::string out = "<section class=\"endpoint" + cls + "\">\n<h3><code>" + E(e.name()) +
                    "</code>" + badge + "</h3>\n";
  out += "<p>" + std::to_string(e.requests()) + " requests, " + std::to_string(e.compared()) +
         " compared, " + std::to_string(e.mismatched()) + " mismatched (" +
         E(FormatRate(e.mismatched(), e.compared())) + "), " + std::to_string(e.errors()) +
         " errors";
  if (!e.errors_by_reason().empty()) {
    out += " (";
    bool first = true;
    for (const auto& [reason, count] : SortedReasons(e.errors_by_reason())) {
      if (!first) out += ", ";
      first = false;
      out += E(reason) + " " + std::to_string(count);
    }
    out += ")";
  }
  if (e.error_rate_exceeded())
    out += " <span class=\"badge fail\">error rate over threshold</span>";
  out += "</p>\n";
  out += "<table><tr><th>latency</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n";
  out += "<tr><td>target</td>" + LatencyCells(e.latency()) + "</tr>\n";
  out += "<tr><td>recorded</td>" + LatencyCells(e.recorded_latency()) + "</tr></table>\n";

  std::string rows, exemplars;
  size_t with_exemplars = 0;
  for (const FieldReport& f : e.fields()) {
    if (f.mismatches() == 0) continue;
    rows += FieldRow(f);
    if (f.exemplars().empty() || with_exemplars == options.max_fields_with_exemplars) continue;
    ++with_exemplars;
    exemplars += "<h4><code>" + E(f.path()) + "</code></h4>\n";
    for (int i = 0; i < f.exemplars_size(); ++i) {
      exemplars +=
          ExemplarHtml(f.exemplars()[i], i + 1, i == 0 && Is(f, FieldVerdict::kRegression));
    }
  }
  if (!rows.empty()) {
    out +=
        "<table><tr><th>field</th><th>kinds</th><th>severity</th><th>mismatches</th>"
        "<th>rate</th><th>noise rate</th><th>p-value</th><th>verdict</th></tr>\n" +
        rows + "</table>\n" + exemplars;
  }
  if (e.untracked_fields() > 0) {
    out += "<p class=\"meta\">" + std::to_string(e.untracked_fields()) +
           " mismatches on fields beyond the per-endpoint limit were not tracked.</p>\n";
  }

  std::string noise;
  for (const FieldReport& f : e.fields()) {
    if (f.noise_mismatches() == 0) continue;
    std::string example;
    if (!f.noise_exemplars().empty()) {
      const Exemplar& x = f.noise_exemplars(0);
      example = "<code>" + E(x.method()) + " " + E(x.target()) +
                "</code>: " + (x.expected().empty() ? "(absent)" : E(x.expected())) +
                " \xE2\x86\x92 " + (x.actual().empty() ? "(absent)" : E(x.actual()));
    }
    noise +=
        "<tr><td><code>" + E(f.path()) + "</code></td>" +
        Td(std::to_string(f.noise_mismatches()) + "/" + std::to_string(f.noise_compared()), true) +
        Td(FormatRate(f.noise_mismatches(), f.noise_compared()), true) +
        Td(std::to_string(f.masked()), true) + "<td class=\"mono\">" + example + "</td></tr>\n";
  }
  std::string noise_bodies;
  for (const FieldReport& f : e.fields()) {
    if (f.noise_mismatches() == 0 || f.noise_exemplars().empty()) continue;
    const Exemplar& x = f.noise_exemplars(0);
    if (x.expected_body().empty() && x.actual_body().empty()) continue;
    noise_bodies += "<details><summary>noise on <code>" + E(f.path()) + "</code>: <code>" +
                    E(x.method()) + " " + E(x.target()) + "</code></summary>\n" +
                    SideBySide(x, "secondary") + "</details>\n";
  }
  if (!noise.empty()) {
    out +=
        "<h4>noise (masked): recorded primary vs secondary</h4>\n<table><tr><th>field</th>"
        "<th>differed</th><th>noise rate</th><th>candidate diffs masked</th>"
        "<th>example (recorded \xE2\x86\x92 secondary)</th></tr>\n" +
        noise + "</table>\n" + noise_bodies;
  }
  if (!e.normalized().empty()) out += "<p>normalized: " + Counts(e.normalized()) + "</p>\n";
  if (!e.ignored().empty()) out += "<p>ignored: " + Counts(e.ignored()) + "</p>\n";
  out += "</section>\n";
  return out;
}

}  // namespace

std::string HtmlEscape(std::string_view raw) {
  std::string text = SanitizeUtf8(raw);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '\t':
      case '\n':
      case '\r':
        out.push_back(ch);
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          AppendHexEscape(c, &out);
        } else {
          out.push_back(ch);
        }
    }
  }
  return out;
}

std::string RenderHtml(const Report& report, const HtmlOptions& options) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>doppel report" +
      (report.session().empty() ? std::string() : " \xE2\x80\x94 " + E(report.session())) +
      "</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  out += "<h1>doppel report</h1>\n<p class=\"meta\">";
  if (!report.run_id().empty()) out += "run " + E(report.run_id()) + " &middot; ";
  if (!report.session().empty()) out += "session " + E(report.session()) + " &middot; ";
  out += report.settings().secondary().empty() ? std::string("no secondary (no noise data)")
                                               : "secondary " + E(report.settings().secondary());
  if (!report.generated_at().empty()) out += " &middot; " + E(report.generated_at());
  char settings[160];
  std::snprintf(settings, sizeof(settings),
                " &middot; fail-threshold %g%%, fail-on %s, alpha %g, min samples %llu",
                report.settings().fail_threshold_pct(), report.settings().fail_on().c_str(),
                report.settings().alpha(),
                static_cast<unsigned long long>(report.settings().min_samples()));
  out += settings;
  out += "</p>\n<p class=\"verdict " +
         std::string(report.verdict().exit_code() == 0 ? "pass" : "fail") + "\">" +
         E(VerdictLine(report)) + "</p>\n";

  out +=
      "<h2>Targets</h2>\n<table><tr><th>target</th><th>requests</th><th>2xx</th><th>3xx</th>"
      "<th>4xx</th><th>5xx</th><th>errors</th><th>match</th><th></th><th>p50</th><th>p90</th>"
      "<th>p99</th><th>max</th><th>regressions</th></tr>\n";
  for (const TargetReport& t : report.targets()) {
    std::string count_cells =
        Td(std::to_string(t.requests()), true) + Td(std::to_string(t.status().s2xx()), true) +
        Td(std::to_string(t.status().s3xx()), true) + Td(std::to_string(t.status().s4xx()), true) +
        Td(std::to_string(t.status().s5xx()), true) + Td(std::to_string(t.errors()), true) +
        Td(FormatRate(t.matched(), t.compared()), true);
    out += "<tr><td rowspan=\"2\"><code>" + E(t.name()) + "</code></td>" + count_cells +
           "<td>target</td>" + LatencyCells(t.latency()) + "<td rowspan=\"2\" class=\"n\">" +
           std::to_string(t.regressions()) + "</td></tr>\n";
    out += "<tr><td colspan=\"7\"></td><td>recorded</td>" + LatencyCells(t.recorded_latency()) +
           "</tr>\n";
  }
  out += "</table>\n";

  for (const TargetReport& t : report.targets()) {
    out += "<h2>Endpoints on <code>" + E(t.name()) + "</code></h2>\n";
    // Failing endpoints first, then those with differences, then the rest; by name within.
    std::vector<const EndpointReport*> order;
    for (const EndpointReport& e : t.endpoints()) order.push_back(&e);
    auto rank = [](const EndpointReport* e) {
      if (e->failed()) return 0;
      if (e->mismatched() > 0 || e->errors() > 0) return 1;
      return 2;
    };
    std::stable_sort(
        order.begin(), order.end(),
        [&](const EndpointReport* a, const EndpointReport* b) { return rank(a) < rank(b); });
    for (const EndpointReport* e : order) {
      if (rank(e) == 2 && !options.show_passing_endpoints) continue;
      out += EndpointHtml(*e, options);
    }
  }
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace doppel::report
