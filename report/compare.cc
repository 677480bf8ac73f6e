#include "report/compare.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "report/excerpt.h"
#include "report/report_charts.h"
#include "report/report_html.h"
#include "report/report_json.h"
#include "report/report_text.h"

namespace doppel::report {
namespace json = boost::json;
namespace {

using Key = std::tuple<uint32_t, std::string, std::string>;  // target, endpoint, path

std::map<Key, RegressionRef> RegressionsOf(const Report& r) {
  std::map<Key, RegressionRef> out;
  for (const TargetReport& t : r.targets()) {
    for (const EndpointReport& e : t.endpoints()) {
      auto add = [&](const std::string& path, const std::string& severity, double rate) {
        RegressionRef ref{t.index(), t.name(), e.name(), path, severity, rate};
        out.emplace(Key{t.index(), e.name(), path}, std::move(ref));
      };
      if (e.error_rate_exceeded()) {
        add(std::string(kErrorRatePath), "",
            e.requests() == 0
                ? 0.0
                : static_cast<double>(e.errors()) / static_cast<double>(e.requests()));
      }
      for (const FieldReport& f : e.fields()) {
        if (Is(f, FieldVerdict::kRegression)) add(f.path(), f.severity(), f.rate());
      }
    }
  }
  return out;
}

const TargetReport* TargetAt(const Report& r, uint32_t index) {
  for (const TargetReport& t : r.targets()) {
    if (t.index() == index) return &t;
  }
  return nullptr;
}

std::string Percent(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * rate);
  return buf;
}

std::string Where(const RegressionRef& r) {
  return "target " + std::to_string(r.target) + " " + r.endpoint + " " + r.path;
}

}  // namespace

Comparison CompareReports(const Report& a, const Report& b, std::string label_a,
                          std::string label_b) {
  Comparison c;
  c.label_a = std::move(label_a);
  c.label_b = std::move(label_b);
  const std::map<Key, RegressionRef> in_a = RegressionsOf(a), in_b = RegressionsOf(b);
  for (const auto& [key, ref] : in_b) {
    (in_a.count(key) ? c.still_present : c.new_in_b).push_back(ref);
  }
  for (const auto& [key, ref] : in_a) {
    if (!in_b.count(key)) c.fixed_in_b.push_back(ref);
  }
  for (const TargetReport& tb : b.targets()) {
    const TargetReport* ta = TargetAt(a, tb.index());
    if (ta == nullptr) continue;
    c.latency.push_back({tb.index(), "", ta->latency(), tb.latency()});
    std::map<std::string, const EndpointReport*> endpoints_a;
    for (const EndpointReport& e : ta->endpoints()) endpoints_a[e.name()] = &e;
    for (const EndpointReport& eb : tb.endpoints()) {
      auto it = endpoints_a.find(eb.name());
      if (it == endpoints_a.end() || it->second->latency().count() == 0 ||
          eb.latency().count() == 0) {
        continue;
      }
      c.latency.push_back({tb.index(), eb.name(), it->second->latency(), eb.latency()});
    }
  }
  return c;
}

Result<Report> LoadReportArg(std::string_view arg, const RunReportLoader& load_run) {
  if (arg.empty()) return Status::InvalidArgument("empty run: give a run id or a report file");
  const bool digits =
      std::all_of(arg.begin(), arg.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
  if (digits) {
    if (arg.size() > 9) {
      return Status::InvalidArgument("run id " + std::string(arg) + " is out of range");
    }
    Result<Report> r = load_run(static_cast<uint32_t>(std::stoul(std::string(arg))));
    if (!r.ok()) return r.status().WithContext("run " + std::string(arg));
    return r;
  }
  const std::string path(arg);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::NotFound("cannot read '" + path +
                            "': give a run id (`doppel runs list`) or a JSON report file "
                            "(written by --report-json)");
  }
  std::stringstream text;
  text << in.rdbuf();
  Result<Report> r = ReportFromJson(text.str());
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

std::string RenderComparisonText(const Comparison& c) {
  std::string out = "doppel report --compare: A = " + TerminalSafe(SanitizeUtf8(c.label_a)) +
                    ", B = " + TerminalSafe(SanitizeUtf8(c.label_b)) + "\n";
  auto section = [&](const char* title, const std::vector<RegressionRef>& refs) {
    out += "\n" + std::string(title) + " (" + std::to_string(refs.size()) + ")\n";
    for (const RegressionRef& r : refs) {
      out += "  " + TerminalSafe(SanitizeUtf8(Where(r))) +
             (r.severity.empty() ? std::string() : "  [" + r.severity + "]") + "  " +
             Percent(r.rate) + "\n";
    }
  };
  section("new in B", c.new_in_b);
  section("fixed in B", c.fixed_in_b);
  section("still present", c.still_present);

  // One row per target and endpoint: its name, then "A -> B (change)" per percentile.
  std::vector<std::vector<std::string>> rows = {{"endpoint"}};
  for (const MarkedPercentile& m : kMarkedPercentiles) rows[0].emplace_back(m.name);
  for (const LatencyChange& l : c.latency) {
    std::vector<std::string> row = {
        "target " + std::to_string(l.target) +
        (l.endpoint.empty() ? " (all)" : " " + TerminalSafe(SanitizeUtf8(l.endpoint)))};
    for (const MarkedPercentile& m : kMarkedPercentiles) {
      const uint64_t a = (l.a.*m.value)(), b = (l.b.*m.value)();
      row.push_back(FormatLatency(a) + " -> " + FormatLatency(b) + " (" + FormatChange(a, b) + ")");
    }
    rows.push_back(std::move(row));
  }
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  out += "\nlatency of the candidate, A -> B\n";
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t i = 0; i < row.size(); ++i) {
      line += " " + row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 1, ' ');
    }
    out += line + "\n";
  }
  out += "\n" +
         std::string(c.new_in_b.empty() ? "no new regressions in B \xE2\x80\x94 exit 0"
                                        : std::to_string(c.new_in_b.size()) +
                                              " new regressions in B \xE2\x80\x94 exit 1") +
         "\n";
  return out;
}

std::string RenderComparisonJson(const Comparison& c) {
  auto refs = [](const std::vector<RegressionRef>& list) {
    json::array out;
    for (const RegressionRef& r : list) {
      out.push_back(json::object{{"target", r.target},
                                 {"target_name", SanitizeUtf8(r.target_name)},
                                 {"endpoint", SanitizeUtf8(r.endpoint)},
                                 {"path", SanitizeUtf8(r.path)},
                                 {"severity", r.severity},
                                 {"rate", r.rate}});
    }
    return out;
  };
  auto percentiles = [](const v1::Latency& l) {
    json::object o;
    o["count"] = l.count();
    for (const MarkedPercentile& m : kMarkedPercentiles) {
      std::string key = std::string(m.name) + "_us";
      key.erase(std::remove(key.begin(), key.end(), '.'), key.end());  // "p99.9" -> "p999"
      o[key] = (l.*m.value)();
    }
    return o;
  };
  json::array latency;
  for (const LatencyChange& l : c.latency) {
    latency.push_back(json::object{{"target", l.target},
                                   {"endpoint", SanitizeUtf8(l.endpoint)},
                                   {"a", percentiles(l.a)},
                                   {"b", percentiles(l.b)}});
  }
  json::object doc{{"schema", "doppel.compare/v1"},          {"a", SanitizeUtf8(c.label_a)},
                   {"b", SanitizeUtf8(c.label_b)},           {"exit_code", c.exit_code()},
                   {"new_in_b", refs(c.new_in_b)},           {"fixed_in_b", refs(c.fixed_in_b)},
                   {"still_present", refs(c.still_present)}, {"latency", std::move(latency)}};
  return PrettyJson(json::serialize(doc)) + "\n";
}

std::string RenderComparisonHtml(const Comparison& c) {
  const std::string a = HtmlEscape(c.label_a), b = HtmlEscape(c.label_b);
  std::string out = HtmlPageStart("doppel comparison: " + c.label_a + " vs " + c.label_b);
  out += "<h1>doppel comparison</h1>\n<p class=\"meta\">A = " + a + " &middot; B = " + b +
         "</p>\n<p class=\"verdict " + (c.exit_code() == 0 ? "pass" : "fail") + "\">" +
         (c.new_in_b.empty()
              ? std::string("no new regressions in B \xE2\x80\x94 exit 0")
              : std::to_string(c.new_in_b.size()) + " new regressions in B \xE2\x80\x94 exit 1") +
         "</p>\n";
  auto section = [&](const char* title, const char* cls, const std::vector<RegressionRef>& refs) {
    out += "<h2>" + std::string(title) + " (" + std::to_string(refs.size()) + ")</h2>\n";
    if (refs.empty()) return;
    out +=
        "<table><tr><th>target</th><th>endpoint</th><th>field</th><th>severity</th>"
        "<th>rate</th></tr>\n";
    for (const RegressionRef& r : refs) {
      out += "<tr class=\"" + std::string(cls) + "\"><td class=\"n\">" + std::to_string(r.target) +
             "</td><td><code>" + HtmlEscape(r.endpoint) + "</code></td><td><code>" +
             HtmlEscape(r.path) + "</code></td><td>" + HtmlEscape(r.severity) +
             "</td><td class=\"n\">" + Percent(r.rate) + "</td></tr>\n";
    }
    out += "</table>\n";
  };
  section("New in B", "fail", c.new_in_b);
  section("Fixed in B", "pass", c.fixed_in_b);
  section("Still present", "warn", c.still_present);
  out +=
      "<h2>Latency of the candidate, A \xE2\x86\x92 B</h2>\n<table><tr><th>target</th>"
      "<th>endpoint</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th></tr>\n";
  for (const LatencyChange& l : c.latency) {
    out += "<tr><td class=\"n\">" + std::to_string(l.target) + "</td><td>" +
           (l.endpoint.empty() ? std::string("(all endpoints)")
                               : "<code>" + HtmlEscape(l.endpoint) + "</code>") +
           "</td>";
    for (const MarkedPercentile& m : kMarkedPercentiles) {
      out += "<td class=\"n\">" + FormatLatency((l.a.*m.value)()) + " \xE2\x86\x92 " +
             FormatLatency((l.b.*m.value)()) + " (" +
             FormatChange((l.a.*m.value)(), (l.b.*m.value)()) + ")</td>";
    }
    out += "</tr>\n";
  }
  out += "</table>\n<div class=\"charts\">\n";
  for (const LatencyChange& l : c.latency) {
    const std::string name = "target " + std::to_string(l.target) + " " +
                             (l.endpoint.empty() ? std::string("(all endpoints)") : l.endpoint);
    out += "<figure>" + LatencyPlotSvg(l.b, l.a, "latency of " + name, "B", "A") + "<figcaption>" +
           HtmlEscape(name) + ": B solid, A dashed (log scale)</figcaption>" + "</figure>\n";
  }
  out += "</div>\n</body>\n</html>\n";
  return out;
}

}  // namespace doppel::report
