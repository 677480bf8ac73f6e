// The replay engine: streams envelopes from a source to one or more targets on a schedule,
// and hands every finished request (recorded envelope + each target's answer) to a sink.
//
// Each target (and the optional secondary) is a lane with its own keep-alive pool, in-flight
// limit (--concurrency) and bounded backlog, so a slow or dead target never slows the
// others: when a lane's backlog is full, that lane drops the request and counts it
// ("backlog") while the other lanes go on. In --max mode the schedule is closed-loop on the
// number of unfinished requests.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/latency_histogram.h"
#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "net/fault.h"
#include "net/http_client.h"
#include "net/url.h"
#include "replay/pacer.h"
#include "replay/request_plan.h"
#include "replay/source.h"
#include "replay/time_shift.h"

namespace doppel::replay {

class JwtResigner;  // replay/jwt_resign.h

// Stateful replay hooks (replay/correlate.h's LiveCorrelator). With one set, a client's
// requests are sent one at a time in recorded order: the next waits until every lane answered
// the previous one. Different clients run in parallel. All calls come on the engine thread.
class RequestCorrelator {
 public:
  virtual ~RequestCorrelator() = default;
  // The client a recorded request belongs to.
  virtual std::string ClientOf(const doppel::v1::Envelope& recorded) const = 0;
  // Writes the request to send to lane `lane` (targets, then the secondary) into *patched and
  // returns true; false when the recorded request is sent as it is (*patched is then unused).
  virtual bool Patch(size_t lane, const std::string& client, const doppel::v1::Envelope& recorded,
                     doppel::v1::Envelope* patched) = 0;
  // Lane `lane` answered `recorded` with `live` (not called for failed exchanges).
  virtual void Observe(size_t lane, const std::string& client, const doppel::v1::Envelope& recorded,
                       const doppel::v1::HttpResponse& live) = 0;
};

struct ReplayOptions {
  std::vector<net::Url> targets;
  std::optional<net::Url> secondary;  // known-good build, for per-request noise
  PacingSpec pacing;
  uint32_t concurrency = 64;         // per lane in-flight limit (and --max window)
  uint64_t timeout_us = 10'000'000;  // per request
  uint32_t retries = 0;              // extra attempts after a connection failure (connect or
                                     // TLS handshake), at once; none after SIGINT/SIGTERM
  uint64_t duration_us = 0;          // stop dispatching after this long; 0 = no limit
  uint64_t limit = 0;                // stop after this many dispatched requests; 0 = none
  bool loop = false;                 // start the session again at its end
  size_t max_backlog = 20000;        // per lane, requests waiting for a free slot
  net::TlsClientOptions tls;
  RequestCorrelator* correlator = nullptr;  // stateful replay; not owned; null = off
  const TimeShifter* time_shift = nullptr;  // --shift-time; not owned; null = off
  // --jwt-resign: applied last, after correlation and --shift-time; not owned; null = off.
  JwtResigner* jwt_resign = nullptr;
  // --fault (docs/chaos.md, "Replay"): one plan drawn per request when it starts, applied on
  // every target (never the secondary, whose answers are the noise baseline). A delay holds
  // the request (and its lane slot) before it goes; an abort finishes it unsent; reset,
  // truncate and bandwidth send it on a connection of its own (HttpClientPool::SendShaped).
  // Not owned; null = off.
  net::FaultInjector* faults = nullptr;
  // Called about once a second on the engine thread (progress display).
  std::function<void(const struct ReplayProgress&)> on_progress;
};

struct TargetOutcome {
  std::string error;  // "" or "connect", "timeout", "reset", "bad-response",
                      // "too-large", "backlog", "interrupted", "abort" (an injected abort)
  std::string error_detail;
  // The injected faults (FaultPlan::Kinds: "delay+abort"), "" for none: whatever happened to
  // a faulted request is the fault's doing, not the target's.
  std::string fault;
  doppel::v1::HttpResponse response;  // valid when error is empty
  // A WebSocket handshake the target accepted (101): the connection that followed, its
  // messages both ways as the replayer sent and read them (docs/replay.md, "WebSocket").
  std::optional<doppel::v1::WebSocketSession> websocket;
  uint64_t latency_us = 0;  // from the due time (after an injected delay) to the last
                            // response byte; for a WebSocket handshake, to the 101
  uint64_t lag_us = 0;      // from the due time to the first send attempt
  uint32_t attempts = 0;
};

struct Completed {
  uint64_t index = 0;  // dispatch order, 0-based
  const doppel::v1::Envelope* envelope = nullptr;
  const std::vector<TargetOutcome>* targets = nullptr;  // one per ReplayOptions::targets
  const TargetOutcome* secondary = nullptr;             // nullptr without a secondary
};

class ResultSink {
 public:
  virtual ~ResultSink() = default;
  // Called on the engine thread for every dispatched request, once all lanes answered.
  virtual void OnCompleted(const Completed& completed) = 0;
};

struct LaneStats {
  std::string url;
  // `errors` are organic; requests with injected faults are counted in `faulted` (and their
  // failures, aborts included, in `faulted_errors`), never in `errors`.
  uint64_t sent = 0, ok = 0, errors = 0, dropped_backlog = 0, faulted = 0, faulted_errors = 0;
  uint64_t status_class[6] = {};  // [2] = 2xx ... [5] = 5xx, [0] = anything else
  LatencyHistogram latency;       // due time to last response byte, answered requests
  LatencyHistogram lag;           // send lag: due time to first send
};

struct ReplayProgress {
  uint64_t read = 0, dispatched = 0, completed = 0, in_flight = 0, errors = 0;
  uint64_t elapsed_us = 0;
};

struct ReplayStats {
  uint64_t read = 0;        // envelopes read from the source (all passes)
  uint64_t dispatched = 0;  // selected and sent to the lanes
  DecisionCounts skipped;   // read but not selected, by reason (`send` stays 0)
  uint64_t dropped_redacted_headers = 0;
  uint64_t shifted_timestamps = 0;  // --shift-time: values moved (counted for the first lane)
  uint64_t resigned_tokens = 0;     // --jwt-resign: JWTs re-signed (counted for the first lane)
  uint64_t completed = 0;
  uint64_t passes = 0;           // times the source was read (--loop)
  bool interrupted = false;      // SIGINT/SIGTERM
  uint64_t elapsed_us = 0;       // first dispatch to last completion
  std::vector<LaneStats> lanes;  // targets, then the secondary
};

// Checks that every URL accepts a TCP connection within `timeout_us`, so a replay against
// a target that is down fails at start (exit 2) instead of producing a run of errors.
Status ProbeTargets(const std::vector<net::Url>& urls, uint64_t timeout_us);

// Runs to the end of the source (or --limit, --duration, a signal). Errors: a source that
// fails mid-way (corrupt session), a target URL that cannot be set up.
Result<ReplayStats> RunReplay(const ReplayOptions& options, EnvelopeSource& source,
                              const Selector& selector, const Rewriter& rewriter, ResultSink& sink);

}  // namespace doppel::replay
