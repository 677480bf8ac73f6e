// `doppel replay` (stream a session to targets, diff, report) and `doppel report` (re-render
// a stored run): flags and terminal output only; replay::Run (replay/run.h) does the work.
#include <unistd.h>

#include <boost/json/array.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/time_format.h"
#include "interop/interop.h"
#include "replay/group.h"
#include "replay/replay.h"
#include "replay/run.h"
#include "report/compare.h"
#include "report/report_text.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

// Where to write the report, and what the terminal shows: the same options on `replay` and
// `report`.
struct ReportFlags {
  replay::ReportFiles files;
  bool log_bodies = false;  // show differing values in the terminal report
};

void AddReportFileOptions(CLI::App* cmd, replay::ReportFiles* files, bool* log_bodies) {
  cmd->add_option("--report-json", files->json, "write the JSON report here");
  cmd->add_option("--junit", files->junit, "write a JUnit XML report here");
  cmd->add_option("--html", files->html, "write a self-contained HTML report here");
  cmd->add_flag("--log-bodies", *log_bodies,
                "show differing header and body values in the terminal report");
}

// What replay::RunOptions does not hold: how the terminal output looks.
struct ReplayFlags {
  replay::RunOptions run;
  std::vector<std::string> correlate;  // MODE, or rules FILE
  bool log_bodies = false;
  bool no_progress = false, quiet = false;
  bool no_probe = false;
};

// Checks a numeric flag's text: a finite number above zero. `otherwise` tells what to give
// instead of 0 or a negative number (which CLI11 would accept and the flag silently ignore).
CLI::Validator AboveZero(std::string otherwise) {
  return CLI::Validator(
      [otherwise](std::string& text) {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v) || v <= 0)
          return "'" + text + "' is not a number above 0; " + otherwise;
        return std::string();
      },
      "");
}

report::TextOptions TextOpts(bool log_bodies) {
  report::TextOptions o;
  o.color = ::isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  o.show_values = log_bodies;
  return o;
}

constexpr log::Component kReplayLog{"replay", "doppel"};

int Fail(const Status& s) {
  log::Error(kReplayLog, s.ToString());
  return kExitError;
}

void PrintLaneSummary(const replay::ReplayStats& st) {
  std::printf("\n%-32s %8s %7s %7s %7s %7s %7s %9s %9s %9s %9s %10s\n", "TARGET", "SENT", "2xx",
              "3xx", "4xx", "5xx", "ERRORS", "p50", "p90", "p99", "max", "LAG p99");
  for (const auto& l : st.lanes) {
    auto ms = [](uint64_t us) {
      char b[32];
      std::snprintf(b, sizeof(b), "%.2fms", us / 1000.0);
      return std::string(b);
    };
    std::printf("%-32s %8llu %7llu %7llu %7llu %7llu %7llu %9s %9s %9s %9s %10s\n", l.url.c_str(),
                (unsigned long long)l.sent, (unsigned long long)l.status_class[2],
                (unsigned long long)l.status_class[3], (unsigned long long)l.status_class[4],
                (unsigned long long)l.status_class[5],
                (unsigned long long)(l.errors + l.dropped_backlog),
                ms(l.latency.Percentile(50)).c_str(), ms(l.latency.Percentile(90)).c_str(),
                ms(l.latency.Percentile(99)).c_str(), ms(l.latency.max()).c_str(),
                ms(l.lag.Percentile(99)).c_str());
  }
  double secs = st.elapsed_us / 1e6;
  std::printf("%llu requests in %.2fs (%.1f req/s)%s\n", (unsigned long long)st.dispatched, secs,
              secs > 0 ? st.dispatched / secs : 0.0, st.interrupted ? " — interrupted" : "");
  if (st.shifted_timestamps > 0) {
    std::printf("%llu timestamps moved by --shift-time\n",
                (unsigned long long)st.shifted_timestamps);
  }
  if (st.resigned_tokens > 0)
    std::printf("%llu JWTs re-signed by --jwt-resign\n", (unsigned long long)st.resigned_tokens);
}

// "skipped 3 (unsafe 2, filtered 1)", or "" when none were.
std::string SkippedText(const doppel::v1::WorkerState& w) {
  uint64_t total = 0;
  std::string parts;
  std::map<std::string, uint64_t> sorted(w.skipped().begin(), w.skipped().end());
  for (const auto& [reason, n] : sorted) {
    total += n;
    parts += (parts.empty() ? "" : ", ") + reason + " " + std::to_string(n);
  }
  return total == 0 ? "" : "skipped " + std::to_string(total) + " (" + parts + ")";
}

// A worker's or a group's counters on one line.
std::string CountersText(const doppel::v1::WorkerState& w) {
  std::string line = "replayed " + std::to_string(w.replayed()) + " (claimed from other workers " +
                     std::to_string(w.claimed()) + ")";
  if (std::string skipped = SkippedText(w); !skipped.empty()) line += ", " + skipped;
  if (w.undecodable() > 0)
    line += ", " + std::to_string(w.undecodable()) + " entries did not decode";
  if (w.trimmed() > 0)
    line += ", " + std::to_string(w.trimmed()) + " pending entries were trimmed from the stream";
  return line;
}

void PrintWorkerSummary(const doppel::v1::WorkerState& w, const replay::RunOptions& run) {
  std::printf("worker '%s': %s\n", w.consumer().c_str(), CountersText(w).c_str());
  std::printf(
      "the report below is this worker's share; the group's: doppel report --from %s --group "
      "%s\n",
      audit::MaskArguments({run.from})[0].c_str(), run.group.c_str());
}

int RunReplayCommand(const GlobalOptions& g, ReplayFlags f) {
  f.run.store_path = g.store;
  f.run.command_line = g.command_line;
  f.run.probe = !f.no_probe;
  if (!f.correlate.empty()) f.run.correlate = f.correlate[0];
  if (f.correlate.size() > 1) f.run.correlate_rules = f.correlate[1];
  boost::json::object& notes = *g.audit_notes;
  auto created = replay::Run::Create(f.run, SystemClock::Instance());
  if (!created.ok()) {
    notes["error"] = created.status().ToString();
    return Fail(created.status());
  }
  replay::Run& run = **created;
  const replay::RunPlan& plan = run.plan();
  notes["session"] = plan.session_name;
  boost::json::array targets;
  for (const std::string& t : audit::MaskArguments(f.run.targets)) targets.emplace_back(t);
  notes["targets"] = std::move(targets);
  notes["envelopes"] = plan.to_send;
  if (!f.quiet && !plan.consumer.empty()) {
    std::ostringstream line;
    line << "worker '" << plan.consumer << "' of group '" << f.run.group << "' replaying stream '"
         << plan.session_name << "' (" << plan.total << " entries, " << plan.to_send
         << " not yet read by the group) to " << f.run.targets.size() << " target(s) at "
         << plan.pacing << (f.run.secondary.empty() ? "" : ", secondary " + f.run.secondary);
    log::Info(kReplayLog, line.str(),
              {{"consumer", plan.consumer},
               {"group", f.run.group},
               {"entries", plan.total},
               {"unread", plan.to_send}});
  } else if (!f.quiet) {
    std::ostringstream line;
    line << "replaying " << plan.to_send << " of " << plan.total << " envelopes of '"
         << plan.session_name << "' to " << f.run.targets.size() << " target(s) at " << plan.pacing
         << (f.run.secondary.empty() ? "" : ", secondary " + f.run.secondary);
    log::Info(kReplayLog, line.str(),
              {{"session", plan.session_name},
               {"envelopes", plan.to_send},
               {"total", plan.total},
               {"targets", f.run.targets.size()}});
    auto note = [](uint64_t count, std::string_view what, std::string_view field) {
      log::Info(kReplayLog, std::to_string(count) + std::string(what), {{field, count}});
    };
    if (plan.decisions.refused)
      note(plan.decisions.refused,
           " envelopes the proxy refused were not replayed (they never reached the primary)",
           "refused");
    if (plan.decisions.websocket)
      note(plan.decisions.websocket,
           " WebSocket connections were not replayed: a target is HTTP/2 (it has no Upgrade), "
           "a client message was cut at --capture-body-limit, or compressed messages "
           "(permessage-deflate) do not decompress (cut at the limit, or damaged)",
           "websocket");
    if (plan.decisions.unsafe)
      log::Info(kReplayLog,
                "skipping " + std::to_string(plan.decisions.unsafe) +
                    " POST/PUT/PATCH/DELETE requests (pass --allow-unsafe-methods to send them)",
                {{"unsafe", plan.decisions.unsafe}});
    if (plan.correlate && plan.correlation_rules > 0)
      log::Info(
          kReplayLog,
          "correlation on: " + std::to_string(plan.correlation_rules) + " explicit rules, " +
              std::to_string(plan.correlations - plan.correlation_rules) +
              " correlations learned; each client's requests go in recorded order",
          {{"correlation_rules", plan.correlation_rules}, {"correlations", plan.correlations}});
    else if (plan.correlate)
      log::Info(kReplayLog,
                "correlation on: " + std::to_string(plan.correlations) +
                    " correlations learned; each client's requests go in recorded order",
                {{"correlations", plan.correlations}});
    if (!plan.jwt_alg.empty())
      log::Info(kReplayLog,
                "--jwt-resign: JWTs in recorded requests get fresh iat/nbf/exp and are signed " +
                    plan.jwt_alg + " (tokens carried from live answers are sent as they came)",
                {{"jwt_alg", plan.jwt_alg}});
    if (f.run.shift_time)
      log::Info(kReplayLog, "--shift-time: timestamps in requests move by the time since " +
                                FormatUtc(static_cast<int64_t>(plan.recorded_from_us)) +
                                ", when the recording started");
    if (plan.decisions.filtered)
      note(plan.decisions.filtered, " envelopes filtered out", "filtered");
    if (!plan.fault.empty()) {
      log::Warn(kReplayLog,
                "WARNING: injecting faults into the requests sent to the targets (" + plan.fault +
                    (f.run.fault_rule.empty() ? "" : ", rule '" + f.run.fault_rule + "'") +
                    "): counted apart, never as errors or regressions",
                {{"fault", plan.fault}, {"fault_rule", f.run.fault_rule}});
    }
    if (plan.decisions.not_in_percent) {
      line.str("");
      line << plan.decisions.not_in_percent << " envelopes outside --percent "
           << f.run.selection.percent;
      log::Info(kReplayLog, line.str(), {{"not_in_percent", plan.decisions.not_in_percent}});
    }
  }

  // On a terminal the progress line is rewritten in place at every call; otherwise (and in
  // the JSON form) it is a line every 5 s.
  const bool show_progress = !f.no_progress && !f.quiet;
  const bool tty = show_progress && log::StatusRewrites();
  uint64_t last_log_us = 0;
  auto progress = [&](const replay::ReplayProgress& p, uint64_t mismatches) {
    double secs = p.elapsed_us / 1e6;
    double rate = secs > 0 ? p.completed / secs : 0;
    // A worker of a group knows the group's unread entries, not its own share: no ETA.
    double eta = (rate > 0 && !f.run.loop && plan.consumer.empty() && plan.to_send > p.completed)
                     ? (plan.to_send - p.completed) / rate
                     : 0;
    char line[256];
    std::snprintf(line, sizeof(line),
                  "%llu/%llu done  %.0f req/s  in-flight %llu  errors %llu  mismatches %llu  "
                  "ETA %.0fs",
                  (unsigned long long)p.completed, (unsigned long long)plan.to_send, rate,
                  (unsigned long long)p.in_flight, (unsigned long long)p.errors,
                  (unsigned long long)mismatches, eta);
    if (tty || (show_progress && p.elapsed_us - last_log_us >= 5'000'000)) {
      last_log_us = p.elapsed_us;
      log::WriteStatus(log::Level::kInfo, kReplayLog, line,
                       {{"done", p.completed},
                        {"envelopes", plan.to_send},
                        {"rate", std::llround(rate)},
                        {"in_flight", p.in_flight},
                        {"errors", p.errors},
                        {"mismatches", mismatches},
                        {"eta_s", std::llround(eta)}});
    }
  };
  auto outcome = run.Execute(progress);
  log::ClearStatus();
  if (!outcome.ok()) {
    notes["error"] = outcome.status().ToString();
    return Fail(outcome.status());
  }
  const replay::RunOutcome& o = *outcome;
  notes["run"] = o.run_id;
  notes["sent"] = o.stats.dispatched;
  notes["interrupted"] = o.stats.interrupted;
  notes["verdict"] = o.exit_code == kExitOk            ? "pass"
                     : o.exit_code == kExitRegressions ? "regressions"
                                                       : "error";

  if (!o.run_saved.ok())
    log::Warn(
        kReplayLog,
        "warning: could not save run " + std::to_string(o.run_id) + ": " + o.run_saved.ToString(),
        {{"run", o.run_id}});
  if (!o.results_saved.ok())
    log::Warn(kReplayLog,
              "warning: some per-request results were not saved: " + o.results_saved.ToString(),
              {{"run", o.run_id}});
  if (!f.quiet) {
    if (o.stats.dropped_redacted_headers)
      log::Info(kReplayLog,
                std::to_string(o.stats.dropped_redacted_headers) +
                    " redacted header values were not sent (recorded as hashes); supply real "
                    "values with --set-header Name=Value",
                {{"dropped_redacted_headers", o.stats.dropped_redacted_headers}});
    PrintLaneSummary(o.stats);
    std::string line = net::FaultCountsText(o.faults_injected);
    if (!line.empty() || o.faults_skipped > 0) {
      if (line.empty()) line = "none";
      if (o.faults_skipped > 0)
        line += " (" + std::to_string(o.faults_skipped) + " skipped over --max-active-faults)";
      std::printf("faults injected: %s\n", line.c_str());
    }
    if (o.group_worker) PrintWorkerSummary(*o.group_worker, f.run);
    std::cout << "\n" << report::RenderText(o.report, TextOpts(f.log_bodies));
    if (o.run_saved.ok())
      std::cout << "run " << o.run_id << " saved; re-render with `doppel report --run " << o.run_id
                << " --html report.html`\n";
  }
  if (!o.report_files.ok()) return Fail(o.report_files);
  if (o.stats.interrupted)
    log::Warn(kReplayLog,
              "interrupted; the partial run " + std::to_string(o.run_id) +
                  (o.run_saved.ok() ? " is saved" : " could not be saved"),
              {{"run", o.run_id}, {"saved", o.run_saved.ok()}});
  return o.exit_code;
}

// `doppel report --from redis://... --group NAME`: every worker's state merged.
int GroupReportCommand(const std::string& from, const std::string& group, bool partial,
                       const ReportFlags& flags) {
  auto loaded = replay::LoadGroupReport(from, group);
  if (!loaded.ok()) return Fail(loaded.status());
  const replay::GroupReport& r = *loaded;
  if ((r.unread > 0 || r.pending > 0) && !partial) {
    return Fail(Status::Unavailable(
        "group '" + group + "' has not finished: " + std::to_string(r.unread) +
        " entries not read yet and " + std::to_string(r.pending) +
        " read but not acknowledged (in flight, or held by a worker that stopped: another "
        "worker claims them after --claim-idle); wait for the workers, or pass --partial for "
        "a report of what is counted so far"));
  }
  std::printf("group '%s': %zu workers, %llu entries in the stream%s\n", group.c_str(),
              r.workers.size(), static_cast<unsigned long long>(r.entries),
              r.unread > 0 || r.pending > 0 ? (", PARTIAL: " + std::to_string(r.unread) +
                                               " unread, " + std::to_string(r.pending) + " pending")
                                                  .c_str()
                                            : "");
  for (const doppel::v1::WorkerState& w : r.workers) {
    std::printf("  %-24s %s%s\n", w.consumer().c_str(), CountersText(w).c_str(),
                w.finished() ? "" : "  (not finished)");
  }
  std::printf("  %-24s %s\n", "total", CountersText(r.totals).c_str());
  std::cout << "\n" << report::RenderText(r.report, TextOpts(flags.log_bodies));
  if (Status ws = replay::WriteReportFiles(r.report, flags.files); !ws.ok()) return Fail(ws);
  return r.report.verdict().exit_code();
}

int ReportCommand(const GlobalOptions& g, uint32_t run_id, const ReportFlags& flags) {
  auto rep = replay::LoadRunReport(g.store, run_id);
  if (!rep.ok()) return Fail(rep.status());
  std::cout << report::RenderText(*rep, TextOpts(flags.log_bodies));
  if (Status ws = replay::WriteReportFiles(*rep, flags.files); !ws.ok()) return Fail(ws);
  return rep->verdict().exit_code();
}

// `doppel report --compare A B`: exit 1 when B has new regressions, 2 when a run can't be read.
int CompareCommand(const GlobalOptions& g, const std::vector<std::string>& runs,
                   const std::string& format, const ReportFlags& flags) {
  if (!flags.files.json.empty() || !flags.files.junit.empty()) {
    return Fail(Status::InvalidArgument(
        "--compare writes text or JSON to stdout (--format) and HTML with --html; "
        "--report-json and --junit are for one run"));
  }
  auto load_run = [&](uint32_t id) { return replay::LoadRunReport(g.store, id); };
  Result<report::Report> a = report::LoadReportArg(runs[0], load_run);
  if (!a.ok()) return Fail(a.status());
  Result<report::Report> b = report::LoadReportArg(runs[1], load_run);
  if (!b.ok()) return Fail(b.status());
  report::Comparison c = report::CompareReports(*a, *b, runs[0], runs[1]);
  std::cout << (format == "json" ? report::RenderComparisonJson(c)
                                 : report::RenderComparisonText(c));
  if (!flags.files.html.empty()) {
    Status written = interop::WriteTextFile(flags.files.html, [&](std::ostream& out) {
      out << report::RenderComparisonHtml(c);
      return Status::Ok();
    });
    if (!written.ok()) return Fail(written);
  }
  return c.exit_code();
}

}  // namespace

void AddReplayCommands(CLI::App& app, const GlobalOptions& g, Runner* run) {
  auto flags = std::make_shared<ReplayFlags>();
  replay::RunOptions* f = &flags->run;
  auto* r =
      app.add_subcommand("replay", "replay a recorded session to targets and diff the answers");
  r->add_option("--session", f->session, "session in the store to replay");
  r->add_option("--from", f->from,
                "bundle file to replay instead of a stored session, or redis://HOST:PORT/STREAM "
                "with --group");
  const std::string gg = "Worker group (docs/distributed.md)";
  r->add_option("--group", f->group,
                "with --from redis://...: replay the stream as one worker of this consumer group; "
                "start the same command on every worker")
      ->group(gg);
  r->add_option("--consumer", f->consumer,
                "this worker's name in the group (default HOSTNAME-PID); a worker restarted "
                "under its old name goes on where it stopped")
      ->group(gg);
  r->add_option("--claim-idle", f->claim_idle,
                "entries a worker has held this long without a sign of life are claimed by the "
                "others (default 30s; longer than --timeout)")
      ->group(gg);
  r->add_option("--target", f->targets, "URL to replay to (repeatable)");
  r->add_option("--secondary", f->secondary,
                "known-good build: fields that differ there too are treated as noise");
  r->add_option("--rate", f->rate, "open-loop requests/s, or a ramp FROM:TO:OVER (100:2000:60s)");
  r->add_option("--speed", f->speed, "recorded gaps divided by X (default: 1, real time)")
      ->check(AboveZero("2 replays twice as fast as recorded, 0.5 half as fast; --max sends as "
                        "fast as --concurrency allows"));
  r->add_flag("--max", f->max, "closed loop: as fast as --concurrency allows");
  r->add_option("--max-gap", f->max_gap, "with --speed: cap recorded gaps (e.g. 2s)");
  r->add_option("--percent", f->selection.percent,
                "replay a deterministic P% subset (default 100)");
  r->add_option("--seed", f->selection.seed, "seed of the --percent subset");
  r->add_option("--concurrency", f->concurrency, "in-flight requests per target (default 64)")
      ->check(AboveZero("give at least 1 (in-flight requests per target)"));
  r->add_option("--duration", f->duration, "stop after this long (e.g. 10m)");
  r->add_option("--limit", f->limit, "stop after N requests")
      ->check(AboveZero("leave --limit out to replay the whole session"));
  r->add_flag("--loop", f->loop, "start over at the end of the session");
  CLI::Option* reweight = r->add_flag(
      "--reweight", f->reweight,
      "send each request class as many times as the recorded traffic had it, spread over "
      "its envelopes by 1/p (p: inclusion probability): a coverage sample replays with "
      "the traffic's mix and volume");
  r->add_option("--reweight-scale", f->reweight_scale,
                "with --reweight: this share of the traffic's requests (0.1: a tenth; 2: twice)")
      ->check(CLI::PositiveNumber)
      ->needs(reweight)
      ->capture_default_str();
  r->add_option("--timeout", f->timeout, "per request (default 10s)");
  r->add_option("--retries", f->retries, "retries after connection failures only (default 0)");
  r->add_option("--set-header", f->set_headers, "Name=Value, set on every request (repeatable)");
  r->add_option("--remove-header", f->remove_headers, "header to drop (repeatable)");
  r->add_option("--rewrite-path", f->rewrite_paths, "REGEX=REPLACEMENT on the target (repeatable)");
  r->add_flag("--keep-host", f->keep_host, "send the recorded Host instead of the target's");
  r->add_option("--method", f->selection.methods, "only replay these methods (repeatable)");
  r->add_option("--path-regex", f->selection.path_regex, "only replay targets matching this regex");
  r->add_option("--header-regex", f->selection.header_regex,
                "'Name: REGEX', only matching requests");
  r->add_flag("--allow-unsafe-methods", f->selection.allow_unsafe,
              "also send POST, PUT, PATCH and DELETE");
  r->add_option("--correlate", flags->correlate,
                "auto: carry tokens, ids, CSRF values and cookies from earlier answers into "
                "later requests (docs/stateful-replay.md); rules FILE: also the explicit rules "
                "of FILE (JSON or YAML; the file's auto_learn: false turns auto off); off. "
                "Default: auto with --allow-unsafe-methods, else off")
      ->expected(1, 2)
      ->type_name("MODE [FILE]");
  r->add_option("--jwt-resign", f->jwt_resign,
                "JWTs in recorded requests get fresh iat/nbf/exp (same lifetimes) and are signed "
                "with this test key: a raw secret (HS256) or a PEM private key (RSA: RS256, EC "
                "P-256: ES256); tokens from live answers are left as they came "
                "(docs/stateful-replay.md)")
      ->type_name("KEYFILE");
  r->add_option("--jwt-alg", f->jwt_alg,
                "with --jwt-resign: the alg to sign with (default: what the key signs); a key "
                "that cannot sign it is an error")
      ->type_name("HS256|RS256|ES256");
  r->add_flag("--shift-time", f->shift_time,
              "move timestamps in requests (RFC 3339, epoch seconds or milliseconds; query, JSON "
              "body) by the time since the recording started (docs/stateful-replay.md)");
  r->add_option("--shift-time-header", f->shift_time_headers,
                "also move a timestamp that is this header's whole value (repeatable)");
  r->add_option("--rules", f->rules, "diff rules file (JSON, see docs/diff-rules.md)");
  r->add_option("--proto-set", f->proto_set,
                "descriptor set of the gRPC services replayed (protoc --include_imports "
                "--descriptor_set_out FILE): messages are diffed as JSON, field by field "
                "(docs/http2-grpc.md), without it message by message as bytes; methods marked "
                "idempotency_level = NO_SIDE_EFFECTS are sent without --allow-unsafe-methods");
  r->add_flag("--no-diff", f->no_diff, "send and measure only; compare nothing");
  r->add_option("--compare-threads", f->compare_threads,
                "threads that decode and diff answers, 0 to 64; 0 diffs on the sending thread "
                "(default: one fewer than the CPUs, 0 with 2 CPUs or fewer)")
      ->capture_default_str();
  AddReportFileOptions(r, &f->reports, &flags->log_bodies);
  r->add_option("--fail-threshold", f->fail_threshold,
                "mismatch rate (%) tolerated per endpoint before exit 1 (default 0)");
  r->add_option("--fail-on", f->fail_on, "lowest severity that fails: low, medium, high");
  r->add_option("--min-samples", f->min_samples,
                "compared requests a field needs before it can be a regression (small CI "
                "bundles: lower it; docs/diff-rules.md)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}))
      ->capture_default_str();
  r->add_flag("--no-progress", flags->no_progress, "no progress line or periodic log");
  r->add_flag("--quiet", flags->quiet, "print nothing but errors");
  r->add_flag("--target-insecure", f->insecure, "do not verify https targets' certificates");
  r->add_option("--target-ca", f->ca_file, "CA bundle for https targets");
  r->add_option("--target-cert", f->cert_file,
                "mTLS: PEM client certificate presented to https targets (with --target-key)");
  r->add_option("--target-key", f->key_file,
                "mTLS: the PEM private key of --target-cert (mode 0600)");
  r->add_flag("--no-probe", flags->no_probe, "do not check that targets accept connections first");
  const std::string fg =
      "Fault injection (how a candidate takes misbehaving clients; docs/chaos.md)";
  r->add_option("--fault", f->fault,
                "inject faults into the requests sent to the targets: KIND[:ARG]:PERCENT% joined "
                "with '+', e.g. delay:200ms:10%+abort:503:5% (delay: send late; abort: do not "
                "send; reset: send, then reset the connection; truncate: half the body, then "
                "reset; bandwidth: throttle the request)")
      ->group(fg);
  r->add_option("--fault-rule", f->fault_rule,
                "only requests matching this rule get faults ('method=POST,uri^=/api', as "
                "record's --match)")
      ->group(fg);
  r->add_option("--fault-seed", f->fault_seed, "seed of the fault draws (same seed, same draws)")
      ->group(fg);
  r->add_option("--max-active-faults", f->max_active_faults,
                "faulted requests in flight at once; beyond, requests go unfaulted (0: no cap)")
      ->group(fg);
  r->callback([run, &g, flags] { *run = [&g, flags] { return RunReplayCommand(g, *flags); }; });

  auto* rep = app.add_subcommand(
      "report", "re-render the report of a stored replay run, or compare two runs' reports");
  auto run_id = std::make_shared<uint32_t>(0);
  auto files = std::make_shared<ReportFlags>();
  auto compare = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>("text");
  auto* run_opt = rep->add_option("--run", *run_id, "run id (see `doppel runs list`)");
  auto* compare_opt =
      rep->add_option("--compare", *compare,
                      "RUN_A RUN_B (run ids or --report-json files): regressions new, fixed and "
                      "still present in B, latency changes; exit 1 on new regressions")
          ->expected(2)
          ->excludes(run_opt);
  rep->add_option("--format", *format, "with --compare: text or json (default text)")
      ->check(CLI::IsMember({"text", "json"}))
      ->needs(compare_opt);
  auto from = std::make_shared<std::string>();
  auto group = std::make_shared<std::string>();
  auto partial = std::make_shared<bool>(false);
  auto* group_opt =
      rep->add_option("--group", *group, "with --from: the worker group whose results to merge")
          ->excludes(run_opt)
          ->excludes(compare_opt);
  auto* from_opt =
      rep->add_option("--from", *from,
                      "redis://HOST:PORT/STREAM: merge the results of a group of replay workers "
                      "(with --group)")
          ->needs(group_opt);
  group_opt->needs(from_opt);
  rep->add_flag("--partial", *partial,
                "with --group: report what is counted while the group still has entries to "
                "replay (otherwise exit 2)")
      ->needs(group_opt);
  AddReportFileOptions(rep, &files->files, &files->log_bodies);
  rep->callback([run, &g, run_id, files, compare, format, run_opt, compare_opt, from, group,
                 partial, group_opt] {
    if (run_opt->count() == 0 && compare_opt->count() == 0 && group_opt->count() == 0)
      throw CLI::RequiredError("--run ID, --compare RUN_A RUN_B or --from URL --group NAME");
    if (group_opt->count() > 0) {
      *run = [from, group, partial, files] {
        return GroupReportCommand(*from, *group, *partial, *files);
      };
    } else if (compare_opt->count() > 0) {
      *run = [&g, compare, format, files] { return CompareCommand(g, *compare, *format, *files); };
    } else {
      *run = [&g, run_id, files] { return ReportCommand(g, *run_id, *files); };
    }
  });
}

}  // namespace doppel::cli
