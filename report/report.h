// Report: everything a replay run found, as plain data — what the aggregator (aggregate.h)
// produces and what every renderer (report_text.h, report_json.h, report_junit.h,
// report_html.h) reads. Nothing here points into the run; a Report can be stored as JSON
// and rendered again later (`doppel report --run ID`). docs/report-format.md documents
// every field.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/latency_histogram.h"
#include "base/status.h"
#include "diff/result.h"
#include "diff/significance.h"

namespace doppel::report {

inline constexpr std::string_view kReportSchema = "doppel.report/v1";

// What the run decided about one field of one endpoint.
enum class FieldVerdict {
  kOk,          // no candidate mismatch rate significantly above the noise rate
  kTolerated,   // significant, but under --fail-threshold or below --fail-on severity
  kRegression,  // significant, over the threshold and at least --fail-on severe
};
std::string_view VerdictName(FieldVerdict verdict);  // "ok", "tolerated", "regression"
Result<FieldVerdict> ParseVerdict(std::string_view name);
// "low", "medium", "high" (case-insensitive) -> Severity; for --fail-on.
Result<diff::Severity> ParseSeverity(std::string_view name);
// "missing", "extra", ... (the names of diff::KindName) -> DiffKind.
Result<diff::DiffKind> ParseKind(std::string_view name);

// Microseconds. count == 0 means no sample, and then every other field is 0.
// Responses by status class; `other` is anything outside 100..599.
struct StatusCounts {
  uint64_t s1xx = 0, s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0, other = 0;
  void Add(uint32_t status);
  void Add(const StatusCounts& other);
  bool operator==(const StatusCounts&) const = default;
};

struct NamedCount {
  std::string name;
  uint64_t count = 0;
  bool operator==(const NamedCount&) const = default;
};

// One sampled mismatch of a field, with enough of the exchange to show it side by side.
struct Exemplar {
  std::string method;        // of the request
  std::string target;        // request-target as recorded, "/users/42?x=1"
  std::string request_body;  // excerpt, abbreviated
  std::string path;          // the concrete path, "body.items[3].price"
  diff::DiffKind kind = diff::DiffKind::kValue;
  diff::Severity severity = diff::Severity::kLow;
  std::string expected;  // short renderings from the diff ("" when absent)
  std::string actual;
  std::string detail;
  uint32_t expected_status = 0;  // recorded primary
  uint32_t actual_status = 0;    // the target's (noise exemplars: the secondary's, or 0)
  // Whole bodies for a side-by-side view: decoded, JSON pretty-printed, invalid UTF-8
  // replaced, abbreviated to AggregatorOptions::max_body_bytes ("…" marks a cut). Empty past
  // AggregatorOptions::max_exemplar_body_bytes, and in noise exemplars when the replayer did
  // not pass the secondary's response.
  std::string expected_body;
  std::string actual_body;
  bool operator==(const Exemplar&) const = default;
};

// One field path of one endpoint on one target. Counts are of requests: a request whose
// body.items[0].id and body.items[5].id both differ counts once for body.items[*].id.
struct FieldReport {
  std::string path;                   // array indexes generalized: "body.items[*].price"
  uint64_t mismatches = 0;            // candidate mismatches not masked by noise
  uint64_t compared = 0;              // requests compared where this field was not masked
  uint64_t masked = 0;                // candidate mismatches masked (the secondary differed too)
  uint64_t noise_mismatches = 0;      // requests where recorded primary and secondary differed
  uint64_t noise_compared = 0;        // requests compared against the secondary
  std::vector<diff::DiffKind> kinds;  // seen on the candidate or the secondary, sorted
  diff::Severity severity = diff::Severity::kLow;  // worst unmasked; else worst seen
  double p_value = 1.0;                            // diff::RegressionPValue; 1 without noise data
  FieldVerdict verdict = FieldVerdict::kOk;
  std::vector<Exemplar> exemplars;        // candidate vs recorded, unmasked mismatches
  std::vector<Exemplar> noise_exemplars;  // secondary vs recorded
  bool operator==(const FieldReport&) const = default;
};

struct EndpointReport {
  std::string name;                          // "GET /users/{id}"
  uint64_t requests = 0;                     // observations, failed exchanges included
  uint64_t errors = 0;                       // exchanges that got no response
  std::vector<NamedCount> errors_by_reason;  // sorted by name
  StatusCounts status;                       // of the target's responses
  uint64_t compared = 0;                     // responses diffed against the recording
  uint64_t matched = 0;                      // compared with no difference left after masking
  uint64_t mismatched = 0;                   // compared - matched
  uint64_t noise_compared = 0;               // requests that also have a secondary-vs-recorded diff
  uint64_t untracked_fields = 0;             // field mismatches past max_fields_per_endpoint
  LatencySummary recorded_latency;           // the primary's, from the recording
  LatencySummary latency;                    // the target's, from the due time
  // Regressions first, then tolerated, then by mismatches, noise mismatches (descending),
  // then path.
  std::vector<FieldReport> fields;
  std::vector<NamedCount> normalized;  // generalized paths, requests; count desc, name
  std::vector<NamedCount> ignored;
  bool error_rate_exceeded = false;  // errors / requests > --fail-threshold
  uint64_t regressions = 0;          // fields with verdict regression
  bool failed = false;               // regressions > 0 || error_rate_exceeded
  bool operator==(const EndpointReport&) const = default;
};

struct TargetReport {
  uint32_t index = 0;  // Observation::target
  std::string name;    // the target URL as given
  // Sums over the endpoints.
  uint64_t requests = 0, errors = 0, compared = 0, matched = 0, mismatched = 0;
  std::vector<NamedCount> errors_by_reason;
  StatusCounts status;
  LatencySummary recorded_latency;
  LatencySummary latency;
  std::vector<EndpointReport> endpoints;  // sorted by name
  uint64_t regressions = 0;  // the endpoints' regressions, plus 1 per error-rate failure
  uint64_t failed_endpoints = 0;
  bool operator==(const TargetReport&) const = default;
};

// The decision rules a report was produced under.
struct ReportSettings {
  double fail_threshold_pct = 0;                  // --fail-threshold
  diff::Severity fail_on = diff::Severity::kLow;  // --fail-on
  double alpha = 0.01;                            // significance.h Thresholds
  uint64_t min_samples = 30;
  double min_rate_difference = 0.01;
  std::string secondary;  // --secondary URL, "" if none
  bool operator==(const ReportSettings&) const = default;
};

struct Report {
  // Identification, copied from AggregatorOptions; "" = not given (and omitted from JSON).
  std::string run_id;
  std::string session;
  std::string generated_at;  // injected by the caller; never read from a clock here
  ReportSettings settings;
  std::vector<TargetReport> targets;  // in Observation::target order
  uint64_t regressions = 0;           // sum over targets
  uint64_t failed_endpoints = 0;      // sum over targets ((target, endpoint) pairs)
  int exit_code = 0;                  // 0: no regression, 1: regressions
  bool operator==(const Report&) const = default;
};

// Percent with one decimal, "33.3%"; "-" when total is 0.
std::string FormatRate(uint64_t count, uint64_t total);
// "850us", "1.25ms", "12.5ms", "3.20s".
std::string FormatLatency(uint64_t us);
// The headline: "3 regressions in 2 endpoints — exit 1" / "no regressions — exit 0".
std::string VerdictLine(const Report& report);

}  // namespace doppel::report
