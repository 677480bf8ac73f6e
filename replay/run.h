// Run: one `doppel replay` from start to end, as a library object. The CLI parses flags into
// RunOptions and prints; everything else lives here: open the store and the source (a stored
// session or a bundle), count what will be sent, probe the targets, create the run record,
// replay with diffing and aggregation, save the run record and its per-request results,
// write the report files and compute the exit code.
//
//   auto run = Run::Create(options, SystemClock::Instance());   // validates, opens, counts
//   if (!run.ok()) ...                                           // usage/config error: exit 2
//   Print((*run)->plan());                                       // banner
//   auto outcome = (*run)->Execute(on_progress);                 // blocks until the end
//
// Time (the run record's started/finished times, the report's generated_at) comes from the
// injected Clock, so tests can pin it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "doppel/v1/group.pb.h"
#include "net/fault.h"
#include "replay/replay.h"
#include "replay/request_plan.h"
#include "report/report.h"

namespace doppel::replay {

// Report files to write ("" = not wanted); the same on `replay` and `report --run`.
struct ReportFiles {
  std::string json, junit, html;
};

// Writes every report file asked for; returns the first error. The one place that writes
// report files (for `doppel replay` and `doppel report`).
Status WriteReportFiles(const report::Report& report, const ReportFiles& files);

// The stored report of run `run_id` (for `doppel report --run`). Errors: no such run, a run
// that did not finish (no report), a report that does not parse.
Result<report::Report> LoadRunReport(const std::string& store_path, uint32_t run_id);

// The default of --compare-threads: one fewer than the CPUs (the engine thread has one); 0
// (compare on the engine thread) with 2 CPUs or fewer, where a hand-over costs more than it frees.
uint32_t DefaultCompareThreads();
inline constexpr uint32_t kMaxCompareThreads = 64;

// What `doppel replay` was asked to do. Strings are flag values as the user typed them;
// Run::Create parses and validates them, with errors that name the flag.
struct RunOptions {
  std::string store_path;  // --store: runs are always recorded there
  std::string session;     // exactly one of session and from
  std::string from;        // bundle file, or redis://HOST:PORT/STREAM with group
  // --group NAME, --consumer ID, --claim-idle DURATION: with a redis:// --from, this process
  // is one worker of a group replaying the stream (replay/group.h, docs/distributed.md).
  std::string group, consumer;
  std::string claim_idle;            // "" = 30s
  std::vector<std::string> targets;  // URLs, at least one
  std::string secondary;             // URL or ""
  std::string rate;                  // --rate; at most one of rate, speed > 0 and max
  double speed = 0;                  // 0 = unset (real time); the CLI refuses 0 and below
  bool max = false;
  std::string max_gap;         // duration or ""
  SelectionOptions selection;  // --percent, --seed, --method, ... filters
  uint32_t concurrency = 64;
  std::string duration;  // duration or ""
  std::string timeout = "10s";
  uint64_t limit = 0;  // 0 = no limit
  uint32_t retries = 0;
  bool loop = false;
  // --reweight: each class sent as many times as the traffic had it, times reweight_scale
  // (replay/reweight.h), so a coverage sample replays with the traffic's mix.
  bool reweight = false;
  double reweight_scale = 1;
  std::vector<std::string> set_headers;  // Name=Value
  std::vector<std::string> remove_headers;
  std::vector<std::string> rewrite_paths;  // REGEX=REPLACEMENT
  bool keep_host = false;
  std::string rules;      // diff rules file or ""
  std::string proto_set;  // --proto-set: a descriptor set decoding gRPC messages, or ""
  // --correlate: "auto" (learn correlations from the recording and apply them live,
  // replay/correlate.h), "rules" (the explicit rules of `correlate_rules`,
  // replay/correlate_rules.h, plus auto unless the file says auto_learn: false), "off", or ""
  // for the default: auto with selection.allow_unsafe (--allow-unsafe-methods), else off.
  std::string correlate;
  std::string correlate_rules;  // with "rules": the rules file (JSON or YAML)
  // --jwt-resign KEYFILE, --jwt-alg: JWTs in requests get fresh times and are signed with this
  // key (replay/jwt_resign.h); alg "" takes the key's.
  std::string jwt_resign, jwt_alg;
  // --shift-time: timestamps in requests move by the replay's start minus the recording's
  // (replay/time_shift.h); also in the values of these headers.
  bool shift_time = false;
  std::vector<std::string> shift_time_headers;
  bool no_diff = false;
  uint32_t compare_threads = DefaultCompareThreads();  // 0 (inline)..kMaxCompareThreads
  ReportFiles reports;
  double fail_threshold = 0;  // percent
  uint64_t min_samples = 30;
  std::string fail_on = "low";
  bool insecure = false;  // do not verify https targets
  std::string ca_file;
  std::string cert_file;  // --target-cert, with --target-key: mTLS to https targets
  std::string key_file;
  bool probe = true;         // check that targets accept connections first
  std::string command_line;  // saved in the run record
  // --fault SPEC (net/fault.h grammar; docs/chaos.md, "Replay"): faults on the requests sent
  // to the targets; "" = none. --fault-rule: only requests matching this rule ('method=POST,
  // uri^=/api', as record's --match). --fault-seed, --max-active-faults: as on record.
  std::string fault;
  std::string fault_rule;
  uint64_t fault_seed = 0;
  size_t max_active_faults = 0;
};

// What the first pass over the source found (for the banner and the progress ETA).
struct RunPlan {
  std::string session_name;
  std::string pacing;        // PacingSpec::ToString()
  uint64_t total = 0;        // envelopes in the source
  uint64_t to_send = 0;      // selected (capped by --limit unless --loop)
  DecisionCounts decisions;  // of all `total` (decisions.send: selected, before --limit)
  uint64_t recorded_from_us = 0, recorded_to_us = 0;  // first and last arrival in the source
  bool correlate = false;                             // --correlate auto or rules in force
  std::string correlate_mode;                         // "auto" or "rules"
  uint64_t correlations = 0;       // learned from the recording, plus one per explicit rule
  uint64_t correlation_rules = 0;  // explicit rules (--correlate rules FILE)
  std::string jwt_alg;             // --jwt-resign: the alg tokens are signed with, or ""
  std::string fault;               // --fault: the spec as given, or ""
  // A worker of a group (--group): its name, and the stream's entries (total) and those the
  // group had not read when it joined (to_send); they are shared by the group's workers.
  std::string consumer;
};

struct RunOutcome {
  uint32_t run_id = 0;
  ReplayStats stats;
  report::Report report;
  // Saving the run record at the end; when not ok the run stays RUNNING in the store and
  // `doppel report --run` cannot re-render it.
  Status run_saved;
  // Saving per-request results (best effort: never stops a replay).
  Status results_saved;
  // Writing RunOptions::reports; when not ok, exit_code is 2.
  Status report_files;
  // 0 no regressions, 1 regressions, 2 report files could not be written.
  int exit_code = 0;
  // --fault: requests that got each kind (every target lane shares one draw per request), and
  // draws not injected because --max-active-faults were in flight. Empty without --fault.
  net::FaultCounts faults_injected{};  // --fault, by kind
  uint64_t faults_skipped = 0;
  // A worker of a group: its counters (replayed, claimed, skipped, ...) as committed at the
  // end; `report` is this worker's share (`doppel report --from ... --group` merges them).
  std::optional<doppel::v1::WorkerState> group_worker;
};

// Called on the engine thread about once a second.
using RunProgressFn = std::function<void(const ReplayProgress& progress, uint64_t mismatches)>;

class Run {
 public:
  // Validates `options`, opens the store and the source and counts what will be sent.
  // Errors (exit 2) name the flag or file at fault. REQUIRES: `clock` outlives the Run.
  static Result<std::unique_ptr<Run>> Create(RunOptions options, const Clock& clock);
  ~Run();

  const RunPlan& plan() const;

  // Replays once, to the end of the source (or --limit, --duration, SIGINT/SIGTERM).
  // Errors: nothing to send, a target that does not accept connections (probe), the store
  // refusing a new run record, a source failing mid-way (the run is then saved as FAILED).
  Result<RunOutcome> Execute(const RunProgressFn& on_progress = {});

 private:
  struct State;
  explicit Run(std::unique_ptr<State> state);
  static Status SetUpFaults(State& s);
  std::unique_ptr<State> s_;
};

}  // namespace doppel::replay
