// The capture proxy behind `doppel record`: forwards every request to the primary, answers
// the client with the primary's response, and captures a sampled share as envelopes.
//
// Threads: `threads` proxy threads, each with its own io_context, SO_REUSEPORT acceptor and
// upstream keep-alive pool (no lock on the hot path); one capture writer thread; one admin
// thread when the admin endpoint is on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "diff/endpoint.h"
#include "net/fault.h"
#include "net/http_client.h"
#include "net/match.h"
#include "net/url.h"
#include "recorder/admin.h"
#include "recorder/capture_writer.h"
#include "recorder/coverage_sampler.h"
#include "recorder/mirror.h"
#include "redact/redactor.h"

namespace doppel::recorder {

struct RecorderOptions {
  net::HostPort listen{"127.0.0.1", 8080};
  net::Url upstream;
  int threads = 1;
  std::optional<net::HostPort> admin;  // off when unset
  std::string session;                 // shown in /status

  // Client side limits.
  uint32_t max_header_bytes = 16 * 1024;    // request line + headers (431 beyond)
  uint64_t max_request_body = 64ull << 20;  // 413 beyond
  // Request bodies up to this are read whole before they are forwarded (so they can be
  // retried and mirrored); a larger one streams to the primary as it arrives.
  uint64_t request_buffer = 1ull << 20;
  std::chrono::milliseconds idle_timeout{60000};     // keep-alive wait for the next request
  std::chrono::milliseconds request_timeout{30000};  // reading a request / writing a response
  size_t max_connections = 10000;                    // client connections; over it: closed
  // HTTP/2 (h2c with prior knowledge): streams a client may have open at once (SETTINGS
  // MAX_CONCURRENT_STREAMS; nghttp2 refuses more). max_header_bytes is the header list limit
  // and max_request_body the body limit of each stream.
  uint32_t h2_max_concurrent_streams = 100;
  // TLS on the listener (both or neither): PEM certificate chain and private key. ALPN offers
  // "h2" (HTTP/2 over TLS) and "http/1.1"; without TLS the listener is plaintext, HTTP/1.x
  // and h2c with prior knowledge on the same port.
  std::string tls_cert_file;
  std::string tls_key_file;
  // mTLS on the listener (with TLS only): PEM CAs whose client certificates are required and
  // verified; the verified subject goes into each envelope (client_cert_subject) and match
  // rules can select on it. Empty: no client certificates asked for.
  std::string tls_client_ca_file;

  // Upstream.
  // Connect/idle/response timeouts, pool sizes. Responses stream: read_idle_timeout bounds
  // the wait for each byte, response_timeout (off by default) the whole response.
  net::ClientOptions upstream_client = [] {
    net::ClientOptions o;
    o.response_timeout = std::chrono::milliseconds(0);
    return o;
  }();
  net::TlsClientOptions upstream_tls;  // https upstreams only

  // Capture.
  uint64_t capture_body_limit = 1ull << 20;  // bytes of each body kept in the record
  double sample_percent = 100;
  std::string sample_key;  // "", "header:NAME", "query:NAME"
  net::MatchRules rules;   // empty: every request is a candidate
  // Coverage sampling (--sample-mode coverage, docs/sampling.md): when set, every candidate
  // (after rules and the --sample-key draw) is classified once the primary answered and kept
  // or dropped by a CoverageSampler. Each proxy thread has its own sampler (no lock per
  // request) with 1/threads of a rate budget. REQUIRES: sample_percent 100 when set.
  std::optional<CoverageOptions> coverage;
  // Endpoint templates of classes: --class-rules patterns, then automatic {id}.
  diff::EndpointNamer class_endpoints;
  CaptureWriterOptions queue;

  // Live mirroring (--mirror ...); no mirror when `mirror.mirrors` is empty.
  MirrorOptions mirror;

  // Fault injection on the proxied path (--fault, --fault-headers; docs/chaos.md). Off when
  // `fault.spec` is empty and `fault.from_headers` false. `fault_rule` names a block of
  // `fault_rules` (an inline --fault-rule), `rules` or `mirror.rules`; "" = every request.
  net::FaultInjector::Options fault;
  std::string fault_rule;
  net::MatchRules fault_rules;

  // Log each request the proxy answered itself (400/413/431/501/505/502/504) with its headers
  // (redacted ones as hashes) and the first KiB of its body, at most 20 lines a second.
  // Off by default: these hold production data.
  bool log_bodies = false;

  // Shutdown: how long Stop() waits for in-flight requests before closing them (real time:
  // the wait is not on `clock`).
  std::chrono::milliseconds drain_timeout{10000};

  // POST /config on the admin endpoint (loopback clients only): called on the admin thread
  // with the request body; unset: 404. The session sets it (Session::Reload).
  std::function<AdminReply(std::string_view body)> post_config;

  // Where envelopes' arrival times (wall) and the /status uptime (monotonic) come from.
  // Must outlive the recorder. Socket and drain timeouts run on real time whatever it is.
  const Clock* clock = &SystemClock::Instance();
};

// Where captured envelopes go: one capture writer (its own queue, thread and counters) per
// sink. `name` labels the sink's series in /metrics (sink="NAME") and its /status entry.
struct NamedSink {
  std::string name;
  CaptureSink* sink = nullptr;
};

// One sink's counts.
struct SinkCounts {
  std::string name;
  uint64_t stored = 0;
  uint64_t dropped = 0;  // queue full or sink error
  uint64_t queue_depth = 0;
  bool failing = false;  // the sink failed and is being retried
};

// What the recorder has done so far (monotonic counters and current gauges).
struct RecorderCounts {
  uint64_t requests = 0;        // requests answered (including proxy errors)
  uint64_t sampled = 0;         // captured envelopes pushed or dropped
  uint64_t stored = 0;          // envelopes appended to the first sink
  uint64_t dropped = 0;         // sampled but dropped by the first sink (queue full or error)
  uint64_t errors = 0;          // proxy errors: answered 400/413/431/501/505/502/504, or timed out
  uint64_t request_bytes = 0;   // request bodies forwarded
  uint64_t response_bytes = 0;  // response bodies returned
  uint64_t queue_depth = 0;     // the first sink's
  uint64_t connections = 0;     // open client connections
  uint64_t first_arrival_us = 0;
  uint64_t last_arrival_us = 0;
  std::vector<SinkCounts> sinks;  // every sink, in the order given to Start
  // --fault on the proxied path: faults injected, by net::FaultKind.
  net::FaultCounts faults{};
};

class Recorder {
 public:
  // Binds the listener (and the admin endpoint), starts the threads and returns once the
  // proxy accepts connections. `redactor` may be null (--no-redact); the sinks (at least one)
  // and `redactor` must outlive the recorder. Every sink gets every sampled envelope.
  static Result<std::unique_ptr<Recorder>> Start(RecorderOptions options,
                                                 std::vector<NamedSink> sinks,
                                                 const redact::Redactor* redactor);
  // One sink named "store".
  static Result<std::unique_ptr<Recorder>> Start(RecorderOptions options, CaptureSink* sink,
                                                 const redact::Redactor* redactor);
  virtual ~Recorder() = default;

  // The bound addresses (the real port when 0 was asked for).
  virtual net::HostPort listen_address() const = 0;
  virtual std::optional<net::HostPort> admin_address() const = 0;

  // Graceful stop: stops accepting, closes idle keep-alive connections, lets in-flight
  // requests finish (up to drain_timeout; then their connections are closed), then writes
  // every queued envelope. Idempotent;
  // call from any thread but a recorder thread.
  virtual void Stop() = 0;

  // Thread-safe.
  virtual RecorderCounts counts() const = 0;
  // Coverage sampling's state, every proxy thread's published snapshot merged (nullopt in
  // uniform mode). Thread-safe; final after Stop().
  virtual std::optional<CoverageSnapshot> coverage() const = 0;
  // One entry per --mirror, in flag order (empty without mirrors).
  virtual std::vector<MirrorCounts> mirror_counts() const = 0;
  virtual std::string MetricsText() const = 0;
  virtual std::string StatusJson() const = 0;
  // First capture error (OK if none): with one sink, its first error; with several, the first
  // failing sink's, prefixed "sink NAME: ".
  virtual Status capture_error() const = 0;

  // Live reconfiguration: takes the live fields of `next` (rules, sample_percent, sample_key,
  // fault, fault_rule, fault_rules, mirror) — the rest is the business of a restart and is
  // ignored. Requests that already began finish under the old settings; the next ones on
  // every thread use the new. With `mirrors_changed` false the mirrors (their connections,
  // counts and adaptive state) carry on as they are. On error (a fault rule that names no
  // rule, a mirror rule unknown) nothing changes. Thread-safe; not during or after Stop().
  virtual Status Reconfigure(const RecorderOptions& next, bool mirrors_changed) = 0;
  // 1 at start, +1 per accepted Reconfigure (doppel_config_generation).
  virtual uint64_t generation() const = 0;
};
using RecorderPtr = std::unique_ptr<Recorder>;

}  // namespace doppel::recorder
