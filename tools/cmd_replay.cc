// `doppel replay` (stream a session to targets, diff, report) and `doppel report` (re-render
// a stored run).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <memory>

#include "base/duration.h"
#include "net/url.h"
#include "diff/diff.h"
#include "diff/rules.h"
#include "interop/interop.h"
#include "replay/replay.h"
#include "replay/run_sink.h"
#include "replay/source.h"
#include "report/aggregate.h"
#include "report/report_html.h"
#include "report/report_json.h"
#include "report/report_junit.h"
#include "report/report_text.h"
#include "storage/store.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

// Where to write the report, and what the terminal shows: the same options on `replay` and
// `report`.
struct ReportFiles {
  std::string json, junit, html;
  bool log_bodies = false;  // show differing values in the terminal report
};

void AddReportFileOptions(CLI::App* cmd, ReportFiles* files) {
  cmd->add_option("--report-json", files->json, "write the JSON report here");
  cmd->add_option("--junit", files->junit, "write a JUnit XML report here");
  cmd->add_option("--html", files->html, "write a self-contained HTML report here");
  cmd->add_flag("--log-bodies", files->log_bodies,
                "show differing header and body values in the terminal report");
}

struct ReplayFlags {
  std::string session, from;
  std::vector<std::string> targets;
  std::string secondary;
  std::string rate;
  double speed = 0;  // 0: not given (AboveZero refuses 0 on the command line)
  bool max = false;
  std::string max_gap;
  double percent = 100;
  uint64_t seed = 0;
  uint32_t concurrency = 64;
  std::string duration, timeout = "10s";
  uint64_t limit = 0;  // 0: not given, no limit
  uint32_t retries = 0;
  bool loop = false;
  std::vector<std::string> set_headers, remove_headers, rewrite_paths, methods, header_regex;
  std::string path_regex;
  bool keep_host = false, allow_unsafe = false;
  std::string rules;
  bool no_diff = false;
  ReportFiles reports;
  double fail_threshold = 0;
  uint64_t min_samples = 30;
  std::string fail_on = "low";
  bool no_progress = false, quiet = false;
  bool insecure = false;
  std::string ca_file;
  bool no_probe = false;
  std::string command_line;
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

int Fail(const Status& s) {
  std::cerr << "doppel: " << s.ToString() << "\n";
  return kExitError;
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// A report quotes recorded traffic (header values, body excerpts): written like an export,
// readable by its owner only whatever the umask, complete or not at all (a temporary file
// renamed over `path`).
Status WriteReport(const std::string& path, const std::string& content) {
  return interop::WriteTextFile(path, [&](std::ostream& out) {
    out << content;
    return Status::Ok();
  });
}

// Writes every report file asked for; returns the first error.
Status WriteReports(const report::Report& r, const ReportFiles& files) {
  if (!files.json.empty()) DOPPEL_RETURN_IF_ERROR(WriteReport(files.json, report::ReportToJson(r)));
  if (!files.junit.empty())
    DOPPEL_RETURN_IF_ERROR(WriteReport(files.junit, report::RenderJUnit(r)));
  if (!files.html.empty()) DOPPEL_RETURN_IF_ERROR(WriteReport(files.html, report::RenderHtml(r)));
  return Status::Ok();
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
    std::printf("%-32s %8llu %7llu %7llu %7llu %7llu %7llu %9s %9s %9s %9s %10s\n",
                l.url.c_str(), (unsigned long long)l.sent, (unsigned long long)l.status_class[2],
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
}

int RunReplayCommand(const GlobalOptions& g, const ReplayFlags& f) {
  // ---- validate everything before touching the network ----
  if (f.session.empty() == f.from.empty())
    return Fail(Status::InvalidArgument("give exactly one of --session NAME or --from BUNDLE"));
  if (f.targets.empty())
    return Fail(Status::InvalidArgument("give at least one --target URL to replay to"));
  int modes = (!f.rate.empty()) + (f.speed > 0) + f.max;
  if (modes > 1)
    return Fail(Status::InvalidArgument("give only one of --rate, --speed and --max"));
  replay::ReplayOptions opts;
  if (!f.rate.empty()) {
    auto spec = replay::ParseRate(f.rate);
    if (!spec.ok()) return Fail(spec.status());
    opts.pacing = *spec;
  } else if (f.max) {
    opts.pacing.mode = replay::PacingSpec::Mode::kMax;
  } else {
    opts.pacing.mode = replay::PacingSpec::Mode::kSpeed;
    opts.pacing.speed = f.speed > 0 ? f.speed : 1;  // default: real time
  }
  if (!f.max_gap.empty() && (!f.rate.empty() || f.max))
    return Fail(Status::InvalidArgument(
        "--max-gap caps the recorded gaps of --speed pacing and does nothing with --rate or "
        "--max; leave it out"));
  if (!f.max_gap.empty()) {
    auto gap = ParseDurationUs(f.max_gap);
    if (!gap.ok()) return Fail(gap.status().WithContext("--max-gap"));
    opts.pacing.max_gap_us = *gap;
  }
  for (const auto& t : f.targets) {
    auto u = net::ParseUrl(t);
    if (!u.ok()) return Fail(u.status().WithContext("--target " + t));
    opts.targets.push_back(*u);
  }
  if (!f.secondary.empty()) {
    auto u = net::ParseUrl(f.secondary);
    if (!u.ok()) return Fail(u.status().WithContext("--secondary " + f.secondary));
    opts.secondary = *u;
  }
  auto timeout = ParseDurationUs(f.timeout);
  if (!timeout.ok() || *timeout == 0) return Fail(Status::InvalidArgument("--timeout '" + f.timeout + "' is not a positive duration (e.g. 10s)"));
  opts.timeout_us = *timeout;
  if (!f.duration.empty()) {
    auto d = ParseDurationUs(f.duration);
    if (!d.ok()) return Fail(d.status().WithContext("--duration"));
    if (*d == 0)
      return Fail(Status::InvalidArgument(
          "--duration '" + f.duration +
          "' is not a positive duration (e.g. 10m); leave --duration out for no time limit"));
    opts.duration_us = *d;
  }
  opts.limit = f.limit;
  opts.loop = f.loop;
  opts.retries = f.retries;
  opts.concurrency = f.concurrency;
  opts.tls.verify = !f.insecure;
  opts.tls.ca_file = f.ca_file;

  replay::SelectionOptions so;
  so.percent = f.percent;
  so.seed = f.seed;
  so.methods = f.methods;
  so.path_regex = f.path_regex;
  so.header_regex = f.header_regex;
  so.allow_unsafe = f.allow_unsafe;
  auto selector = replay::Selector::Create(so);
  if (!selector.ok()) return Fail(selector.status());

  replay::RewriteOptions ro;
  for (const auto& h : f.set_headers) {
    std::string n, v;
    if (!replay::SplitAssignment(h, &n, &v))
      return Fail(Status::InvalidArgument("--set-header '" + h + "' must look like Name=Value"));
    ro.set_headers.emplace_back(n, v);
  }
  ro.remove_headers = f.remove_headers;
  for (const auto& p : f.rewrite_paths) {
    size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0)
      return Fail(Status::InvalidArgument("--rewrite-path '" + p + "' must look like REGEX=REPLACEMENT"));
    ro.rewrite_path.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  ro.keep_host = f.keep_host;
  auto rewriter = replay::Rewriter::Create(ro);
  if (!rewriter.ok()) return Fail(rewriter.status());

  auto fail_on = report::ParseSeverity(f.fail_on);
  if (!fail_on.ok()) return Fail(Status::InvalidArgument("--fail-on must be low, medium or high"));
  if (!(f.fail_threshold >= 0 && f.fail_threshold <= 100))
    return Fail(Status::InvalidArgument("--fail-threshold must be a percentage, 0 to 100"));

  diff::DifferPtr differ;
  if (!f.no_diff) {
    diff::DiffConfig dc;
    if (!f.rules.empty()) {
      auto rules = diff::LoadRulesFile(f.rules);
      if (!rules.ok()) return Fail(rules.status());
      dc.rules = *rules;
    }
    auto d = diff::Differ::Create(dc);
    if (!d.ok()) return Fail(d.status());
    differ = std::move(*d);
  }

  // ---- the store (runs are always recorded there) and the source ----
  std::unique_ptr<storage::Store> store;
  storage::StoreOptions sopts;
  Status s = storage::Store::Open(sopts, g.store, &store);
  if (!s.ok()) return Fail(s);
  replay::EnvelopeSourcePtr source;
  {
    auto src = f.from.empty() ? replay::OpenStoreSource(store.get(), f.session)
                              : replay::OpenBundleSource(f.from);
    if (!src.ok()) return Fail(src.status());
    source = std::move(*src);
  }

  // A first pass counts what will be sent and skipped, for the banner and the ETA.
  uint64_t total = 0, n_send = 0, n_refused = 0, n_unsafe = 0, n_filtered = 0, n_percent = 0;
  {
    doppel::v1::Envelope e;
    while (source->Next(&e)) {
      ++total;
      switch ((*selector)->Decide(e)) {
        case replay::Decision::kSend: ++n_send; break;
        case replay::Decision::kRefused: ++n_refused; break;
        case replay::Decision::kUnsafe: ++n_unsafe; break;
        case replay::Decision::kFiltered: ++n_filtered; break;
        case replay::Decision::kNotInPercent: ++n_percent; break;
      }
    }
    if (!source->status().ok()) return Fail(source->status());
    if (Status rs = source->Rewind(); !rs.ok()) return Fail(rs);
  }
  if (f.limit && n_send > f.limit && !f.loop) n_send = f.limit;
  const std::string session_name = source->session().name();
  if (!f.quiet) {
    std::cerr << "doppel: replaying " << n_send << " of " << total << " envelopes of '"
              << session_name << "' to " << f.targets.size() << " target(s) at "
              << opts.pacing.ToString() << (f.secondary.empty() ? "" : ", secondary " + f.secondary)
              << "\n";
    if (n_refused)
      std::cerr << "doppel: " << n_refused
                << " envelopes the proxy refused were not replayed (they never reached the "
                   "primary)\n";
    if (n_unsafe)
      std::cerr << "doppel: skipping " << n_unsafe
                << " POST/PUT/PATCH/DELETE requests (pass --allow-unsafe-methods to send them)\n";
    if (n_filtered) std::cerr << "doppel: " << n_filtered << " envelopes filtered out\n";
    if (n_percent)
      std::cerr << "doppel: " << n_percent << " envelopes outside --percent " << f.percent << "\n";
  }
  if (n_send == 0) {
    std::cerr << "doppel: nothing to replay: every envelope was skipped (see above)\n";
    return kExitError;
  }

  if (!f.no_probe) {
    std::vector<net::Url> all = opts.targets;
    if (opts.secondary) all.push_back(*opts.secondary);
    Status ps = replay::ProbeTargets(all, std::min<uint64_t>(opts.timeout_us, 5'000'000));
    if (!ps.ok()) return Fail(ps);
  }

  doppel::v1::RunInfo run;
  auto* rs = run.mutable_settings();
  rs->set_session(f.from.empty() ? f.session : f.from);
  rs->set_from_bundle(!f.from.empty());
  for (const auto& t : f.targets) rs->add_targets(t);
  rs->set_secondary(f.secondary);
  rs->set_pacing(opts.pacing.ToString());
  rs->set_percent(f.percent);
  rs->set_seed(f.seed);
  rs->set_concurrency(f.concurrency);
  rs->set_command_line(f.command_line);
  auto created = store->CreateRun(run);
  if (!created.ok()) return Fail(created.status());
  run = *created;

  report::AggregatorOptions ao;
  ao.targets = f.targets;
  ao.secondary = f.secondary;
  ao.fail_threshold_pct = f.fail_threshold;
  ao.thresholds.min_samples = f.min_samples;
  ao.fail_on = *fail_on;
  ao.run_id = std::to_string(run.id());
  ao.session = session_name;
  ao.generated_at = NowRfc3339();
  report::RunAggregator aggregator(ao);
  replay::RunSink sink(differ.get(), &aggregator, store.get(), run.id());

  const bool tty = !f.no_progress && !f.quiet && ::isatty(STDERR_FILENO);
  uint64_t last_log_us = 0;
  opts.on_progress = [&](const replay::ReplayProgress& p) {
    double secs = p.elapsed_us / 1e6;
    double rate = secs > 0 ? p.completed / secs : 0;
    double eta = (rate > 0 && !f.loop && n_send > p.completed) ? (n_send - p.completed) / rate : 0;
    char line[256];
    std::snprintf(line, sizeof(line),
                  "%llu/%llu done  %.0f req/s  in-flight %llu  errors %llu  mismatches %llu  ETA %.0fs",
                  (unsigned long long)p.completed, (unsigned long long)n_send, rate,
                  (unsigned long long)p.in_flight, (unsigned long long)p.errors,
                  (unsigned long long)sink.mismatches(), eta);
    if (tty) {
      std::fprintf(stderr, "\r\033[K%s", line);
    } else if (!f.quiet && !f.no_progress && p.elapsed_us - last_log_us >= 5'000'000) {
      last_log_us = p.elapsed_us;
      std::fprintf(stderr, "doppel: %s\n", line);
    }
  };

  auto stats = replay::RunReplay(opts, *source, **selector, **rewriter, sink);
  if (tty) std::fprintf(stderr, "\r\033[K");
  Status flushed = sink.Flush();

  report::Report rep = aggregator.Finish();
  std::string json = report::ReportToJson(rep);
  run.set_finished_us(static_cast<uint64_t>(std::time(nullptr)) * 1000000);
  if (!stats.ok()) {
    run.set_state(doppel::v1::RUN_STATE_FAILED);
    store->UpdateRun(run);
    return Fail(stats.status());
  }
  run.set_state(stats->interrupted ? doppel::v1::RUN_STATE_INTERRUPTED
                                   : doppel::v1::RUN_STATE_COMPLETED);
  run.set_skipped_unsafe(stats->skipped_unsafe);
  run.set_skipped_filtered(stats->skipped_filtered);
  run.set_dispatched(stats->dispatched);
  run.set_dropped_redacted_headers(stats->dropped_redacted_headers);
  run.set_regressions(rep.regressions);
  run.set_exit_code(rep.exit_code);
  run.set_report_json(json);
  for (const auto& l : stats->lanes) {
    auto* ts = run.add_targets();
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
    ts->set_achieved_rate(stats->elapsed_us ? l.sent / (stats->elapsed_us / 1e6) : 0);
    ts->set_send_lag_p99_us(l.lag.Percentile(99));
  }
  if (Status us = store->UpdateRun(run); !us.ok())
    std::cerr << "doppel: warning: could not save run " << run.id() << ": " << us.ToString() << "\n";
  if (!flushed.ok())
    std::cerr << "doppel: warning: some per-request results were not saved: " << flushed.ToString() << "\n";

  if (!f.quiet) {
    if (stats->dropped_redacted_headers)
      std::cerr << "doppel: " << stats->dropped_redacted_headers
                << " redacted header values were not sent (recorded as hashes); supply real "
                   "values with --set-header Name=Value\n";
    PrintLaneSummary(*stats);
    std::cout << "\n" << report::RenderText(rep, TextOpts(f.reports.log_bodies));
    std::cout << "run " << run.id() << " saved; re-render with `doppel report --run " << run.id()
              << " --html report.html`\n";
  }
  if (Status ws = WriteReports(rep, f.reports); !ws.ok()) return Fail(ws);
  if (stats->interrupted) {
    std::cerr << "doppel: interrupted; the partial run " << run.id() << " is saved\n";
  }
  return rep.exit_code;
}

int ReportCommand(const GlobalOptions& g, uint32_t run_id, const ReportFiles& files) {
  std::unique_ptr<storage::Store> store;
  storage::StoreOptions o;
  o.read_only = true;
  Status s = storage::Store::Open(o, g.store, &store);
  if (!s.ok()) return Fail(s);
  auto run = store->GetRun(run_id);
  if (!run.ok()) return Fail(run.status());
  if (run->report_json().empty())
    return Fail(Status::NotFound("run " + std::to_string(run_id) +
                                 " has no report (it did not finish); replay again"));
  auto rep = report::ReportFromJson(run->report_json());
  if (!rep.ok()) return Fail(rep.status().WithContext("run " + std::to_string(run_id)));
  std::cout << report::RenderText(*rep, TextOpts(files.log_bodies));
  if (Status ws = WriteReports(*rep, files); !ws.ok()) return Fail(ws);
  return rep->exit_code;
}

}  // namespace

void AddReplayCommands(CLI::App& app, const GlobalOptions& g, Runner* run) {
  auto f = std::make_shared<ReplayFlags>();
  auto* r = app.add_subcommand("replay", "replay a recorded session to targets and diff the answers");
  r->add_option("--session", f->session, "session in the store to replay");
  r->add_option("--from", f->from, "bundle file to replay instead of a stored session");
  r->add_option("--target", f->targets, "URL to replay to (repeatable)");
  r->add_option("--secondary", f->secondary,
                "known-good build: fields that differ there too are treated as noise");
  r->add_option("--rate", f->rate, "open-loop requests/s, or a ramp FROM:TO:OVER (100:2000:60s)");
  r->add_option("--speed", f->speed, "recorded gaps divided by X (default: 1, real time)")
      ->check(AboveZero("2 replays twice as fast as recorded, 0.5 half as fast; --max sends as "
                        "fast as --concurrency allows"));
  r->add_flag("--max", f->max, "closed loop: as fast as --concurrency allows");
  r->add_option("--max-gap", f->max_gap, "with --speed: cap recorded gaps (e.g. 2s)");
  r->add_option("--percent", f->percent, "replay a deterministic P% subset (default 100)");
  r->add_option("--seed", f->seed, "seed of the --percent subset");
  r->add_option("--concurrency", f->concurrency, "in-flight requests per target (default 64)")
      ->check(AboveZero("give at least 1 (in-flight requests per target)"));
  r->add_option("--duration", f->duration, "stop after this long (e.g. 10m)");
  r->add_option("--limit", f->limit, "stop after N requests")
      ->check(AboveZero("leave --limit out to replay the whole session"));
  r->add_flag("--loop", f->loop, "start over at the end of the session");
  r->add_option("--timeout", f->timeout, "per request (default 10s)");
  r->add_option("--retries", f->retries, "retries after connection failures only (default 0)");
  r->add_option("--set-header", f->set_headers, "Name=Value, set on every request (repeatable)");
  r->add_option("--remove-header", f->remove_headers, "header to drop (repeatable)");
  r->add_option("--rewrite-path", f->rewrite_paths, "REGEX=REPLACEMENT on the target (repeatable)");
  r->add_flag("--keep-host", f->keep_host, "send the recorded Host instead of the target's");
  r->add_option("--method", f->methods, "only replay these methods (repeatable)");
  r->add_option("--path-regex", f->path_regex, "only replay targets matching this regex");
  r->add_option("--header-regex", f->header_regex, "'Name: REGEX', only matching requests");
  r->add_flag("--allow-unsafe-methods", f->allow_unsafe, "also send POST, PUT, PATCH and DELETE");
  r->add_option("--rules", f->rules, "diff rules file (JSON, see docs/diff-rules.md)");
  r->add_flag("--no-diff", f->no_diff, "send and measure only; compare nothing");
  AddReportFileOptions(r, &f->reports);
  r->add_option("--fail-threshold", f->fail_threshold,
                "mismatch rate (%) tolerated per endpoint before exit 1 (default 0)");
  r->add_option("--fail-on", f->fail_on, "lowest severity that fails: low, medium, high");
  r->add_option("--min-samples", f->min_samples,
                "compared requests a field needs before it can be a regression (small CI "
                "bundles: lower it; docs/diff-rules.md)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}))
      ->capture_default_str();
  r->add_flag("--no-progress", f->no_progress, "no progress line or periodic log");
  r->add_flag("--quiet", f->quiet, "print nothing but errors");
  r->add_flag("--target-insecure", f->insecure, "do not verify https targets' certificates");
  r->add_option("--target-ca", f->ca_file, "CA bundle for https targets");
  r->add_flag("--no-probe", f->no_probe, "do not check that targets accept connections first");
  r->callback([run, &g, f] {
    f->command_line = g.command_line;
    *run = [&g, f] { return RunReplayCommand(g, *f); };
  });

  auto* rep = app.add_subcommand("report", "re-render the report of a stored replay run");
  auto run_id = std::make_shared<uint32_t>(0);
  auto files = std::make_shared<ReportFiles>();
  rep->add_option("--run", *run_id, "run id (see `doppel runs list`)")->required();
  AddReportFileOptions(rep, files.get());
  rep->callback([run, &g, run_id, files] {
    *run = [&g, run_id, files] { return ReportCommand(g, *run_id, *files); };
  });
}

}  // namespace doppel::cli
