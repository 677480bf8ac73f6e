#include "report/report_html.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "diff/text_diff.h"
#include "report/excerpt.h"
#include "report/report_charts.h"

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
table.sbs td.quiet,span.quiet{background:#f1f3f4;color:#80868b}
span.del{background:#fce8e6}
span.add{background:#e6f4ea}
.strip{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0 4px}
.strip>div{border:1px solid #ddd;border-radius:4px;padding:6px 10px;min-width:120px}
.strip .k{font-size:11px;color:#666;text-transform:uppercase;letter-spacing:.04em}
.strip .v{font-size:16px;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:8px 0;max-width:640px}
.charts figure{flex:1 1 480px}
figcaption{font-size:12px;color:#555}
svg.chart{width:100%;height:auto;font:11px system-ui,sans-serif}
svg.chart .grid{stroke:#e8eaed;stroke-width:1}
svg.chart .axis{stroke:#9aa0a6;stroke-width:1}
svg.chart text{fill:#5f6368}
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

// The member names of an endpoint's normalized and ignored paths ("body.items[*].ts" -> "ts"):
// a changed body line whose JSON member is one of them is a value the diff rules set aside,
// not a difference, and is marked quietly.
using QuietKeys = std::set<std::string, std::less<>>;

QuietKeys QuietKeysOf(const EndpointReport& e) {
  QuietKeys keys;
  for (const auto* list : {&e.normalized(), &e.ignored()}) {
    for (const PathCount& c : *list) {
      std::string_view path = c.path();
      if (path.substr(0, 5) != "body.") continue;
      while (path.size() >= 3 && path.substr(path.size() - 3) == "[*]") path.remove_suffix(3);
      const size_t dot = path.rfind('.');
      keys.emplace(path.substr(dot + 1));
    }
  }
  return keys;
}

// The member name of a pretty-printed JSON line (`  "ts": "..."` -> ts), or "" when the line
// is not a member. Escaped quotes inside the name end it early: such a name is never quiet.
std::string_view MemberOf(std::string_view line) {
  const size_t open = line.find_first_not_of(" \t");
  if (open == std::string_view::npos || line[open] != '"') return {};
  const size_t close = line.find('"', open + 1);
  if (close == std::string_view::npos || line.substr(close + 1, 1) != ":") return {};
  return line.substr(open + 1, close - open - 1);
}

// Expected and actual bodies as two columns of lines, aligned by a line diff, differing
// lines highlighted; lines that differ only in a member of `quiet` get the quiet marking.
std::string SideBySide(const Exemplar& x, const QuietKeys& quiet,
                       std::string_view right_label = "actual") {
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
  auto is_quiet = [&](std::string_view line) {
    std::string_view member = MemberOf(line);
    return !member.empty() && quiet.count(member) > 0;
  };
  bool any_quiet = false;
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
      // Quiet when every side present is a set-aside member.
      bool quiet_row = (has_left || has_right) && (!has_left || is_quiet(left[l])) &&
                       (!has_right || is_quiet(right[r]));
      any_quiet |= quiet_row;
      rows += "<tr>" + cell(quiet_row ? "quiet" : "del", l, has_left ? left[l] : "", has_left) +
              cell(quiet_row ? "quiet" : "add", r, has_right ? right[r] : "", has_right) +
              "</tr>\n";
      if (has_left) ++l;
      if (has_right) ++r;
    }
  }
  equal_until(left.size());
  std::string legend =
      any_quiet ? "<p class=\"meta\"><span class=\"del\">removed</span> "
                  "<span class=\"add\">added</span>: differences; <span class=\"quiet\">grey"
                  "</span>: normalized or ignored by the diff rules, not a difference</p>\n"
                : "";
  return legend + "<table class=\"sbs mono\"><tr><th colspan=\"2\">expected (recorded, status " +
         std::to_string(x.expected_status()) + ")</th><th colspan=\"2\">" +
         std::string(right_label) + " (status " + std::to_string(x.actual_status()) +
         ")</th></tr>\n" + rows + "</table>\n";
}

std::string ExemplarHtml(const Exemplar& x, size_t n, bool open, const QuietKeys& quiet) {
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
  if (!x.expected_body().empty() || !x.actual_body().empty()) out += SideBySide(x, quiet);
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

// `anchor`: the section's id, which the summary strip links to.
std::string EndpointHtml(const EndpointReport& e, const std::string& anchor,
                         const HtmlOptions& options) {
  bool tolerated = std::any_of(e.fields().begin(), e.fields().end(), [](const FieldReport& f) {
    return Is(f, FieldVerdict::kTolerated);
  });
  std::string cls = e.failed() ? " failed" : tolerated ? " tolerated" : "";
  std::string badge = e.failed()  ? "<span class=\"badge fail\">FAIL</span>"
                      : tolerated ? "<span class=\"badge warn\">TOLERATED</span>"
                                  : "<span class=\"badge pass\">PASS</span>";
  const QuietKeys quiet = QuietKeysOf(e);
  std::string out = "<section class=\"endpoint" + cls + "\" id=\"" + anchor + "\">\n<h3><code>" +
                    E(e.name()) + "</code>" + badge + "</h3>\n";
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
  if (e.has_faults()) {
    out += "<p class=\"faults\">faults injected (replay --fault; not errors, never regressions): " +
           E(FaultsLine(e.faults())) + "</p>\n";
  }
  out += "<table><tr><th>latency</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n";
  out += "<tr><td>target</td>" + LatencyCells(e.latency()) + "</tr>\n";
  out += "<tr><td>recorded</td>" + LatencyCells(e.recorded_latency()) + "</tr></table>\n";
  out += "<figure>" + LatencyPlotSvg(e.latency(), e.recorded_latency(), "latency of " + e.name()) +
         "<figcaption>latency percentiles, candidate vs recorded primary (log scale)</figcaption>"
         "</figure>\n";

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
          ExemplarHtml(f.exemplars()[i], i + 1, i == 0 && Is(f, FieldVerdict::kRegression), quiet);
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
                    SideBySide(x, quiet, "secondary") + "</details>\n";
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

// Failing endpoints first, then those with differences, then the rest.
int Rank(const EndpointReport& e) {
  if (e.failed()) return 0;
  if (e.mismatched() > 0 || e.errors() > 0 || e.has_faults()) return 1;
  return 2;
}

// Indexes into t.endpoints() by Rank, by name within a rank.
std::vector<int> EndpointOrder(const TargetReport& t) {
  std::vector<int> order;
  for (int i = 0; i < t.endpoints_size(); ++i) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return Rank(t.endpoints(a)) < Rank(t.endpoints(b)); });
  return order;
}

// The id of endpoint `i` of `t`: positions, so any endpoint name gives a valid id.
// Stateful replay: what was carried from earlier answers into later requests; a sink sent
// unchanged (its source never answered) is marked as a warning.
std::string CorrelationHtml(const v1::CorrelationReport& c) {
  std::string out = "<h2>Correlation (" + E(c.mode()) + ")</h2>\n<p>" +
                    std::to_string(c.substituted()) + " substituted, " +
                    std::to_string(c.unanswered()) + " sent unchanged (source never answered), " +
                    std::to_string(c.cookies_applied()) + " requests with jar cookies</p>\n";
  if (c.correlations().empty()) return out + "<p>no correlations learned from the recording</p>\n";
  out +=
      "<table><tr><th>source</th><th>value at</th><th>sink</th><th>sent at</th>"
      "<th>recorded</th><th>substituted</th><th>unanswered</th></tr>\n";
  for (const auto& k : c.correlations()) {
    out += std::string(k.unanswered() > 0 ? "<tr class=\"warn\">" : "<tr>") +
           Td(k.rule().empty() ? k.source_endpoint()
                               : "rule " + k.rule() + ": " + k.source_endpoint()) +
           "<td><code>" + E(k.source_location()) + "</code></td>" + Td(k.sink_endpoint()) +
           "<td><code>" + E(k.sink_location()) + "</code></td>" +
           Td(std::to_string(k.recorded()), true) + Td(std::to_string(k.substituted()), true) +
           Td(std::to_string(k.unanswered()), true) + "</tr>\n";
  }
  return out + "</table>\n";
}

std::string Anchor(const TargetReport& t, int i) {
  return "t" + std::to_string(t.index()) + "-e" + std::to_string(i);
}

std::string StripCell(std::string_view key, const std::string& value_html,
                      std::string_view cls = "") {
  return "<div" + (cls.empty() ? std::string() : " class=\"" + std::string(cls) + "\"") +
         "><div class=\"k\">" + std::string(key) + "</div><div class=\"v\">" + value_html +
         "</div></div>\n";
}

// The top of the page: verdict, regressions by severity, match rate, p99 change per target
// and links to the endpoints that need a look.
std::string SummaryStrip(const Report& report) {
  uint64_t by_severity[3] = {0, 0, 0};  // low, medium, high
  uint64_t error_rate = 0, matched = 0, compared = 0;
  std::string links;
  size_t linked = 0, unlinked = 0;
  constexpr size_t kMaxLinks = 20;
  for (const TargetReport& t : report.targets()) {
    matched += t.matched();
    compared += t.compared();
    for (const EndpointReport& e : t.endpoints()) {
      if (e.error_rate_exceeded()) ++error_rate;
      for (const FieldReport& f : e.fields()) {
        if (!Is(f, FieldVerdict::kRegression)) continue;
        Result<diff::Severity> severity = ParseSeverity(f.severity());
        if (severity.ok()) ++by_severity[static_cast<int>(*severity)];
      }
    }
    for (int i : EndpointOrder(t)) {
      const EndpointReport& e = t.endpoints(i);
      if (Rank(e) == 2) break;
      if (linked == kMaxLinks) {
        ++unlinked;
        continue;
      }
      ++linked;
      links += std::string(links.empty() ? "" : " &middot; ") + "<a href=\"#" + Anchor(t, i) +
               "\"><code>" + E(e.name()) + "</code></a>" +
               (report.targets_size() > 1
                    ? " <span class=\"meta\">(target " + std::to_string(t.index()) + ")</span>"
                    : std::string()) +
               (e.failed() ? " <span class=\"badge fail\">FAIL</span>" : std::string());
    }
  }
  const bool pass = report.verdict().exit_code() == 0;
  std::string out = "<div class=\"strip\">\n";
  out += StripCell("verdict", pass ? "pass" : "fail", pass ? "pass" : "fail");
  out += StripCell("regressions",
                   std::to_string(by_severity[2]) + " high &middot; " +
                       std::to_string(by_severity[1]) + " medium &middot; " +
                       std::to_string(by_severity[0]) + " low" +
                       (error_rate > 0 ? " &middot; " + std::to_string(error_rate) + " error rate"
                                       : std::string()));
  out += StripCell("match rate", E(FormatRate(matched, compared)));
  for (const TargetReport& t : report.targets()) {
    std::string key = "p99 vs recorded";
    if (report.targets_size() > 1) key += " (target " + std::to_string(t.index()) + ")";
    std::string value =
        t.latency().count() == 0
            ? std::string("-")
            : E(FormatLatency(t.latency().p99_us())) + " <span class=\"meta\">(" +
                  E(FormatChange(t.recorded_latency().p99_us(), t.latency().p99_us())) + ")</span>";
    out += StripCell(key, value);
  }
  out += "</div>\n";
  if (!links.empty()) {
    out += "<p>endpoints to look at: " + links +
           (unlinked > 0 ? " &middot; and " + std::to_string(unlinked) + " more" : std::string()) +
           "</p>\n";
  }
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

std::string HtmlPageStart(std::string_view title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>" +
         E(title) + "</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
}

std::string RenderHtml(const Report& report, const HtmlOptions& options) {
  std::string out = HtmlPageStart("doppel report" + (report.session().empty()
                                                         ? std::string()
                                                         : " \xE2\x80\x94 " + report.session()));
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
  out += SummaryStrip(report);

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
    if (!t.has_faults()) continue;
    out += "<p class=\"faults\">faults injected on <code>" + E(t.name()) +
           "</code> (replay --fault; the errors above are organic only): " +
           E(FaultsLine(t.faults())) + "</p>\n";
  }

  for (const TargetReport& t : report.targets()) {
    out += "<h2>Latency and timeline of <code>" + E(t.name()) + "</code></h2>\n";
    out += "<div class=\"charts\"><figure>" +
           LatencyPlotSvg(t.latency(), t.recorded_latency(), "latency of " + t.name()) +
           "<figcaption>latency percentiles over all endpoints, candidate vs recorded primary "
           "(log scale)</figcaption></figure>\n<figure>" +
           TimelineSvg(t.timeline(), "timeline of " + t.name()) +
           "<figcaption>requests, mismatches and errors over the run (the recording&#39;s "
           "clock)</figcaption></figure></div>\n";
  }

  for (const TargetReport& t : report.targets()) {
    out += "<h2>Endpoints on <code>" + E(t.name()) + "</code></h2>\n";
    // Failing endpoints first, then those with differences, then the rest; by name within.
    for (int i : EndpointOrder(t)) {
      const EndpointReport& e = t.endpoints(i);
      if (Rank(e) == 2 && !options.show_passing_endpoints) continue;
      out += EndpointHtml(e, Anchor(t, i), options);
    }
  }
  if (report.has_correlation()) out += CorrelationHtml(report.correlation());
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace doppel::report
