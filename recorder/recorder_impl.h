// The Recorder behind recorder.h, shared by its parts: the lifecycle (recorder.cc: threads,
// listeners, Stop), the client sessions (proxy_session.cc, which use the "used by sessions"
// members from the proxy threads) and the reports (recorder_status.cc: counts, /status,
// /metrics). Internal to recorder/.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recorder/admin.h"
#include "recorder/capture_writer.h"
#include "recorder/mirror.h"
#include "recorder/recorder.h"
#include "recorder/recorder_metrics.h"
#include "recorder/request_log.h"
#include "recorder/sampler.h"
#include "recorder/worker.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace doppel::recorder {

struct Worker;

// What a reload (Recorder::Reconfigure) can change, built whole and then published at once.
// A request reads the plan its worker held when the request began, so it sees one
// configuration from start to end. Plans live as long as the recorder: an exchange, a mirror
// copy or a fault slot may still point into an old one (a plan is small, reloads are rare).
struct LivePlan {
  uint64_t generation = 1;
  net::MatchRules rules;  // capture rules; empty: every request is a candidate
  Sampler sampler;
  bool fault_from_headers = false;
  std::string fault_rule;                      // as given (for /status)
  net::MatchRules fault_rules;                 // an inline --fault-rule
  net::MatchRules mirror_rules;                // --fault-rule may name one of these
  std::unique_ptr<net::FaultInjector> faults;  // null: no faults on the proxied path
  // Null without mirrors; the previous plan's hub when the reload left the mirrors alone (so
  // their connections and adaptive state carry on).
  std::shared_ptr<MirrorHub> mirrors;
};

class RecorderImpl : public Recorder {
 public:
  RecorderImpl(RecorderOptions options, std::vector<NamedSink> sinks,
               const redact::Redactor* redactor);
  ~RecorderImpl() override;

  // Binds the listeners and the admin endpoint and starts the threads.
  Status Init();

  net::HostPort listen_address() const override { return listen_address_; }
  std::optional<net::HostPort> admin_address() const override {
    if (!admin_) return std::nullopt;
    return admin_->address();
  }
  void Stop() override;
  RecorderCounts counts() const override;
  std::optional<CoverageSnapshot> coverage() const override;
  std::vector<MirrorCounts> mirror_counts() const override;
  std::string MetricsText() const override { return registry_.RenderPrometheus(); }
  std::string StatusJson() const override;
  Status capture_error() const override;
  Status Reconfigure(const RecorderOptions& next, bool mirrors_changed) override;
  uint64_t generation() const override { return generation_.load(std::memory_order_acquire); }

  // ---- used by sessions (from worker threads) ----
  // The options the recorder started with. What a reload changes (rules, sampling, faults,
  // mirrors) is read from the worker's plan instead.
  const RecorderOptions& options() const { return options_; }
  // The plan for a request starting on `w` (its thread only): the latest one.
  const LivePlan& PlanFor(Worker& w) {
    if (w.plan == nullptr || w.plan->generation != generation()) SwitchPlan(w);
    return *w.plan;
  }
  RecorderMetrics& metrics() { return metrics_; }
  uint32_t NextSeq() { return seq_.fetch_add(1, std::memory_order_relaxed); }
  void Capture(doppel::v1::Envelope&& e) {
    metrics_.sampled->Inc();
    uint64_t first = first_arrival_us_.load(std::memory_order_relaxed);
    while ((first == 0 || e.arrival_us() < first) &&
           !first_arrival_us_.compare_exchange_weak(first, e.arrival_us(),
                                                    std::memory_order_relaxed)) {
    }
    uint64_t last = last_arrival_us_.load(std::memory_order_relaxed);
    while (last < e.arrival_us() && !last_arrival_us_.compare_exchange_weak(
                                        last, e.arrival_us(), std::memory_order_relaxed)) {
    }
    // Every sink but the last gets a copy; the last takes the envelope.
    for (size_t i = 0; i + 1 < sinks_.size(); ++i) sinks_[i].writer->Push(doppel::v1::Envelope(e));
    sinks_.back().writer->Push(std::move(e));
  }
  std::atomic<size_t>& open_connections() { return open_connections_; }
  // --log-bodies: one line per request the proxy answered itself.
  void LogFailure(unsigned status, const char* label, const std::string& request,
                  const std::string& reason) {
    failure_log_.Write(log::Level::kInfo,
                       std::to_string(status) + " " + label + ": " + reason + ": " + request,
                       {{"status", status}});
  }
  // --tls-client-ca: a client whose TLS handshake failed, and why (its certificate refused,
  // or none sent). Only the address and OpenSSL's reason: nothing the client chose to send.
  void LogRefusedClient(const std::string& ip, const std::string& reason) {
    refused_log_.Write(log::Level::kWarn, "TLS client " + ip + " refused: " + reason,
                       {{"client", ip}});
  }
  const redact::Redactor* redactor() const { return redactor_; }

 private:
  void Accept(Worker& w);
  AdminReply HandleAdmin(const AdminRequest& request) const;
  // A plan from `o`'s live fields; `mirrors`: the hub to keep (null: build one when `o` has
  // mirrors). Checks what Init and a reload must refuse (a fault rule naming no rule).
  Result<std::unique_ptr<LivePlan>> BuildPlan(const RecorderOptions& o,
                                              std::shared_ptr<MirrorHub> mirrors);
  void SwitchPlan(Worker& w);
  const LivePlan& current_plan() const;
  // Every hub any plan has had, once each.
  std::vector<MirrorHub*> hubs() const;

  RecorderOptions options_;
  const redact::Redactor* redactor_;
  RateLimitedLog failure_log_{{"proxy", "doppel record"}, 20};
  RateLimitedLog refused_log_{{"tls", "doppel record"}, 20};  // LogRefusedClient
  net::MetricsRegistry registry_;
  RecorderMetrics metrics_;
  // One capture writer per sink, with the sink's own counters (sink="NAME").
  struct SinkWriter {
    std::string name;
    CaptureCounters counters;
    std::unique_ptr<CaptureWriter> writer;
  };
  std::vector<SinkWriter> sinks_;  // at least one
  // Every plan so far, the current one last; they outlive the workers (their pending copies
  // and exchanges use them). plans_mu_ guards the vector, generation_ tells workers to look.
  mutable std::mutex plans_mu_;
  std::mutex reconfigure_mu_;  // one Reconfigure at a time (it reads, builds, then appends)
  std::vector<std::unique_ptr<LivePlan>> plans_;
  std::atomic<uint64_t> generation_{0};
  std::shared_ptr<boost::asio::ssl::context> listener_tls_;  // --tls-cert; outlives the workers
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  net::HostPort listen_address_;
  std::atomic<uint32_t> seq_{0};
  std::atomic<uint64_t> first_arrival_us_{0};
  std::atomic<uint64_t> last_arrival_us_{0};
  std::atomic<size_t> open_connections_{0};
  const uint64_t started_us_;  // options_.clock->NowUs() at construction
  std::mutex stop_mu_;
  bool stopped_ = false;
};

}  // namespace doppel::recorder
