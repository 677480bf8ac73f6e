#include "replay/run.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <thread>

#include "base/time_format.h"
#include "base/units.h"
#include "diff/diff.h"
#include "diff/rules.h"
#include "interop/interop.h"
#include "net/fault.h"
#include "net/match.h"
#include "net/url.h"
#include "redact/redactor.h"
#include "replay/correlate.h"
#include "replay/group.h"
#include "replay/jwt_resign.h"
#include "replay/reweight.h"
#include "replay/run_sink.h"
#include "replay/source.h"
#include "report/aggregate.h"
#include "report/report_html.h"
#include "report/report_json.h"
#include "report/report_junit.h"
#include "storage/store.h"
#include "stream/redis_client.h"

namespace doppel::replay {
namespace {

// A report quotes recorded traffic (header values, body excerpts): written like an export,
// readable by its owner only whatever the umask, complete or not at all (a temporary file
// renamed over `path`).
Status WriteReportFile(const std::string& path, const std::string& content) {
  return interop::WriteTextFile(path, [&](std::ostream& out) {
    out << content;
    return Status::Ok();
  });
}

// The run record's per-target summary and counters from the engine's stats and the report.
void FillRunRecord(const ReplayStats& stats, const report::Report& rep, doppel::v1::RunInfo* run) {
  run->set_skipped_unsafe(stats.skipped.unsafe);
  run->set_skipped_filtered(stats.skipped.filtered);
  run->set_dispatched(stats.dispatched);
  run->set_dropped_redacted_headers(stats.dropped_redacted_headers);
  run->set_regressions(rep.verdict().regressions());
  run->set_exit_code(rep.verdict().exit_code());
  *run->mutable_report() = rep;
  for (const auto& l : stats.lanes) {
    auto* ts = run->add_targets();
    ts->set_target(l.url);
    ts->set_sent(l.sent);
    ts->set_errors(l.errors + l.dropped_backlog);
    ts->set_status_2xx(l.status_class[2]);
    ts->set_status_3xx(l.status_class[3]);
    ts->set_status_4xx(l.status_class[4]);
    ts->set_status_5xx(l.status_class[5]);
    ts->set_latency_p50_us(l.latency.Percentile(50));
    ts->set_latency_p90_us(l.latency.Percentile(90));
    ts->set_latency_p99_us(l.latency.Percentile(99));
    ts->set_latency_max_us(l.latency.max());
    ts->set_achieved_rate(stats.elapsed_us ? l.sent / (stats.elapsed_us / 1e6) : 0);
    ts->set_send_lag_p99_us(l.lag.Percentile(99));
    ts->set_faulted(l.faulted);
    ts->set_faulted_errors(l.faulted_errors);
  }
}

// The kinds that need HTTP/1.x bytes on a connection of their own (HttpClientPool::SendShaped).
bool ShapesRequest(net::FaultKind kind) {
  return kind == net::FaultKind::kReset || kind == net::FaultKind::kTruncate ||
         kind == net::FaultKind::kBandwidth;
}

}  // namespace

uint32_t DefaultCompareThreads() {
  const unsigned cpus = std::thread::hardware_concurrency();  // 0 when unknown
  // With two CPUs or fewer there is no core to spare: handing every request to another thread
  // cost 45 % of --max throughput on a 2-CPU machine (bench/RESULTS.md, "Replay: compare
  // threads"), so the replay's own thread compares.
  if (cpus <= 2) return 0;
  return std::min<uint32_t>(cpus - 1, kMaxCompareThreads);
}

Status WriteReportFiles(const report::Report& r, const ReportFiles& files) {
  if (!files.json.empty())
    DOPPEL_RETURN_IF_ERROR(WriteReportFile(files.json, report::ReportToJson(r)));
  if (!files.junit.empty())
    DOPPEL_RETURN_IF_ERROR(WriteReportFile(files.junit, report::RenderJUnit(r)));
  if (!files.html.empty())
    DOPPEL_RETURN_IF_ERROR(WriteReportFile(files.html, report::RenderHtml(r)));
  return Status::Ok();
}

Result<report::Report> LoadRunReport(const std::string& store_path, uint32_t run_id) {
  std::unique_ptr<storage::Store> store;
  storage::StoreOptions o;
  o.read_only = true;
  DOPPEL_RETURN_IF_ERROR(storage::Store::Open(o, store_path, &store));
  DOPPEL_ASSIGN_OR_RETURN(auto run, store->GetRun(run_id));
  if (run.has_report()) return std::move(*run.mutable_report());
  // Runs stored before RunInfo.report kept the report as JSON.
  if (run.report_json().empty())
    return Status::NotFound("run " + std::to_string(run_id) +
                            " has no report (it did not finish); replay again");
  auto rep = report::ReportFromJson(run.report_json());
  if (!rep.ok()) return rep.status().WithContext("run " + std::to_string(run_id));
  return std::move(*rep);
}

struct Run::State {
  RunOptions opts;
  const Clock* clock = nullptr;
  ReplayOptions replay;
  std::shared_ptr<const Selector> selector;
  std::shared_ptr<const Rewriter> rewriter;
  diff::Severity fail_on = diff::Severity::kLow;
  diff::DifferPtr differ;  // null with --no-diff
  std::unique_ptr<storage::Store> store;
  EnvelopeSourcePtr source;
  GroupSource* group = nullptr;  // `source`, when this run is a worker of a group
  RunPlan plan;
  std::unique_ptr<CorrelationPlan> correlation;  // null with --correlate off
  std::optional<JwtKey> jwt_key;                 // --jwt-resign
  net::MatchRules fault_rules;                   // --fault-rule (one inline rule)
  std::unique_ptr<net::FaultInjector> faults;    // --fault; null without
  bool executed = false;
};

// --fault, --fault-rule, --fault-seed, --max-active-faults into s.faults (and s.plan.fault).
Status Run::SetUpFaults(State& s) {
  const RunOptions& f = s.opts;
  if (f.fault.empty()) {
    if (!f.fault_rule.empty() || f.fault_seed != 0 || f.max_active_faults != 0) {
      return Status::InvalidArgument(
          "--fault-rule, --fault-seed and --max-active-faults go with --fault SPEC");
    }
    return Status::Ok();
  }
  auto spec = net::ParseFaultSpec(f.fault);
  if (!spec.ok()) return spec.status().WithContext("--fault");
  for (const net::Fault& fault : spec->faults) {
    if (!ShapesRequest(fault.kind)) continue;
    for (const net::Url& t : s.replay.targets) {
      if (!t.http2()) continue;
      return Status::InvalidArgument(
          "--fault " + std::string(net::kFaultKindNames.Name(fault.kind)) +
          ": reset, truncate and bandwidth shape the HTTP/1.x bytes of a request, and target " +
          t.ToString() + " is HTTP/2; use delay and abort with HTTP/2 targets");
    }
  }
  net::FaultInjector::Options o;
  o.spec = std::move(*spec);
  o.seed = f.fault_seed;
  o.max_active = f.max_active_faults;
  if (!f.fault_rule.empty()) {
    if (f.fault_rule.find('=') == std::string::npos) {
      return Status::InvalidArgument("--fault-rule '" + f.fault_rule +
                                     "' is not a rule: replay has no named rules, give the rule "
                                     "itself, e.g. --fault-rule 'method=POST,uri^=/api'");
    }
    auto rules = net::MatchRules::FromFlags({f.fault_rule});
    if (!rules.ok()) return rules.status().WithContext("--fault-rule");
    s.fault_rules = std::move(*rules);
    o.rule = &s.fault_rules.blocks().front();
  }
  s.plan.fault = f.fault;
  s.faults = std::make_unique<net::FaultInjector>(std::move(o), "replay", nullptr);
  return Status::Ok();
}

Run::Run(std::unique_ptr<State> state) : s_(std::move(state)) {}
Run::~Run() = default;

const RunPlan& Run::plan() const { return s_->plan; }

Result<std::unique_ptr<Run>> Run::Create(RunOptions options, const Clock& clock) {
  auto s = std::make_unique<State>();
  s->opts = std::move(options);
  s->clock = &clock;
  const RunOptions& f = s->opts;
  ReplayOptions& opts = s->replay;

  // ---- validate everything before touching the store or the network ----
  if (f.session.empty() == f.from.empty())
    return Status::InvalidArgument("give exactly one of --session NAME or --from BUNDLE");
  const bool group_mode = stream::IsRedisUrl(f.from);
  if (group_mode && f.group.empty())
    return Status::InvalidArgument(
        "--from " + f.from +
        " replays a stream as one worker of a group: add --group NAME (the same name on every "
        "worker), or import the stream first (doppel import URL --as NAME)");
  if (!group_mode && (!f.group.empty() || !f.consumer.empty() || !f.claim_idle.empty()))
    return Status::InvalidArgument(
        "--group, --consumer and --claim-idle go with --from redis://HOST:PORT/STREAM");
  if (group_mode) {
    const char* refused = f.loop                                         ? "--loop"
                          : f.reweight                                   ? "--reweight"
                          : !f.correlate.empty() && f.correlate != "off" ? "--correlate"
                                                                         : nullptr;
    if (refused != nullptr)
      return Status::InvalidArgument(
          std::string(refused) +
          " is not available with --group: a group reads its stream once and spreads it over "
          "its workers, so no worker sees a whole client's requests in order; import the "
          "stream (doppel import URL --as NAME) and replay the session from one process");
  }
  if (f.targets.empty())
    return Status::InvalidArgument("give at least one --target URL to replay to");
  int modes = (!f.rate.empty()) + (f.speed > 0) + f.max;
  if (modes > 1) return Status::InvalidArgument("give only one of --rate, --speed and --max");
  if (!f.rate.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(auto spec, ParseRate(f.rate));
    opts.pacing = spec;
  } else if (f.max) {
    opts.pacing.mode = PacingSpec::Mode::kMax;
  } else {
    opts.pacing.mode = PacingSpec::Mode::kSpeed;
    opts.pacing.speed = f.speed > 0 ? f.speed : 1;  // default: real time
  }
  if (!f.max_gap.empty() && (!f.rate.empty() || f.max))
    return Status::InvalidArgument(
        "--max-gap caps the recorded gaps of --speed pacing and does nothing with --rate or "
        "--max; leave it out");
  if (!f.max_gap.empty()) {
    auto gap = ParseDurationUs(f.max_gap);
    if (!gap.ok()) return gap.status().WithContext("--max-gap");
    opts.pacing.max_gap_us = *gap;
  }
  for (const auto& t : f.targets) {
    auto u = net::ParseUrl(t);
    if (!u.ok()) return u.status().WithContext("--target " + t);
    opts.targets.push_back(*u);
  }
  if (!f.secondary.empty()) {
    auto u = net::ParseUrl(f.secondary);
    if (!u.ok()) return u.status().WithContext("--secondary " + f.secondary);
    opts.secondary = *u;
  }
  auto timeout = ParseDurationUs(f.timeout);
  if (!timeout.ok() || *timeout == 0)
    return Status::InvalidArgument("--timeout '" + f.timeout +
                                   "' is not a positive duration (e.g. 10s)");
  opts.timeout_us = *timeout;
  if (!f.duration.empty()) {
    auto d = ParseDurationUs(f.duration);
    if (!d.ok()) return d.status().WithContext("--duration");
    if (*d == 0)
      return Status::InvalidArgument(
          "--duration '" + f.duration +
          "' is not a positive duration (e.g. 10m); leave --duration out for no time limit");
    opts.duration_us = *d;
  }
  opts.limit = f.limit;
  opts.loop = f.loop;
  opts.retries = f.retries;
  opts.concurrency = f.concurrency;
  opts.tls.verify = !f.insecure;
  opts.tls.ca_file = f.ca_file;
  if (f.cert_file.empty() != f.key_file.empty()) {
    return Status::InvalidArgument(
        "--target-cert and --target-key go together: give both (PEM files) to present a client "
        "certificate to https targets");
  }
  opts.tls.cert_file = f.cert_file;
  opts.tls.key_file = f.key_file;

  std::shared_ptr<const diff::GrpcSchema> grpc_schema;
  if (!f.proto_set.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(grpc_schema, diff::GrpcSchema::Load(f.proto_set));
  }
  SelectionOptions selection = f.selection;
  selection.grpc_schema = grpc_schema;
  for (const net::Url& t : opts.targets) selection.websocket &= !t.http2();
  if (opts.secondary) selection.websocket &= !opts.secondary->http2();
  auto selector = Selector::Create(selection);
  if (!selector.ok()) return selector.status();
  s->selector = *selector;

  RewriteOptions ro;
  for (const auto& h : f.set_headers) {
    std::string n, v;
    if (!SplitAssignment(h, &n, &v))
      return Status::InvalidArgument("--set-header '" + h + "' must look like Name=Value");
    ro.set_headers.emplace_back(n, v);
  }
  ro.remove_headers = f.remove_headers;
  for (const auto& p : f.rewrite_paths) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::InvalidArgument("--rewrite-path '" + p + "' must look like REGEX=REPLACEMENT");
    ro.rewrite_path.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  ro.keep_host = f.keep_host;
  auto rewriter = Rewriter::Create(ro);
  if (!rewriter.ok()) return rewriter.status();
  s->rewriter = *rewriter;

  std::string correlate = f.correlate;
  if (correlate.empty()) correlate = f.selection.allow_unsafe && !group_mode ? "auto" : "off";
  if (correlate != "auto" && correlate != "off" && correlate != "rules")
    return Status::InvalidArgument("--correlate '" + f.correlate +
                                   "' is not a mode: give auto (carry values from earlier "
                                   "answers into later requests), rules FILE (explicit rules, "
                                   "added to auto) or off");
  if ((correlate == "rules") != !f.correlate_rules.empty())
    return Status::InvalidArgument(correlate == "rules"
                                       ? "--correlate rules needs the rules file: --correlate "
                                         "rules FILE (docs/stateful-replay.md)"
                                       : "--correlate " + correlate +
                                             " takes no file; explicit rules are --correlate "
                                             "rules FILE");
  std::shared_ptr<const CorrelationRules> correlation_rules;
  if (correlate == "rules") {
    DOPPEL_ASSIGN_OR_RETURN(CorrelationRules rules, LoadCorrelationRules(f.correlate_rules));
    correlation_rules = std::make_shared<const CorrelationRules>(std::move(rules));
  }

  if (!f.jwt_alg.empty() && f.jwt_resign.empty())
    return Status::InvalidArgument("--jwt-alg chooses how --jwt-resign KEYFILE signs: give both");
  if (!f.jwt_resign.empty()) {
    std::optional<JwtAlg> alg;
    if (!f.jwt_alg.empty()) {
      DOPPEL_ASSIGN_OR_RETURN(alg, kJwtAlgNames.ParseOrError(f.jwt_alg, "--jwt-alg"));
    }
    DOPPEL_ASSIGN_OR_RETURN(JwtKey key, JwtKey::Load(f.jwt_resign, alg));
    s->jwt_key.emplace(std::move(key));
    s->plan.jwt_alg = std::string(kJwtAlgNames.Name(s->jwt_key->alg()));
  }

  DOPPEL_RETURN_IF_ERROR(SetUpFaults(*s));

  if (!f.shift_time && !f.shift_time_headers.empty()) {
    return Status::InvalidArgument(
        "--shift-time-header names a header whose timestamps --shift-time moves: give "
        "--shift-time as well");
  }

  auto fail_on = report::ParseSeverity(f.fail_on);
  if (!fail_on.ok()) return Status::InvalidArgument("--fail-on must be low, medium or high");
  s->fail_on = *fail_on;
  if (!(f.fail_threshold >= 0 && f.fail_threshold <= 100))
    return Status::InvalidArgument("--fail-threshold must be a percentage, 0 to 100");
  if (f.compare_threads > kMaxCompareThreads)
    return Status::InvalidArgument("--compare-threads " + std::to_string(f.compare_threads) +
                                   " is out of range: give 0 (compare " +
                                   "on the replay's own thread) to " +
                                   std::to_string(kMaxCompareThreads) + " (default " +
                                   std::to_string(DefaultCompareThreads()) + " here)");

  if (!f.no_diff) {
    diff::DiffConfig dc;
    if (!f.rules.empty()) {
      auto rules = diff::LoadRulesFile(f.rules);
      if (!rules.ok()) return rules.status();
      dc.rules = *rules;
    }
    dc.grpc_schema = grpc_schema;
    DOPPEL_ASSIGN_OR_RETURN(auto d, diff::Differ::Create(dc));
    s->differ = std::move(d);
  }

  // ---- the store (runs are always recorded there) and the source ----
  DOPPEL_RETURN_IF_ERROR(storage::Store::Open(storage::StoreOptions{}, f.store_path, &s->store));
  RunPlan& plan = s->plan;
  if (group_mode) {
    GroupOptions go;
    go.url = f.from;
    go.group = f.group;
    go.consumer = f.consumer;
    if (opts.pacing.mode == PacingSpec::Mode::kRate)
      go.rate = std::max(opts.pacing.rate_from, opts.pacing.rate_to);
    if (!f.claim_idle.empty()) {
      auto idle = ParseDurationUs(f.claim_idle);
      if (!idle.ok()) return idle.status().WithContext("--claim-idle");
      go.claim_idle_us = *idle;
    }
    if (go.claim_idle_us <= opts.timeout_us)
      return Status::InvalidArgument(
          "--claim-idle must be longer than --timeout: an entry in flight that long would be "
          "claimed by another worker while this one still waits for its answer");
    DOPPEL_ASSIGN_OR_RETURN(std::unique_ptr<GroupSource> group,
                            GroupSource::Join(go, s->selector, clock));
    plan.total = group->entries();
    plan.to_send = group->unread();
    plan.consumer = group->consumer();
    s->group = group.get();
    s->source = std::move(group);
  } else {
    auto src =
        f.from.empty() ? OpenStoreSource(s->store.get(), f.session) : OpenBundleSource(f.from);
    if (!src.ok()) return src.status();
    s->source = std::move(*src);
    if (f.reweight) {
      if (!(f.reweight_scale > 0) || !std::isfinite(f.reweight_scale)) {
        return Status::InvalidArgument("--reweight-scale must be a number above 0, such as 0.1");
      }
      DOPPEL_ASSIGN_OR_RETURN(
          s->source, ReweightSource(std::move(s->source),
                                    {.scale = f.reweight_scale, .seed = f.selection.seed}));
    }
  }

  // A first pass counts what will be sent and skipped, for the banner and the ETA, and learns
  // the correlations (with the store's redaction key, so that redacted sinks match). Not for
  // a group's stream, which its workers share: each counts what it reads.
  std::optional<CorrelationLearner> learner;
  if (correlate != "off") {
    DOPPEL_ASSIGN_OR_RETURN(std::string key, redact::Redactor::LoadOrCreateKey(f.store_path));
    auto redactor = std::make_shared<redact::Redactor>(std::move(key), std::vector<std::string>{});
    learner.emplace(
        s->source->session().sampling().key(),
        [redactor](std::string_view v) { return redactor->Hash(v); }, correlation_rules);
  }
  if (!group_mode) {
    doppel::v1::Envelope e;
    while (s->source->Next(&e)) {
      ++plan.total;
      if (plan.total == 1 || e.arrival_us() < plan.recorded_from_us)
        plan.recorded_from_us = e.arrival_us();
      plan.recorded_to_us = std::max(plan.recorded_to_us, e.arrival_us());
      if (learner) learner->Add(e);
      plan.decisions.Count(s->selector->Decide(e));
    }
    plan.to_send = plan.decisions.send;
    if (!s->source->status().ok()) return s->source->status();
    DOPPEL_RETURN_IF_ERROR(s->source->Rewind());
  }
  if (f.limit && plan.to_send > f.limit && !f.loop) plan.to_send = f.limit;
  if (learner) {
    s->correlation = std::make_unique<CorrelationPlan>(learner->Finish());
    plan.correlate = true;
    plan.correlate_mode = s->correlation->mode;
    plan.correlations = s->correlation->correlations.size();
    plan.correlation_rules = correlation_rules ? correlation_rules->rules.size() : 0;
  }
  plan.session_name = s->source->session().name();
  plan.pacing = opts.pacing.ToString();
  return std::unique_ptr<Run>(new Run(std::move(s)));
}

Result<RunOutcome> Run::Execute(const RunProgressFn& on_progress) {
  State& s = *s_;
  const RunOptions& f = s.opts;
  if (s.executed) return Status::Internal("Run::Execute called twice");
  s.executed = true;
  if (s.plan.to_send == 0 && s.group == nullptr)
    return Status::InvalidArgument("nothing to replay: every envelope was skipped (see above)");

  if (f.probe) {
    std::vector<net::Url> all = s.replay.targets;
    if (s.replay.secondary) all.push_back(*s.replay.secondary);
    DOPPEL_RETURN_IF_ERROR(ProbeTargets(all, std::min<uint64_t>(s.replay.timeout_us, 5'000'000)));
  }

  doppel::v1::RunInfo run;
  run.set_started_us(s.clock->WallUs());
  auto* rs = run.mutable_settings();
  rs->set_session(f.from.empty() ? f.session : f.from);
  rs->set_from_bundle(!f.from.empty());
  for (const auto& t : f.targets) rs->add_targets(t);
  rs->set_secondary(f.secondary);
  rs->set_pacing(s.plan.pacing);
  rs->set_percent(f.selection.percent);
  rs->set_seed(f.selection.seed);
  rs->set_concurrency(f.concurrency);
  rs->set_command_line(f.command_line);
  rs->set_fault(f.fault);
  rs->set_fault_seed(f.fault_seed);
  DOPPEL_ASSIGN_OR_RETURN(auto created, s.store->CreateRun(run));
  run = created;

  report::AggregatorOptions ao;
  ao.targets = f.targets;
  ao.secondary = f.secondary;
  ao.fail_threshold_pct = f.fail_threshold;
  ao.thresholds.min_samples = f.min_samples;
  ao.fail_on = s.fail_on;
  ao.run_id = std::to_string(run.id());
  ao.session = s.plan.session_name;
  ao.generated_at = FormatUtc(static_cast<int64_t>(s.clock->WallUs()));
  report::RunAggregator aggregator(ao);
  RunSinkOptions so;
  so.compare_threads = f.compare_threads;
  RunSink sink(s.differ.get(), &aggregator, s.store.get(), run.id(), so);
  // Marks the run FAILED in the store, keeping `failed` as the error to return.
  auto fail_run = [&](Status failed) {
    run.set_finished_us(s.clock->WallUs());
    run.set_state(doppel::v1::RUN_STATE_FAILED);
    if (Status us = s.store->UpdateRun(run); !us.ok())
      failed = failed.WithContext("run " + std::to_string(run.id()) +
                                  " could not be marked FAILED (" + us.ToString() + ")");
    return failed;
  };
  std::optional<GroupSink> group_sink;
  if (s.group != nullptr) {
    if (Status started = s.group->Start(&sink, &aggregator); !started.ok())
      return fail_run(started);
    group_sink.emplace(&sink, s.group);
  }

  ReplayOptions opts = s.replay;
  std::optional<TimeShifter> time_shift;
  if (f.shift_time) {
    TimeShiftOptions to;
    to.delta_us =
        static_cast<int64_t>(s.clock->WallUs()) - static_cast<int64_t>(s.plan.recorded_from_us);
    to.recorded_from_us = s.plan.recorded_from_us;
    to.recorded_to_us = s.plan.recorded_to_us;
    to.headers = f.shift_time_headers;
    time_shift.emplace(std::move(to));
    opts.time_shift = &*time_shift;
  }
  std::optional<JwtResigner> jwt_resign;
  if (s.jwt_key) {
    const int64_t shift_s =
        (static_cast<int64_t>(s.clock->WallUs()) - static_cast<int64_t>(s.plan.recorded_from_us)) /
        1'000'000;
    jwt_resign.emplace(*s.jwt_key, shift_s, *s.clock);
    opts.jwt_resign = &*jwt_resign;
  }
  std::optional<LiveCorrelator> correlator;
  if (s.correlation) {
    correlator.emplace(*s.correlation, opts.targets.size() + (opts.secondary ? 1 : 0));
    opts.correlator = &*correlator;
  }
  opts.faults = s.faults.get();
  if (on_progress || s.group != nullptr) {
    opts.on_progress = [&](const ReplayProgress& p) {
      if (s.group != nullptr) s.group->Tick();
      if (on_progress) on_progress(p, sink.mismatches());
    };
  }
  auto stats = RunReplay(opts, *s.source, *s.selector, *s.rewriter,
                         group_sink ? static_cast<ResultSink&>(*group_sink) : sink);

  RunOutcome out;
  out.run_id = run.id();
  out.results_saved = sink.Flush();  // every comparison and result write done
  if (s.group != nullptr && stats.ok()) {
    // The last commit: what is left is acknowledged, and the worker marked finished. An
    // interrupted worker leaves what it did not finish to the others.
    if (Status committed = s.group->Commit(/*finished=*/!stats->interrupted, /*leaving=*/true);
        !committed.ok())
      stats = committed;
    out.group_worker = s.group->counters();
  }
  out.report = aggregator.Finish();
  if (s.faults) {
    out.faults_injected = s.faults->injected_by_kind();
    out.faults_skipped = s.faults->skipped();
  }
  if (correlator)
    FillCorrelationReport(*s.correlation, correlator->counts(), out.report.mutable_correlation());
  if (!stats.ok()) return fail_run(stats.status());
  run.set_finished_us(s.clock->WallUs());
  out.stats = std::move(*stats);
  run.set_state(out.stats.interrupted ? doppel::v1::RUN_STATE_INTERRUPTED
                                      : doppel::v1::RUN_STATE_COMPLETED);
  FillRunRecord(out.stats, out.report, &run);
  out.run_saved = s.store->UpdateRun(run);
  out.report_files = WriteReportFiles(out.report, f.reports);
  out.exit_code = out.report_files.ok() ? out.report.verdict().exit_code() : 2;
  return out;
}

}  // namespace doppel::replay
