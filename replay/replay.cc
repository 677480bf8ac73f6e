// The replay engine (all Asio/Beast code of the replayer lives in this file).
#include "replay/replay.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <unordered_map>

#include "base/clock.h"
#include "net/headers.h"
#include "net/match.h"
#include "replay/jwt_resign.h"

namespace doppel::replay {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

net::HttpRequest ToBeast(const OutgoingRequest& r) {
  net::HttpRequest req;
  http::verb v = http::string_to_verb(r.method);
  if (v == http::verb::unknown)
    req.method_string(r.method);
  else
    req.method(v);
  req.target(r.target);
  req.version(r.version);
  for (const auto& [name, value] : r.headers) req.insert(name, value);
  req.body() = r.body;
  req.prepare_payload();
  return req;
}

// One dispatched envelope, shared by the lanes until all of them answered.
struct Job {
  uint64_t index = 0;
  uint64_t due_us = 0;  // monotonic µs
  doppel::v1::Envelope envelope;
  std::vector<TargetOutcome> outcomes;  // targets..., then secondary
  size_t remaining = 0;
  std::string client;         // with a correlator: RequestCorrelator::ClientOf
  bool holds_client = false;  // this job is its client's one request in flight
  net::FaultPlan fault;       // --fault: drawn once, for every target lane; holds its slot
  std::string fault_kinds;    // fault.Kinds()
};
using JobPtr = std::shared_ptr<Job>;

// With a correlator: a client's one request in flight and the ones waiting behind it.
struct ClientQueue {
  bool busy = false;
  std::deque<JobPtr> waiting;
};

struct Lane {
  net::Url url;
  net::HttpClientPoolPtr pool;
  uint32_t in_flight = 0;
  std::deque<JobPtr> backlog;
  LaneStats stats;
};

class Engine {
 public:
  Engine(const ReplayOptions& o, EnvelopeSource& source, const Selector& selector,
         const Rewriter& rewriter, ResultSink& sink)
      : opts_(o),
        source_(source),
        selector_(selector),
        rewriter_(rewriter),
        sink_(sink),
        timer_(io_),
        progress_timer_(io_),
        signals_(io_, SIGINT, SIGTERM) {}

  Status Setup();
  Result<ReplayStats> Run();

 private:
  uint64_t Now() const { return clock_.NowUs(); }
  enum class Read { kEnvelope, kEnd, kLater };
  Read ReadNext(doppel::v1::Envelope* e);
  void Pump();
  void Dispatch(JobPtr job);
  void StartAll(const JobPtr& job);
  void ReleaseClient(const JobPtr& job);
  void FailAll(const JobPtr& job, const std::string& error, const std::string& detail);
  void StartOnLane(size_t lane, const JobPtr& job);
  // Sends after an injected delay, if any; aborts, shapes or sends as the job's fault says.
  void Launch(size_t lane, JobPtr job, net::HttpRequest req);
  void Deliver(size_t lane, JobPtr job, net::HttpRequest req);
  void Send(size_t lane, JobPtr job, net::HttpRequest req);
  // The lane's exchange for `job` is over (answered, failed or aborted by a fault).
  void OnExchange(size_t lane, const JobPtr& job, net::ExchangeResult&& r);
  bool Faulted(size_t lane, const Job& job) const {
    return lane < n_targets_ && !job.fault_kinds.empty();
  }
  void Finish(size_t lane, const JobPtr& job);
  void StopDispatching() {
    exhausted_ = true;
    timer_.cancel();
    MaybeDone();
  }
  void MaybeDone() {
    if (exhausted_ && active_ == 0 && !done_) {
      done_ = true;
      stats_.elapsed_us = started_ ? Now() - t0_ : 0;
      timer_.cancel();
      progress_timer_.cancel();
      signals_.cancel();
      for (auto& l : lanes_) l.pool->Shutdown();
    }
  }
  void Progress();

  const ReplayOptions& opts_;
  EnvelopeSource& source_;
  const Selector& selector_;
  const Rewriter& rewriter_;
  ResultSink& sink_;
  const Clock& clock_ = SystemClock::Instance();

  asio::io_context io_{1};
  asio::steady_timer timer_, progress_timer_;
  asio::signal_set signals_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::vector<Lane> lanes_;
  size_t n_targets_ = 0;
  std::unordered_map<std::string, ClientQueue> clients_;  // with a correlator only

  Pacer pacer_{PacingSpec{}};
  std::optional<doppel::v1::Envelope> next_;  // read but not yet due
  uint64_t next_due_ = 0;
  uint64_t t0_ = 0;
  bool started_ = false, exhausted_ = false, done_ = false, pump_posted_ = false;
  uint64_t active_ = 0;  // dispatched, not completed
  Status source_status_;
  ReplayStats stats_;
};

Status Engine::Setup() {
  pacer_ = Pacer(opts_.pacing);
  std::vector<net::Url> urls = opts_.targets;
  n_targets_ = urls.size();
  if (opts_.secondary) urls.push_back(*opts_.secondary);
  net::ClientOptions co;
  co.response_timeout = std::chrono::milliseconds(opts_.timeout_us / 1000);
  co.connect_timeout = std::min(co.response_timeout, std::chrono::milliseconds(5000));
  co.max_idle_connections = opts_.concurrency + 8;
  co.max_response_body = 256ull << 20;
  for (const auto& u : urls) {
    if (u.tls() && !tls_) {
      auto ctx = net::MakeClientTlsContext(opts_.tls);
      if (!ctx.ok()) return ctx.status().WithContext("TLS to the targets");
      tls_ = std::move(ctx.value());
    }
    auto pool = net::HttpClientPool::Create(io_, u, co, tls_);
    if (!pool.ok()) return pool.status().WithContext("target " + u.ToString());
    Lane lane;
    lane.url = u;
    lane.pool = *pool;
    lane.stats.url = u.ToString();
    lanes_.push_back(std::move(lane));
  }
  if (!tls_ && !opts_.tls.cert_file.empty()) {
    return Status::InvalidArgument(
        "--target-cert and --target-key are for https:// targets; none of the targets is one");
  }
  return Status::Ok();
}

Engine::Read Engine::ReadNext(doppel::v1::Envelope* e) {
  for (;;) {
    if (opts_.limit && stats_.dispatched >= opts_.limit) return Read::kEnd;
    if (!source_.Next(e)) {
      if (!source_.status().ok()) {
        source_status_ = source_.status();
        return Read::kEnd;
      }
      if (source_.RetryAfterUs() > 0) return Read::kLater;
      ++stats_.passes;
      if (!opts_.loop || stats_.read == 0) return Read::kEnd;
      if (Status s = source_.Rewind(); !s.ok()) {
        source_status_ = s;
        return Read::kEnd;
      }
      continue;
    }
    ++stats_.read;
    const Decision d = selector_.Decide(*e);
    if (d == Decision::kSend) return Read::kEnvelope;
    stats_.skipped.Count(d);
  }
}

// Dispatches everything that is due, then sleeps until the next due time (or, in --max
// mode, until a request completes).
void Engine::Pump() {
  if (exhausted_ || done_) return;
  const bool closed_loop = opts_.pacing.mode == PacingSpec::Mode::kMax;
  for (;;) {
    if (closed_loop && active_ >= opts_.concurrency) return;
    if (!next_) {
      doppel::v1::Envelope e;
      const Read read = ReadNext(&e);
      if (read == Read::kEnd) {
        StopDispatching();
        return;
      }
      if (read == Read::kLater) {  // nothing yet; a completion may also pump again sooner
        if (started_ && opts_.duration_us && Now() - t0_ >= opts_.duration_us) {
          StopDispatching();
          return;
        }
        timer_.expires_after(std::chrono::microseconds(source_.RetryAfterUs()));
        timer_.async_wait([this](boost::system::error_code ec) {
          if (!ec) Pump();
        });
        return;
      }
      next_ = std::move(e);
      if (!started_) {
        started_ = true;
        t0_ = Now();
      }
      pacer_.SetShare(source_.RateShare());
      next_due_ = t0_ + pacer_.Next(next_->arrival_us());
    }
    const uint64_t now = Now();
    if (opts_.duration_us && now - t0_ >= opts_.duration_us) {
      StopDispatching();
      return;
    }
    if (!closed_loop && next_due_ > now) {
      timer_.expires_after(std::chrono::microseconds(next_due_ - now));
      timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) Pump();
      });
      return;
    }
    auto job = std::make_shared<Job>();
    job->index = stats_.dispatched++;
    job->due_us = closed_loop ? now : next_due_;
    job->envelope = std::move(*next_);
    next_.reset();
    Dispatch(std::move(job));
  }
}

void Engine::Dispatch(JobPtr job) {
  ++active_;
  job->outcomes.resize(lanes_.size());
  job->remaining = lanes_.size();
  if (opts_.correlator != nullptr) {
    job->client = opts_.correlator->ClientOf(job->envelope);
    ClientQueue& q = clients_[job->client];
    if (q.busy) {
      if (q.waiting.size() >= opts_.max_backlog) {
        for (auto& lane : lanes_) ++lane.stats.dropped_backlog;
        FailAll(
            job, "backlog",
            "the client is behind by more than " + std::to_string(opts_.max_backlog) + " requests");
        return;
      }
      q.waiting.push_back(std::move(job));
      return;
    }
    q.busy = true;
    job->holds_client = true;
  }
  StartAll(job);
}

void Engine::StartAll(const JobPtr& job) {
  if (opts_.faults != nullptr) {
    job->fault = opts_.faults->Draw(net::ViewOf(job->envelope.request()));
    job->fault_kinds = job->fault.Kinds();
  }
  for (size_t i = 0; i < lanes_.size(); ++i) StartOnLane(i, job);
}

// Finishes every lane of a job that never started on any.
void Engine::FailAll(const JobPtr& job, const std::string& error, const std::string& detail) {
  for (size_t i = 0; i < lanes_.size(); ++i) {
    job->outcomes[i].error = error;
    job->outcomes[i].error_detail = detail;
    Finish(i, job);
  }
}

// `job` (its client's request in flight) is done: start the client's next one.
void Engine::ReleaseClient(const JobPtr& job) {
  auto it = clients_.find(job->client);
  if (it == clients_.end()) return;
  ClientQueue& q = it->second;
  if (q.waiting.empty()) {
    clients_.erase(it);
    return;
  }
  JobPtr next = std::move(q.waiting.front());
  q.waiting.pop_front();
  next->holds_client = true;
  StartAll(next);
}

void Engine::StartOnLane(size_t i, const JobPtr& job) {
  Lane& lane = lanes_[i];
  if (lane.in_flight >= opts_.concurrency) {
    if (lane.backlog.size() >= opts_.max_backlog) {
      ++lane.stats.dropped_backlog;
      job->outcomes[i].error = "backlog";
      job->outcomes[i].error_detail =
          "target is behind by more than " + std::to_string(opts_.max_backlog) + " requests";
      Finish(i, job);
      return;
    }
    lane.backlog.push_back(job);
    return;
  }
  OutgoingRequest out;
  const doppel::v1::Envelope* recorded = &job->envelope;
  doppel::v1::Envelope patched;
  if (opts_.correlator != nullptr &&
      opts_.correlator->Patch(i, job->client, job->envelope, &patched))
    recorded = &patched;
  rewriter_.Build(*recorded, lane.url.Authority(), lane.url.base_path, &out,
                  i == 0 ? &stats_.dropped_redacted_headers : nullptr);
  if (opts_.time_shift != nullptr) {
    const uint64_t moved = opts_.time_shift->Shift(&out);
    if (i == 0) stats_.shifted_timestamps += moved;
  }
  if (opts_.jwt_resign != nullptr) {
    const uint64_t resigned = opts_.jwt_resign->Resign(job->envelope.request(), &out);
    if (i == 0) stats_.resigned_tokens += resigned;
  }
  ++lane.in_flight;
  const uint64_t now = Now();
  job->outcomes[i].lag_us = now > job->due_us ? now - job->due_us : 0;
  lane.stats.lag.Add(job->outcomes[i].lag_us);
  Launch(i, job, ToBeast(out));
}

void Engine::Launch(size_t i, JobPtr job, net::HttpRequest req) {
  if (!Faulted(i, *job)) {
    ++lanes_[i].stats.sent;
    return Send(i, std::move(job), std::move(req));
  }
  job->outcomes[i].fault = job->fault_kinds;
  ++lanes_[i].stats.faulted;
  if (!job->fault.delay) return Deliver(i, std::move(job), std::move(req));
  auto timer = std::make_shared<asio::steady_timer>(io_, *job->fault.delay);
  timer->async_wait([this, i, job, timer, req = std::move(req)](boost::system::error_code) mutable {
    Deliver(i, std::move(job), std::move(req));
  });
}

void Engine::Deliver(size_t i, JobPtr job, net::HttpRequest req) {
  const net::FaultPlan& fault = job->fault;
  if (fault.abort_status != 0) {
    // Not sent: the client gave up before sending (the status is the one the abort stands for).
    net::ExchangeResult aborted;
    aborted.detail = "fault injected: abort " + std::to_string(fault.abort_status) +
                     (fault.abort_grpc >= 0 ? " grpc-status " + std::to_string(fault.abort_grpc)
                                            : std::string()) +
                     " (the request was not sent)";
    // Finished later, as an exchange would be: never inside StartOnLane (no recursion through
    // the lane's backlog).
    asio::post(io_, [this, i, job, aborted = std::move(aborted)]() mutable {
      OnExchange(i, job, std::move(aborted));
    });
    return;
  }
  // A request delayed past SIGINT/SIGTERM is in flight: it goes, like the others in flight.
  ++lanes_[i].stats.sent;
  net::RequestShape shape;
  shape.bytes_per_second = fault.bandwidth;
  shape.truncate = fault.truncate;
  shape.reset = fault.reset;
  if (!shape.any()) return Send(i, std::move(job), std::move(req));
  ++job->outcomes[i].attempts;
  lanes_[i].pool->SendShaped(std::move(req), shape, [this, i, job](net::ExchangeResult&& r) {
    OnExchange(i, job, std::move(r));
  });
}

void Engine::Send(size_t i, JobPtr job, net::HttpRequest req) {
  ++job->outcomes[i].attempts;
  net::HttpRequest copy;
  if (opts_.retries > 0) copy = req;  // kept only when a retry may need it
  lanes_[i].pool->Send(std::move(req),
                       [this, i, job, copy = std::move(copy)](net::ExchangeResult&& r) mutable {
                         // Requests still in flight when dispatching stopped (end of the session,
                         // --duration) are retried like any other; after SIGINT/SIGTERM the run
                         // only winds down.
                         if (r.error == net::ClientError::kConnect &&
                             job->outcomes[i].attempts <= opts_.retries && !stats_.interrupted) {
                           Send(i, job, std::move(copy));
                           return;
                         }
                         OnExchange(i, job, std::move(r));
                       });
}

void Engine::OnExchange(size_t i, const JobPtr& job, net::ExchangeResult&& r) {
  TargetOutcome& out = job->outcomes[i];
  Lane& lane = lanes_[i];
  --lane.in_flight;
  const bool faulted = Faulted(i, *job);
  const uint64_t now = Now();
  // An injected delay is the fault's, not the target's: latency counts from the send.
  const uint64_t from =
      job->due_us +
      (faulted && job->fault.delay ? static_cast<uint64_t>(job->fault.delay->count()) * 1000 : 0);
  out.latency_us = now > from ? now - from : 0;
  if (faulted && job->fault.abort_status != 0) {
    out.error = "abort";
    out.error_detail = r.detail;
    ++lane.stats.faulted_errors;
  } else if (r.error != net::ClientError::kNone) {
    out.error = net::kClientErrorNames.Name(r.error);
    out.error_detail = r.detail;
    ++(faulted ? lane.stats.faulted_errors : lane.stats.errors);
  } else {
    net::ToProto(std::move(r.response), &out.response);  // moves the body only
    net::CopyHeaders(r.trailers, out.response.mutable_trailers());
    out.response.set_latency_us(out.latency_us);
    ++lane.stats.ok;
    const unsigned cls = r.response.result_int() / 100;
    ++lane.stats.status_class[cls >= 2 && cls <= 5 ? cls : 0];
    // Faulted answers are timed by the fault (a throttled request): kept out of the latency.
    if (!faulted) lane.stats.latency.Add(out.latency_us);
  }
  Finish(i, job);
  // A slot is free: start the oldest waiting request of this lane.
  while (!lane.backlog.empty() && lane.in_flight < opts_.concurrency) {
    JobPtr next = std::move(lane.backlog.front());
    lane.backlog.pop_front();
    StartOnLane(i, next);
  }
}

void Engine::Finish(size_t lane, const JobPtr& job) {
  if (opts_.correlator != nullptr && job->outcomes[lane].error.empty())
    opts_.correlator->Observe(lane, job->client, job->envelope, job->outcomes[lane].response);
  if (--job->remaining > 0) return;
  std::vector<TargetOutcome> targets(std::make_move_iterator(job->outcomes.begin()),
                                     std::make_move_iterator(job->outcomes.begin() + n_targets_));
  Completed c;
  c.index = job->index;
  c.envelope = &job->envelope;
  c.targets = &targets;
  c.secondary = opts_.secondary ? &job->outcomes[n_targets_] : nullptr;
  sink_.OnCompleted(c);
  ++stats_.completed;
  --active_;
  if (job->holds_client) ReleaseClient(job);
  if (opts_.pacing.mode == PacingSpec::Mode::kMax && !exhausted_) {
    // Continue outside this handler so deep completion chains cannot recurse.
    if (!pump_posted_) {
      pump_posted_ = true;
      asio::post(io_, [this] {
        pump_posted_ = false;
        Pump();
      });
    }
  }
  MaybeDone();
}

void Engine::Progress() {
  if (done_) return;
  if (opts_.on_progress) {
    ReplayProgress p;
    p.read = stats_.read;
    p.dispatched = stats_.dispatched;
    p.completed = stats_.completed;
    p.in_flight = active_;
    for (const auto& l : lanes_) p.errors += l.stats.errors + l.stats.dropped_backlog;  // organic
    p.elapsed_us = started_ ? Now() - t0_ : 0;
    opts_.on_progress(p);
  }
  progress_timer_.expires_after(std::chrono::seconds(1));
  progress_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Progress();
  });
}

Result<ReplayStats> Engine::Run() {
  signals_.async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    stats_.interrupted = true;
    // A second signal stops at once; in-flight requests are then not waited for. Armed
    // before stopping, so that MaybeDone() can cancel it when nothing is left to wait for.
    signals_.async_wait([this](boost::system::error_code ec2, int) {
      if (!ec2) io_.stop();
    });
    // Requests waiting behind their client's request in flight are not sent. First, so that
    // a backlogged request finishing below finds no successor to start.
    for (auto& [client, queue] : clients_) {
      std::deque<JobPtr> waiting = std::move(queue.waiting);
      queue.waiting.clear();
      for (const JobPtr& job : waiting) FailAll(job, "interrupted", "");
    }
    // Requests still waiting for a slot are not sent; those in flight finish (bounded by
    // --timeout).
    for (size_t i = 0; i < lanes_.size(); ++i) {
      while (!lanes_[i].backlog.empty()) {
        JobPtr job = std::move(lanes_[i].backlog.front());
        lanes_[i].backlog.pop_front();
        job->outcomes[i].error = "interrupted";
        Finish(i, job);
      }
    }
    StopDispatching();
  });
  progress_timer_.expires_after(std::chrono::seconds(1));
  progress_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Progress();
  });
  asio::post(io_, [this] { Pump(); });
  io_.run();
  if (!done_) stats_.elapsed_us = started_ ? Now() - t0_ : 0;
  for (const auto& l : lanes_) stats_.lanes.push_back(l.stats);
  if (!source_status_.ok()) return source_status_;
  return stats_;
}

}  // namespace

Status ProbeTargets(const std::vector<net::Url>& urls, uint64_t timeout_us) {
  asio::io_context io;
  std::vector<std::string> failures(urls.size());
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> sockets;
  std::vector<std::unique_ptr<asio::ip::tcp::resolver>> resolvers;
  asio::steady_timer deadline(io, std::chrono::microseconds(timeout_us));
  size_t pending = urls.size();
  auto done = [&] {
    if (--pending == 0) deadline.cancel();
  };
  for (size_t i = 0; i < urls.size(); ++i) {
    failures[i] = "no answer within " + std::to_string(timeout_us / 1000) + " ms";
    auto& res = resolvers.emplace_back(std::make_unique<asio::ip::tcp::resolver>(io));
    auto& sock = sockets.emplace_back(std::make_unique<asio::ip::tcp::socket>(io));
    res->async_resolve(urls[i].host, std::to_string(urls[i].port),
                       [&, i, s = sock.get()](boost::system::error_code ec,
                                              asio::ip::tcp::resolver::results_type r) {
                         if (ec) {
                           failures[i] = "cannot resolve: " + ec.message();
                           done();
                           return;
                         }
                         asio::async_connect(
                             *s, r,
                             [&, i](boost::system::error_code ec2, const asio::ip::tcp::endpoint&) {
                               failures[i] = ec2 ? ec2.message() : "";
                               done();
                             });
                       });
  }
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  io.run();
  std::string msg;
  for (size_t i = 0; i < urls.size(); ++i)
    if (!failures[i].empty())
      msg += (msg.empty() ? "" : "; ") + urls[i].ToString() + ": " + failures[i];
  if (msg.empty()) return Status::Ok();
  return Status::Unavailable("target not reachable (" + msg +
                             "); start it, or check the URL and port");
}

Result<ReplayStats> RunReplay(const ReplayOptions& options, EnvelopeSource& source,
                              const Selector& selector, const Rewriter& rewriter,
                              ResultSink& sink) {
  if (options.targets.empty())
    return Status::InvalidArgument("no --target given; name at least one URL to replay to");
  if (options.concurrency == 0) return Status::InvalidArgument("--concurrency must be at least 1");
  Engine engine(options, source, selector, rewriter, sink);
  DOPPEL_RETURN_IF_ERROR(engine.Setup());
  return engine.Run();
}

}  // namespace doppel::replay
