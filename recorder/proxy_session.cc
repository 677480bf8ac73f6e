#include "recorder/proxy_session.h"

#include <algorithm>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "base/strings.h"
#include "net/headers.h"
#include "recorder/recorder_impl.h"
#include "recorder/request_checks.h"
#include "recorder/request_log.h"
#include "recorder/worker.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using doppel::v1::Envelope;
using net::HttpRequest;
using net::HttpResponse;

void FillBody(const std::string& body, uint64_t limit, std::string* out, bool* truncated,
              uint64_t* size) {
  *size = body.size();
  *truncated = body.size() > limit;
  out->assign(body, 0, std::min<uint64_t>(limit, body.size()));
}

class Session final : public ProxySession, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder)
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

  ~Session() override {
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

  void OnDrain() override {
    if (!in_request_ && buffer_.size() == 0) stream_.cancel();
  }

 private:
  const RecorderOptions& opts() const { return rec_.options(); }
  std::string_view BufferedBytes() const {
    const auto data = buffer_.cdata();
    return {static_cast<const char*>(data.data()), data.size()};
  }

  void ReadHeader() {
    if (worker_.draining) return Close();
    in_request_ = false;
    envelope_.reset();
    parser_.emplace();
    parser_->header_limit(opts().max_header_bytes);
    parser_->body_limit(opts().max_request_body);
    empty_line_bytes_ = 0;
    obs_fold_ = false;
    stream_.expires_after(opts().idle_timeout);
    ParseHead();
  }

  // Feeds buffered bytes to the parser until the request head is complete, reading more as
  // needed: http::async_read_header by hand, because the proxy looks at the raw head. Empty
  // lines before the request line are skipped (RFC 9112 2.2; Beast answers them "bad method")
  // and obs-fold is noted to be refused (5.2; Beast would unfold it silently). The parser
  // consumes the head in whole lines (a folded field with its continuation lines), so each
  // consumed piece is checked on its own.
  void ParseHead() {
    for (;;) {
      if (!parser_->got_some()) {
        const size_t empty = LeadingEmptyLines(BufferedBytes());
        buffer_.consume(empty);
        empty_line_bytes_ += empty;
        if (empty_line_bytes_ > opts().max_header_bytes) {
          return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                      "malformed request: over " + std::to_string(opts().max_header_bytes) +
                          " bytes of empty lines before the request line");
        }
        if (BufferedBytes() == "\r") break;  // one more empty line, or garbage: read on
      }
      if (buffer_.size() == 0) break;
      beast::error_code ec;
      const std::string_view data = BufferedBytes();
      const size_t used = parser_->put(asio::buffer(data.data(), data.size()), ec);
      obs_fold_ = obs_fold_ || HasObsFold(data.substr(0, used));
      buffer_.consume(used);
      if (ec == http::error::need_more) break;
      if (ec || parser_->is_header_done()) return OnHeader(ec);
      if (used == 0) break;
    }
    stream_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, 65536)),
        [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnHeadRead(ec, n); });
  }

  void OnHeadRead(beast::error_code ec, size_t n) {
    buffer_.commit(n);
    // End of stream as http::async_read_header reports it: inside a request head, or before.
    if (ec == asio::error::eof) {
      ec = parser_->got_some() ? http::error::partial_message : http::error::end_of_stream;
    }
    if (ec) return OnHeader(ec);
    ParseHead();
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
      if (ec == http::error::bad_version && UnsupportedVersion(BufferedBytes())) {
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
    arrival_us_ = opts().clock->WallUs();
    auto& req = parser_->get();
    if (obs_fold_) {
      return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                  "malformed request: obs-fold (a header line continued on the next, which "
                  "starts with a space or tab) is not allowed; send each header on one line");
    }
    switch (CheckMethod(req.method_string())) {
      case MethodCheck::kForward:
        break;
      case MethodCheck::kConnect:
        return Fail(ProxyFailure::kBadRequest, http::status::not_implemented,
                    "CONNECT is not supported: doppel forwards requests, it does not open "
                    "tunnels");
      case MethodCheck::kNotToken:
        return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                    "malformed request: the method is not a token");
    }
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
    size_t hosts = 0;
    for (const auto& f : req) hosts += f.name() == http::field::host;
    const TargetCheck target = CheckRequestTarget(req.method_string(), req.target(), req.version(),
                                                  hosts, req[http::field::host]);
    if (!target.error.empty()) {
      return Fail(ProxyFailure::kBadRequest, http::status::bad_request,
                  "malformed request: " + target.error);
    }
    if (target.absolute) {
      req.set(http::field::host, target.authority);
      req.target(target.origin);
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
      net::CopyHeaders(req, r->mutable_headers());
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
    worker_.pool->SendStreaming(
        std::move(req),
        [self = shared_from_this()](net::ExchangeResult&& head, net::BodyReaderPtr body) {
          self->OnUpstreamHead(std::move(head), std::move(body));
        });
  }

  // The primary's response head arrived (or the exchange failed before it): checks it, starts
  // the capture's side copy and writes the head to the client; the body follows piece by
  // piece (RelayPiece), each read from the primary only after the previous piece was written
  // to the client, so a slow client slows the primary down and memory stays bounded.
  void OnUpstreamHead(net::ExchangeResult&& result, net::BodyReaderPtr body) {
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
    body_ = std::move(body);
    HttpResponse& res = result.response;
    const bool upstream_chunked = res.chunked();
    const bool upstream_length = res.has_content_length();
    const unsigned upstream_version = res.version();
    net::StripHopByHop(res);
    const unsigned status = res.result_int();
    no_body_ = is_head_ || status == 204 || status == 304 || status / 100 == 1;
    body_size_ = 0;
    body_cut_ = false;
    head_time_ = std::chrono::steady_clock::now();
    if (mirrored_) mirror_copy_.emplace(res);  // the body follows in CopyAside
    if (envelope_) {
      auto* r = envelope_->mutable_response();
      r->set_status(status);
      r->set_reason(PercentEncodeNonAscii(res.reason()));
      r->set_version(upstream_version);
      net::CopyHeaders(res, r->mutable_headers());
      auto type = res.find(http::field::content_type);
      static constexpr std::string_view kEventStream = "text/event-stream";
      event_stream_ = type != res.end() &&
                      EqualsIgnoreCase(type->value().substr(0, kEventStream.size()), kEventStream);
    }
    net::AppendVia(res, upstream_version, "doppel");
    res.version(client_version_);
    bool keep_alive = client_keep_alive_;
    if (!no_body_ && upstream_chunked && client_version_ >= 11) {
      res.chunked(true);
    } else if (!no_body_ && !upstream_length) {
      // Close-delimited (the primary's, or chunked for an HTTP/1.0 client): the end of the
      // body is the end of the connection.
      keep_alive = false;
    }
    CountAnswer(status, keep_alive);
    primary_done_ = false;
    if (no_body_ || (upstream_length && res[http::field::content_length] == "0")) {
      OnPrimaryDone();  // the response is complete with its head
    }
    stream_res_.base() = std::move(res.base());
    stream_res_.keep_alive(keep_alive_);
    serializer_.emplace(stream_res_);
    // When (some of) the body came with the head, the head goes out with its first piece in
    // one write; otherwise at once, before waiting for the body (an event stream's head).
    if (body_->ready()) return ReadPiece();
    WriteHead([self = shared_from_this()] { self->ReadPiece(); });
  }

  template <class Next>
  void WriteHead(Next next) {
    stream_.expires_after(opts().request_timeout);
    http::async_write_header(stream_, *serializer_,
                             [self = shared_from_this(), next](beast::error_code ec, size_t) {
                               if (ec) return self->AbortStream(ec);
                               next();
                             });
  }

  void ReadPiece() {
    body_->ReadSome([self = shared_from_this()](net::ClientError error, std::string detail,
                                                std::string_view piece, bool end) {
      self->RelayPiece(error, std::move(detail), piece, end);
    });
  }

  void RelayPiece(net::ClientError error, std::string detail, std::string_view piece, bool end) {
    if (error != net::ClientError::kNone) return CutByPrimary(error, std::move(detail));
    CopyAside(piece);
    rec_.metrics().response_bytes->Inc(piece.size());
    // Before the last write: the capture never waits for the client.
    if (end && !primary_done_) OnPrimaryDone();
    if (no_body_ || piece.empty()) {
      if (end) return EndBody();
      if (!no_body_ && !serializer_->is_header_done()) {
        return WriteHead([self = shared_from_this()] { self->ReadPiece(); });
      }
      return ReadPiece();
    }
    auto& b = stream_res_.body();
    b.data = const_cast<char*>(piece.data());  // only read from
    b.size = piece.size();
    b.more = true;
    stream_.expires_after(opts().request_timeout);
    http::async_write(stream_, *serializer_,
                      [self = shared_from_this(), end](beast::error_code ec, size_t) {
                        if (ec == http::error::need_buffer) ec = {};  // the piece went out
                        if (ec) return self->AbortStream(ec);
                        if (end) return self->EndBody();
                        self->ReadPiece();
                      });
  }

  // The side copy of a body piece: into the envelope up to --capture-body-limit (with the
  // arrival of the piece for event streams), and for --mirror-diff the primary's response.
  void CopyAside(std::string_view piece) {
    const uint64_t limit = opts().capture_body_limit;
    if (envelope_ && !piece.empty()) {
      auto* r = envelope_->mutable_response();
      if (event_stream_) {
        if (r->chunks_size() < kMaxStreamChunks) {
          auto* c = r->add_chunks();
          c->set_offset(body_size_);
          c->set_size(piece.size());
          c->set_at_us(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                 std::chrono::steady_clock::now() - head_time_)
                                                 .count()));
        } else {
          r->set_chunks_truncated(true);
        }
      }
      AppendUpTo(piece, limit, r->mutable_body());
    }
    if (mirror_copy_) AppendUpTo(piece, limit, &mirror_copy_->body());
    body_size_ += piece.size();
  }

  static void AppendUpTo(std::string_view piece, uint64_t limit, std::string* out) {
    if (out->size() < limit) out->append(piece.substr(0, limit - out->size()));
  }

  // The whole body was relayed: the final chunk (chunked) goes out, with the head if that is
  // still here.
  void EndBody() {
    if (no_body_) {
      if (serializer_->is_header_done()) return OnStreamDone();
      return WriteHead([self = shared_from_this()] { self->OnStreamDone(); });
    }
    auto& b = stream_res_.body();
    b.data = nullptr;
    b.size = 0;
    b.more = false;
    stream_.expires_after(opts().request_timeout);
    http::async_write(stream_, *serializer_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->AbortStream(ec);
                        self->OnStreamDone();
                      });
  }

  // The primary's response ended: its latency is counted, the mirrors and the capture get it.
  void OnPrimaryDone() {
    primary_done_ = true;
    const uint64_t latency_us = body_->latency_us();
    rec_.metrics().latency->ObserveUs(latency_us);
    if (mirrored_) {
      mirrored_->OnPrimary(*mirror_copy_, latency_us,
                           /*body_complete=*/mirror_copy_->body().size() == body_size_);
      mirrored_.reset();
    }
    FinishCapture(latency_us);
  }

  void OnStreamDone() {
    EndRelay();
    OnWrite({});
  }

  // Pushes the envelope of a relayed (or cut) response; a full queue drops it, never the
  // stream (RecorderImpl::Capture does not wait).
  void FinishCapture(uint64_t latency_us) {
    mirror_copy_.reset();
    if (!envelope_) return;
    auto* r = envelope_->mutable_response();
    r->set_body_size(body_size_);
    r->set_body_truncated(body_cut_ || r->body().size() < body_size_);
    r->set_latency_us(latency_us);
    rec_.Capture(std::move(*envelope_));
    envelope_.reset();
  }

  void EndRelay() {
    body_.reset();  // before the body's end: closes the primary's connection
    serializer_.reset();
    stream_res_ = {};
  }

  // The primary failed or stalled mid-body: the client already has the head, so the only
  // way to tell it the response is incomplete is to close its connection.
  void CutByPrimary(net::ClientError error, std::string detail) {
    const ProxyFailure failure = error == net::ClientError::kTimeout
                                     ? ProxyFailure::kUpstreamTimeout
                                     : ProxyFailure::kUpstreamReset;
    rec_.metrics().errors[static_cast<int>(failure)]->Inc();
    rec_.metrics().cut[static_cast<int>(failure)]->Inc();
    if (opts().log_bodies) {
      rec_.LogFailure(stream_res_.result_int(), FailureName(failure),
                      logged_request_ + " from " + client_addr_,
                      "response cut mid-body: " + detail);
    }
    if (envelope_) {
      envelope_->set_error(ToProxyError(failure));
      envelope_->set_error_detail("response cut mid-body after " + std::to_string(body_size_) +
                                  " bytes: " + detail);
    }
    body_cut_ = true;
    AbortStream({});
  }

  // The relay ends before the body did (client gone, or the primary failed): what was read is
  // captured as truncated, and the client connection is closed.
  void AbortStream(beast::error_code) {
    body_cut_ = true;
    if (mirrored_) {
      mirrored_->OnPrimaryFailed();
      mirrored_.reset();
    }
    FinishCapture(body_ ? body_->latency_us() : 0);
    EndRelay();
    in_request_ = false;
    Close();
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
      rec_.LogFailure(static_cast<unsigned>(status), FailureName(failure),
                      request + " from " + client_addr_, reason);
    }
    if (!in_request_ && !envelope_ && rec_.options().rules.empty() &&
        rec_.sampler().SampleRandom(worker_.rng.Next())) {
      // Malformed before a header could be read: capture what is known, decided at random.
      if (!in_request_) arrival_us_ = opts().clock->WallUs();
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
          net::CopyHeaders(copy, r->mutable_headers());
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

  // Counts the answer by status class and decides whether the connection stays open after it.
  void CountAnswer(unsigned status, bool keep_alive) {
    const unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5) rec_.metrics().requests[cls - 1]->Inc();
    keep_alive_ = keep_alive && !worker_.draining;
  }

  void Respond(HttpResponse&& res, bool keep_alive) {
    CountAnswer(res.result_int(), keep_alive);
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
  std::optional<Envelope> envelope_;           // the capture of the current request, when sampled
  std::shared_ptr<MirroredRequest> mirrored_;  // the mirrors the current request went to
  std::string logged_request_;                 // --log-bodies: the current request, described
  HttpResponse response_;
  // The response being relayed: its head (and the current piece) as written to the client,
  // the primary's body, and the side copies.
  static constexpr int kMaxStreamChunks = 1024;  // StreamChunk entries per envelope
  http::response<http::buffer_body> stream_res_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  net::BodyReaderPtr body_;
  std::optional<HttpResponse> mirror_copy_;  // with mirrors: head and first body bytes
  std::chrono::steady_clock::time_point head_time_;
  uint64_t body_size_ = 0;     // body bytes relayed so far
  bool body_cut_ = false;      // the relay ended before the body did
  bool no_body_ = false;       // HEAD, 1xx, 204, 304
  bool primary_done_ = false;  // OnPrimaryDone ran for the current response
  bool event_stream_ = false;
  static constexpr size_t kDiscardBytes = 16 * 1024;
  std::unique_ptr<char[]> discard_;  // only while lingering
  size_t empty_line_bytes_ = 0;      // skipped before the current request line
  bool obs_fold_ = false;            // the current request head has an obs-fold
  bool linger_ = false;
  bool in_request_ = false;
  bool client_keep_alive_ = false;
  bool keep_alive_ = false;
  bool is_head_ = false;
  unsigned client_version_ = 11;
  uint64_t arrival_us_ = 0;
};

}  // namespace

void ProxySession::Start(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder) {
  std::make_shared<Session>(std::move(socket), worker, recorder)->Start();
}

}  // namespace doppel::recorder
