// `doppel record`: the capture proxy (recorder/). Flags, store and session handling, signal
// handling, the live status line and the final summary.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <thread>

#include "net/match.h"
#include "net/url.h"
#include "recorder/capture_writer.h"
#include "recorder/mirror.h"
#include "diff/rules.h"
#include "recorder/recorder.h"
#include "redact/redactor.h"
#include "storage/store.h"
#include "tools/cli.h"

namespace doppel::cli {
namespace {

struct RecordFlags {
  std::string listen = "127.0.0.1:8080";
  std::string upstream;
  std::string session;
  double sample = 100;
  std::string sample_key;
  std::vector<std::string> match;
  std::string rules_file;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string admin;
  bool admin_allow_remote = false;
  bool log_bodies = false;
  std::string max_request_body = "64MiB";
  std::string max_header_size = "16KiB";
  std::string capture_body_limit = "1MiB";
  std::string idle_timeout = "60s";
  std::string request_timeout = "30s";
  std::string upstream_connect_timeout = "5s";
  std::string upstream_timeout = "30s";
  std::string drain_timeout = "10s";
  size_t max_connections = 10000;
  size_t queue_size = 10000;
  bool sync = false;
  redact::RedactOptions redact;
  bool upstream_insecure = false;
  std::string upstream_ca;
  // Live mirroring.
  std::vector<std::string> mirrors;
  bool no_shadow_suffix = false;
  bool mirror_same_sample = false;
  std::string mirror_max_inflight_bytes = "256MiB";
  bool mirror_diff = false;
  std::string mirror_diff_rules;
  std::vector<std::string> mirror_set_headers;
  std::vector<std::string> mirror_remove_headers;
  std::vector<std::string> mirror_match;
  std::string mirror_rules_file;
};

int Fail(const Status& s) {
  std::cerr << "doppel record: " << s.ToString() << "\n";
  return kExitError;
}

// "64MiB", "1M", "512k", "1048576" -> bytes (binary multiples).
Result<uint64_t> ParseSize(const std::string& flag, const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 12) {
    return Status::InvalidArgument(flag + ": '" + text + "' is not a size (e.g. 64MiB)");
  }
  uint64_t n = 0;
  std::from_chars(text.data(), text.data() + i, n);
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  uint64_t mult = 1;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib")
    mult = 1ull << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib")
    mult = 1ull << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib")
    mult = 1ull << 30;
  else
    return Status::InvalidArgument(flag + ": unknown unit in '" + text + "' (use KiB, MiB, GiB)");
  return n * mult;
}

// "30s", "500ms", "2m", "1.5s"; a bare number is seconds.
Result<std::chrono::milliseconds> ParseDuration(const std::string& flag, const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0 || i > 12 || text.find('.') != text.rfind('.')) {
    return Status::InvalidArgument(flag + ": '" + text + "' is not a duration (e.g. 30s)");
  }
  double v = 0;
  if (std::from_chars(text.data(), text.data() + i, v).ptr != text.data() + i) {
    return Status::InvalidArgument(flag + ": '" + text + "' is not a duration (e.g. 30s)");
  }
  const std::string unit = text.substr(i);
  double ms;
  if (unit == "ms")
    ms = v;
  else if (unit.empty() || unit == "s")
    ms = v * 1000;
  else if (unit == "m")
    ms = v * 60000;
  else
    return Status::InvalidArgument(flag + ": unknown unit in '" + text + "' (use ms, s, m)");
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::string DefaultSessionName() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "rec-%Y%m%d-%H%M%S", std::gmtime(&t));
  return buf;
}

std::string HumanBytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1ull << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

Status BuildMirrorOptions(const RecordFlags& f, recorder::MirrorOptions* m) {
  const bool any_mirror_flag = f.no_shadow_suffix || f.mirror_same_sample || f.mirror_diff ||
                               !f.mirror_diff_rules.empty() || !f.mirror_set_headers.empty() ||
                               !f.mirror_remove_headers.empty() || !f.mirror_match.empty() ||
                               !f.mirror_rules_file.empty();
  if (f.mirrors.empty()) {
    if (any_mirror_flag) {
      return Status::InvalidArgument(
          "--mirror-* options need at least one --mirror URL[,percent=P,...]");
    }
    return Status::Ok();
  }
  for (const std::string& text : f.mirrors) {
    auto spec = recorder::ParseMirrorSpec(text);
    if (!spec.ok()) return spec.status();
    m->mirrors.push_back(std::move(spec.value()));
  }
  m->shadow_suffix = !f.no_shadow_suffix;
  m->same_sample = f.mirror_same_sample;
  auto max_bytes = ParseSize("--mirror-max-inflight-bytes", f.mirror_max_inflight_bytes);
  if (!max_bytes.ok()) return max_bytes.status();
  m->max_inflight_bytes = max_bytes.value();
  m->diff = f.mirror_diff || !f.mirror_diff_rules.empty();
  if (!f.mirror_diff_rules.empty()) {
    auto rules = diff::LoadRulesFile(f.mirror_diff_rules);
    if (!rules.ok()) return rules.status().WithContext("--mirror-diff-rules");
    m->diff_rules = std::move(rules.value());
  }
  for (const std::string& kv : f.mirror_set_headers) {
    const size_t eq = kv.find_first_of("=:");
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--mirror-set-header '" + kv +
                                     "': give NAME=VALUE, e.g. X-Shadow=1");
    }
    m->set_headers.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  m->remove_headers = f.mirror_remove_headers;
  auto rules = net::MatchRules::FromFlags(f.mirror_match);
  if (!rules.ok()) return rules.status().WithContext("--mirror-match");
  m->rules = std::move(rules.value());
  if (!f.mirror_rules_file.empty()) {
    auto from_file = net::MatchRules::FromFile(f.mirror_rules_file);
    if (!from_file.ok()) return from_file.status().WithContext("--mirror-rules");
    DOPPEL_RETURN_IF_ERROR(m->rules.Merge(std::move(from_file.value())));
  }
  return Status::Ok();
}

Result<recorder::RecorderOptions> BuildOptions(const RecordFlags& f) {
  recorder::RecorderOptions o;
  auto listen = net::ParseHostPort(f.listen);
  if (!listen.ok()) return listen.status().WithContext("--listen");
  o.listen = listen.value();
  if (f.upstream.empty()) return Status::InvalidArgument("--upstream URL is required");
  auto upstream = net::ParseUrl(f.upstream);
  if (!upstream.ok()) return upstream.status().WithContext("--upstream");
  o.upstream = upstream.value();
  if (!f.admin.empty()) {
    auto admin = net::ParseHostPort(f.admin);
    if (!admin.ok()) return admin.status().WithContext("--admin");
    o.admin = admin.value();
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(o.admin->host, ec);
    if (!ec && !ip.is_loopback() && !f.admin_allow_remote) {
      return Status::InvalidArgument(
          "--admin " + f.admin +
          " is not a loopback address: /status and /metrics would be open to the network "
          "(upstream, traffic counts); use 127.0.0.1:PORT, or pass --admin-allow-remote if "
          "that is really wanted");
    }
  }
  o.log_bodies = f.log_bodies;
  o.threads = f.threads;
  if (o.threads < 1) return Status::InvalidArgument("--threads must be at least 1");
  o.sample_percent = f.sample;
  o.sample_key = f.sample_key;

  auto rules = net::MatchRules::FromFlags(f.match);
  if (!rules.ok()) return rules.status();
  o.rules = std::move(rules.value());
  if (!f.rules_file.empty()) {
    auto from_file = net::MatchRules::FromFile(f.rules_file);
    if (!from_file.ok()) return from_file.status().WithContext("--rules");
    DOPPEL_RETURN_IF_ERROR(o.rules.Merge(std::move(from_file.value())));
  }

  struct SizeFlag {
    const char* name;
    const std::string* text;
    uint64_t* out;
  };
  uint64_t header_size = 0;
  for (const SizeFlag& s :
       {SizeFlag{"--max-request-body", &f.max_request_body, &o.max_request_body},
        SizeFlag{"--max-header-size", &f.max_header_size, &header_size},
        SizeFlag{"--capture-body-limit", &f.capture_body_limit, &o.capture_body_limit}}) {
    auto v = ParseSize(s.name, *s.text);
    if (!v.ok()) return v.status();
    *s.out = v.value();
  }
  if (header_size < 1024 || header_size > (1u << 20)) {
    return Status::InvalidArgument("--max-header-size must be between 1KiB and 1MiB");
  }
  o.max_header_bytes = static_cast<uint32_t>(header_size);

  struct DurationFlag {
    const char* name;
    const std::string* text;
    std::chrono::milliseconds* out;
  };
  for (const DurationFlag& d :
       {DurationFlag{"--idle-timeout", &f.idle_timeout, &o.idle_timeout},
        DurationFlag{"--request-timeout", &f.request_timeout, &o.request_timeout},
        DurationFlag{"--upstream-connect-timeout", &f.upstream_connect_timeout,
                     &o.upstream_client.connect_timeout},
        DurationFlag{"--upstream-timeout", &f.upstream_timeout,
                     &o.upstream_client.response_timeout},
        DurationFlag{"--drain-timeout", &f.drain_timeout, &o.drain_timeout}}) {
    auto v = ParseDuration(d.name, *d.text);
    if (!v.ok()) return v.status();
    if (v.value().count() <= 0 && std::string(d.name) != "--drain-timeout") {
      return Status::InvalidArgument(std::string(d.name) + " must be positive");
    }
    *d.out = v.value();
  }
  o.max_connections = f.max_connections;
  o.queue.queue_size = std::max<size_t>(1, f.queue_size);
  o.upstream_tls.verify = !f.upstream_insecure;
  o.upstream_tls.ca_file = f.upstream_ca;
  DOPPEL_RETURN_IF_ERROR(BuildMirrorOptions(f, &o.mirror));
  return o;
}

int RunRecord(const GlobalOptions& global, const RecordFlags& flags) {
  auto built = BuildOptions(flags);
  if (!built.ok()) return Fail(built.status());
  recorder::RecorderOptions options = std::move(built.value());
  options.session = flags.session.empty() ? DefaultSessionName() : flags.session;

  // SIGINT/SIGTERM are blocked in every thread (so before the store starts its threads) and
  // taken synchronously by this one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  storage::StoreOptions store_options;
  store_options.sync = flags.sync;
  std::unique_ptr<storage::Store> store;
  Status st = storage::Store::Open(store_options, global.store, &store);
  if (!st.ok()) return Fail(st.WithContext("opening the store " + global.store));

  auto redactor = redact::Redactor::ForStore(global.store, flags.redact);
  if (!redactor.ok()) return Fail(redactor.status());

  v1::SessionInfo info;
  info.set_name(options.session);
  info.set_state(v1::SESSION_STATE_RECORDING);
  info.set_upstream(options.upstream.ToString());
  info.set_source("record");
  info.mutable_sampling()->set_percent(options.sample_percent);
  info.mutable_sampling()->set_key(options.sample_key);
  for (const auto& b : options.rules.blocks()) info.mutable_sampling()->add_rules(b.name);
  auto created = store->CreateSession(info);
  if (!created.ok()) {
    return Fail(created.status().WithContext("session '" + options.session +
                                             "' (pick another --session name)"));
  }

  recorder::CaptureSinkPtr sink = recorder::MakeStoreSink(store.get(), options.session);
  auto started = recorder::Recorder::Start(options, sink.get(), redactor->get());
  if (!started.ok()) {
    (void)store->DeleteSession(options.session);
    return Fail(started.status());
  }
  recorder::RecorderPtr rec = std::move(started.value());
  std::cout << "listening on " << rec->listen_address().ToString() << std::endl;
  if (auto admin = rec->admin_address()) {
    std::cout << "admin on " << admin->ToString() << std::endl;
  }
  std::cerr << "doppel record: session '" << options.session << "' -> "
            << options.upstream.ToString() << ", sampling " << options.sample_percent << "%"
            << (options.rules.empty() ? "" : " of matching requests") << "\n";
  for (const auto& m : options.mirror.mirrors) {
    std::cerr << "doppel record: mirroring " << m.percent << "%"
              << (m.rule.empty() ? "" : " of rule '" + m.rule + "'") << " to " << m.url.ToString()
              << " as '" << m.name << "' (timeout " << m.timeout.count() << " ms, max in flight "
              << m.max_inflight << (options.mirror.diff ? ", diffed" : "") << ")\n";
  }

  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto interval = tty ? std::chrono::seconds(1) : std::chrono::seconds(5);
  auto last_report = std::chrono::steady_clock::now();
  uint64_t last_requests = 0;
  int caught = 0;
  while (caught <= 0) {
    timespec ts{1, 0};
    caught = sigtimedwait(&signals, nullptr, &ts);
    const auto now = std::chrono::steady_clock::now();
    if (caught <= 0 && now - last_report >= interval) {
      const recorder::RecorderCounts c = rec->counts();
      const double secs = std::chrono::duration<double>(now - last_report).count();
      char line[1024];
      std::snprintf(
          line, sizeof line,
          "%.0f req/s | requests %llu | sampled %llu | stored %llu | dropped %llu | "
          "errors %llu | queue %llu",
          (c.requests - last_requests) / secs, static_cast<unsigned long long>(c.requests),
          static_cast<unsigned long long>(c.sampled), static_cast<unsigned long long>(c.stored),
          static_cast<unsigned long long>(c.dropped), static_cast<unsigned long long>(c.errors),
          static_cast<unsigned long long>(c.queue_depth));
      for (const recorder::MirrorCounts& m : rec->mirror_counts()) {
        const size_t used = std::strlen(line);
        // Failed: sent and not answered well. Dropped: never sent (over max-inflight, or
        // the mirror was unavailable after a failed connect).
        std::snprintf(line + used, sizeof line - used, " | %s sent %llu failed %llu dropped %llu",
                      m.name.c_str(), static_cast<unsigned long long>(m.sent),
                      static_cast<unsigned long long>(m.failed),
                      static_cast<unsigned long long>(m.dropped_cap + m.dropped_unavailable +
                                                      m.dropped_bytes));
      }
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", line);
      } else {
        std::fprintf(stderr, "doppel record: %s\n", line);
      }
      std::fflush(stderr);
      last_report = now;
      last_requests = c.requests;
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  std::fprintf(stderr, "doppel record: %s, finishing in-flight requests and flushing\n",
               caught == SIGINT ? "interrupted" : "terminated");

  rec->Stop();
  const recorder::RecorderCounts c = rec->counts();
  v1::SessionCounts counts;
  counts.set_requests_seen(c.requests);
  counts.set_sampled(c.sampled);
  counts.set_dropped(c.dropped);
  counts.set_errors(c.errors);
  counts.set_first_arrival_us(c.first_arrival_us);
  counts.set_last_arrival_us(c.last_arrival_us);
  Status closed = store->CloseSession(options.session, counts);
  std::cout << "session " << options.session << ": requests " << c.requests << ", sampled "
            << c.sampled << ", stored " << c.stored << ", dropped " << c.dropped << ", errors "
            << c.errors << ", bytes in " << HumanBytes(c.request_bytes) << ", out "
            << HumanBytes(c.response_bytes) << std::endl;
  for (const recorder::MirrorCounts& m : rec->mirror_counts()) {
    std::cout << "mirror " << m.name << ": sent " << m.sent << ", succeeded " << m.succeeded
              << ", failed " << m.failed << " (connect " << m.failed_connect << ", timeout "
              << m.failed_timeout << ", reset " << m.failed_reset << ", 5xx " << m.failed_5xx
              << ", bad response " << m.failed_other << "), dropped at max-inflight "
              << m.dropped_cap << ", over max-inflight-bytes " << m.dropped_bytes
              << ", while unavailable " << m.dropped_unavailable
              << ", not picked " << m.skipped_sample + m.skipped_rule;
    if (options.mirror.diff) {
      std::cout << ", diff: match " << m.diff_match << ", mismatch " << m.diff_mismatch
                << ", uncompared " << m.diff_uncompared;
    }
    // Copies still unanswered after the 1 s shutdown grace were abandoned with the process.
    if (m.inflight > 0) std::cout << ", abandoned at exit " << m.inflight;
    std::cout << std::endl;
  }
  const Status capture = rec->capture_error();
  rec.reset();
  if (!closed.ok()) return Fail(closed.WithContext("closing session " + options.session));
  if (!capture.ok()) {
    return Fail(capture.WithContext(std::to_string(c.dropped) + " envelopes were not stored"));
  }
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
  auto flags = std::make_shared<RecordFlags>();
  CLI::App* cmd = app.add_subcommand(
      "record", "Proxy to the primary and record a sampled share of the traffic");
  cmd->add_option("--listen", flags->listen, "ADDR:PORT to accept clients on (port 0: any)")
      ->capture_default_str();
  cmd->add_option("--upstream", flags->upstream, "the primary: http[s]://host:port[/base]")
      ->required();
  cmd->add_option("--session", flags->session, "session name (default rec-DATE-TIME)");
  cmd->add_option("--sample", flags->sample, "percent of (matching) requests to record, 0-100")
      ->capture_default_str();
  cmd->add_option("--sample-key", flags->sample_key,
                  "decide by a hash of header:NAME or query:NAME instead of at random");
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
  cmd->add_option("--max-header-size", flags->max_header_size, "431 beyond")->capture_default_str();
  cmd->add_option("--capture-body-limit", flags->capture_body_limit,
                  "bytes of each body kept in the record (the primary gets all)")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", flags->idle_timeout, "keep-alive idle timeout")
      ->capture_default_str();
  cmd->add_option("--request-timeout", flags->request_timeout,
                  "time to read a request body / write a response")
      ->capture_default_str();
  cmd->add_option("--upstream-connect-timeout", flags->upstream_connect_timeout, "502/504 beyond")
      ->capture_default_str();
  cmd->add_option("--upstream-timeout", flags->upstream_timeout,
                  "primary response timeout (504 beyond)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", flags->drain_timeout,
                  "on SIGINT/SIGTERM, wait this long for in-flight requests")
      ->capture_default_str();
  cmd->add_option("--max-connections", flags->max_connections, "open client connections")
      ->capture_default_str();
  cmd->add_option("--queue-size", flags->queue_size,
                  "envelopes waiting for the store; beyond, captures are dropped")
      ->capture_default_str();
  cmd->add_flag("--sync", flags->sync, "fsync the store on every batch");
  AddRedactFlags(cmd, &flags->redact);
  cmd->add_flag("--upstream-insecure", flags->upstream_insecure,
                "do not verify the primary's TLS certificate");
  cmd->add_option("--upstream-ca", flags->upstream_ca, "PEM CA bundle for the primary");

  const std::string mg = "Live mirroring (fire-and-forget shadow traffic)";
  cmd->add_option("--mirror", flags->mirrors,
                  "copy requests to a shadow target: URL[,percent=P][,timeout=2s]"
                  "[,max-inflight=1000][,rule=NAME][,name=LABEL][,set-header=N:V]"
                  "[,remove-header=N][,ca=FILE][,insecure] (repeatable)")
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
  cmd->add_option("--mirror-match", flags->mirror_match,
                  "a named rule for --mirror ...,rule=NAME only (same syntax as --match; does "
                  "not limit recording)")
      ->group(mg);
  cmd->add_option("--mirror-rules", flags->mirror_rules_file,
                  "JSON or YAML file of rules for --mirror ...,rule=NAME (same schema as --rules)")
      ->group(mg);
  cmd->callback(
      [&global, flags, run] { *run = [&global, flags] { return RunRecord(global, *flags); }; });
}

}  // namespace doppel::cli
