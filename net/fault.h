// Fault injection (docs/chaos.md): one grammar for the proxied path (`doppel record --fault`)
// and mirror copies (`--mirror URL,...,fault=SPEC`), with Envoy's HTTP fault filter as the
// anchor for what each fault means.
//
// A spec is faults joined with '+', each KIND[:ARG]:PERCENT%:
//   delay:200ms:10%       hold the request this long before it goes on
//   abort:503:5%          answer with this status instead of forwarding
//   abort:grpc=14:5%      answer a gRPC trailers-only response with this grpc-status
//   reset:1%              close the connection (HTTP/2: reset the stream) instead of answering
//   bandwidth:64KiB:100%  throttle the response body to this many bytes a second
//   truncate:1%           cut the response body halfway (then close, as a failing primary would)
// Each fault is drawn on its own; a request can get several (a delay and then an abort).
// Aborts and resets win over the body faults, since no body follows them.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/enum_names.h"
#include "base/status.h"
#include "net/http_client.h"
#include "net/match.h"
#include "net/metrics.h"

namespace doppel::net {

enum class FaultKind { kDelay, kAbort, kReset, kBandwidth, kTruncate, kMaxValue = kTruncate };
inline constexpr EnumNames<FaultKind, 5> kFaultKindNames{
    {"delay", "abort", "reset", "bandwidth", "truncate"}};

// Faults injected, by kind (indexed by FaultKind).
using FaultCounts = std::array<uint64_t, static_cast<size_t>(FaultKind::kMaxValue) + 1>;
// "abort 3, delay 1": the kinds injected, in FaultKind order; "" when none (the record and
// replay summaries' "faults injected:" line).
std::string FaultCountsText(const FaultCounts& counts);

struct Fault {
  FaultKind kind = FaultKind::kDelay;
  double percent = 100;                // 0..100
  std::chrono::milliseconds delay{0};  // delay
  unsigned http_status = 0;            // abort (HTTP): 200..599
  int grpc_status = -1;                // abort:grpc=N: 1..16
  uint64_t bytes_per_second = 0;       // bandwidth
};

struct FaultSpec {
  std::string text;  // as given, for messages
  std::vector<Fault> faults;
  bool empty() const { return faults.empty(); }
  bool Has(FaultKind kind) const;
};

// Errors name the item and say what is expected.
Result<FaultSpec> ParseFaultSpec(std::string_view text);

// The faults chosen for one request. While it holds a slot (`active`), the request counts
// against the injector's max_active.
struct FaultPlan {
  std::optional<std::chrono::milliseconds> delay;
  unsigned abort_status = 0;  // HTTP status to answer; 0: no abort
  int abort_grpc = -1;        // with abort_status 200: a gRPC answer with this grpc-status
  bool reset = false;
  uint64_t bandwidth = 0;  // bytes a second; 0: not throttled
  bool truncate = false;
  std::shared_ptr<void> active;  // the slot; released with the last copy of the plan

  bool any() const { return delay || abort_status != 0 || reset || bandwidth != 0 || truncate; }
  // No response from upstream is relayed: the request is answered or cut by the fault.
  bool replaces_response() const { return abort_status != 0 || reset; }
  // The relayed body is changed (throttled or cut).
  bool shapes_body() const { return bandwidth != 0 || truncate; }
  // The kinds in the plan in FaultKind order, joined with '+' ("delay+abort"); "" for none.
  std::string Kinds() const;
};

// Header-controlled faults (`--fault-headers`, as Envoy's x-envoy-fault-*): a test asks for a
// fault on one request. Removed before the request goes on.
inline constexpr std::string_view kFaultDelayHeader = "x-doppel-fault-delay-ms";
inline constexpr std::string_view kFaultAbortHeader = "x-doppel-fault-abort";

// Draws plans for the requests of one place (the proxied path, or one mirror), counts what
// it injected and caps faulted requests in flight. Thread-safe.
class FaultInjector {
 public:
  struct Options {
    FaultSpec spec;
    uint64_t seed = 0;      // --fault-seed; the same seed gives the same draws
    size_t max_active = 0;  // faulted requests at once; 0: no cap
    bool from_headers = false;
    const MatchBlock* rule = nullptr;  // only requests matching it; null: every request
  };
  // Registers doppel_faults_injected_total{kind=...,where=WHERE} (and
  // doppel_faults_skipped_total{where=WHERE}, draws over max_active) in `registry` when given.
  FaultInjector(Options options, std::string where, MetricsRegistry* registry);

  // The plan for a request. Draw n uses hash(seed, n) for its faults, n counting the
  // injector's requests: with one thread (a replay, a single-threaded proxy) the same seed
  // gives the same requests the same faults.
  FaultPlan Draw(const RequestView& request);

  uint64_t injected(FaultKind kind) const;
  FaultCounts injected_by_kind() const;
  uint64_t injected_total() const;
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
  size_t active() const { return active_->load(std::memory_order_relaxed); }
  const Options& options() const { return options_; }
  const std::string& where() const { return where_; }
  // For /status: {"spec", "rule", "headers", "injected": {KIND: n}, "skipped", "active"}.
  boost::json::object StatusJson() const;

 private:
  std::optional<FaultPlan> PlanFromHeaders(const RequestView& request) const;
  bool Take(FaultPlan& plan);
  void Count(const FaultPlan& plan);

  Options options_;
  std::string where_;
  std::atomic<uint64_t> draws_{0};
  std::atomic<uint64_t> skipped_{0};
  std::shared_ptr<std::atomic<size_t>> active_ = std::make_shared<std::atomic<size_t>>(0);
  std::atomic<uint64_t> counts_[static_cast<int>(FaultKind::kMaxValue) + 1] = {};
  Counter* counters_[static_cast<int>(FaultKind::kMaxValue) + 1] = {};
  Counter* skipped_counter_ = nullptr;
};

// The response an abort answers with: `status` with a short text body, or for a gRPC abort a
// trailers-only answer (200, application/grpc, grpc-status, grpc-message) with no body. The
// head only (HTTP/1.1, Content-Length set); the body comes from `body`.
struct FaultAbort {
  HttpResponse head;
  BodyReaderPtr body;
};
FaultAbort MakeFaultAbort(const FaultPlan& plan, boost::asio::any_io_executor executor);

// A body reader that relays `inner` at most `bytes_per_second` (pieces cut to a tenth of a
// second's worth and spaced out on `executor`).
BodyReaderPtr ThrottleBody(BodyReaderPtr inner, uint64_t bytes_per_second,
                           boost::asio::any_io_executor executor);
// A body reader that relays the first `keep` bytes of `inner` (unknown length: the first half
// of its first piece) and then fails with kReset, detail kTruncatedByFault.
inline constexpr std::string_view kTruncatedByFault = "fault injected: truncate";
BodyReaderPtr TruncateBody(BodyReaderPtr inner, std::optional<uint64_t> keep,
                           boost::asio::any_io_executor executor);
// The body of an abort's response (`ended_with_head` when the answer has none at all: gRPC's
// trailers-only), delivered on `executor`.
BodyReaderPtr FixedBody(std::string body, bool ended_with_head,
                        boost::asio::any_io_executor executor);

}  // namespace doppel::net
