// The proxy: listener, one ProxySession per client connection, per-thread workers, and the
// Recorder that ties them to the capture writer and the admin endpoint. All Beast/Asio server
// templates of the recorder are instantiated in this file.
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <unordered_set>

#include "base/strings.h"
#include "base/thread.h"
#include "net/headers.h"
#include "net/metrics.h"
#include "recorder/admin.h"
#include "recorder/mirror.h"
#include "recorder/recorder.h"
#include "recorder/request_log.h"
#include "recorder/sampler.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using doppel::v1::Envelope;
using net::HttpRequest;
using net::HttpResponse;

uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Why the proxy answered itself; indexes RecorderMetrics::errors.
enum class ProxyFailure {
  kBadRequest,
  kHeaderTooLarge,
  kBodyTooLarge,
  kRequestTimeout,
  kUpstreamConnect,
  kUpstreamReset,
  kUpstreamTimeout,
  kCount
};
constexpr const char* kFailureNames[] = {"bad_request",     "header_too_large", "body_too_large",
                                         "request_timeout", "upstream_connect", "upstream_reset",
                                         "upstream_timeout"};

doppel::v1::ProxyError ToProxyError(ProxyFailure f) {
  switch (f) {
    case ProxyFailure::kBadRequest:
    case ProxyFailure::kHeaderTooLarge:
    case ProxyFailure::kRequestTimeout:
      return doppel::v1::PROXY_ERROR_BAD_REQUEST;
    case ProxyFailure::kBodyTooLarge:
      return doppel::v1::PROXY_ERROR_BODY_TOO_LARGE;
    case ProxyFailure::kUpstreamConnect:
      return doppel::v1::PROXY_ERROR_UPSTREAM_CONNECT;
    case ProxyFailure::kUpstreamReset:
      return doppel::v1::PROXY_ERROR_UPSTREAM_RESET;
    case ProxyFailure::kUpstreamTimeout:
      return doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT;
    case ProxyFailure::kCount:
      break;
  }
  return doppel::v1::PROXY_ERROR_NONE;
}

struct RecorderMetrics {
  explicit RecorderMetrics(net::MetricsRegistry& r) {
    static constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 5; ++i) {
      requests[i] =
          r.AddCounter("doppel_requests_total", "Requests answered, by status class of the answer.",
                       std::string("class=\"") + kClasses[i] + "\"");
    }
    sampled = r.AddCounter("doppel_requests_sampled_total",
                           "Requests selected for capture (after match rules and sampling).");
    unmatched = r.AddCounter("doppel_requests_unmatched_total",
                             "Requests that matched no capture rule (rules in force only).");
    stored = r.AddCounter("doppel_envelopes_stored_total", "Envelopes appended to the store.");
    dropped_full = r.AddCounter("doppel_envelopes_dropped_total", "Sampled envelopes not stored.",
                                "reason=\"queue_full\"");
    dropped_error = r.AddCounter("doppel_envelopes_dropped_total", "Sampled envelopes not stored.",
                                 "reason=\"store_error\"");
    for (int i = 0; i < static_cast<int>(ProxyFailure::kCount); ++i) {
      errors[i] = r.AddCounter("doppel_proxy_errors_total",
                               "Requests the proxy answered itself, by reason.",
                               std::string("reason=\"") + kFailureNames[i] + "\"");
    }
    accepted = r.AddCounter("doppel_connections_accepted_total", "Client connections accepted.");
    rejected = r.AddCounter("doppel_connections_rejected_total",
                            "Client connections closed at once: over --max-connections.");
    active = r.AddGauge("doppel_connections_active", "Open client connections.");
    request_bytes = r.AddCounter("doppel_request_body_bytes_total",
                                 "Request body bytes forwarded to the primary.");
    response_bytes = r.AddCounter("doppel_response_body_bytes_total",
                                  "Response body bytes returned to clients.");
    upstream_reused = r.AddCounter("doppel_upstream_reused_total",
                                   "Primary exchanges on a pooled keep-alive connection.");
    latency = r.AddHistogram("doppel_primary_latency_seconds",
                             "Primary latency: request sent to last response byte read.");
  }
  uint64_t errors_total() const {
    uint64_t n = 0;
    for (auto* c : errors) n += c->value();
    return n;
  }

  net::Counter* requests[5];
  net::Counter* sampled;
  net::Counter* unmatched;
  net::Counter* stored;
  net::Counter* dropped_full;
  net::Counter* dropped_error;
  net::Counter* errors[static_cast<int>(ProxyFailure::kCount)];
  net::Counter* accepted;
  net::Counter* rejected;
  net::Gauge* active;
  net::Counter* request_bytes;
  net::Counter* response_bytes;
  net::Counter* upstream_reused;
  net::Histogram* latency;
};

class RecorderImpl;
class ProxySession;

// One proxy thread: its io_context, acceptor, upstream pool and live sessions. Everything
// here is touched only from the worker's thread.
struct Worker {
  std::unordered_set<ProxySession*> sessions;
  bool draining = false;
  SplitMix64 rng{std::random_device{}() * 0x9e3779b97f4a7c15ull ^ std::random_device{}()};
  std::atomic<size_t> live_sessions{0};
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{asio::make_work_guard(io)};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_backoff{io};
  net::HttpClientPoolPtr pool;
  std::unique_ptr<MirrorLane> mirror;  // --mirror only
  std::thread thread;
};

void FillHeaders(const http::fields& fields,
                 google::protobuf::RepeatedPtrField<doppel::v1::Header>* out) {
  out->Reserve(static_cast<int>(std::distance(fields.begin(), fields.end())));
  for (const auto& f : fields) {
    doppel::v1::Header* h = out->Add();
    h->set_name(std::string(f.name_string()));
    h->set_value(std::string(f.value()));
  }
}

void FillBody(const std::string& body, uint64_t limit, std::string* out, bool* truncated,
              uint64_t* size) {
  *size = body.size();
  *truncated = body.size() > limit;
  out->assign(body, 0, std::min<uint64_t>(limit, body.size()));
}


// RFC 9112 2.3: a request line ending in "HTTP/" DIGIT "." DIGIT other than 1.0 and 1.1 is
// answered 505 (Beast reports those like garbage, as bad_version).
bool UnsupportedVersion(const beast::flat_buffer& buffer) {
  const auto data = buffer.cdata();
  const std::string_view head(static_cast<const char*>(data.data()),
                              std::min<size_t>(data.size(), 8192));
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos || eol < 9) return false;
  const std::string_view v = head.substr(eol - 9, 9);  // " HTTP/x.y"
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.substr(0, 6) != " HTTP/" || !digit(v[6]) || v[7] != '.' || !digit(v[8])) return false;
  return !(v[6] == '1' && (v[8] == '0' || v[8] == '1'));
}

// RFC 9112 3.2: one Host (required in HTTP/1.1) and a target in origin form, absolute form
// or "*" (OPTIONS). An absolute-form target is forwarded in origin form with its authority
// as Host, as a gateway must. Returns why the request is refused, "" when it is fine.
std::string NormalizeTarget(http::request<http::string_body>& req) {
  size_t hosts = 0;
  for (const auto& f : req) hosts += f.name() == http::field::host;
  if (hosts > 1) return "more than one Host header";
  const std::string_view target = req.target();
  const bool origin_form = !target.empty() && target[0] == '/';
  if (origin_form || (target == "*" && req.method() == http::verb::options)) {
    if (hosts == 0 && req.version() >= 11) return "HTTP/1.1 request without a Host header";
    return "";
  }
  const size_t scheme_end = target.find("://");
  const std::string_view scheme = target.substr(0, scheme_end);
  if (scheme_end == std::string_view::npos ||
      !(beast::iequals(scheme, "http") || beast::iequals(scheme, "https"))) {
    return "the request target must be a /path, an http(s):// URL, or * for OPTIONS";
  }
  const std::string_view rest = target.substr(scheme_end + 3);
  const size_t end = rest.find_first_of("/?");
  const std::string authority(rest.substr(0, end));
  if (authority.empty() || authority.find('@') != std::string::npos) {
    return "no host, or user info, in the absolute request target";
  }
  std::string path(end == std::string_view::npos ? "/" : rest.substr(end));
  if (path[0] == '?') path.insert(0, "/");
  req.set(http::field::host, authority);
  req.target(path);
  return "";
}

class RecorderImpl : public Recorder {
 public:
  RecorderImpl(RecorderOptions options, CaptureSink* sink, const Redactor* redactor,
               Sampler sampler)
      : options_(std::move(options)),
        sampler_(std::move(sampler)),
        redactor_(redactor),
        metrics_(registry_),
        writer_(sink, redactor, options_.queue,
                {metrics_.stored, metrics_.dropped_full, metrics_.dropped_error}) {
    registry_.AddGaugeFunction("doppel_capture_queue_depth",
                               "Envelopes waiting for (or being written by) the writer.",
                               [this] { return static_cast<double>(writer_.depth()); });
  }
  ~RecorderImpl() override { Stop(); }

  Status Init();

  net::HostPort listen_address() const override { return listen_address_; }
  std::optional<net::HostPort> admin_address() const override {
    if (!admin_) return std::nullopt;
    return admin_->address();
  }
  void Stop() override;
  RecorderCounts counts() const override;
  std::vector<MirrorCounts> mirror_counts() const override {
    return mirrors_ ? mirrors_->counts() : std::vector<MirrorCounts>{};
  }
  std::string MetricsText() const override { return registry_.RenderPrometheus(); }
  std::string StatusJson() const override;
  Status capture_error() const override { return writer_.first_error(); }

  // ---- used by sessions (from worker threads) ----
  const RecorderOptions& options() const { return options_; }
  const Sampler& sampler() const { return sampler_; }
  RecorderMetrics& metrics() { return metrics_; }
  uint32_t NextSeq() { return seq_.fetch_add(1, std::memory_order_relaxed); }
  void Capture(Envelope&& e) {
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
    writer_.Push(std::move(e));
  }
  std::atomic<size_t>& open_connections() { return open_connections_; }
  // --log-bodies: one line per request the proxy answered itself.
  void LogFailure(unsigned status, const char* label, const std::string& request,
                  const std::string& reason) {
    failure_log_.Write("doppel record: " + std::to_string(status) + " " + label + ": " + reason +
                       ": " + request);
  }
  const Redactor* redactor() const { return redactor_; }

 private:
  void Accept(Worker& w);
  AdminReply HandleAdmin(std::string_view target) const;

  RecorderOptions options_;
  Sampler sampler_;
  const Redactor* redactor_;
  RateLimitedLog failure_log_{20};
  net::MetricsRegistry registry_;
  RecorderMetrics metrics_;
  CaptureWriter writer_;
  std::unique_ptr<MirrorHub> mirrors_;  // outlives the workers (their pending copies use it)
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  net::HostPort listen_address_;
  std::atomic<uint32_t> seq_{0};
  std::atomic<uint64_t> first_arrival_us_{0};
  std::atomic<uint64_t> last_arrival_us_{0};
  std::atomic<size_t> open_connections_{0};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex stop_mu_;
  bool stopped_ = false;
};

class ProxySession : public std::enable_shared_from_this<ProxySession> {
 public:
  ProxySession(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder)
      : stream_(std::move(socket)), worker_(worker), rec_(recorder) {
    beast::error_code ec;
    const auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      client_ip_ = remote.address().to_string();
      client_addr_ = net::HostPort{client_ip_, remote.port()}.ToString();
    }
    stream_.socket().set_option(tcp::no_delay(true), ec);
    // One recv for a typical request head instead of several 512-byte ones (Beast reads
    // max(512, free capacity) bytes at a time).
    buffer_.reserve(4096);
  }

  ~ProxySession() {
    worker_.sessions.erase(this);
    worker_.live_sessions.fetch_sub(1, std::memory_order_relaxed);
    rec_.open_connections().fetch_sub(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(-1);
  }

  void Start() {
    worker_.sessions.insert(this);
    worker_.live_sessions.fetch_add(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(1);
    ReadHeader();
  }

  // Shutdown: a connection waiting for its next request is closed now; one in the middle of
  // a request finishes it and closes afterwards.
  void OnDrain() {
    if (!in_request_ && buffer_.size() == 0) stream_.cancel();
  }

 private:
  const RecorderOptions& opts() const { return rec_.options(); }

  void ReadHeader() {
    if (worker_.draining) return Close();
    in_request_ = false;
    envelope_.reset();
    parser_.emplace();
    parser_->header_limit(opts().max_header_bytes);
    parser_->body_limit(opts().max_request_body);
    stream_.expires_after(opts().idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) {
      if (ec == http::error::header_limit) {
        return Fail(ProxyFailure::kHeaderTooLarge, http::status::request_header_fields_too_large,
                    "request header over " + std::to_string(opts().max_header_bytes) + " bytes");
      }
      if (ec == http::error::body_limit) {
        return Fail(ProxyFailure::kBodyTooLarge, http::status::payload_too_large,
                    "request body over " + std::to_string(opts().max_request_body) + " bytes");
      }
      if (ec == http::error::bad_version && UnsupportedVersion(buffer_)) {
        return Fail(ProxyFailure::kBadRequest, http::status::http_version_not_supported,
                    "HTTP version not supported: use HTTP/1.1 or HTTP/1.0");
      }
      if (IsParseError(ec)) {
        return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                    "malformed request: " + ec.message());
      }
      // A client that sent part of a request head and stalled (slowloris) was cut by the
      // timer: nothing can be answered, but it is counted.
      if (ec == beast::error::timeout && buffer_.size() > 0) {
        rec_.metrics().errors[static_cast<int>(ProxyFailure::kRequestTimeout)]->Inc();
      }
      return Close();  // client closed, idle timeout, or shutdown
    }
    in_request_ = true;
    arrival_us_ = NowUs();
    auto& req = parser_->get();
    // RFC 9112 6.1/6.3: a Transfer-Encoding whose last coding is not chunked cannot be
    // framed; Transfer-Encoding together with Content-Length, or in an HTTP/1.0 request, is
    // a smuggling vector.
    const bool has_te = req.find(http::field::transfer_encoding) != req.end();
    if (has_te && (!parser_->chunked() || req.version() < 11 ||
                   req.find(http::field::content_length) != req.end())) {
      return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                  "malformed request: Transfer-Encoding must be chunked, without "
                  "Content-Length, and HTTP/1.1");
    }
    if (std::string why = NormalizeTarget(req); !why.empty()) {
      return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                  "malformed request: " + why);
    }
    DecideCapture();
    auto expect = req.find(http::field::expect);
    const bool wants_continue =
        expect != req.end() && beast::iequals(expect->value(), "100-continue");
    if (expect != req.end()) req.erase(http::field::expect);
    if (parser_->is_done()) return OnRequest();
    if (wants_continue && req.version() >= 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(opts().request_timeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(opts().request_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec) {
      if (ec == http::error::body_limit) {
        return Fail(ProxyFailure::kBodyTooLarge, http::status::payload_too_large,
                    "request body over " + std::to_string(opts().max_request_body) + " bytes");
      }
      if (ec == beast::error::timeout) {
        // tcp_stream closed the socket when the timer fired: nothing can be answered.
        rec_.metrics().errors[static_cast<int>(ProxyFailure::kRequestTimeout)]->Inc();
        return Close();
      }
      if (IsParseError(ec)) {
        return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                    "malformed request body: " + ec.message());
      }
      return Close();
    }
    OnRequest();
  }

  static bool IsParseError(beast::error_code ec) {
    return ec.category() == http::make_error_code(http::error::bad_version).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
  }

  // Match rules, then sampling; on a hit, starts the envelope with the request headers.
  void DecideCapture() {
    const auto& req = parser_->get();
    net::RequestView view{req.method_string(), req.target(),
                          [&req](std::string_view name) -> std::optional<std::string_view> {
                            auto it = req.find(name);
                            if (it == req.end()) return std::nullopt;
                            return it->value();
                          }};
    const net::MatchBlock* block = nullptr;
    if (!opts().rules.empty()) {
      block = opts().rules.Match(view);
      if (block == nullptr) {
        rec_.metrics().unmatched->Inc();
        return;
      }
    }
    if (!rec_.sampler().Sample(view, worker_.rng.Next())) return;
    envelope_.emplace();
    envelope_->set_arrival_us(arrival_us_);
    envelope_->set_seq(rec_.NextSeq());
    envelope_->set_client_addr(client_addr_);
    envelope_->set_scheme("http");
    if (block != nullptr) envelope_->set_matched_rule(block->name);
    auto* r = envelope_->mutable_request();
    r->set_method(std::string(req.method_string()));
    // Obs-text bytes (Beast accepts them) percent-encoded, or the envelope would not parse
    // back (base/strings.h); the primary still gets the target as sent.
    r->set_target(PercentEncodeNonAscii(req.target()));
    r->set_version(req.version());
  }

  void OnRequest() {
    HttpRequest req = parser_->release();
    client_version_ = req.version();
    client_keep_alive_ = req.keep_alive();
    is_head_ = req.method() == http::verb::head;
    const bool chunked = req.chunked();
    const bool had_length = req.find(http::field::content_length) != req.end();
    if (opts().log_bodies) {
      logged_request_ = DescribeRequestForLog(req, req.body(), rec_.redactor());
    }
    net::StripHopByHop(req);
    rec_.metrics().request_bytes->Inc(req.body().size());
    if (envelope_) {
      auto* r = envelope_->mutable_request();
      FillHeaders(req, r->mutable_headers());
      uint64_t size = 0;
      bool truncated = false;
      FillBody(req.body(), opts().capture_body_limit, r->mutable_body(), &truncated, &size);
      r->set_body_truncated(truncated);
      r->set_body_size(size);
    }
    net::AddForwardingHeaders(req, {client_ip_, "http", client_version_});
    // HTTP/1.0 allows a request without Host; the upstream gets HTTP/1.1, which does not.
    if (req.find(http::field::host) == req.end()) {
      req.set(http::field::host, rec_.options().upstream.Authority());
    }
    req.version(11);
    if (chunked) {
      req.chunked(true);
    } else if (had_length || !req.body().empty()) {
      req.content_length(req.body().size());
    }
    if (worker_.mirror) {
      // The copy is the request as forwarded, target as the client sent it (each mirror
      // applies its own base path); sent now, never waited for.
      net::RequestView view{req.method_string(), req.target(),
                            [&req](std::string_view name) -> std::optional<std::string_view> {
                              auto it = req.find(name);
                              if (it == req.end()) return std::nullopt;
                              return it->value();
                            }};
      mirrored_ = worker_.mirror->Dispatch(req, view);
    }
    const net::Url& upstream = rec_.options().upstream;
    if (!upstream.base_path.empty()) req.target(upstream.TargetFor(req.target()));
    worker_.pool->Send(std::move(req), [self = shared_from_this()](net::ExchangeResult&& r) {
      self->OnUpstream(std::move(r));
    });
  }

  void OnUpstream(net::ExchangeResult&& result) {
    auto& m = rec_.metrics();
    if (result.reused_connection) m.upstream_reused->Inc();
    switch (result.error) {
      case net::ClientError::kNone:
        break;
      case net::ClientError::kTimeout:
        return Fail(ProxyFailure::kUpstreamTimeout, http::status::gateway_timeout,
                    "primary timeout: " + result.detail);
      case net::ClientError::kConnect:
        return Fail(ProxyFailure::kUpstreamConnect, http::status::bad_gateway,
                    "primary unreachable: " + result.detail);
      default:
        return Fail(ProxyFailure::kUpstreamReset, http::status::bad_gateway,
                    "primary failed: " + result.detail);
    }
    m.latency->ObserveUs(result.latency_us);
    HttpResponse& res = result.response;
    const bool upstream_chunked = res.chunked();
    const unsigned upstream_version = res.version();
    net::StripHopByHop(res);
    if (mirrored_) {
      mirrored_->OnPrimary(res, result.latency_us);
      mirrored_.reset();
    }
    if (envelope_) {
      auto* r = envelope_->mutable_response();
      r->set_status(res.result_int());
      r->set_reason(PercentEncodeNonAscii(res.reason()));
      r->set_version(upstream_version);
      FillHeaders(res, r->mutable_headers());
      uint64_t size = 0;
      bool truncated = false;
      FillBody(res.body(), opts().capture_body_limit, r->mutable_body(), &truncated, &size);
      r->set_body_truncated(truncated);
      r->set_body_size(size);
      r->set_latency_us(result.latency_us);
      rec_.Capture(std::move(*envelope_));
      envelope_.reset();
    }
    net::AppendVia(res, upstream_version, "doppel");
    res.version(client_version_);
    const unsigned status = res.result_int();
    const bool no_body = is_head_ || status == 204 || status == 304 || status / 100 == 1;
    if (!no_body) {
      if (upstream_chunked && client_version_ >= 11) {
        res.chunked(true);
      } else {
        res.content_length(res.body().size());
      }
    }
    m.response_bytes->Inc(res.body().size());
    Respond(std::move(res), client_keep_alive_);
  }

  // Answers the request itself. Before a complete request was read the connection cannot be
  // reused (the rest of the request is unread), so it is closed after the answer.
  void Fail(ProxyFailure failure, http::status status, std::string reason) {
    rec_.metrics().errors[static_cast<int>(failure)]->Inc();
    if (mirrored_) {
      mirrored_->OnPrimaryFailed();
      mirrored_.reset();
    }
    const bool request_complete = failure >= ProxyFailure::kUpstreamConnect;
    if (opts().log_bodies) {
      std::string request = std::move(logged_request_);
      if (!request_complete) {
        request =
            parser_ ? DescribeRequestForLog(parser_->get(), parser_->get().body(), rec_.redactor())
                    : "(no request)";
      }
      rec_.LogFailure(static_cast<unsigned>(status), kFailureNames[static_cast<int>(failure)],
                      request + " from " + client_addr_, reason);
    }
    if (!in_request_ && !envelope_ && rec_.options().rules.empty() &&
        rec_.sampler().SampleRandom(worker_.rng.Next())) {
      // Malformed before a header could be read: capture what is known, decided at random.
      if (!in_request_) arrival_us_ = NowUs();
      envelope_.emplace();
      envelope_->set_arrival_us(arrival_us_);
      envelope_->set_seq(rec_.NextSeq());
      envelope_->set_client_addr(client_addr_);
      envelope_->set_scheme("http");
    }
    if (envelope_) {
      if (!request_complete && parser_) {
        // Keep the headers we did read (the body is incomplete by definition).
        auto& req = parser_->get();
        auto* r = envelope_->mutable_request();
        if (r->headers_size() == 0) {
          http::fields copy = req.base();
          net::StripHopByHop(copy);
          FillHeaders(copy, r->mutable_headers());
        }
      }
      envelope_->set_error(ToProxyError(failure));
      envelope_->set_error_detail(reason);
      rec_.Capture(std::move(*envelope_));
      envelope_.reset();
    }
    HttpResponse res{status, client_version_ ? client_version_ : 11};
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.set(http::field::server, "doppel");
    res.body() = "doppel: " + reason + "\n";
    if (is_head_ && request_complete) {
      res.content_length(res.body().size());
      res.body().clear();
    } else {
      res.content_length(res.body().size());
    }
    linger_ = !request_complete;
    Respond(std::move(res), request_complete && client_keep_alive_);
  }

  void Respond(HttpResponse&& res, bool keep_alive) {
    const unsigned cls = res.result_int() / 100;
    if (cls >= 1 && cls <= 5) rec_.metrics().requests[cls - 1]->Inc();
    keep_alive_ = keep_alive && !worker_.draining;
    res.keep_alive(keep_alive_);
    response_ = std::move(res);
    stream_.expires_after(opts().request_timeout);
    http::async_write(
        stream_, response_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    response_ = {};
    in_request_ = false;
    if (!ec && linger_) return LingeringClose();
    if (ec || !keep_alive_) return Close();
    ReadHeader();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  // After answering a request whose rest is unread: closing at once with unread bytes in
  // the socket makes the kernel send a reset, which can destroy our answer in flight. So
  // half-close, then read and discard (bounded in bytes and time) until the client closes.
  void LingeringClose() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    discard_ = std::make_unique<char[]>(kDiscardBytes);
    Discard(0);
  }

  void Discard(size_t total) {
    stream_.async_read_some(asio::buffer(discard_.get(), kDiscardBytes),
                            [self = shared_from_this(), total](beast::error_code ec, size_t n) {
                              if (ec || total + n > (1u << 20)) return self->stream_.close();
                              self->Discard(total + n);
                            });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Worker& worker_;
  RecorderImpl& rec_;
  std::string client_ip_ = "unknown";
  std::string client_addr_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<Envelope> envelope_;  // the capture of the current request, when sampled
  std::shared_ptr<MirroredRequest> mirrored_;  // the mirrors the current request went to
  std::string logged_request_;  // --log-bodies: the current request, described
  HttpResponse response_;
  static constexpr size_t kDiscardBytes = 16 * 1024;
  std::unique_ptr<char[]> discard_;  // only while lingering
  bool linger_ = false;
  bool in_request_ = false;
  bool client_keep_alive_ = false;
  bool keep_alive_ = false;
  bool is_head_ = false;
  unsigned client_version_ = 11;
  uint64_t arrival_us_ = 0;
};

Status RecorderImpl::Init() {
  if (options_.threads < 1) return Status::InvalidArgument("--threads must be at least 1");
  if (!options_.mirror.mirrors.empty()) {
    auto hub = MirrorHub::Create(options_.mirror, options_.rules, registry_);
    if (!hub.ok()) return hub.status();
    mirrors_ = std::move(hub.value());
  }
  std::shared_ptr<asio::ssl::context> tls;
  if (options_.upstream.tls()) {
    auto ctx = net::MakeClientTlsContext(options_.upstream_tls);
    if (!ctx.ok()) return ctx.status();
    tls = std::move(ctx.value());
  }
  beast::error_code ec;
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
    if (mirrors_) {
      auto lane = mirrors_->MakeLane(w->io);
      if (!lane.ok()) return lane.status();
      w->mirror = std::move(lane.value());
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
  if (options_.admin) {
    auto admin =
        AdminServer::Start(*options_.admin, [this](std::string_view t) { return HandleAdmin(t); });
    if (!admin.ok()) return admin.status();
    admin_ = std::move(admin.value());
  }
  writer_.Start();
  for (size_t i = 0; i < workers_.size(); ++i) {
    Accept(*workers_[i]);
    Worker* raw = workers_[i].get();
    raw->thread = std::thread([raw] { raw->io.run(); });
    NameThread(raw->thread, "doppel-proxy-" + std::to_string(i));
  }
  return Status::Ok();
}

void RecorderImpl::Accept(Worker& w) {
  w.acceptor.async_accept(w.io, [this, &w](beast::error_code ec, tcp::socket socket) {
    if (w.draining || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors and the like: back off instead of spinning.
      w.accept_backoff.expires_after(std::chrono::milliseconds(20));
      w.accept_backoff.async_wait([this, &w](beast::error_code ec) {
        if (!ec && !w.draining) Accept(w);
      });
      return;
    }
    metrics_.accepted->Inc();
    if (open_connections_.fetch_add(1, std::memory_order_relaxed) >= options_.max_connections) {
      open_connections_.fetch_sub(1, std::memory_order_relaxed);
      metrics_.rejected->Inc();
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<ProxySession>(std::move(socket), w, *this)->Start();
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
      beast::error_code ignored;
      raw->acceptor.close(ignored);
      raw->accept_backoff.cancel();
      for (ProxySession* s : raw->sessions) s->OnDrain();
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  for (auto& w : workers_) {
    while (w->live_sessions.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // Mirror copies are fire-and-forget: give those still out a moment, not their timeout.
  const auto mirror_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (mirrors_ && mirrors_->inflight() > 0 &&
         std::chrono::steady_clock::now() < mirror_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const bool mirrors_busy = mirrors_ && mirrors_->inflight() > 0;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    asio::post(raw->io, [raw] {
      raw->pool->Shutdown();
      if (raw->mirror) raw->mirror->Shutdown();
    });
    raw->work.reset();
    // Sessions still open after the drain timeout are cut: stopping the loop destroys them.
    if (raw->live_sessions.load() > 0 || mirrors_busy) raw->io.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  if (admin_) admin_->Stop();
  writer_.Stop();
}

RecorderCounts RecorderImpl::counts() const {
  RecorderCounts c;
  for (auto* r : metrics_.requests) c.requests += r->value();
  c.sampled = metrics_.sampled->value();
  c.stored = metrics_.stored->value();
  c.dropped = metrics_.dropped_full->value() + metrics_.dropped_error->value();
  c.errors = metrics_.errors_total();
  c.request_bytes = metrics_.request_bytes->value();
  c.response_bytes = metrics_.response_bytes->value();
  c.queue_depth = writer_.depth();
  c.connections = open_connections_.load(std::memory_order_relaxed);
  c.first_arrival_us = first_arrival_us_.load(std::memory_order_relaxed);
  c.last_arrival_us = last_arrival_us_.load(std::memory_order_relaxed);
  return c;
}

std::string RecorderImpl::StatusJson() const {
  const RecorderCounts c = counts();
  boost::json::object o;
  o["session"] = options_.session;
  o["listen"] = listen_address_.ToString();
  o["upstream"] = options_.upstream.ToString();
  o["threads"] = options_.threads;
  o["uptime_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  o["sample_percent"] = sampler_.percent();
  o["sample_key"] = sampler_.key();
  boost::json::array rules;
  for (const auto& b : options_.rules.blocks()) rules.emplace_back(b.name);
  o["rules"] = std::move(rules);
  if (mirrors_) o["mirrors"] = mirrors_->StatusJson();
  o["requests"] = c.requests;
  o["sampled"] = c.sampled;
  o["stored"] = c.stored;
  o["dropped"] = c.dropped;
  o["errors"] = c.errors;
  o["queue_depth"] = c.queue_depth;
  o["connections"] = c.connections;
  o["request_body_bytes"] = c.request_bytes;
  o["response_body_bytes"] = c.response_bytes;
  o["primary_latency_p50_us_le"] = metrics_.latency->ApproximateQuantileUs(0.5);
  o["primary_latency_p99_us_le"] = metrics_.latency->ApproximateQuantileUs(0.99);
  return boost::json::serialize(o) + "\n";
}

AdminReply RecorderImpl::HandleAdmin(std::string_view target) const {
  const std::string_view path = net::TargetPath(target);
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", registry_.RenderPrometheus()};
  }
  if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
  if (path == "/status") return {200, "application/json", StatusJson()};
  return {404, "text/plain; charset=utf-8", "not found: try /metrics, /healthz, /status\n"};
}

}  // namespace

Result<std::unique_ptr<Recorder>> Recorder::Start(RecorderOptions options, CaptureSink* sink,
                                                  const Redactor* redactor) {
  auto sampler = Sampler::Create(options.sample_percent, options.sample_key);
  if (!sampler.ok()) return sampler.status();
  auto rec = std::make_unique<RecorderImpl>(std::move(options), sink, redactor,
                                            std::move(sampler.value()));
  Status st = rec->Init();
  if (!st.ok()) {
    rec->Stop();
    return st;
  }
  return std::unique_ptr<Recorder>(std::move(rec));
}

}  // namespace doppel::recorder
