// `doppel record`: the capture proxy (recorder/). Flags, signal handling, the live status line
// and the final summary; recorder::Session (recorder/session.h) does the work.
#include <pthread.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "audit/audit_log.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/units.h"
#include "recorder/record_config.h"
#include "recorder/session.h"
#include "report/excerpt.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

constexpr log::Component kRecordLog{"record", "doppel record"};

int Fail(const Status& s) {
  log::Error(kRecordLog, s.ToString());
  return kExitError;
}

void PrintBanner(const recorder::Session& session) {
  const recorder::RecorderOptions& o = session.recorder_options();
  std::cout << "listening on " << session.recorder().listen_address().ToString() << std::endl;
  if (auto admin = session.recorder().admin_address()) {
    std::cout << "admin on " << admin->ToString() << std::endl;
  }
  std::ostringstream line;
  line << "session '" << session.name() << "' -> " << o.upstream.ToString() << ", sampling ";
  if (o.coverage) {
    line << "by coverage, budget " << o.coverage->budget.text << ", per-class minimum "
         << o.coverage->per_class_min;
  } else {
    line << o.sample_percent << "%";
  }
  line << (o.rules.empty() ? "" : " of matching requests");
  log::Info(kRecordLog, line.str(),
            {{"session", session.name()},
             {"listen", session.recorder().listen_address().ToString()},
             {"upstream", o.upstream.ToString()},
             {"sample_mode", o.coverage ? "coverage" : "percent"},
             {"sample_percent", o.sample_percent},
             {"rules", o.rules.blocks().size()}});
  if (o.coverage && !o.coverage->history_sessions.empty()) {
    line.str("");
    line << "class history: " << o.coverage->history.size() << " classes from";
    for (const std::string& name : o.coverage->history_sessions) line << " " << name;
    log::Info(kRecordLog, line.str(), {{"classes", o.coverage->history.size()}});
  }
  if (!o.fault.spec.empty() || o.fault.from_headers) {
    line.str("");
    line << "WARNING: injecting faults into the proxied traffic ("
         << (o.fault.spec.empty() ? std::string("none drawn") : o.fault.spec.text)
         << (o.fault.from_headers ? ", and as request headers ask" : "")
         << (o.fault_rule.empty() ? "" : ", rule '" + o.fault_rule + "'")
         << "): clients will see delays and errors the primary did not cause";
    log::Warn(kRecordLog, line.str(),
              {{"faults", o.fault.spec.text},
               {"fault_headers", o.fault.from_headers},
               {"fault_rule", o.fault_rule}});
  }
  if (!o.tls_client_ca_file.empty()) {
    log::Info(kRecordLog,
              "mTLS: clients must present a certificate issued by a CA of " + o.tls_client_ca_file,
              {{"client_ca", o.tls_client_ca_file}});
  }
  for (const auto& m : o.mirror.mirrors) {
    line.str("");
    line << "mirroring ";
    if (m.coverage) {
      line << "by class within " << m.budget.text;
    } else {
      line << (m.adaptive ? "up to " : "") << m.percent << "%";
    }
    line << (m.rule.empty() ? "" : " of rule '" + m.rule + "'") << " to " << m.url.ToString()
         << " as '" << m.name << "' (timeout " << m.timeout.count() << " ms, max in flight "
         << m.max_inflight << (o.mirror.diff ? ", diffed" : "")
         << (m.adaptive ? ", adaptive within " + o.mirror.budget.ToString() : "")
         << (m.fault.empty() ? "" : ", faults " + m.fault.text) << ")";
    log::Info(kRecordLog, line.str(),
              {{"mirror", m.name},
               {"url", m.url.ToString()},
               {"percent", m.percent},
               {"mode", m.coverage ? "coverage" : "uniform"},
               {"adaptive", m.adaptive},
               {"timeout_ms", m.timeout.count()},
               {"max_inflight", m.max_inflight}});
  }
}

// One status line: the request rate since the last line and the running counts, rewritten in
// place on a terminal (log::WriteStatus decides; the last argument, whether stderr is a
// terminal, is its business). Also the supervisor's STATUS= under systemd
// (docs/operations.md).
void PrintStatusLine(const recorder::Recorder& rec, const recorder::RecorderCounts& c, double rate,
                     bool /*tty*/) {
  char line[1024];
  std::snprintf(
      line, sizeof line,
      "%.0f req/s | requests %llu | sampled %llu | stored %llu | dropped %llu | "
      "errors %llu | queue %llu",
      rate, static_cast<unsigned long long>(c.requests), static_cast<unsigned long long>(c.sampled),
      static_cast<unsigned long long>(c.stored), static_cast<unsigned long long>(c.dropped),
      static_cast<unsigned long long>(c.errors), static_cast<unsigned long long>(c.queue_depth));
  boost::json::object fields{{"rate", std::llround(rate)}, {"requests", c.requests},
                             {"sampled", c.sampled},       {"stored", c.stored},
                             {"dropped", c.dropped},       {"errors", c.errors},
                             {"queue", c.queue_depth}};
  boost::json::array failing_sinks, mirrors;
  for (const recorder::SinkCounts& k : c.sinks) {
    if (!k.failing) continue;
    const size_t used = std::strlen(line);
    std::snprintf(line + used, sizeof line - used, " | %s retrying, dropped %llu", k.name.c_str(),
                  static_cast<unsigned long long>(k.dropped));
    failing_sinks.push_back(boost::json::object{{"name", k.name}, {"dropped", k.dropped}});
  }
  for (const recorder::MirrorCounts& m : rec.mirror_counts()) {
    const size_t used = std::strlen(line);
    // Failed: sent and not answered well. Dropped: never sent (over max-inflight, or the
    // mirror was unavailable after a failed connect).
    const uint64_t dropped = m.dropped_cap + m.dropped_unavailable + m.dropped_bytes;
    std::snprintf(line + used, sizeof line - used, " | %s sent %llu failed %llu dropped %llu",
                  m.name.c_str(), static_cast<unsigned long long>(m.sent),
                  static_cast<unsigned long long>(m.failed),
                  static_cast<unsigned long long>(dropped));
    mirrors.push_back(boost::json::object{
        {"name", m.name}, {"sent", m.sent}, {"failed", m.failed}, {"dropped", dropped}});
  }
  if (!failing_sinks.empty()) fields["failing_sinks"] = std::move(failing_sinks);
  if (!mirrors.empty()) fields["mirrors"] = std::move(mirrors);
  log::WriteStatus(log::Level::kInfo, kRecordLog, line, fields);
  (void)sd_notifyf(0, "STATUS=%s", line);  // a no-op without $NOTIFY_SOCKET
}

void PrintSummary(const recorder::SessionSummary& sum) {
  const recorder::RecorderCounts& c = sum.counts;
  std::cout << "session " << sum.name << ": requests " << c.requests << ", sampled " << c.sampled
            << ", stored " << c.stored << ", dropped " << c.dropped << ", errors " << c.errors
            << ", bytes in " << FormatBytes(c.request_bytes) << ", out "
            << FormatBytes(c.response_bytes)
            << (sum.disk_bytes ? ", on disk " + FormatBytes(*sum.disk_bytes) : std::string())
            << std::endl;
  const std::string faults = net::FaultCountsText(c.faults);
  if (!faults.empty()) std::cout << "faults injected: " << faults << std::endl;
  if (sum.coverage) {
    size_t covered = 0;
    for (const recorder::ClassStat& k : sum.coverage->classes) covered += k.kept > 0;
    std::cout << "classes: seen " << sum.coverage->classes.size() << ", covered " << covered
              << ", not kept for want of budget " << sum.coverage->denied_by_budget << std::endl;
  }
  if (c.sinks.size() > 1 || c.sinks.front().name != "store") {
    for (const recorder::SinkCounts& k : c.sinks) {
      std::cout << "sink " << k.name << ": stored " << k.stored << ", dropped " << k.dropped
                << std::endl;
    }
  }
  for (const recorder::MirrorCounts& m : sum.mirrors) {
    std::cout << "mirror " << m.name << ": sent " << m.sent << ", succeeded " << m.succeeded
              << ", failed " << m.failed << " (connect " << m.failed_connect << ", timeout "
              << m.failed_timeout << ", reset " << m.failed_reset << ", 5xx " << m.failed_5xx
              << ", bad response " << m.failed_other << "), dropped at max-inflight "
              << m.dropped_cap << ", over max-inflight-bytes " << m.dropped_bytes
              << ", while unavailable " << m.dropped_unavailable << ", not picked "
              << m.skipped_sample + m.skipped_rule;
    if (m.skipped_upload > 0) {
      std::cout << ", not copied (streamed request body over max-inflight-bytes or incomplete) "
                << m.skipped_upload;
    }
    if (m.faults_delayed + m.faults_aborted > 0) {
      std::cout << ", faults: delayed " << m.faults_delayed << ", aborted (not sent) "
                << m.faults_aborted;
    }
    if (sum.mirror_diff) {
      std::cout << ", diff: match " << m.diff_match << ", mismatch " << m.diff_mismatch
                << ", uncompared " << m.diff_uncompared;
    }
    // Copies still unanswered after the 1 s shutdown grace were abandoned with the process.
    if (m.inflight > 0) std::cout << ", abandoned at exit " << m.inflight;
    std::cout << std::endl;
  }
}

// The audit line of a started recording: what it records, from where, and where copies go.
void AuditListening(const GlobalOptions& global, const recorder::Session& session,
                    const std::vector<std::string>& sinks) {
  if (global.audit == nullptr) return;
  const recorder::RecorderOptions& o = session.recorder_options();
  boost::json::array mirrors;
  for (const auto& m : o.mirror.mirrors) {
    mirrors.push_back(boost::json::object{{"name", m.name},
                                          {"url", m.url.ToString()},
                                          {"percent", m.percent},
                                          {"rule", m.rule},
                                          {"client_cert", !m.tls.cert_file.empty()}});
  }
  boost::json::array sink_list;
  for (const std::string& s : audit::MaskArguments(sinks)) sink_list.emplace_back(s);
  if (sink_list.empty()) sink_list.emplace_back("store");
  WriteAudit(global, "record",
             {{"event", "listening"},
              {"session", session.name()},
              {"listen", session.recorder().listen_address().ToString()},
              {"tls", !o.tls_cert_file.empty()},
              {"client_ca", !o.tls_client_ca_file.empty()},
              {"upstream", o.upstream.ToString()},
              {"upstream_client_cert", !o.upstream_tls.cert_file.empty()},
              {"sample_percent", o.sample_percent},
              {"rules", o.rules.blocks().size()},
              {"mirrors", std::move(mirrors)},
              {"sinks", std::move(sink_list)}});
}

// A reload's log line and audit line (applied or refused).
void ReportReload(const GlobalOptions& global, const recorder::ReloadOutcome& out) {
  if (out.status.ok()) {
    std::string what;
    for (const std::string& c : out.changed) what += (what.empty() ? "" : "; ") + c;
    log::Info(kRecordLog,
              out.origin + ": configuration " + std::to_string(out.generation) + " applied (" +
                  (what.empty() ? "nothing changed; rules files read again" : what) + ")",
              {{"origin", out.origin}, {"generation", out.generation}});
  } else {
    log::Warn(
        kRecordLog,
        out.origin + ": reload refused, configuration " + std::to_string(out.generation) +
            " stays: " + out.status.ToString(),
        {{"origin", out.origin}, {"generation", out.generation}, {"error", out.status.ToString()}});
  }
  if (global.audit == nullptr) return;
  boost::json::array changed;
  for (const std::string& c : audit::MaskArguments(out.changed)) changed.emplace_back(c);
  boost::json::object fields{{"event", "reload"},
                             {"origin", out.origin},
                             {"applied", out.status.ok()},
                             {"generation", out.generation},
                             {"changed", std::move(changed)}};
  if (!out.status.ok()) fields["error"] = out.status.ToString();
  WriteAudit(global, "record", std::move(fields));
}

// The audit log's summary of adaptive mirrors (at most one line a minute, and one at the
// end): per mirror whose percentage changed since the last line, how often and where it is.
// `seen` holds the change counts already written, by mirror name.
void AuditAdaptive(const GlobalOptions& global, const std::vector<recorder::MirrorCounts>& mirrors,
                   std::map<std::string, uint64_t>* seen) {
  if (global.audit == nullptr) return;
  boost::json::array changed;
  for (const recorder::MirrorCounts& m : mirrors) {
    uint64_t& before = (*seen)[m.name];
    if (m.adaptive_changes <= before) continue;
    changed.push_back(boost::json::object{{"mirror", m.name},
                                          {"changes", m.adaptive_changes - before},
                                          {"effective_percent", m.effective_percent}});
    before = m.adaptive_changes;
  }
  if (changed.empty()) return;
  WriteAudit(global, "record", {{"event", "adaptive"}, {"mirrors", std::move(changed)}});
}

// Flags < --config file: the options `record` runs with. `cmd` tells which flags were given.
struct RecordFlags {
  recorder::SessionOptions defaults;  // before parsing
  recorder::SessionOptions values;    // as parsed
  std::string config_file;
  bool print_config = false;
};

int RunRecord(const GlobalOptions& global, const RecordFlags& flags, const CLI::App& cmd) {
  auto source = std::make_shared<recorder::RecordConfigSource>();
  source->file = flags.config_file;
  source->defaults = flags.defaults;
  source->flags = flags.values;
  source->flags.store_path = global.store;
  for (const recorder::RecordConfigField& f : recorder::RecordConfigFields()) {
    if (cmd.get_option(std::string(f.flag))->count() > 0) source->given.emplace_back(f.path);
  }
  auto resolved = recorder::ResolveRecordConfig(*source);
  if (!resolved.ok()) return Fail(resolved.status());
  recorder::SessionOptions options = std::move(resolved.value());
  if (flags.print_config) {
    std::cout << report::PrettyJson(boost::json::serialize(recorder::RecordConfigJson(options)))
              << std::endl;
    return kExitOk;
  }
  options.config_source = source;
  options.on_reload = [&global](const recorder::ReloadOutcome& out) { ReportReload(global, out); };
  // SIGINT/SIGTERM/SIGHUP are blocked in every thread (so before the session starts the
  // store's and the proxy's threads) and taken synchronously by this one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Clock& clock = SystemClock::Instance();
  const std::vector<std::string> sinks = options.sinks;
  auto started = recorder::Session::Start(std::move(options), clock);
  if (!started.ok()) {
    (*global.audit_notes)["error"] = started.status().ToString();
    return Fail(started.status());
  }
  recorder::Session& session = **started;
  PrintBanner(session);
  // systemd Type=notify (docs/operations.md): ready once the proxy accepts connections. A
  // no-op without $NOTIFY_SOCKET; a failure to notify is not a reason to stop proxying.
  (void)sd_notifyf(0, "READY=1\nMAINPID=%lu\nSTATUS=listening on %s, primary %s",
                   static_cast<unsigned long>(::getpid()),
                   session.recorder().listen_address().ToString().c_str(),
                   session.recorder_options().upstream.ToString().c_str());
  AuditListening(global, session, sinks);

  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const uint64_t interval_us = tty ? 1'000'000 : 5'000'000;
  uint64_t last_report_us = clock.NowUs();
  uint64_t last_adaptive_us = last_report_us;
  std::map<std::string, uint64_t> adaptive_seen;
  uint64_t last_requests = 0;
  int caught = 0;
  while (caught <= 0) {
    timespec ts{1, 0};
    caught = sigtimedwait(&signals, nullptr, &ts);
    if (caught == SIGHUP) {
      // The --config file and the rules files read again (docs/operations.md). (A status
      // line rewritten on the terminal is ended by the next log line.)
      (void)sd_notify(0, "RELOADING=1");
      (void)session.Reload(nullptr, "SIGHUP");
      (void)sd_notify(0, "READY=1");
      caught = 0;
    }
    const uint64_t now_us = clock.NowUs();
    if (now_us - last_adaptive_us >= 60'000'000) {
      AuditAdaptive(global, session.recorder().mirror_counts(), &adaptive_seen);
      last_adaptive_us = now_us;
    }
    if (caught <= 0 && now_us - last_report_us >= interval_us) {
      const recorder::RecorderCounts c = session.recorder().counts();
      PrintStatusLine(session.recorder(), c,
                      (c.requests - last_requests) / ((now_us - last_report_us) / 1e6), tty);
      last_report_us = now_us;
      last_requests = c.requests;
    }
  }
  // (A status line rewritten on the terminal is ended with a newline by the next line.)
  log::Info(kRecordLog,
            std::string(caught == SIGINT ? "interrupted" : "terminated") +
                ", finishing in-flight requests and flushing",
            {{"signal", caught == SIGINT ? "SIGINT" : "SIGTERM"}});
  (void)sd_notify(0, "STOPPING=1\nSTATUS=draining in-flight requests and flushing");

  const recorder::SessionSummary& summary = session.Stop();
  PrintSummary(summary);
  AuditAdaptive(global, summary.mirrors, &adaptive_seen);
  boost::json::object& notes = *global.audit_notes;
  notes["session"] = summary.name;
  notes["requests"] = summary.counts.requests;
  notes["sampled"] = summary.counts.sampled;
  notes["stored"] = summary.counts.stored;
  notes["dropped"] = summary.counts.dropped;
  uint64_t mirrored = 0;
  for (const recorder::MirrorCounts& m : summary.mirrors) mirrored += m.sent;
  notes["mirrored"] = mirrored;
  if (!summary.status.ok()) notes["error"] = summary.status.ToString();
  if (!summary.status.ok()) return Fail(summary.status);
  return kExitOk;
}

}  // namespace

void AddRedactFlags(CLI::App* cmd, redact::RedactOptions* options) {
  cmd->add_option("--redact-header", options->headers,
                  "also redact this header (repeatable; Authorization, Cookie, Set-Cookie, "
                  "Proxy-Authorization and X-Api-Key always are)");
  cmd->add_option("--redact-query", options->query_params,
                  "redact this query parameter of the request-target (repeatable)");
  cmd->add_option("--redact-json-path", options->json_paths,
                  "redact this field of JSON request and response bodies, e.g. body.user.ssn, "
                  "body.items[*].card (repeatable); a JSON body that cannot be parsed is dropped");
  cmd->add_flag("--no-redact", options->off, "store everything verbatim (no redaction at all)");
}

void AddRecordCommand(CLI::App& app, const GlobalOptions& global, Runner* run) {
  auto all = std::make_shared<RecordFlags>();
  all->defaults.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  all->values = all->defaults;
  recorder::SessionOptions* flags = &all->values;
  CLI::App* cmd = app.add_subcommand(
      "record", "Proxy to the primary and record a sampled share of the traffic");
  cmd->add_option("--config", all->config_file,
                  "JSON or YAML file of everything the flags say (flags given win over it); "
                  "SIGHUP and POST /config reload it (docs/operations.md)");
  cmd->add_flag("--print-config", all->print_config,
                "write the effective configuration (defaults, --config, flags) as JSON and exit");
  cmd->add_option("--listen", flags->listen, "ADDR:PORT to accept clients on (port 0: any)")
      ->capture_default_str();
  cmd->add_option("--upstream", flags->upstream,
                  "the primary: http[s]://, h2c:// (HTTP/2) or h2:// (HTTP/2 over TLS), then "
                  "host:port[/base] (required here or in --config)");
  cmd->add_option("--session", flags->name, "session name (default rec-DATE-TIME)");
  cmd->add_option("--sample", flags->sample, "percent of (matching) requests to record, 0-100")
      ->capture_default_str();
  cmd->add_option("--sample-key", flags->sample_key,
                  "decide by a hash of header:NAME or query:NAME instead of at random");
  cmd->add_option("--sample-mode", flags->sample_mode,
                  "uniform (--sample PERCENT) or coverage (every class of request kept, the "
                  "rare ones first, within --sample-budget; docs/sampling.md)")
      ->capture_default_str();
  cmd->add_option("--sample-budget", flags->sample_budget,
                  "coverage: envelopes per second (200/s) or a share of requests (5%); a hard cap");
  cmd->add_option("--per-class-min", flags->per_class_min,
                  "coverage: envelopes each class keeps before its share falls with frequency")
      ->capture_default_str();
  cmd->add_flag("--no-class-history", flags->no_class_history,
                "coverage: do not seed class frequencies from earlier sessions of the upstream");
  cmd->add_option("--class-rules", flags->class_rules,
                  "coverage: diff rules file whose \"endpoints\" patterns name the classes' "
                  "endpoints (docs/diff-rules.md); others are templated automatically");
  cmd->add_option("--match", flags->match,
                  "capture rule, e.g. 'name=api,method=GET,uri^=/api,header.X-User' "
                  "(repeatable; rules are OR'd)");
  cmd->add_option("--rules", flags->rules_file,
                  "JSON or YAML file of capture rules (.yaml/.yml: YAML)");
  cmd->add_option("--threads", flags->threads, "proxy threads")->capture_default_str();
  cmd->add_option("--admin", flags->admin, "ADDR:PORT for /metrics, /healthz, /status");
  cmd->add_flag("--admin-allow-remote", flags->admin_allow_remote,
                "allow --admin on a non-loopback address");
  cmd->add_flag("--log-bodies", flags->log_bodies,
                "log requests the proxy answered itself (4xx/5xx) with headers and body");
  cmd->add_option("--max-request-body", flags->max_request_body, "413 beyond")
      ->capture_default_str();
  cmd->add_option("--request-buffer", flags->request_buffer,
                  "request bodies up to this are read whole before they go to the primary "
                  "(mirrored, retried); larger ones stream to it as they arrive")
      ->capture_default_str();
  cmd->add_option("--max-header-size", flags->max_header_size, "431 beyond")->capture_default_str();
  cmd->add_option("--capture-body-limit", flags->capture_body_limit,
                  "bytes of each body kept in the record (the primary and the client get "
                  "all: bodies stream through)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", flags->idle_timeout, "keep-alive idle timeout")
      ->capture_default_str();
  cmd->add_option("--request-timeout", flags->request_timeout,
                  "time to read a request body / write a response")
      ->capture_default_str();
  cmd->add_option("--upstream-connect-timeout", flags->upstream_connect_timeout, "502/504 beyond")
      ->capture_default_str();
  cmd->add_option("--upstream-idle-timeout", flags->upstream_idle_timeout,
                  "longest wait for the next byte from the primary (before its response "
                  "head: 504; mid-body: the client connection is closed)")
      ->capture_default_str();
  cmd->add_option("--upstream-timeout", flags->upstream_timeout,
                  "limit for the whole primary response, e.g. 30s (off unless set; 504 "
                  "before the head, closed mid-body)");
  cmd->add_option("--drain-timeout", flags->drain_timeout,
                  "on SIGINT/SIGTERM, wait this long for in-flight requests")
      ->capture_default_str();
  cmd->add_option("--max-connections", flags->max_connections, "open client connections")
      ->capture_default_str();
  cmd->add_option("--tls-cert", flags->tls_cert,
                  "TLS on the listener: PEM certificate chain (with --tls-key; ALPN h2, "
                  "http/1.1)");
  cmd->add_option("--tls-key", flags->tls_key,
                  "TLS on the listener: PEM private key (mode 0600: group and others may not "
                  "read it)");
  cmd->add_option("--tls-client-ca", flags->tls_client_ca,
                  "mTLS on the listener: PEM CAs; clients must present a certificate they "
                  "issued, whose subject is recorded (client_cert_subject, usable in --match)");
  cmd->add_option("--h2-max-concurrent-streams", flags->h2_max_concurrent_streams,
                  "HTTP/2: streams one client connection may have open at once")
      ->capture_default_str();
  cmd->add_option("--queue-size", flags->queue_size,
                  "envelopes waiting for the store; beyond, captures are dropped")
      ->capture_default_str();
  cmd->add_flag("--sync", flags->sync, "fsync the store on every batch");
  const std::string sg = "Capture sinks (docs/distributed.md)";
  cmd->add_option("--sink", flags->sinks,
                  "where envelopes go: 'store' or redis://[:PASSWORD@]HOST[:PORT]/STREAM "
                  "(repeatable; default: the store alone)")
      ->group(sg);
  cmd->add_option("--recorder-id", flags->recorder_id,
                  "this recorder's id in Redis entries (default HOSTNAME-PID)")
      ->group(sg);
  cmd->add_option("--sink-maxlen", flags->sink_maxlen,
                  "trim Redis streams to about N entries (XADD MAXLEN ~ N; 0 = unbounded)")
      ->group(sg);
  cmd->add_option("--sink-shards", flags->sink_shards,
                  "spread each Redis sink over K streams STREAM{0}..STREAM{K-1}, by the "
                  "--sample-key value or the client's address (a Redis Cluster spreads them "
                  "over its masters; 0 = one stream)")
      ->group(sg);
  cmd->add_flag("--sink-optional", flags->sink_optional,
                "start even when a Redis sink is down (its captures are dropped and counted "
                "until it answers)")
      ->group(sg);
  AddRedactFlags(cmd, &flags->redact);
  cmd->add_flag("--upstream-insecure", flags->upstream_insecure,
                "do not verify the primary's TLS certificate");
  cmd->add_option("--upstream-ca", flags->upstream_ca, "PEM CA bundle for the primary");
  cmd->add_option("--upstream-cert", flags->upstream_cert,
                  "mTLS: PEM client certificate presented to an https primary (with "
                  "--upstream-key)");
  cmd->add_option("--upstream-key", flags->upstream_key,
                  "mTLS: the PEM private key of --upstream-cert (mode 0600)");

  const std::string mg = "Live mirroring (fire-and-forget shadow traffic)";
  cmd->add_option("--mirror", flags->mirrors,
                  "copy requests to a shadow target: URL[,percent=P][,timeout=2s]"
                  "[,max-inflight=1000][,rule=NAME][,name=LABEL][,set-header=N:V]"
                  "[,remove-header=N][,ca=FILE][,cert=FILE,key=FILE][,insecure][,fault=SPEC]"
                  "[,adaptive] (repeatable)")
      ->group(mg);
  cmd->add_flag("--no-shadow-suffix", flags->no_shadow_suffix,
                "send the Host header unchanged (default: host-shadow[:port])")
      ->group(mg);
  cmd->add_option("--mirror-set-header", flags->mirror_set_headers,
                  "NAME=VALUE set on every mirror copy (repeatable)")
      ->group(mg);
  cmd->add_option("--mirror-remove-header", flags->mirror_remove_headers,
                  "header removed from every mirror copy (repeatable)")
      ->group(mg);
  cmd->add_option("--mirror-max-inflight-bytes", flags->mirror_max_inflight_bytes,
                  "request bytes all mirror copies in flight may hold; over it copies are "
                  "dropped")
      ->capture_default_str();
  cmd->add_flag("--mirror-same-sample", flags->mirror_same_sample,
                "one draw per request for all mirrors (a 1% mirror gets a subset of a 10% one)")
      ->group(mg);
  cmd->add_flag("--mirror-diff", flags->mirror_diff,
                "diff each mirror response against the primary's; counts on /metrics, /status")
      ->group(mg);
  cmd->add_option("--mirror-diff-rules", flags->mirror_diff_rules,
                  "diff rules file (as for replay) for --mirror-diff; implies --mirror-diff")
      ->group(mg);
  cmd->add_option("--mirror-proto-set", flags->mirror_proto_set,
                  "gRPC descriptor set (as for replay; written by protoc with its imports) for "
                  "--mirror-diff: messages compared field by field; implies --mirror-diff")
      ->group(mg);
  cmd->add_option("--mirror-budget", flags->mirror_budget,
                  "what adaptive mirrors (--mirror URL,...,adaptive) keep within: "
                  "p99=DURATION,cpu=PERCENT%,errors=PERCENT% (any subset); the percentage halves "
                  "while over, climbs back while within")
      ->group(mg);
  cmd->add_option("--mirror-match", flags->mirror_match,
                  "a named rule for --mirror ...,rule=NAME only (same syntax as --match; does "
                  "not limit recording)")
      ->group(mg);
  cmd->add_option("--mirror-rules", flags->mirror_rules_file,
                  "JSON or YAML file of rules for --mirror ...,rule=NAME (same schema as --rules)")
      ->group(mg);
  const std::string fg = "Fault injection (staging and chaos experiments; docs/chaos.md)";
  cmd->add_option("--fault", flags->fault,
                  "inject faults into proxied requests: KIND[:ARG]:PERCENT% joined with '+', "
                  "e.g. delay:200ms:10%+abort:503:5% (kinds: delay, abort, reset, bandwidth, "
                  "truncate)")
      ->group(fg);
  cmd->add_option("--fault-rule", flags->fault_rule,
                  "only requests matching this rule get faults: a rule ('method=POST,uri^=/api', "
                  "as --match; does not limit recording) or the name of a --match rule")
      ->group(fg);
  cmd->add_flag("--fault-headers", flags->fault_headers,
                "honour x-doppel-fault-delay-ms and x-doppel-fault-abort request headers")
      ->group(fg);
  cmd->add_option("--fault-seed", flags->fault_seed,
                  "seed of the fault draws (same seed, same draws)")
      ->group(fg);
  cmd->add_option("--max-active-faults", flags->max_active_faults,
                  "faulted requests in flight at once; beyond, requests go through unfaulted "
                  "(0: no cap)")
      ->group(fg);
  cmd->callback([&global, all, cmd, run] {
    *run = [&global, all, cmd] { return RunRecord(global, *all, *cmd); };
  });
}

}  // namespace doppel::cli
