#include "report/report.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstdio>

#include "base/enum_names.h"
#include "base/strings.h"

namespace doppel::report {
namespace {
constexpr EnumNames<FieldVerdict, 3> kVerdictNames{{"ok", "tolerated", "regression"}, "ok"};
}  // namespace

std::string_view VerdictName(FieldVerdict verdict) { return kVerdictNames.Name(verdict); }

Result<FieldVerdict> ParseVerdict(std::string_view name) {
  return kVerdictNames.ParseOrError(name, "verdict");
}

Result<diff::Severity> ParseSeverity(std::string_view name) {
  return diff::kSeverityNames.ParseOrError(name, "severity");
}

Result<diff::DiffKind> ParseKind(std::string_view name) {
  return diff::kDiffKindNames.ParseOrError(name, "diff kind");
}

bool Is(const FieldReport& field, FieldVerdict verdict) {
  return field.verdict() == VerdictName(verdict);
}

void AddStatus(uint32_t status, StatusCounts* counts) {
  if (status >= 100 && status < 200) {
    counts->set_s1xx(counts->s1xx() + 1);
  } else if (status >= 200 && status < 300) {
    counts->set_s2xx(counts->s2xx() + 1);
  } else if (status >= 300 && status < 400) {
    counts->set_s3xx(counts->s3xx() + 1);
  } else if (status >= 400 && status < 500) {
    counts->set_s4xx(counts->s4xx() + 1);
  } else if (status >= 500 && status < 600) {
    counts->set_s5xx(counts->s5xx() + 1);
  } else {
    counts->set_other(counts->other() + 1);
  }
}

void AddStatus(const StatusCounts& from, StatusCounts* to) {
  to->set_s1xx(to->s1xx() + from.s1xx());
  to->set_s2xx(to->s2xx() + from.s2xx());
  to->set_s3xx(to->s3xx() + from.s3xx());
  to->set_s4xx(to->s4xx() + from.s4xx());
  to->set_s5xx(to->s5xx() + from.s5xx());
  to->set_other(to->other() + from.other());
}

std::vector<std::pair<std::string, uint64_t>> SortedReasons(
    const google::protobuf::Map<std::string, uint64_t>& errors_by_reason) {
  std::vector<std::pair<std::string, uint64_t>> out(errors_by_reason.begin(),
                                                    errors_by_reason.end());
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// The highest value of the coarse bucket (8 per power of two, exact below 16) holding `value`.
uint64_t CoarseHighest(uint64_t value) {
  constexpr int kSubBits = 3;
  if (value < (uint64_t{2} << kSubBits)) return value;
  int shift = std::bit_width(value) - 1 - kSubBits;
  return (((value >> shift) + 1) << shift) - 1;
}

}  // namespace

v1::Latency LatencyOf(const LatencyHistogram& histogram) {
  const LatencySummary summary = histogram.Summary();
  v1::Latency l;
  l.set_count(summary.count);
  l.set_sum_us(summary.sum_us);
  l.set_p50_us(summary.p50_us);
  l.set_p90_us(summary.p90_us);
  l.set_p99_us(summary.p99_us);
  l.set_max_us(summary.max_us);
  l.set_p999_us(histogram.Percentile(99.9));
  // The histogram's buckets nest in the coarse ones (both split powers of two evenly), so
  // each fine bucket's highest value names its coarse bucket.
  const std::vector<uint64_t>& counts = histogram.bucket_counts();
  for (size_t b = 0; b < counts.size(); ++b) {
    if (counts[b] == 0) continue;
    uint64_t le = std::min(CoarseHighest(LatencyHistogram::HighestOf(b)), summary.max_us);
    if (l.bucket_le_us_size() > 0 && l.bucket_le_us(l.bucket_le_us_size() - 1) == le) {
      l.set_bucket_counts(l.bucket_counts_size() - 1,
                          l.bucket_counts(l.bucket_counts_size() - 1) + counts[b]);
    } else {
      l.add_bucket_le_us(le);
      l.add_bucket_counts(counts[b]);
    }
  }
  return l;
}

std::string FormatChange(uint64_t from, uint64_t to) {
  if (from == 0) return "-";
  char buf[32];
  std::snprintf(
      buf, sizeof(buf), "%+.1f%%",
      100.0 * (static_cast<double>(to) - static_cast<double>(from)) / static_cast<double>(from));
  return buf;
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

std::string FormatPValue(double p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", p);
  return buf;
}

std::string FaultsLine(const v1::FaultCounts& faults) {
  auto counts = [](const google::protobuf::Map<std::string, uint64_t>& by) {
    std::string out;
    for (const auto& [name, n] : SortedReasons(by)) {
      out += (out.empty() ? "" : ", ") + name + " " + std::to_string(n);
    }
    return out;
  };
  std::string line = std::to_string(faults.injected()) + " injected (" + counts(faults.by_kind()) +
                     "): " + std::to_string(faults.errors()) + " not answered";
  if (faults.errors() > 0) line += " (" + counts(faults.errors_by_reason()) + ")";
  return line + ", " + std::to_string(faults.answered()) + " answered, " +
         std::to_string(faults.mismatched()) + " of them differed";
}

std::string VerdictLine(const Report& report) {
  const v1::ReportVerdict& v = report.verdict();
  std::string exit = " \xE2\x80\x94 exit " + std::to_string(v.exit_code());
  if (v.regressions() == 0) return "no regressions" + exit;
  return std::to_string(v.regressions()) +
         (v.regressions() == 1 ? " regression in " : " regressions in ") +
         std::to_string(v.failed_endpoints()) +
         (v.failed_endpoints() == 1 ? " endpoint" : " endpoints") + exit;
}

}  // namespace doppel::report
