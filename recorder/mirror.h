// Live mirroring: the capture proxy sends a copy of a share of the requests to shadow
// targets, fire-and-forget, as Istio/Envoy's request mirroring does — but isolated from the
// primary path by construction:
//   - a copy is sent from the worker's event loop on the mirror's own keep-alive pool and
//     never waited for: the client's response and its keep-alive connection never depend on
//     a mirror;
//   - each mirror has an in-flight cap (over it the copy is dropped and counted), a timeout,
//     and a response-size cap, so a slow, black-holed or refusing mirror costs a bounded
//     amount of memory and sockets;
//   - each mirror has its own percentage and optional match rule; with --mirror-diff, every
//     mirror response is compared with the primary's by the diff engine once both arrived —
//     on the hub's diff threads, never on a proxy thread: the comparison is handed to a
//     bounded queue without waiting, and when the queue is full it is skipped and counted
//     (doppel_mirror_diff_skipped_total), so a slow diff never delays a client's answer.
//
// Threads: one MirrorHub per recorder (thread-safe counters and diff tallies, and with
// --mirror-diff its diff threads doppel-mdiff-N), one MirrorLane per proxy thread (its pools;
// used only from that thread).
#pragma once

#include <atomic>
#include <boost/json/array.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "diff/endpoint.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/rules.pb.h"
#include "net/fault.h"
#include "net/http_client.h"
#include "net/match.h"
#include "net/metrics.h"
#include "net/url.h"
#include "recorder/adaptive_mirror.h"
#include "recorder/coverage_sampler.h"
#include "recorder/sampler.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace doppel {
class WorkerPool;
}  // namespace doppel

namespace doppel::diff {
class Differ;
class GrpcSchema;
}  // namespace doppel::diff

namespace doppel::recorder {

// One --mirror flag:
//   URL[,percent=P][,timeout=D][,max-inflight=N][,rule=NAME][,name=LABEL]
//      [,set-header=NAME:VALUE][,remove-header=NAME][,ca=FILE][,insecure]
//      [,cert=FILE,key=FILE][,fault=SPEC][,adaptive][,mode=coverage,budget=RATE|PCT]
struct MirrorSpec {
  std::string text;  // as given, for messages
  net::Url url;
  std::string name;      // label in /metrics and /status; default "host:port"
  double percent = 100;  // share of (rule-matching) requests copied, 0..100
  // Bounds connecting, and separately sending + reading the whole response (so a copy
  // ends at the latest 2 × timeout after it was sent).
  std::chrono::milliseconds timeout{2000};
  size_t max_inflight = 1000;  // copies outstanding at once; over it: dropped
  std::string rule;            // match block name; "" = every request
  std::vector<std::pair<std::string, std::string>> set_headers;
  std::vector<std::string> remove_headers;
  net::TlsClientOptions tls;  // https mirrors: verification on by default; cert/key: mTLS
  // Faults on the copies (net/fault.h grammar; delay and abort only): a delayed copy is held
  // before it is sent (and counts as in flight meanwhile); an aborted one is not sent.
  net::FaultSpec fault;
  // The percentage adapts to MirrorOptions::budget (recorder/adaptive_mirror.h): `percent`
  // is then the most it goes up to.
  bool adaptive = false;
  // mode=coverage,budget=50/s (or 5%): the copies are chosen by class, as the recorder's
  // --sample-mode coverage chooses envelopes (recorder/coverage_sampler.h), within the
  // budget. A copy then leaves once the primary has answered whole, since the class needs
  // the response; a request the primary failed is not copied.
  bool coverage = false;
  SampleBudget budget;
};

// Parses one --mirror value; errors name the item and say what is expected.
Result<MirrorSpec> ParseMirrorSpec(std::string_view text);

struct MirrorOptions {
  std::vector<MirrorSpec> mirrors;
  bool shadow_suffix = true;         // Host "api:9000" -> "api-shadow:9000" (Istio/Envoy do so)
  bool same_sample = false;          // one draw per request for all mirrors (nested subsets)
  bool diff = false;                 // compare each mirror response with the primary's
  doppel::v1::DiffRules diff_rules;  // noise rules for --mirror-diff (same file as replay)
  // --mirror-proto-set: gRPC message types for --mirror-diff; null: messages as bytes.
  std::shared_ptr<const diff::GrpcSchema> grpc_schema;
  // --mirror-diff comparisons: threads (doppel-mdiff-N), and comparisons waiting for one;
  // past that a comparison is skipped and counted (`skipped` in /status).
  size_t diff_threads = 1;
  size_t diff_queue = 1024;
  // Tests: compare with this Differ instead of one made from `diff_rules`.
  std::shared_ptr<const diff::Differ> differ;
  net::MatchRules rules;  // --mirror-match / --mirror-rules, for rule=NAME only
  // Applied to every mirror, before the mirror's own set-header/remove-header items.
  std::vector<std::pair<std::string, std::string>> set_headers;
  std::vector<std::string> remove_headers;
  uint64_t max_response_body = 64ull << 20;  // a mirror answering more is failed (too_large)
  // All mirrors together: request bytes (head + body) of the copies in flight. A copy that
  // would go over it is dropped ("max_bytes"), so large bodies to a slow mirror cannot hold
  // max-inflight × max-request-body of memory.
  uint64_t max_inflight_bytes = 256ull << 20;
  // The mirrors' fault=: draws under this seed (--fault-seed), at most this many faulted
  // copies at once per mirror (--max-active-faults; 0: no cap).
  uint64_t fault_seed = 0;
  size_t max_active_faults = 0;
  // --mirror-budget: what adaptive mirrors (MirrorSpec::adaptive) keep within; required
  // when one is adaptive. The controller ticks every `adaptive_tick` over the last
  // `adaptive_window` ticks, and reports each change through `log` (default: base/log.h).
  MirrorBudget budget;
  std::chrono::milliseconds adaptive_tick{1000};
  size_t adaptive_window = 5;
  std::function<void(const std::string&)> log;
  // Coverage mirrors (MirrorSpec::coverage): proxy threads (each lane spends its share of a
  // rate budget), the clock the samplers read, and how classes name endpoints.
  size_t threads = 1;
  const Clock* clock = &SystemClock::Instance();
  diff::EndpointNamer class_endpoints;
};

// A mirror's counters (monotonic) as shown in /status and the record summary.
struct MirrorCounts {
  std::string name;
  std::string url;
  uint64_t sent = 0;
  uint64_t succeeded = 0;  // a response that is not 5xx
  uint64_t failed = 0;     // sum of the failure reasons below
  uint64_t failed_connect = 0, failed_timeout = 0, failed_reset = 0, failed_5xx = 0,
           failed_other = 0;
  uint64_t dropped_cap = 0;          // over max-inflight
  uint64_t dropped_unavailable = 0;  // within kUnavailableHold of a failed connect
  uint64_t dropped_bytes = 0;        // over the hub's max_inflight_bytes
  uint64_t skipped_sample = 0;       // not picked by percent (mode=coverage: by its class)
  uint64_t skipped_rule = 0;         // did not match the mirror's rule
  // A streamed request body (over --request-buffer) that could not be held for the copy: over
  // the hub's max_inflight_bytes, or the request did not complete before the primary answered.
  uint64_t skipped_upload = 0;
  uint64_t inflight = 0;
  uint64_t diff_match = 0, diff_mismatch = 0, diff_uncompared = 0;
  uint64_t diff_skipped = 0;                        // the diff queue was full
  uint64_t faults_delayed = 0, faults_aborted = 0;  // fault=: copies delayed, not sent
  double effective_percent = 0;   // the share copied now (adaptive: the controller's)
  uint64_t adaptive_changes = 0;  // adaptive: changes of effective_percent so far
};

class MirrorLane;
class MirroredRequest;
class MirrorUpload;

class MirrorHub {
 public:
  // After a copy fails to connect (refused, unreachable, TLS handshake), copies to that
  // mirror are dropped (counted as "unavailable") for this long instead of each trying to
  // connect again: a dead mirror then costs ~10 connection attempts a second rather than
  // one per request, which halved the proxy's throughput.
  static constexpr std::chrono::milliseconds kUnavailableHold{100};

  // Checks the options (rule names must exist in options.rules or `capture_rules`; names
  // unique) and registers the per-mirror metrics in `registry`.
  static Result<std::unique_ptr<MirrorHub>> Create(MirrorOptions options,
                                                   const net::MatchRules& capture_rules,
                                                   net::MetricsRegistry& registry);
  ~MirrorHub();

  // Starts the adaptive controller's thread (doppel-adapt) when a mirror is adaptive;
  // `primary_latency` is the primary's latency histogram, which must outlive the hub.
  void StartAdaptive(const net::Histogram& primary_latency);
  // Stops that thread (a reload replaced the hub); the effective percentages stay where they
  // were. Idempotent; also done by the destructor.
  void StopAdaptive();

  // A lane for one proxy thread: a keep-alive pool per mirror on `io`.
  Result<std::unique_ptr<MirrorLane>> MakeLane(boost::asio::io_context& io);

  const MirrorOptions& options() const { return options_; }
  std::vector<MirrorCounts> counts() const;
  uint64_t inflight() const;  // all mirrors
  // Waits until the comparisons handed to the diff threads so far are counted (at shutdown,
  // before the final counts are read). REQUIRES: not called on a diff thread.
  void DrainDiffs();
  uint64_t inflight_bytes() const { return inflight_bytes_.load(std::memory_order_relaxed); }
  // Per mirror: counts, mirror vs primary latency percentiles, and with --mirror-diff the
  // most frequent differing (endpoint, field path) pairs.
  boost::json::array StatusJson() const;

 private:
  friend class MirrorLane;
  friend class MirroredRequest;
  friend class MirrorUpload;
  struct Target;
  explicit MirrorHub(MirrorOptions options);

  MirrorOptions options_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<const net::MatchBlock*> rule_blocks_;  // per mirror; null = every request
  net::MatchRules capture_rules_;                    // owns blocks referenced above
  std::shared_ptr<const diff::Differ> differ_;       // --mirror-diff only
  std::atomic<uint64_t> inflight_bytes_{0};          // all lanes; see max_inflight_bytes
  // The adaptive controller's thread: one tick every options_.adaptive_tick until stopped.
  void AdaptLoop(const net::Histogram* primary_latency);
  mutable std::mutex adapt_mu_;  // the controllers and their signals
  std::condition_variable adapt_cv_;
  bool adapt_stop_ = false;
  std::thread adapt_thread_;
  // --mirror-diff only. Last: destroyed first (queued comparisons run, then the threads
  // join) while the targets and the differ they use still exist.
  std::unique_ptr<WorkerPool> diff_pool_;
};

// One proxy thread's side. Not thread-safe: used only on the thread running `io`.
class MirrorLane {
 public:
  ~MirrorLane();
  // Decides which mirrors get `request` (the request as forwarded to the primary, before the
  // primary's base path is applied), copies and sends it. Never blocks. Returns null when no
  // copy went out; otherwise the proxy passes the primary's outcome to the result, which
  // ties primary and mirror latencies (and responses, with --mirror-diff) together.
  std::shared_ptr<MirroredRequest> Dispatch(const net::HttpRequest& request,
                                            const net::RequestView& view);
  // A request whose body streams to the primary (over --request-buffer; `head` without its
  // body): decides which mirrors get it, as Dispatch does, and returns the copy to be filled
  // as the body passes (null when no mirror takes it, or when the head's Content-Length alone
  // is over max_inflight_bytes: counted).
  std::unique_ptr<MirrorUpload> HoldUpload(const net::HttpRequest& head,
                                           const net::RequestView& view);
  // Closes idle mirror connections; outstanding copies finish or time out.
  void Shutdown();

 private:
  friend class MirrorHub;
  friend class MirrorUpload;
  MirrorLane(MirrorHub& hub, boost::asio::io_context& io, std::vector<net::HttpClientPoolPtr> pools,
             uint64_t seed);
  // The mirrors that take a request: its rule matches and its draw falls under its percent
  // (counted otherwise).
  std::vector<size_t> Select(const net::RequestView& view);
  // Copies `request` to the `chosen` mirrors that have room, and sends the copies. `spare`
  // (the request itself, no longer needed by the caller): the last chosen mirror's copy is
  // moved out of it instead of copied.
  std::shared_ptr<MirroredRequest> Send(const net::HttpRequest& request,
                                        const net::RequestView& view,
                                        const std::vector<size_t>& chosen,
                                        net::HttpRequest* spare = nullptr);
  MirrorHub& hub_;
  boost::asio::io_context& io_;  // delayed copies wait on its timers
  std::vector<net::HttpClientPoolPtr> pools_;
  // Per mirror: this lane's sampler for a coverage mirror, else null.
  std::vector<std::shared_ptr<CoverageSampler>> coverage_;
  SplitMix64 rng_;
  double NextUniform();  // [0, 100)
};

// A request whose body streams to the primary, held for the mirrors that drew it until the
// body is complete (Envoy's shadows get the body as it streams; here the copy goes whole, so a
// mirror's request is exactly what a buffered body would have sent). The bytes held count in
// the hub's inflight bytes as they come; past max_inflight_bytes the copy is given up. Dropped
// unsent (the request did not complete, the primary answered first), it is counted as
// skipped_upload and its bytes are released. Used on its lane's thread only.
class MirrorUpload {
 public:
  ~MirrorUpload();
  MirrorUpload(const MirrorUpload&) = delete;
  MirrorUpload& operator=(const MirrorUpload&) = delete;
  // The next piece of the body. False: over the cap; the copy is given up (counted), drop it.
  bool Append(std::string_view piece);
  // The request as held: the head, and the body so far.
  const net::HttpRequest& request() const { return request_; }
  // The body is complete: the copies go out (`view` of request(); request() is spent).
  std::shared_ptr<MirroredRequest> Send(const net::RequestView& view);

 private:
  friend class MirrorLane;
  MirrorUpload(MirrorLane& lane, net::HttpRequest head, std::vector<size_t> chosen);
  void GiveUp();

  MirrorHub& hub_;
  MirrorLane& lane_;  // only while the exchange runs on its thread (Send)
  net::HttpRequest request_;
  std::vector<size_t> chosen_;
  uint64_t held_ = 0;  // body bytes counted in the hub's inflight_bytes_
  bool over_ = false;  // sent or given up
};

// The mirrors one request was sent to, waiting for the primary's outcome and the mirrors'
// responses (in any order; all on the lane's thread).
class MirroredRequest : public std::enable_shared_from_this<MirroredRequest> {
 public:
  MirroredRequest(MirrorHub& hub, std::string method, std::string target);
  ~MirroredRequest();
  // The primary answered (`response` as received, after hop-by-hop stripping). With
  // `body_complete` false the body holds only the first bytes of the primary's (which
  // streamed past): latencies are counted, the comparison is not made (uncompared).
  void OnPrimary(const net::HttpResponse& response, const boost::beast::http::fields& trailers,
                 uint64_t latency_us, bool body_complete = true);
  // The primary failed: nothing to compare against.
  void OnPrimaryFailed();

 private:
  friend class MirrorLane;
  struct Slot {
    size_t mirror = 0;
    uint64_t bytes = 0;  // counted in the hub's inflight_bytes_ until the copy ends
    bool done = false;
    bool ok = false;  // a response arrived
    doppel::v1::HttpResponse response;
    // A coverage mirror's copy, held until the primary's answer gives its class: sends it.
    std::function<void(const std::shared_ptr<MirroredRequest>&)> deferred;
    CoverageSampler* sampler = nullptr;  // the lane's, for `deferred`
    uint64_t draw = 0;
    bool skipped = false;  // the class's sample left it out: never sent
  };
  void OnMirror(size_t slot, net::ExchangeResult&& result);
  void Compare(Slot& slot);
  // Coverage mirrors: sends or releases the held copies once the primary's outcome is known
  // (`response` null: the primary failed).
  void Decide(const net::HttpResponse* response, bool body_complete);
  void Release(Slot& slot);

  MirrorHub& hub_;
  std::string method_, target_;
  std::string endpoint_;  // coverage mirrors: the class's endpoint template
  std::vector<Slot> slots_;
  enum class Primary { kPending, kOk, kFailed } primary_ = Primary::kPending;
  // --mirror-diff only; shared with the comparisons handed to the diff threads.
  std::shared_ptr<const doppel::v1::HttpResponse> primary_response_;
};

}  // namespace doppel::recorder
