// Session: one `doppel record` from start to end, as a library object. The CLI parses flags
// into SessionOptions and prints; everything else lives here: validate the options, open the
// store and its redaction key, create the session record (RECORDING), start the recorder and,
// on Stop, stop accepting, drain in-flight requests, flush the capture queue and close the
// session record with the recorder's counts.
//
//   auto session = Session::Start(options, SystemClock::Instance());  // validates, listens
//   if (!session.ok()) ...                             // usage/config/store error: exit 2
//   Print((*session)->recorder().listen_address());    // banner
//   ... wait for SIGINT/SIGTERM (the CLI's business), show recorder().counts() meanwhile ...
//   const SessionSummary& summary = (*session)->Stop();  // blocks until the record is closed
//
// Time (the default session name, the session record's created and closed times, envelope
// arrival times, the /status uptime) comes from the injected Clock, so tests can pin it.
// Socket timeouts and the drain wait run on real time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "recorder/recorder.h"
#include "redact/redactor.h"

namespace doppel::net {
struct ConfigDoc;
}  // namespace doppel::net

namespace doppel::recorder {

struct RecordConfigSource;  // recorder/record_config.h

// What one reload (Session::Reload) did.
struct ReloadOutcome {
  std::string origin;  // who asked: "SIGHUP", "POST /config"
  // OK: applied. Otherwise why it was refused (the file's line and field, a field that needs
  // a restart); the configuration in force did not change.
  Status status;
  uint64_t generation = 0;           // in force after it (doppel_config_generation)
  std::vector<std::string> changed;  // "sampling.percent: 100 -> 10", in schema order
};

// What `doppel record` was asked to do. Strings are flag values as the user typed them;
// Session::Start parses and validates them, with errors that name the flag.
struct SessionOptions {
  std::string store_path;                 // --store
  std::string name;                       // --session; "" = rec-YYYYMMDD-HHMMSS (UTC, clock)
  std::string listen = "127.0.0.1:8080";  // port 0: any free port
  std::string upstream;                   // the primary, http[s]://host:port[/base]; required
  double sample = 100;                    // percent, 0-100
  std::string sample_key;                 // "", "header:NAME", "query:NAME"
  std::string sample_mode = "uniform";    // "uniform" (--sample) or "coverage"
  std::string sample_budget;              // coverage: "200/s" or "5%"; required there
  int per_class_min = 20;                 // coverage: envelopes every class gets first
  // coverage: seed class frequencies from earlier sessions of the same upstream
  // (recorder/coverage_history.h) unless --no-class-history.
  bool no_class_history = false;
  // coverage: a diff rules file (docs/diff-rules.md) whose `endpoints` patterns name the
  // classes' endpoints before automatic {id} templating.
  std::string class_rules;
  std::vector<std::string> match;  // --match rules (OR'd)
  std::string rules_file;          // --rules: JSON or YAML
  int threads = 1;
  std::string admin;                // ADDR:PORT or "" (off)
  bool admin_allow_remote = false;  // otherwise a non-loopback --admin is refused
  bool log_bodies = false;
  std::string max_request_body = "64MiB";
  std::string request_buffer = "1MiB";
  std::string max_header_size = "16KiB";  // 1KiB to 1MiB
  std::string capture_body_limit = "1MiB";
  std::string idle_timeout = "60s";
  std::string request_timeout = "30s";
  std::string upstream_connect_timeout = "5s";
  std::string upstream_idle_timeout = "60s";  // between bytes from the primary
  std::string upstream_timeout;               // whole response; "" = no limit
  std::string drain_timeout = "10s";          // 0 allowed: in-flight requests are cut at once
  size_t max_connections = 10000;
  uint32_t h2_max_concurrent_streams = 100;  // 1 to 2^31-1
  std::string tls_cert;                      // --tls-cert FILE (PEM chain), with --tls-key FILE
  std::string tls_key;
  std::string tls_client_ca;  // --tls-client-ca FILE: require client certificates
  size_t queue_size = 10000;  // 0 is taken as 1
  bool sync = false;          // fsync the store on every batch
  // Capture sinks (--sink, repeatable): "store", or redis://[:PASSWORD@]HOST[:PORT]/STREAM.
  // Empty: the store alone. Each sink has its own queue (queue_size) and counters.
  std::vector<std::string> sinks;
  std::string recorder_id;     // --recorder-id: written with each Redis entry; "" = HOSTNAME-PID
  uint64_t sink_maxlen = 0;    // --sink-maxlen: XADD MAXLEN ~ N; 0 = unbounded
  uint32_t sink_shards = 0;    // --sink-shards K: each Redis sink over K streams STREAM{i}
  bool sink_optional = false;  // --sink-optional: start even when a Redis sink is down
  redact::RedactOptions redact;
  bool upstream_insecure = false;
  std::string upstream_ca;
  std::string upstream_cert;  // --upstream-cert FILE, with --upstream-key FILE: mTLS to the primary
  std::string upstream_key;
  // Live mirroring: any --mirror-* option needs at least one --mirror.
  std::vector<std::string> mirrors;  // ParseMirrorSpec syntax
  bool no_shadow_suffix = false;
  bool mirror_same_sample = false;
  std::string mirror_max_inflight_bytes = "256MiB";
  bool mirror_diff = false;
  std::string mirror_diff_rules;                // implies mirror_diff
  std::string mirror_proto_set;                 // gRPC message types; implies mirror_diff
  std::vector<std::string> mirror_set_headers;  // NAME=VALUE (or NAME:VALUE)
  std::vector<std::string> mirror_remove_headers;
  std::vector<std::string> mirror_match;
  std::string mirror_rules_file;
  std::string mirror_budget;  // --mirror-budget p99=20ms,cpu=80%,errors=5% (adaptive mirrors)
  // Fault injection on the proxied path (docs/chaos.md).
  std::string fault;       // --fault SPEC (net/fault.h grammar); "" = none
  std::string fault_rule;  // --fault-rule NAME: a --match or --mirror-match rule
  bool fault_headers = false;
  uint64_t fault_seed = 0;
  size_t max_active_faults = 0;  // 0 = no cap

  // Where a reload takes its configuration from (recorder/record_config.h): the --config file
  // and the flags that win over it. Null: a reload's document applies over these options, and
  // SIGHUP re-reads the rules files only.
  std::shared_ptr<const RecordConfigSource> config_source;
  // Told of every reload, applied or refused, on the thread that asked (the caller of
  // Reload, or the admin thread for POST /config): for the log and the audit log.
  std::function<void(const ReloadOutcome&)> on_reload;
};

// What a stopped session did: the data of `doppel record`'s final summary.
struct SessionSummary {
  std::string name;
  RecorderCounts counts;                     // final: after the drain and the queue flush
  std::vector<MirrorCounts> mirrors;         // one per --mirror, in flag order
  bool mirror_diff = false;                  // the mirrors' diff counts mean something
  std::optional<CoverageSnapshot> coverage;  // --sample-mode coverage: classes at the end
  // The closed session's bytes in the store's table files (compressed), when the store is a
  // sink and could size it.
  std::optional<uint64_t> disk_bytes;
  // OK when the session record was closed and the store took every envelope offered to it;
  // otherwise what went wrong ("closing session NAME: ...", "N envelopes were not stored:
  // ..."). The session record is closed in either case when the store allows it.
  Status status;
};

class Session {
 public:
  // Validates `options`, opens the store (SessionOptions::store_path) and its redaction key,
  // creates the session record (when the store is a sink), connects the Redis sinks and
  // starts the recorder; returns once the proxy accepts connections. Errors (exit 2) name the
  // flag, the store or the Redis server at fault; a session name that exists is refused. REQUIRES:
  // `clock` outlives the Session.
  static Result<std::unique_ptr<Session>> Start(SessionOptions options, const Clock& clock);
  // Stops first if Stop() was not called.
  ~Session();

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::string& name() const;
  // The options as parsed (upstream, sampling, rules, mirrors): for the banner.
  const RecorderOptions& recorder_options() const;
  // The proxy: bound addresses, live counts, /status. Valid until the Session is destroyed
  // (after Stop too, with the final counts).
  const Recorder& recorder() const;

  // Live reconfiguration: the configuration in force with `doc`'s fields over it (POST
  // /config: fields it does not name keep their values), or with `doc` null resolved anew
  // from the defaults and the --config file read again (SIGHUP: earlier POSTs are undone) —
  // the flags given still winning either way — and applies what changed to the recorder:
  // sampling percent and key, capture rules (rules files are read again), mirrors and
  // mirroring settings, faults. A change to anything else (listener, upstream, sinks,
  // limits, ...) needs a restart and refuses the whole reload, as does any error; the
  // configuration in force then stays. Thread-safe; refused once Stop() began.
  ReloadOutcome Reload(const net::ConfigDoc* doc, std::string origin);

  // Graceful stop: stops accepting, lets in-flight requests finish (up to --drain-timeout),
  // writes every queued envelope, then closes the session record (state CLOSED, closed time
  // from the clock, the recorder's counts). Blocks until done. Idempotent: later calls
  // return the same summary. Not thread-safe: call from one thread.
  const SessionSummary& Stop();

 private:
  struct State;
  // Reload's work, also reached from the admin thread (POST /config) through State alone.
  static ReloadOutcome ReloadState(State& s, const net::ConfigDoc* doc, std::string origin);
  explicit Session(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};
using SessionPtr = std::unique_ptr<Session>;

}  // namespace doppel::recorder
