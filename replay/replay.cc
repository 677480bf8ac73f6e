// The replay engine (all Asio/Beast code of the replayer lives in this file).
#include "replay/replay.h"

#include <openssl/evp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <unordered_map>

#include "base/clock.h"
#include "base/strings.h"
#include "interop/envelope_json.h"
#include "net/headers.h"
#include "net/match.h"
#include "net/websocket_frames.h"
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

// ---------------------------------------------------------------------------------------
// WebSocket (docs/replay.md, "WebSocket").

// RFC 6455 1.3: the GUID a server appends to the key for Sec-WebSocket-Accept.
constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// How long past its recorded gap the replayer waits for a server message before it goes on
// without it, and for the server's close after its own.
constexpr uint64_t kWebSocketGraceUs = 1'000'000;
// Frames the replayer queues for a target that does not read them before it gives up.
constexpr size_t kWebSocketQueuedFrames = 256;
// Bytes kept of each message the target sends: at least this, and twice the largest message
// the primary sent, so that a bigger answer still shows as bigger.
constexpr uint64_t kWebSocketPayloadLimit = 1ull << 20;

// The Sec-WebSocket-Accept a server answers `key` with (RFC 6455 4.2.2).
std::string WebSocketAccept(std::string_view key) {
  const std::string text = std::string(key) + std::string(kWebSocketGuid);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
  return interop::Base64Encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

// Makes `out` (the recorded handshake, rewritten for the target) a fresh handshake: a new
// Sec-WebSocket-Key, the upgrade headers, version 13, and no Sec-WebSocket-Extensions (the
// recorded messages are sent uncompressed).
void MakeWebSocketHandshake(OutgoingRequest* out, std::mt19937_64& rng) {
  std::string nonce(16, '\0');
  for (char& c : nonce) c = static_cast<char>(rng());
  std::string key = interop::Base64Encode(nonce);
  auto& h = out->headers;
  std::erase_if(h, [](const std::pair<std::string, std::string>& f) {
    return EqualsIgnoreCase(f.first, "connection") || EqualsIgnoreCase(f.first, "upgrade") ||
           EqualsIgnoreCase(f.first, "sec-websocket-key") ||
           EqualsIgnoreCase(f.first, "sec-websocket-version") ||
           EqualsIgnoreCase(f.first, "sec-websocket-extensions");
  });
  h.emplace_back("Connection", "Upgrade");
  h.emplace_back("Upgrade", "websocket");
  h.emplace_back("Sec-WebSocket-Version", "13");
  h.emplace_back("Sec-WebSocket-Key", std::move(key));
  out->method = "GET";
  out->body.clear();
}

// Replays the messages of one recorded WebSocket connection over `tunnel`, the replayed
// handshake's connection. The client's data messages go in the recorded order, each once the
// server's data messages recorded before it have arrived, or once waiting for the next one took
// its recorded gap plus kWebSocketGraceUs (it is then missing from the comparison), and once
// its think time has passed: its recorded gap after the message before it, under the run's
// pacing (PacingSpec::ThinkTimeUs), counted from when that message went or came; then a
// close (1000), answered or not within kWebSocketGraceUs. Pings are answered, a close from the
// target is echoed and ends the conversation, and the whole conversation is bounded by
// `budget_us`. What went each way is recorded as the capture proxy records it.
class WebSocketConversation : public std::enable_shared_from_this<WebSocketConversation> {
 public:
  using Done = std::function<void(doppel::v1::WebSocketSession&&)>;

  WebSocketConversation(asio::io_context& io, const doppel::v1::WebSocketSession& recorded,
                        net::TunnelPtr tunnel, const PacingSpec& pacing, uint64_t timeout_us,
                        std::mt19937_64& rng, Done done)
      : recorded_(recorded),
        tunnel_(std::move(tunnel)),
        pacing_(pacing),
        rng_(rng),
        done_(std::move(done)),
        deadline_(io),
        wait_(io),
        start_(std::chrono::steady_clock::now()),
        budget_us_(BudgetUs(recorded, pacing, timeout_us)),
        reader_(PayloadLimit(recorded), /*masked=*/false) {}

  // Ends the conversation now (SIGINT/SIGTERM): it is compared as far as it went.
  void Stop() { Finish("interrupted"); }

  void Start() {
    deadline_.expires_after(std::chrono::microseconds(budget_us_));
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Finish("timeout");
    });
    const std::string early = tunnel_->TakeReceived();
    if (!early.empty()) OnBytes(early);
    if (finished_) return;
    Read();
    Advance();
  }

 private:
  static bool IsData(uint32_t opcode) { return opcode == 1 || opcode == 2; }

  // The whole conversation's bound: the recorded one's length, stretched by a --speed below 1,
  // plus `timeout_us`.
  static uint64_t BudgetUs(const doppel::v1::WebSocketSession& recorded, const PacingSpec& pacing,
                           uint64_t timeout_us) {
    const uint64_t last_at_us =
        recorded.messages().empty() ? 0 : recorded.messages().rbegin()->at_us();
    return std::max(last_at_us, pacing.ThinkTimeUs(last_at_us)) + timeout_us;
  }

  static uint64_t PayloadLimit(const doppel::v1::WebSocketSession& recorded) {
    uint64_t largest = 0;
    for (const auto& m : recorded.messages()) {
      if (!m.from_client()) largest = std::max<uint64_t>(largest, m.payload().size());
    }
    return std::max(kWebSocketPayloadLimit, 2 * largest);
  }

  uint64_t ElapsedUs() const {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - start_)
                                     .count());
  }

  // Sends the client messages that are due; waits for the next recorded server message or the
  // next client message's think time.
  void Advance() {
    if (finished_ || waiting_) return;
    const auto& messages = recorded_.messages();
    while (!finished_ && cursor_ < messages.size()) {
      const doppel::v1::WebSocketMessage& m = messages[static_cast<int>(cursor_)];
      if (!IsData(m.opcode())) {  // control frames are the connection's own business
        ++cursor_;
        continue;
      }
      const uint64_t gap_us = m.at_us() > previous_at_us_ ? m.at_us() - previous_at_us_ : 0;
      if (!m.from_client()) {
        if (received_ <= passed_) return Wait(gap_us);
        ++passed_;
      } else {
        const uint64_t due_us = previous_happened_us_ + pacing_.ThinkTimeUs(gap_us);
        const uint64_t now_us = ElapsedUs();
        if (now_us < due_us) return Pause(due_us - now_us);
        Send(static_cast<net::WebSocketOpcode>(m.opcode()), m.payload());
      }
      previous_at_us_ = m.at_us();
      previous_happened_us_ = ElapsedUs();
      ++cursor_;
    }
    if (!finished_ && !close_sent_) {
      SendClose("\x03\xe8");  // 1000, normal closure
      if (!finished_) Wait(0);
    }
  }

  // Waits `gap_us` + kWebSocketGraceUs for the next server message (or, once the close went,
  // for the target's close); then goes on without it.
  void Wait(uint64_t gap_us) {
    waiting_ = true;
    wait_.expires_after(std::chrono::microseconds(gap_us + kWebSocketGraceUs));
    wait_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->finished_) return;
      self->waiting_ = false;
      if (self->close_sent_) return self->Finish("no close from the target");
      ++self->passed_;  // given up: missing from the comparison
      self->previous_at_us_ = self->recorded_.messages()[static_cast<int>(self->cursor_)].at_us();
      // It was due when its gap had passed, before the grace.
      const uint64_t now_us = self->ElapsedUs();
      self->previous_happened_us_ = now_us > kWebSocketGraceUs ? now_us - kWebSocketGraceUs : 0;
      ++self->cursor_;
      self->Advance();
    });
  }

  // Holds the next client message for `delay_us`, its think time; what the target sends
  // meanwhile is counted and taken up after it.
  void Pause(uint64_t delay_us) {
    waiting_ = pausing_ = true;
    wait_.expires_after(std::chrono::microseconds(delay_us));
    wait_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->finished_) return;
      self->waiting_ = self->pausing_ = false;
      self->Advance();
    });
  }

  void Send(net::WebSocketOpcode opcode, std::string_view payload) {
    if (finished_) return;
    // Frames queue only while the target does not read (pongs to a ping flood): bounded.
    if (writes_.size() >= kWebSocketQueuedFrames)
      return Finish("the target does not read what the replayer sends");
    uint8_t mask[4];
    const uint64_t r = rng_();
    std::memcpy(mask, &r, sizeof mask);
    net::RecordWebSocketMessage(
        /*from_client=*/true,
        {.opcode = opcode, .payload = std::string(payload), .size = payload.size()}, start_,
        &kept_[1], &session_);
    writes_.push_back(net::EncodeWebSocketFrame(opcode, payload, mask));
    session_.set_client_bytes(session_.client_bytes() + writes_.back().size());
    if (writes_.size() == 1) WriteNext();
  }
  void SendClose(std::string_view payload) {
    close_sent_ = true;
    closed_first_ = !close_received_;
    Send(net::WebSocketOpcode::kClose, payload);
  }

  void WriteNext() {
    tunnel_->Write(writes_.front().data(), writes_.front().size(),
                   [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                     if (self->finished_) return;
                     if (ec) return self->Finish("write: " + ec.message());
                     self->writes_.pop_front();
                     if (!self->writes_.empty()) return self->WriteNext();
                     if (self->close_received_) self->Finish("closed");
                   });
  }

  void Read() {
    tunnel_->ReadSome(buffer_, sizeof buffer_,
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                        if (self->finished_) return;
                        if (ec) {
                          return self->Finish(ec == asio::error::eof
                                                  ? "target closed the connection"
                                                  : "read: " + ec.message());
                        }
                        self->OnBytes(std::string_view(self->buffer_, n));
                        if (!self->finished_ && !self->close_received_) self->Read();
                      });
  }

  void OnBytes(std::string_view bytes) {
    session_.set_server_bytes(session_.server_bytes() + bytes.size());
    const bool framed = reader_.Feed(bytes, [this](net::WebSocketMessage&& m) {
      const auto opcode = m.opcode;
      if (opcode == net::WebSocketOpcode::kPing && !close_sent_)
        Send(net::WebSocketOpcode::kPong, m.payload);
      if (opcode == net::WebSocketOpcode::kClose) {
        close_received_ = true;
        if (!close_sent_) SendClose(m.payload.substr(0, 2));
      }
      net::RecordWebSocketMessage(/*from_client=*/false, std::move(m), start_, &kept_[0],
                                  &session_);
      if (IsData(static_cast<uint32_t>(opcode))) ++received_;
    });
    if (!framed) {
      session_.set_framing_error("target: " + reader_.error());
      return Finish("target: " + reader_.error());
    }
    if (close_received_) {
      if (writes_.empty()) Finish("closed");
      return;
    }
    if (waiting_ && !pausing_ && received_ > passed_ && !close_sent_) {
      waiting_ = false;
      wait_.cancel();
      Advance();
    }
  }

  void Finish(std::string how) {
    if (finished_) return;
    finished_ = true;
    if (how == "closed") how = closed_first_ ? "client closed" : "target closed";
    deadline_.cancel();
    wait_.cancel();
    tunnel_->Close();
    session_.set_duration_us(ElapsedUs());
    session_.set_ended(std::move(how));
    Done done = std::move(done_);
    done(std::move(session_));
  }

  const doppel::v1::WebSocketSession& recorded_;
  net::TunnelPtr tunnel_;
  const PacingSpec pacing_;
  std::mt19937_64& rng_;
  Done done_;
  asio::steady_timer deadline_, wait_;
  const std::chrono::steady_clock::time_point start_;
  const uint64_t budget_us_;
  net::WebSocketFrameReader reader_;
  char buffer_[16 * 1024];
  std::deque<std::string> writes_;  // frames to write, the front one being written
  doppel::v1::WebSocketSession session_;
  int kept_[2] = {0, 0};               // messages kept: [0] from the target, [1] sent
  size_t cursor_ = 0;                  // the next recorded message to act on
  uint64_t previous_at_us_ = 0;        // the recorded time of the message before the cursor
  uint64_t previous_happened_us_ = 0;  // when it went, came or was given up on (ElapsedUs)
  uint64_t received_ = 0;              // data messages the target sent
  uint64_t passed_ = 0;                // recorded server data messages the cursor went past
  bool waiting_ = false;  // for a server message, the target's close, or (pausing_) a think time
  bool pausing_ = false, close_sent_ = false, close_received_ = false, finished_ = false;
  bool closed_first_ = false;  // the replayer's close went before the target's
};

// Reads the rest of a response whose head was not a 101 (a handshake the target refused), then
// calls `done` with it whole, as HttpClientPool::Send would have.
class WholeBodyReader : public std::enable_shared_from_this<WholeBodyReader> {
 public:
  WholeBodyReader(net::ExchangeResult head, net::BodyReaderPtr body, uint64_t max_bytes,
                  net::ExchangeCallback done)
      : result_(std::move(head)),
        body_(std::move(body)),
        max_bytes_(max_bytes),
        done_(std::move(done)) {}

  void Next() {
    body_->ReadSome([self = shared_from_this()](net::ClientError error, std::string detail,
                                                std::string_view piece, bool end) {
      net::ExchangeResult& r = self->result_;
      if (error != net::ClientError::kNone) {
        r.error = error;
        r.detail = std::move(detail);
      } else if (r.response.body().size() + piece.size() > self->max_bytes_) {
        r.error = net::ClientError::kTooLarge;
        r.detail = "the response body is over " + std::to_string(self->max_bytes_) + " bytes";
      } else {
        r.response.body().append(piece);
        if (!end) return self->Next();
        r.trailers = self->body_->trailers();
        r.latency_us = self->body_->latency_us();
      }
      self->body_.reset();
      self->done_(std::move(r));
    });
  }

 private:
  net::ExchangeResult result_;
  net::BodyReaderPtr body_;
  const uint64_t max_bytes_;
  net::ExchangeCallback done_;
};

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
  // Sends a WebSocket handshake; after a 101, replays the recorded connection's messages.
  void SendWebSocket(size_t lane, JobPtr job, net::HttpRequest req);
  // The lane's exchange for `job` is over (answered, failed or aborted by a fault).
  // `answered_us`: when the answer came (a WebSocket's 101), if not now.
  void OnExchange(size_t lane, const JobPtr& job, net::ExchangeResult&& r,
                  uint64_t answered_us = 0);
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
  uint64_t max_response_body_ = 0;
  std::vector<Lane> lanes_;
  std::mt19937_64 websocket_rng_{std::random_device{}()};  // handshake keys, masks
  // WebSocket conversations that may be in flight, ended at once by SIGINT/SIGTERM.
  std::vector<std::weak_ptr<WebSocketConversation>> conversations_;
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
  max_response_body_ = co.max_response_body;
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
    if (d == Decision::kSend) {
      if (e->has_websocket()) DecompressWebSocketForReplay(e->mutable_websocket());
      return Read::kEnvelope;
    }
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
  if (job->envelope.has_websocket()) MakeWebSocketHandshake(&out, websocket_rng_);
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
  if (job->envelope.has_websocket()) return SendWebSocket(i, std::move(job), std::move(req));
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

void Engine::SendWebSocket(size_t i, JobPtr job, net::HttpRequest req) {
  ++job->outcomes[i].attempts;
  std::string key(req[http::field::sec_websocket_key]);
  net::HttpRequest copy;
  if (opts_.retries > 0) copy = req;  // kept only when a retry may need it
  lanes_[i].pool->SendStreaming(
      std::move(req), [this, i, job, key = std::move(key), copy = std::move(copy)](
                          net::ExchangeResult&& head, net::BodyReaderPtr body) mutable {
        if (head.error == net::ClientError::kConnect &&
            job->outcomes[i].attempts <= opts_.retries && !stats_.interrupted) {
          return SendWebSocket(i, job, std::move(copy));
        }
        if (head.error != net::ClientError::kNone) return OnExchange(i, job, std::move(head));
        if (head.response.result_int() != 101) {  // refused: compared as any answer
          auto reader = std::make_shared<WholeBodyReader>(
              std::move(head), std::move(body), max_response_body_,
              [this, i, job](net::ExchangeResult&& r) { OnExchange(i, job, std::move(r)); });
          return reader->Next();
        }
        net::TunnelPtr tunnel = body->TakeTunnel();
        const std::string accept(head.response[http::field::sec_websocket_accept]);
        if (tunnel == nullptr || accept != WebSocketAccept(key)) {
          if (tunnel) tunnel->Close();
          head.error = net::ClientError::kBadResponse;
          head.detail = "the 101's Sec-WebSocket-Accept '" + accept +
                        "' does not answer the handshake's key (RFC 6455 4.2.2)";
          return OnExchange(i, job, std::move(head));
        }
        // Compared as the capture proxy recorded the primary's 101: without its hop-by-hop
        // headers (Connection, Upgrade).
        net::StripHopByHop(head.response);
        const uint64_t answered_us = Now();
        auto conversation = std::make_shared<WebSocketConversation>(
            io_, job->envelope.websocket(), std::move(tunnel), opts_.pacing, opts_.timeout_us,
            websocket_rng_,
            [this, i, job, head = std::move(head),
             answered_us](doppel::v1::WebSocketSession&& session) mutable {
              job->outcomes[i].websocket = std::move(session);
              OnExchange(i, job, std::move(head), answered_us);
            });
        std::erase_if(conversations_, [](const auto& c) { return c.expired(); });
        conversations_.push_back(conversation);
        conversation->Start();
      });
}

void Engine::OnExchange(size_t i, const JobPtr& job, net::ExchangeResult&& r,
                        uint64_t answered_us) {
  TargetOutcome& out = job->outcomes[i];
  Lane& lane = lanes_[i];
  --lane.in_flight;
  const bool faulted = Faulted(i, *job);
  const uint64_t now = answered_us != 0 ? answered_us : Now();
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
    // WebSocket conversations end where they are; their messages so far are compared.
    for (const auto& weak : conversations_) {
      if (auto c = weak.lock()) c->Stop();
    }
    conversations_.clear();
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
