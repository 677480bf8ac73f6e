#include "report/report_junit.h"

#include <cstdio>

#include "report/excerpt.h"

namespace doppel::report {
namespace {

std::string Seconds(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", static_cast<double>(us) / 1e6);
  return buf;
}

std::string Attr(std::string_view name, std::string_view value) {
  return " " + std::string(name) + "=\"" + XmlEscape(value, /*attribute=*/true) + "\"";
}

std::string FieldSummary(const FieldReport& f) {
  std::string kinds;
  for (const std::string& k : f.kinds()) {
    if (!kinds.empty()) kinds += ",";
    kinds += k;
  }
  return f.path() + " (" + kinds + ", " + std::string(f.severity()) + ", " +
         std::to_string(f.mismatches()) + "/" + std::to_string(f.compared()) + " = " +
         FormatRate(f.mismatches(), f.compared()) + " vs noise " +
         FormatRate(f.noise_mismatches(), f.noise_compared()) + ")";
}

std::string FailureMessage(const EndpointReport& e, const JUnitOptions& options) {
  std::string msg;
  if (e.regressions() > 0) {
    msg = std::to_string(e.regressions()) +
          (e.regressions() == 1 ? " regression: " : " regressions: ");
    size_t shown = 0;
    for (const FieldReport& f : e.fields()) {
      if (!Is(f, FieldVerdict::kRegression)) continue;
      if (shown == options.max_paths_in_message) {
        msg += "; ...";
        break;
      }
      if (shown++ > 0) msg += "; ";
      msg += FieldSummary(f);
    }
  }
  if (e.error_rate_exceeded()) {
    if (!msg.empty()) msg += "; ";
    msg += "errors " + std::to_string(e.errors()) + "/" + std::to_string(OrganicRequests(e)) +
           " (" + FormatRate(e.errors(), OrganicRequests(e)) + ")";
  }
  return msg;
}

// Injected faults (replay --fault) of a passing endpoint: never a failure, shown as output.
std::string FaultsOut(const EndpointReport& e) {
  if (!e.has_faults()) return "";
  return "      <system-out>" +
         XmlEscape("faults injected (not errors, never regressions): " + FaultsLine(e.faults()),
                   /*attribute=*/false) +
         "</system-out>\n";
}

std::string FailureText(const EndpointReport& e, const JUnitOptions& options) {
  std::string text = e.name() + ": " + std::to_string(e.requests()) + " requests, " +
                     std::to_string(e.compared()) + " compared, " + std::to_string(e.mismatched()) +
                     " mismatched, " + std::to_string(e.errors()) + " errors\n";
  if (e.has_faults()) text += "faults: " + FaultsLine(e.faults()) + "\n";
  if (e.errors() > 0) {
    text += "errors:";
    for (const auto& [reason, count] : SortedReasons(e.errors_by_reason())) {
      text += " " + reason + "=" + std::to_string(count);
    }
    text += "\n";
  }
  size_t shown = 0;
  for (const FieldReport& f : e.fields()) {
    if (!Is(f, FieldVerdict::kRegression)) continue;
    if (shown++ == options.max_fields_in_text) {
      text += "...\n";
      break;
    }
    text += "\n" + FieldSummary(f) +
            (f.noise_compared() > 0 ? ", p-value " + FormatPValue(f.p_value()) : std::string()) +
            "\n";
    if (f.exemplars().empty()) continue;
    const Exemplar& x = f.exemplars(0);
    text += "  request:  " + x.method() + " " + x.target() + "\n";
    text += "  path:     " + x.path() + " (" + std::string(x.kind()) + ")\n";
    text += "  status:   " + std::to_string(x.expected_status()) + " -> " +
            std::to_string(x.actual_status()) + "\n";
    text += "  expected: " + (x.expected().empty() ? std::string("(absent)") : x.expected()) + "\n";
    text += "  actual:   " + (x.actual().empty() ? std::string("(absent)") : x.actual()) + "\n";
    if (!x.detail().empty()) text += "  detail:   " + x.detail() + "\n";
  }
  return text;
}

}  // namespace

std::string XmlEscape(std::string_view raw, bool attribute) {
  std::string text = SanitizeUtf8(raw);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '&':
        out += "&amp;";
        continue;
      case '<':
        out += "&lt;";
        continue;
      case '>':
        out += "&gt;";
        continue;
      case '"':
        out += attribute ? "&quot;" : "\"";
        continue;
      case '\'':
        out += attribute ? "&apos;" : "'";
        continue;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        continue;
      case '\n':
        out += attribute ? "&#10;" : "\n";
        continue;
      case '\r':
        out += "&#13;";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      AppendHexEscape(c, &out);
    } else if (c == 0xEF && i + 2 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) == 0xBF &&
               (static_cast<unsigned char>(text[i + 2]) == 0xBE ||
                static_cast<unsigned char>(text[i + 2]) == 0xBF)) {
      out += "\xEF\xBF\xBD";  // U+FFFE / U+FFFF are not XML characters
      i += 2;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string RenderJUnit(const Report& report, const JUnitOptions& options) {
  uint64_t tests = 0, failures = 0, skipped = 0, time_us = 0;
  std::string suites;
  for (const TargetReport& t : report.targets()) {
    uint64_t suite_failures = 0, suite_skipped = 0, suite_us = 0;
    std::string cases;
    for (const EndpointReport& e : t.endpoints()) {
      suite_us += e.latency().sum_us();
      cases += "    <testcase" + Attr("classname", t.name()) + Attr("name", e.name()) +
               Attr("time", Seconds(e.latency().sum_us()));
      if (e.failed()) {
        ++suite_failures;
        cases += ">\n      <failure" + Attr("message", FailureMessage(e, options)) +
                 Attr("type", e.regressions() > 0 ? "regression" : "errors") + ">" +
                 XmlEscape(FailureText(e, options), /*attribute=*/false) +
                 "</failure>\n    </testcase>\n";
      } else if (e.compared() == 0 && e.errors() == 0) {
        ++suite_skipped;
        cases += ">\n      <skipped" + Attr("message", "no response was compared") + "/>\n" +
                 FaultsOut(e) + "    </testcase>\n";
      } else if (e.has_faults()) {
        cases += ">\n" + FaultsOut(e) + "    </testcase>\n";
      } else {
        cases += "/>\n";
      }
    }
    suites += "  <testsuite" + Attr("name", t.name()) +
              Attr("tests", std::to_string(t.endpoints().size())) +
              Attr("failures", std::to_string(suite_failures)) + Attr("errors", "0") +
              Attr("skipped", std::to_string(suite_skipped)) + Attr("time", Seconds(suite_us));
    suites += t.endpoints().empty() ? "/>\n" : ">\n" + cases + "  </testsuite>\n";
    tests += t.endpoints().size();
    failures += suite_failures;
    skipped += suite_skipped;
    time_us += suite_us;
  }
  std::string name = report.session().empty() ? "doppel" : "doppel " + report.session();
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites" + Attr("name", name) + Attr("tests", std::to_string(tests)) +
         Attr("failures", std::to_string(failures)) + Attr("errors", "0") +
         Attr("skipped", std::to_string(skipped)) + Attr("time", Seconds(time_us));
  out += report.targets().empty() ? "/>\n" : ">\n" + suites + "</testsuites>\n";
  return out;
}

}  // namespace doppel::report
