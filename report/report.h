// Report: everything a replay run found — the message doppel.v1.Report
// (proto/doppel/v1/report.proto) that the aggregator (aggregate.h) produces and every
// renderer (report_text.h, report_json.h, report_junit.h, report_html.h) reads. Nothing in it
// points into the run; the run record stores it (run.proto RunInfo.report) and
// `doppel report --run ID` renders it again. docs/report-format.md documents every field;
// this header adds names for its messages and the helpers the aggregator and renderers share.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/latency_histogram.h"
#include "base/status.h"
#include "diff/result.h"
#include "diff/significance.h"
#include "doppel/v1/report.pb.h"

namespace doppel::report {

inline constexpr std::string_view kReportSchema = "doppel.report/v1";

// What the run decided about one field of one endpoint.
enum class FieldVerdict {
  kOk,          // no candidate mismatch rate significantly above the noise rate
  kTolerated,   // significant, but under --fail-threshold or below --fail-on severity
  kRegression,  // significant, over the threshold and at least --fail-on severe
  kMaxValue = kRegression,
};
std::string_view VerdictName(FieldVerdict verdict);  // "ok", "tolerated", "regression"
Result<FieldVerdict> ParseVerdict(std::string_view name);
// "low", "medium", "high" (case-insensitive) -> Severity; for --fail-on.
Result<diff::Severity> ParseSeverity(std::string_view name);
// "missing", "extra", ... (the names of diff::KindName) -> DiffKind.
Result<diff::DiffKind> ParseKind(std::string_view name);

// The report's messages (proto/doppel/v1/report.proto: every field, its JSON name and order).
using Report = v1::Report;
using ReportSettings = v1::ReportSettings;
using TargetReport = v1::TargetReport;
using EndpointReport = v1::EndpointReport;
using FieldReport = v1::FieldReport;
using Exemplar = v1::Exemplar;
using StatusCounts = v1::StatusCounts;
using PathCount = v1::PathCount;

// The verdict of `field` is `verdict` (FieldReport.verdict holds its VerdictName).
bool Is(const FieldReport& field, FieldVerdict verdict);

// Counts one response of `status` in its class.
void AddStatus(uint32_t status, StatusCounts* counts);
// Adds every class of `from` to `to`.
void AddStatus(const StatusCounts& from, StatusCounts* to);

// errors_by_reason in reason order (a protobuf map iterates in no defined order).
std::vector<std::pair<std::string, uint64_t>> SortedReasons(
    const google::protobuf::Map<std::string, uint64_t>& errors_by_reason);

// A histogram as the report carries it: its summary, p99.9 and its distribution coarsened to
// 8 buckets per power of two (report.proto Latency).
v1::Latency LatencyOf(const LatencyHistogram& histogram);

// The percentiles the charts mark and the run comparison lists, with their Latency field.
struct MarkedPercentile {
  std::string_view name;  // "p99.9"
  double percent;         // 99.9
  uint64_t (v1::Latency::*value)() const;
};
inline constexpr MarkedPercentile kMarkedPercentiles[] = {{"p50", 50, &v1::Latency::p50_us},
                                                          {"p90", 90, &v1::Latency::p90_us},
                                                          {"p99", 99, &v1::Latency::p99_us},
                                                          {"p99.9", 99.9, &v1::Latency::p999_us}};

// The timeline's bound: past it, buckets get twice as wide (report.proto Timeline).
inline constexpr size_t kMaxTimelineBuckets = 600;

// Percent with one decimal, "33.3%"; "-" when total is 0.
std::string FormatRate(uint64_t count, uint64_t total);
// "850us", "1.25ms", "12.5ms", "3.20s".
std::string FormatLatency(uint64_t us);
// The change from `from` to `to` in percent with one decimal and a sign, "+12.5%"; "-" when
// `from` is 0.
std::string FormatChange(uint64_t from, uint64_t to);
// Three significant digits: "0.0123", "1e-05".
std::string FormatPValue(double p);
// The exchanges of `e` without an injected fault: what its error rate is over.
inline uint64_t OrganicRequests(const EndpointReport& e) {
  return e.requests() - std::min(e.requests(), e.faults().injected());
}
// Injected faults (replay --fault) in one line: "12 injected (abort 10, delay 3): 10 not
// answered (abort 10), 2 answered, 0 of them differed".
std::string FaultsLine(const v1::FaultCounts& faults);
// The headline: "3 regressions in 2 endpoints — exit 1" / "no regressions — exit 0".
std::string VerdictLine(const Report& report);

}  // namespace doppel::report
