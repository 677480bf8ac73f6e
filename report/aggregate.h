// RunAggregator: folds every comparison of a replay run into a Report — counts per target,
// endpoint and field, noise masking, exemplars, latency — and decides the verdict.
//
//   RunAggregator agg(options);                 // targets, thresholds, --fail-* settings
//   for each exchange: agg.Add(observation);    // pointers only need to live during Add
//   Report report = agg.Finish();               // report.exit_code: 0 or 1
//
// Noise masking, per request and per field (array indexes generalized to [*]): when the
// recorded primary and the secondary differ at a field for a request, that field is masked
// for that request — a candidate difference there is counted as `masked`, not as a
// mismatch, and the request is left out of the field's `compared`. The field's candidate
// rate mismatches / compared is thus the rate among requests where the known-good build
// agreed with the recording; it is tested against the noise rate noise_mismatches /
// noise_compared with diff::IsRegression (significance.h).
//
// Verdict per field: significant (IsRegression) → kRegression when its candidate rate in
// percent is above --fail-threshold and its severity is at least --fail-on, else
// kTolerated. An endpoint fails when it has a regression, or when its error rate (exchanges
// with no response, over the exchanges without an injected fault) in percent is above
// --fail-threshold. The exit code is 1 when any endpoint of any target fails, else 0.
// Exchanges with injected faults (Observation::fault) are counted apart and never fail one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "diff/result.h"
#include "diff/significance.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/group.pb.h"
#include "report/report.h"

namespace doppel::report {

// One replayed exchange against one target, as the replayer saw it.
struct Observation {
  uint32_t target = 0;                               // index into AggregatorOptions::targets
  std::string endpoint;                              // from Differ::Endpoint
  const doppel::v1::Envelope* envelope = nullptr;    // request + recorded (primary) response
  const doppel::v1::HttpResponse* actual = nullptr;  // nullptr when the exchange failed
  std::string error;  // transport error ("connect", "timeout", ...) when actual == nullptr
  const diff::DiffResult* diff = nullptr;   // candidate vs recorded; nullptr if not compared
  const diff::DiffResult* noise = nullptr;  // secondary vs recorded, same request; nullptr if
                                            // no --secondary or the secondary failed
  // The secondary's response, optional even with `noise`: when given, noise exemplars carry
  // its body for a side-by-side view.
  const doppel::v1::HttpResponse* secondary = nullptr;
  uint64_t latency_us = 0;  // measured from the due time
  // `doppel replay --fault`: the faults injected into this exchange ("abort", "delay+reset"),
  // "" for none. A faulted exchange is counted in EndpointReport.faults only (and in
  // `requests`): never an error, a mismatch or a regression.
  std::string fault;
};

struct AggregatorOptions {
  std::vector<std::string> targets;               // names (URLs); Observation::target indexes this
  std::string secondary;                          // --secondary URL, "" if none (for the report)
  double fail_threshold_pct = 0;                  // --fail-threshold
  diff::Severity fail_on = diff::Severity::kLow;  // --fail-on
  diff::Thresholds thresholds;                    // significance test parameters
  size_t exemplars_per_field = 3;                 // reservoir size, candidate and noise each
  size_t max_body_bytes = 4096;                   // exemplar bodies, after pretty-printing
  size_t max_request_body_bytes = 512;
  // Exemplar bodies held in all: past it, new exemplars keep their renderings but no bodies.
  size_t max_exemplar_body_bytes = 64 << 20;
  // Bounds on memory whatever the traffic: fields beyond this per endpoint are counted in
  // EndpointReport::untracked_fields; endpoints beyond this per target are grouped under
  // "(other endpoints)".
  size_t max_fields_per_endpoint = 1000;
  size_t max_endpoints = 5000;
  uint64_t seed = 0x5eed;  // exemplar sampling; fixed so reports are reproducible
  // Copied into the report as is.
  std::string run_id;
  std::string session;
  std::string generated_at;
};

inline constexpr std::string_view kOtherEndpoints = "(other endpoints)";

class RunAggregator {
 public:
  explicit RunAggregator(AggregatorOptions options);
  ~RunAggregator();
  RunAggregator(const RunAggregator&) = delete;
  RunAggregator& operator=(const RunAggregator&) = delete;

  // Counts one exchange. Nothing is kept pointing into `obs`. Not thread-safe: call from one
  // thread. Errors (kInvalidArgument, the observation is not counted): target out of range,
  // no envelope.
  Status Add(const Observation& obs);

  // The report over everything added so far, with the verdict and exit code. May be called
  // more than once.
  Report Finish() const;

  // Everything added so far, whole (counts, latency histograms, exemplar reservoirs), with
  // the targets and settings it was aggregated under: what a replay worker of a group saves
  // (proto/doppel/v1/group.proto).
  v1::AggregatorState SaveState() const;
  // Adds a saved state, as if its observations had been added here: counts add, histograms
  // merge bucket by bucket, exemplar reservoirs merge weighted by what each was offered, and
  // the bounds (endpoints, fields per endpoint, exemplar bytes) hold as for Add. Errors
  // (InvalidArgument, nothing merged): the state's targets or settings differ from this
  // aggregator's, or its contents are not a state SaveState could write.
  Status MergeState(const v1::AggregatorState& state);
  // The options a saved state was aggregated under (targets, secondary, thresholds, --fail-*);
  // the report fields (run_id, session, generated_at) are left empty.
  static Result<AggregatorOptions> OptionsOf(const v1::AggregatorState& state);

 private:
  struct State;
  AggregatorOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace doppel::report
