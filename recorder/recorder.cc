// The recorder's lifecycle: Start (listeners, workers, threads), the accept loops, and the
// graceful Stop. Client connections are served by ProxySession (proxy_session.cc); counts and
// /status by recorder_status.cc.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <thread>

#include "base/thread.h"
#include "net/tls_server.h"
#include "recorder/proxy_session.h"
#include "recorder/recorder_impl.h"
#include "recorder/worker.h"

namespace doppel::recorder {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

RecorderImpl::RecorderImpl(RecorderOptions options, std::vector<NamedSink> sinks,
                           const redact::Redactor* redactor)
    : options_(std::move(options)),
      redactor_(redactor),
      metrics_(registry_),
      started_us_(options_.clock->NowUs()) {
  sinks_.reserve(sinks.size());
  for (NamedSink& s : sinks) {
    SinkWriter w;
    w.name = std::move(s.name);
    const std::string label = "sink=\"" + w.name + "\"";
    w.counters.stored = registry_.AddCounter("doppel_envelopes_stored_total",
                                             "Envelopes appended to the sink.", label);
    w.counters.dropped_queue_full =
        registry_.AddCounter("doppel_envelopes_dropped_total", "Sampled envelopes not stored.",
                             label + ",reason=\"queue_full\"");
    w.counters.dropped_store_error =
        registry_.AddCounter("doppel_envelopes_dropped_total", "Sampled envelopes not stored.",
                             label + ",reason=\"store_error\"");
    CaptureWriterOptions queue = options_.queue;
    if (sinks.size() > 1 || w.name != "store") queue.sink_name = w.name;
    w.writer = std::make_unique<CaptureWriter>(s.sink, redactor, queue, w.counters);
    CaptureWriter* writer = w.writer.get();
    registry_.AddGaugeFunction(
        "doppel_capture_queue_depth", "Envelopes waiting for (or being written by) the writer.",
        [writer] { return static_cast<double>(writer->depth()); }, label);
    registry_.AddGaugeFunction(
        "doppel_sink_up", "1 while the sink takes envelopes, 0 while it fails and is retried.",
        [writer] { return writer->failing() ? 0.0 : 1.0; }, label);
    sinks_.push_back(std::move(w));
  }
}

RecorderImpl::~RecorderImpl() { Stop(); }

Result<std::unique_ptr<LivePlan>> RecorderImpl::BuildPlan(const RecorderOptions& o,
                                                          std::shared_ptr<MirrorHub> mirrors) {
  auto plan = std::make_unique<LivePlan>();
  DOPPEL_ASSIGN_OR_RETURN(plan->sampler, Sampler::Create(o.sample_percent, o.sample_key));
  plan->rules = o.rules;
  plan->fault_rules = o.fault_rules;
  plan->mirror_rules = o.mirror.rules;
  plan->fault_rule = o.fault_rule;
  plan->fault_from_headers = o.fault.from_headers;
  if (mirrors == nullptr && !o.mirror.mirrors.empty()) {
    MirrorOptions mirror = o.mirror;
    mirror.threads = o.threads;
    mirror.clock = o.clock;
    mirror.class_endpoints = o.class_endpoints;
    auto hub = MirrorHub::Create(std::move(mirror), o.rules, registry_);
    if (!hub.ok()) return hub.status();
    mirrors = std::move(hub.value());
  }
  plan->mirrors = std::move(mirrors);
  if (!o.fault.spec.empty() || o.fault.from_headers) {
    net::FaultInjector::Options fault = o.fault;
    if (!o.fault_rule.empty()) {
      for (const net::MatchRules* rules : {&plan->fault_rules, &plan->rules, &plan->mirror_rules}) {
        for (const net::MatchBlock& b : rules->blocks()) {
          if (b.name == o.fault_rule && fault.rule == nullptr) fault.rule = &b;
        }
      }
      if (fault.rule == nullptr) {
        return Status::InvalidArgument("--fault-rule '" + o.fault_rule +
                                       "' names no rule: give the rule itself (e.g. --fault-rule "
                                       "'uri^=/api') or name one of --match, --rules, "
                                       "--mirror-match, --mirror-rules");
      }
    }
    plan->faults = std::make_unique<net::FaultInjector>(std::move(fault), "primary", &registry_);
  }
  return plan;
}

Status RecorderImpl::Reconfigure(const RecorderOptions& next, bool mirrors_changed) {
  std::lock_guard<std::mutex> one_at_a_time(reconfigure_mu_);
  std::shared_ptr<MirrorHub> keep;
  if (!mirrors_changed) keep = current_plan().mirrors;
  DOPPEL_ASSIGN_OR_RETURN(auto plan, BuildPlan(next, keep));
  MirrorHub* old_hub = current_plan().mirrors.get();
  if (plan->mirrors.get() != old_hub) {
    if (plan->mirrors) plan->mirrors->StartAdaptive(*metrics_.latency);
    if (old_hub != nullptr) old_hub->StopAdaptive();
  }
  std::lock_guard<std::mutex> lock(plans_mu_);
  plan->generation = plans_.back()->generation + 1;
  plans_.push_back(std::move(plan));
  generation_.store(plans_.back()->generation, std::memory_order_release);
  return Status::Ok();
}

const LivePlan& RecorderImpl::current_plan() const {
  std::lock_guard<std::mutex> lock(plans_mu_);
  return *plans_.back();
}

std::vector<MirrorHub*> RecorderImpl::hubs() const {
  std::lock_guard<std::mutex> lock(plans_mu_);
  std::vector<MirrorHub*> out;
  for (const auto& p : plans_) {
    MirrorHub* h = p->mirrors.get();
    if (h != nullptr && std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
  }
  return out;
}

void RecorderImpl::SwitchPlan(Worker& w) {
  const LivePlan* next = &current_plan();
  if (w.plan == nullptr || w.plan->mirrors != next->mirrors) {
    if (w.mirror) {
      w.mirror->Shutdown();
      w.retired_lanes.push_back(std::move(w.mirror));
    }
    if (next->mirrors) {
      auto lane = next->mirrors->MakeLane(w.io);
      if (lane.ok()) {
        w.mirror = std::move(lane.value());
      } else {
        // Not expected (the hub's targets were checked when it was built); the requests of
        // this thread then go unmirrored rather than unanswered.
        failure_log_.Write(log::Level::kError,
                           "mirrors off on a proxy thread: " + lane.status().ToString());
      }
    }
  }
  w.plan = next;
}

Status RecorderImpl::Init() {
  if (options_.threads < 1) return Status::InvalidArgument("--threads must be at least 1");
  {
    DOPPEL_ASSIGN_OR_RETURN(auto plan, BuildPlan(options_, nullptr));
    if (plan->mirrors) plan->mirrors->StartAdaptive(*metrics_.latency);
    std::lock_guard<std::mutex> lock(plans_mu_);
    plans_.push_back(std::move(plan));
    generation_.store(1, std::memory_order_release);
  }
  registry_.AddGaugeFunction(
      "doppel_config_generation",
      "The configuration in force: 1 at start, +1 per accepted reload (SIGHUP, POST /config).",
      [this] { return static_cast<double>(generation()); });
  if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    return Status::InvalidArgument(
        "--tls-cert and --tls-key go together: give both (PEM files) for TLS on the listener");
  }
  if (!options_.tls_client_ca_file.empty() && options_.tls_cert_file.empty()) {
    return Status::InvalidArgument(
        "--tls-client-ca needs TLS on the listener: give --tls-cert and --tls-key too");
  }
  if (!options_.tls_cert_file.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(listener_tls_,
                            net::MakeServerTlsContext(options_.tls_cert_file, options_.tls_key_file,
                                                      options_.tls_client_ca_file));
  }
  std::shared_ptr<asio::ssl::context> tls;
  if (options_.upstream.tls()) {
    auto ctx = net::MakeClientTlsContext(options_.upstream_tls);
    if (!ctx.ok()) return ctx.status().WithContext("TLS to the primary");
    tls = std::move(ctx.value());
  } else if (!options_.upstream_tls.cert_file.empty()) {
    return Status::InvalidArgument(
        "--upstream-cert and --upstream-key are for an https:// primary; --upstream is " +
        options_.upstream.ToString());
  }
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(options_.listen.host, ec);
  if (ec) {
    return Status::InvalidArgument("--listen: '" + options_.listen.host + "' is not an IP address");
  }
  uint16_t port = options_.listen.port;
  for (int i = 0; i < options_.threads; ++i) {
    auto w = std::make_unique<Worker>();
    auto pool =
        net::HttpClientPool::Create(w->io, options_.upstream, options_.upstream_client, tls);
    if (!pool.ok()) return pool.status();
    w->pool = std::move(pool.value());
    if (options_.coverage) {
      CoverageOptions c = *options_.coverage;
      // Each thread spends its share of a rate; a share of the requests is the same share
      // of each thread's requests.
      c.budget.per_second /= options_.threads;
      w->coverage = std::make_unique<CoverageSampler>(std::move(c), *options_.clock);
      for (const auto& [label, requests] : options_.coverage->history) {
        w->coverage->Seed(Sampler::HashKey(label), label, requests / options_.threads);
      }
      w->coverage->Publish();
    }
    w->plan = &current_plan();
    if (w->plan->mirrors) {
      DOPPEL_ASSIGN_OR_RETURN(auto lane, w->plan->mirrors->MakeLane(w->io));
      w->mirror = std::move(lane);
    }
    const tcp::endpoint ep(ip, port);
    w->acceptor.open(ep.protocol(), ec);
    if (!ec) w->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      // Every thread has its own acceptor on the same port; the kernel spreads connections.
      using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
      w->acceptor.set_option(reuse_port(true), ec);
    }
    if (!ec) w->acceptor.bind(ep, ec);
    if (!ec) w->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status::Unavailable("cannot listen on " + options_.listen.ToString() + ": " +
                                 ec.message());
    }
    if (i == 0) {
      port = w->acceptor.local_endpoint(ec).port();
      listen_address_ = {options_.listen.host, port};
    }
    workers_.push_back(std::move(w));
  }
  if (options_.coverage) {
    registry_.AddGaugeFunction("doppel_sample_classes_seen",
                               "Request classes seen (tracked by the sampler).",
                               [this] { return static_cast<double>(coverage()->classes.size()); });
    registry_.AddGaugeFunction(
        "doppel_sample_classes_covered", "Request classes with at least one envelope kept.",
        [this] {
          const auto c = coverage();
          return static_cast<double>(std::count_if(c->classes.begin(), c->classes.end(),
                                                   [](const ClassStat& s) { return s.kept > 0; }));
        });
    registry_.AddGaugeFunction(
        "doppel_sample_budget_denied", "Envelopes not kept because the budget had no token left.",
        [this] { return static_cast<double>(coverage()->denied_by_budget); });
    registry_.AddGaugeFunction(
        "doppel_sample_water_level",
        "The share of traffic under which a class keeps every request (-1: every class does).",
        [this] {
          const double t = coverage()->water_level;
          return std::isinf(t) ? -1.0 : t;
        });
  }
  if (options_.admin) {
    auto admin = AdminServer::Start(
        *options_.admin, [this](const AdminRequest& request) { return HandleAdmin(request); });
    if (!admin.ok()) return admin.status();
    admin_ = std::move(admin.value());
  }
  for (auto& s : sinks_) s.writer->Start();
  for (size_t i = 0; i < workers_.size(); ++i) {
    Accept(*workers_[i]);
    Worker* raw = workers_[i].get();
    raw->thread = std::thread([raw] { raw->io.run(); });
    NameThread(raw->thread, "doppel-proxy-" + std::to_string(i));
  }
  return Status::Ok();
}

void RecorderImpl::Accept(Worker& w) {
  w.acceptor.async_accept(w.io, [this, &w](boost::system::error_code ec, tcp::socket socket) {
    if (w.draining || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors and the like: back off instead of spinning.
      w.accept_backoff.expires_after(std::chrono::milliseconds(20));
      w.accept_backoff.async_wait([this, &w](boost::system::error_code ec) {
        if (!ec && !w.draining) Accept(w);
      });
      return;
    }
    metrics_.accepted->Inc();
    if (open_connections_.fetch_add(1, std::memory_order_relaxed) >= options_.max_connections) {
      open_connections_.fetch_sub(1, std::memory_order_relaxed);
      metrics_.rejected->Inc();
      boost::system::error_code ignored;
      socket.close(ignored);
    } else {
      if (listener_tls_) {
        ProxySession::StartTls(std::move(socket), *listener_tls_, w, *this);
      } else {
        ProxySession::Start(std::move(socket), w, *this);
      }
    }
    Accept(w);
  });
}

void RecorderImpl::Stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    asio::post(raw->io, [raw] {
      raw->draining = true;
      boost::system::error_code ignored;
      raw->acceptor.close(ignored);
      raw->accept_backoff.cancel();
      for (ProxySession* s : raw->sessions) s->OnDrain();
    });
  }
  auto wait_for_sessions = [this](std::chrono::steady_clock::duration limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (auto& w : workers_) {
      while (w->live_sessions.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  };
  wait_for_sessions(options_.drain_timeout);
  // Sessions still open are cut: their connections closed (OnCut ends none at once: their
  // handlers run later), what they had in flight unwinds on their threads. A moment for that;
  // whatever is left then goes with the stopped loop below.
  for (auto& w : workers_) {
    if (w->live_sessions.load() == 0) continue;
    Worker* raw = w.get();
    asio::post(raw->io, [raw] {
      for (ProxySession* s : raw->sessions) s->OnCut();
    });
  }
  wait_for_sessions(std::chrono::seconds(1));
  // Mirror copies are fire-and-forget: give those still out a moment, not their timeout.
  const std::vector<MirrorHub*> all_hubs = hubs();
  auto mirrors_inflight = [&all_hubs] {
    uint64_t n = 0;
    for (const MirrorHub* h : all_hubs) n += h->inflight();
    return n;
  };
  const auto mirror_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (mirrors_inflight() > 0 && std::chrono::steady_clock::now() < mirror_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const bool mirrors_busy = mirrors_inflight() > 0;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    asio::post(raw->io, [raw] {
      raw->pool->Shutdown();
      if (raw->mirror) raw->mirror->Shutdown();
      for (auto& lane : raw->retired_lanes) lane->Shutdown();
    });
    raw->work.reset();
    // Sessions still open after the cut (waiting on the primary) go with the stopped loop.
    if (raw->live_sessions.load() > 0 || mirrors_busy) raw->io.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
    if (w->coverage) w->coverage->Publish();  // the final counts (the thread has ended)
  }
  // The final counts include every handed-over diff.
  for (MirrorHub* h : all_hubs) h->DrainDiffs();
  if (admin_) admin_->Stop();
  for (auto& s : sinks_) s.writer->Stop();
}

Result<std::unique_ptr<Recorder>> Recorder::Start(RecorderOptions options, CaptureSink* sink,
                                                  const redact::Redactor* redactor) {
  return Start(std::move(options), {NamedSink{"store", sink}}, redactor);
}

Result<std::unique_ptr<Recorder>> Recorder::Start(RecorderOptions options,
                                                  std::vector<NamedSink> sinks,
                                                  const redact::Redactor* redactor) {
  if (sinks.empty()) return Status::InvalidArgument("the recorder needs a sink");
  if (options.coverage && options.sample_percent != 100) {
    return Status::InvalidArgument(
        "--sample and --sample-mode coverage do not go together: coverage sampling spends "
        "--sample-budget (e.g. 5% or 200/s) instead");
  }
  auto rec = std::make_unique<RecorderImpl>(std::move(options), std::move(sinks), redactor);
  Status st = rec->Init();
  if (!st.ok()) {
    rec->Stop();
    return st;
  }
  return std::unique_ptr<Recorder>(std::move(rec));
}

}  // namespace doppel::recorder
