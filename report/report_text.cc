#include "report/report_text.h"

#include <algorithm>
#include <cstdio>

#include "net/url.h"
#include "report/excerpt.h"

namespace doppel::report {
namespace {

constexpr size_t kMinNameWidth = 28;
constexpr size_t kMaxNameWidth = 48;
// REQUESTS, 2XX, 3XX, 4XX, 5XX, ERRORS, MATCH: what precedes the latency columns.
constexpr size_t kCountColumnsWidth = 10 + 8 + 7 + 7 + 7 + 8 + 8;

// Escapes C0 and C1 controls and DEL so traffic cannot drive the terminal (U+009B is a CSI
// to some terminals).
std::string Safe(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    auto c = static_cast<unsigned char>(ch);
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(s[i + 1]));
      out += buf;
      ++i;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      AppendHexEscape(c, &out);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

// Display width in columns, counting each UTF-8 code point as one.
size_t Width(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// `s` cut to `width` columns ("..." marking a cut), on code point boundaries.
std::string Fit(std::string_view s, size_t width) {
  if (Width(s) <= width) return std::string(s);
  size_t keep = width > 3 ? width - 3 : 0, cols = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cols == keep) break;
      ++cols;
    }
  }
  return std::string(s.substr(0, i)) + std::string("...").substr(0, width - keep);
}

std::string PadRight(std::string_view s, size_t width) {
  std::string out = Fit(s, width);
  out.append(width - Width(out), ' ');
  return out;
}

std::string PadLeft(std::string_view s, size_t width) {
  std::string out = Fit(s, width);
  return std::string(width - Width(out), ' ') + out;
}

class Painter {
 public:
  explicit Painter(bool on) : on_(on) {}
  std::string Bold(std::string_view s) const { return Wrap("\x1b[1m", s); }
  std::string Red(std::string_view s) const { return Wrap("\x1b[31m", s); }
  std::string Green(std::string_view s) const { return Wrap("\x1b[32m", s); }
  std::string Yellow(std::string_view s) const { return Wrap("\x1b[33m", s); }
  std::string Dim(std::string_view s) const { return Wrap("\x1b[2m", s); }

 private:
  std::string Wrap(std::string_view code, std::string_view s) const {
    if (!on_) return std::string(s);
    return std::string(code) + std::string(s) + "\x1b[0m";
  }
  bool on_;
};

std::string Latencies(const v1::Latency& l) {
  if (l.count() == 0) return PadLeft("-", 9) + PadLeft("-", 9) + PadLeft("-", 9) + PadLeft("-", 9);
  return PadLeft(FormatLatency(l.p50_us()), 9) + PadLeft(FormatLatency(l.p90_us()), 9) +
         PadLeft(FormatLatency(l.p99_us()), 9) + PadLeft(FormatLatency(l.max_us()), 9);
}

std::string Kinds(const FieldReport& f) {
  std::string out;
  for (const std::string& k : f.kinds()) {
    if (!out.empty()) out += ",";
    out += k;
  }
  return out;
}

std::string ErrorsLine(const google::protobuf::Map<std::string, uint64_t>& reasons) {
  std::string out;
  for (const auto& [reason, count] : SortedReasons(reasons)) {
    if (!out.empty()) out += ", ";
    out += Safe(reason) + " " + std::to_string(count);
  }
  return out;
}

// "body.ts 120/120, headers.x-id 60/120 (+2 more)" or "body.created_at (1234×), ...".
template <typename Items, typename Format>
std::string Listing(const Items& items, size_t max, Format format) {
  std::string out;
  size_t shown = 0;
  for (const auto& item : items) {
    if (shown == max) {
      out += " (+" + std::to_string(static_cast<size_t>(items.size()) - shown) + " more)";
      break;
    }
    if (shown > 0) out += ", ";
    out += format(item);
    ++shown;
  }
  return out;
}

}  // namespace

std::string TerminalSafe(std::string_view text) { return Safe(text); }

std::string RenderText(const Report& report, const TextOptions& options) {
  Painter paint(options.color);
  const bool many_targets = report.targets().size() > 1;
  std::string out;

  std::string ident;
  if (!report.run_id().empty()) ident += "  run " + Safe(report.run_id());
  if (!report.session().empty()) ident += "  session " + Safe(report.session());
  if (!report.settings().secondary().empty())
    ident += "  secondary " + Safe(report.settings().secondary());
  if (!report.generated_at().empty()) ident += "  " + Safe(report.generated_at());
  if (!ident.empty()) out += paint.Bold("doppel report") + ident + "\n\n";

  // The summary table.
  size_t name_width = kMinNameWidth;
  for (const TargetReport& t : report.targets()) {
    name_width = std::max(name_width, std::min(kMaxNameWidth, Width(Safe(t.name()))));
  }
  std::string header = PadRight("TARGET", name_width) + PadLeft("REQUESTS", 10) +
                       PadLeft("2XX", 8) + PadLeft("3XX", 7) + PadLeft("4XX", 7) +
                       PadLeft("5XX", 7) + PadLeft("ERRORS", 8) + PadLeft("MATCH", 8) +
                       PadLeft("P50", 9) + PadLeft("P90", 9) + PadLeft("P99", 9) +
                       PadLeft("MAX", 9);
  out += paint.Bold(header) + "\n";
  for (const TargetReport& t : report.targets()) {
    out += PadRight(Safe(t.name()), name_width) + PadLeft(std::to_string(t.requests()), 10) +
           PadLeft(std::to_string(t.status().s2xx()), 8) +
           PadLeft(std::to_string(t.status().s3xx()), 7) +
           PadLeft(std::to_string(t.status().s4xx()), 7) +
           PadLeft(std::to_string(t.status().s5xx()), 7) + PadLeft(std::to_string(t.errors()), 8) +
           PadLeft(FormatRate(t.matched(), t.compared()), 8) + Latencies(t.latency()) + "\n";
    out += paint.Dim(PadRight("  recorded", name_width + kCountColumnsWidth) +
                     Latencies(t.recorded_latency())) +
           "\n";
    if (t.has_faults()) out += "  faults " + Safe(FaultsLine(t.faults())) + "\n";
  }

  // Regressions (and tolerated significant differences), per target and endpoint.
  for (const TargetReport& t : report.targets()) {
    bool any = false;
    for (const EndpointReport& e : t.endpoints()) {
      bool tolerated = std::any_of(e.fields().begin(), e.fields().end(), [](const FieldReport& f) {
        return Is(f, FieldVerdict::kTolerated);
      });
      if (!e.failed() && !tolerated) continue;
      if (!any) {
        out += "\n" + paint.Bold("regressions on " + Safe(t.name())) + "\n";
        any = true;
      }
      std::string title = "  " + Safe(e.name());
      out += (e.failed() ? paint.Red(title) : paint.Yellow(title)) + "  " +
             std::to_string(e.requests()) + " requests, " + std::to_string(e.mismatched()) +
             " mismatched (" + FormatRate(e.mismatched(), e.compared()) + ")\n";
      if (e.errors() > 0) {
        std::string line = "    errors " + std::to_string(e.errors()) + "/" +
                           std::to_string(OrganicRequests(e)) + " (" +
                           FormatRate(e.errors(), OrganicRequests(e)) +
                           "): " + ErrorsLine(e.errors_by_reason());
        out += (e.error_rate_exceeded() ? paint.Red(line) : line) + "\n";
      }
      size_t rows = 0, significant = 0;
      for (const FieldReport& f : e.fields()) {
        if (Is(f, FieldVerdict::kOk)) continue;
        ++significant;
        if (rows == options.max_fields) continue;
        if (rows++ == 0) {
          out += paint.Dim("    " + PadRight("FIELD", 32) + PadRight("KIND", 18) +
                           PadRight("SEVERITY", 10) + PadLeft("MISMATCHES", 14) +
                           PadLeft("RATE", 8) + PadLeft("NOISE", 8)) +
                 "\n";
        }
        std::string row =
            "    " + PadRight(Safe(f.path()), 32) + PadRight(Kinds(f), 18) +
            PadRight(f.severity(), 10) +
            PadLeft(std::to_string(f.mismatches()) + "/" + std::to_string(f.compared()), 14) +
            PadLeft(FormatRate(f.mismatches(), f.compared()), 8) +
            PadLeft(FormatRate(f.noise_mismatches(), f.noise_compared()), 8);
        if (Is(f, FieldVerdict::kTolerated)) {
          out += paint.Yellow(row + "  tolerated") + "\n";
        } else {
          out += row + "\n";
        }
        if (!f.exemplars().empty()) {
          const Exemplar& x = f.exemplars(0);
          auto value = [&](const std::string& v) {
            return v.empty() ? std::string("(absent)")
                             : Safe(diff::Abbreviate(v, options.max_value_bytes));
          };
          if (!options.show_values) {
            const std::string path(net::TargetPath(x.target()));
            out += paint.Dim("      e.g. " + Safe(x.method()) + " " +
                             Safe(diff::Abbreviate(path, 80)) + "  " + Safe(x.path()) +
                             ": values not shown (--log-bodies shows them; so do the HTML "
                             "and JSON reports)") +
                   "\n";
          } else {
            out +=
                paint.Dim("      e.g. " + Safe(x.method()) + " " +
                          Safe(diff::Abbreviate(x.target(), 80)) + "  " + Safe(x.path()) + ": ") +
                value(x.expected()) + " \xE2\x86\x92 " + value(x.actual()) + "\n";
          }
        }
      }
      if (significant > rows) {
        out += "    (+" + std::to_string(significant - rows) + " more fields)\n";
      }
    }
  }

  // Compact listings: noise, normalized, ignored.
  auto section = [&](std::string_view title, auto lines_of) {
    std::string body;
    for (const TargetReport& t : report.targets()) {
      for (const EndpointReport& e : t.endpoints()) {
        std::string line = lines_of(e);
        if (line.empty()) continue;
        body += "  " + (many_targets ? Safe(t.name()) + " " : std::string()) + Safe(e.name()) +
                ": " + line + "\n";
      }
    }
    if (!body.empty()) out += "\n" + paint.Bold(std::string(title)) + "\n" + body;
  };
  section("noise (masked)", [&](const EndpointReport& e) {
    std::vector<const FieldReport*> noisy;
    for (const FieldReport& f : e.fields()) {
      if (f.noise_mismatches() > 0) noisy.push_back(&f);
    }
    std::stable_sort(noisy.begin(), noisy.end(), [](const FieldReport* a, const FieldReport* b) {
      return a->noise_mismatches() > b->noise_mismatches();
    });
    return Listing(noisy, options.max_listed_paths, [](const FieldReport* f) {
      return Safe(f->path()) + " " + std::to_string(f->noise_mismatches()) + "/" +
             std::to_string(f->noise_compared());
    });
  });
  auto counted = [&](const google::protobuf::RepeatedPtrField<PathCount>& items) {
    return Listing(items, options.max_listed_paths, [](const PathCount& c) {
      return Safe(c.path()) + " (" + std::to_string(c.count()) + "\xC3\x97)";
    });
  };
  section("normalized", [&](const EndpointReport& e) { return counted(e.normalized()); });
  section("ignored", [&](const EndpointReport& e) { return counted(e.ignored()); });
  section("faults injected (replay --fault: not errors, never regressions)",
          [&](const EndpointReport& e) {
            return e.has_faults() ? Safe(FaultsLine(e.faults())) : std::string();
          });

  // Stateful replay: what was carried from earlier answers into later requests.
  if (report.has_correlation()) {
    const auto& c = report.correlation();
    out += "\n" + paint.Bold("correlation (" + Safe(c.mode()) + ")") + "  " +
           std::to_string(c.substituted()) + " substituted, " + std::to_string(c.unanswered()) +
           " sent unchanged (source never answered), " + std::to_string(c.cookies_applied()) +
           " requests with jar cookies\n";
    if (c.correlations().empty()) out += "  no correlations learned from the recording\n";
    for (const auto& k : c.correlations()) {
      std::string line = "  " + (k.rule().empty() ? "" : "rule " + Safe(k.rule()) + ": ") +
                         Safe(k.source_endpoint()) + " " + Safe(k.source_location()) +
                         " \xE2\x86\x92 " + Safe(k.sink_endpoint()) + " " +
                         Safe(k.sink_location()) + "  " + std::to_string(k.substituted()) + "/" +
                         std::to_string(k.recorded()) + " substituted";
      if (k.unanswered() > 0) line += ", " + std::to_string(k.unanswered()) + " unanswered";
      out += (k.unanswered() > 0 ? paint.Yellow(line) : line) + "\n";
    }
  }

  std::string verdict = VerdictLine(report);
  out +=
      "\n" + (report.verdict().exit_code() == 0 ? paint.Green(verdict) : paint.Red(verdict)) + "\n";
  return out;
}

}  // namespace doppel::report
