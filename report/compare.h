// Comparison of two replay runs' reports (`doppel report --compare RUN_A RUN_B`): which
// regressions are new in B, fixed in B and still present, and how each endpoint's latency
// percentiles moved. The CI question: "did this change make things worse than main's last run?"
//
// A regression is a field with verdict "regression", or an endpoint whose error rate exceeded
// the threshold (path kErrorRatePath). Regressions of A and B are matched by target position,
// endpoint name and field path: target names may differ between runs (a candidate on a new
// port), positions are what a CI job keeps stable.
//
//   Result<Report> a = LoadReportArg("12", load_run);          // a run id
//   Result<Report> b = LoadReportArg("b.json", load_run);      // a JSON report file
//   Comparison c = CompareReports(*a, *b, "12", "b.json");
//   std::cout << RenderComparisonText(c);  return c.exit_code();  // 1: new regressions in B
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "report/report.h"

namespace doppel::report {

// The field path an error-rate failure is matched under.
inline constexpr std::string_view kErrorRatePath = "(error rate)";

// One regression of one run.
struct RegressionRef {
  uint32_t target = 0;      // position in --target order
  std::string target_name;  // as in the run it was found in (B's for still-present ones)
  std::string endpoint;
  std::string path;      // field path, or kErrorRatePath
  std::string severity;  // "low", "medium", "high"; "" for an error-rate failure
  double rate = 0;       // mismatch (or error) rate, 0..1, in that run
};

// The latency of one endpoint (or of the whole target: endpoint "") in both runs.
struct LatencyChange {
  uint32_t target = 0;
  std::string endpoint;  // "" for the target over all endpoints
  v1::Latency a, b;      // the candidate's, in run A and run B
};

struct Comparison {
  std::string label_a, label_b;              // how the runs were named (run id or file)
  std::vector<RegressionRef> new_in_b;       // B's regressions A did not have
  std::vector<RegressionRef> fixed_in_b;     // A's regressions B does not have
  std::vector<RegressionRef> still_present;  // in both (B's rate)
  // Targets first then their endpoints, for every target position both runs have and every
  // endpoint with responses in both; ordered by target, then endpoint name.
  std::vector<LatencyChange> latency;
  // 1 when B has new regressions, else 0.
  int exit_code() const { return new_in_b.empty() ? 0 : 1; }
};

Comparison CompareReports(const Report& a, const Report& b, std::string label_a,
                          std::string label_b);

// How `doppel report --compare` finds a report: an argument of digits only is a run id in the
// store (given to `load_run`), anything else the path of a JSON report file
// (`--report-json`). Errors name the argument.
using RunReportLoader = std::function<Result<Report>(uint32_t run_id)>;
Result<Report> LoadReportArg(std::string_view arg, const RunReportLoader& load_run);

// Renderings. Text: sections per kind, then a latency table (p50, p90, p99, p99.9 in A → B and
// the change). JSON: schema "doppel.compare/v1", documented in docs/report-format.md. HTML: one
// self-contained page like the report's, with A-vs-B latency plots per endpoint.
std::string RenderComparisonText(const Comparison& c);
std::string RenderComparisonJson(const Comparison& c);
std::string RenderComparisonHtml(const Comparison& c);

}  // namespace doppel::report
