#include "report/report.h"

#include <cctype>

#include <cstdio>

#include "base/strings.h"

namespace doppel::report {
namespace {

}  // namespace

std::string_view VerdictName(FieldVerdict verdict) {
  switch (verdict) {
    case FieldVerdict::kOk:
      return "ok";
    case FieldVerdict::kTolerated:
      return "tolerated";
    case FieldVerdict::kRegression:
      return "regression";
  }
  return "ok";
}

Result<FieldVerdict> ParseVerdict(std::string_view name) {
  for (FieldVerdict v : {FieldVerdict::kOk, FieldVerdict::kTolerated, FieldVerdict::kRegression}) {
    if (name == VerdictName(v)) return v;
  }
  return Status::InvalidArgument("unknown verdict \"" + std::string(name) +
                                 "\" (expected ok, tolerated or regression)");
}

Result<diff::Severity> ParseSeverity(std::string_view name) {
  for (diff::Severity s : {diff::Severity::kLow, diff::Severity::kMedium, diff::Severity::kHigh}) {
    if (EqualsIgnoreCase(name, diff::SeverityName(s))) return s;
  }
  return Status::InvalidArgument("unknown severity \"" + std::string(name) +
                                 "\" (expected low, medium or high)");
}

Result<diff::DiffKind> ParseKind(std::string_view name) {
  for (diff::DiffKind k : {diff::DiffKind::kMissing, diff::DiffKind::kExtra, diff::DiffKind::kType,
                           diff::DiffKind::kValue, diff::DiffKind::kArraySize,
                           diff::DiffKind::kOrder, diff::DiffKind::kUncompared}) {
    if (name == diff::KindName(k)) return k;
  }
  return Status::InvalidArgument("unknown diff kind \"" + std::string(name) + "\"");
}

void StatusCounts::Add(uint32_t status) {
  if (status >= 100 && status < 200) {
    ++s1xx;
  } else if (status >= 200 && status < 300) {
    ++s2xx;
  } else if (status >= 300 && status < 400) {
    ++s3xx;
  } else if (status >= 400 && status < 500) {
    ++s4xx;
  } else if (status >= 500 && status < 600) {
    ++s5xx;
  } else {
    ++other;
  }
}

void StatusCounts::Add(const StatusCounts& o) {
  s1xx += o.s1xx;
  s2xx += o.s2xx;
  s3xx += o.s3xx;
  s4xx += o.s4xx;
  s5xx += o.s5xx;
  other += o.other;
}

std::string FormatRate(uint64_t count, uint64_t total) {
  if (total == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%",
                100.0 * static_cast<double>(count) / static_cast<double>(total));
  return buf;
}

std::string FormatLatency(uint64_t us) {
  char buf[32];
  if (us < 1000) {
    std::snprintf(buf, sizeof(buf), "%lluus", static_cast<unsigned long long>(us));
  } else if (us < 10'000) {
    std::snprintf(buf, sizeof(buf), "%.2fms", static_cast<double>(us) / 1e3);
  } else if (us < 1'000'000) {
    std::snprintf(buf, sizeof(buf), "%.1fms", static_cast<double>(us) / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2fs", static_cast<double>(us) / 1e6);
  }
  return buf;
}

std::string VerdictLine(const Report& report) {
  std::string exit = " \xE2\x80\x94 exit " + std::to_string(report.exit_code);
  if (report.regressions == 0) return "no regressions" + exit;
  return std::to_string(report.regressions) +
         (report.regressions == 1 ? " regression in " : " regressions in ") +
         std::to_string(report.failed_endpoints) +
         (report.failed_endpoints == 1 ? " endpoint" : " endpoints") + exit;
}

}  // namespace doppel::report
