// HTTP/2 upstream client (h2c, and h2 over TLS): see net/h2_client.h. nghttp2 does framing, HPACK
// and flow control; this file drives it from the pool's io_context.
#include "net/h2_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "net/h2_frames.h"
#include "net/tls_server.h"

namespace doppel::net {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;

// Receive windows we announce. A stream's bounds what a streaming exchange holds unread.
constexpr int32_t kStreamWindow = 256 * 1024;
constexpr int32_t kConnectionWindow = 4 << 20;

// Fields HTTP/2 forbids (RFC 9113 8.2.2), and Host, which becomes :authority.
bool IsConnectionSpecific(std::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" ||
         lower_name == "proxy-connection" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade" || lower_name == "host" || lower_name == "te" ||
         lower_name == "http2-settings";
}

// The ALPN offer of h2:// over TLS, in the wire format (RFC 7301 3.1: length-prefixed
// names): h2 only. An https:// pool that switched to HTTP/2 offers kAlpnH2AndHttp11, and
// takes an http/1.1 choice back (HttpFallback).
constexpr std::string_view kAlpnH2("\x02h2", 3);

using TlsStream = asio::ssl::stream<tcp::socket&>;

// A client TLS stream over `socket` for `host`: SNI (names only, not addresses), the peer's
// certificate checked against `host` (when the context verifies at all), and ALPN offering h2
// (and http/1.1 when `offer_http11`).
std::unique_ptr<TlsStream> NewTlsStream(tcp::socket& socket, asio::ssl::context& ctx,
                                        const std::string& host, bool offer_http11) {
  auto tls = std::make_unique<TlsStream>(socket, ctx);
  error_code ec;
  if (asio::ip::make_address(host, ec); ec) {
    SSL_set_tlsext_host_name(tls->native_handle(), host.c_str());
  }
  tls->set_verify_callback(asio::ssl::host_name_verification(host), ec);
  const std::string_view offer = offer_http11 ? kAlpnH2AndHttp11 : kAlpnH2;
  SSL_set_alpn_protos(tls->native_handle(), reinterpret_cast<const unsigned char*>(offer.data()),
                      static_cast<unsigned>(offer.size()));
  return tls;
}

uint64_t MicrosSince(Clock::time_point from, Clock::time_point to) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(to - from).count());
}

class Pool;
class Connection;

// One request and its response on a connection.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Pool> pool, HttpRequest request, ExchangeCallback done);
  Exchange(std::shared_ptr<Pool> pool, HttpRequest request, StreamCallback on_head);
  // Upload (SendUpload): streaming, the body read from `upload` as DATA frames go out.
  Exchange(std::shared_ptr<Pool> pool, HttpRequest head, BodySourcePtr upload,
           StreamCallback on_head);

  bool streaming() const { return static_cast<bool>(on_head_); }
  const HttpRequest& request() const { return request_; }
  // The request has a body (DATA frames after HEADERS).
  bool has_body() const { return upload_ != nullptr || !request_.body().empty(); }

  // ---- the connection's side ----
  // The stream was submitted as `stream_id` on `conn`.
  void Started(std::shared_ptr<Connection> conn, int32_t stream_id, bool reused);
  // A header field of the current HEADERS block (names lower-case, checked by nghttp2).
  // False when the head is over the size limit (the stream gets reset).
  bool OnField(std::string_view name, std::string_view value);
  // A HEADERS block ended; `end_stream` with it.
  void OnHeadersEnd(bool end_stream);
  // DATA bytes arrived. Returns how many the connection may give back to the window now.
  size_t OnData(const uint8_t* data, size_t len);
  void OnEndStream() { ended_ = true; }
  // nghttp2 closed the stream. Returns true when the exchange should be retried on a new
  // connection (refused before any answer); the pool does it.
  bool OnClosed(uint32_t error_code, bool connection_lost, const std::string& why);
  // The connection could not be opened; the exchange fails.
  void OnConnectFailed(ClientError error, const std::string& detail);
  // The server chose HTTP/1.1 by ALPN: the exchange, not yet started, goes to `fallback`
  // (request and callback) and is over here.
  void HandBack(const HttpFallback& fallback);
  // Reports what happened since the last call (head, a piece, the end, a failure) to the
  // caller. Called after nghttp2 returned, never from inside a caller's call.
  void Progress();
  // Request body for nghttp2's data provider. An upload's next piece is asked for once the
  // last went into DATA frames (NGHTTP2_ERR_DEFERRED until it comes).
  ssize_t ReadRequestBody(uint8_t* buf, size_t length, uint32_t* data_flags);

  // ---- the body reader's side ----
  void ReadSome(BodyReader::Callback done);
  void Abandon();
  uint64_t latency_us() const { return MicrosSince(start_, last_byte_); }
  bool ready() const { return !data_.empty() || ended_ || error_ != ClientError::kNone; }
  bool ended_with_head() const { return ended_with_head_; }
  const http::fields& trailers() const { return trailers_; }

 private:
  void ArmTimer();
  void OnTimer();
  void Fail(ClientError error, std::string detail);  // records; Progress() reports
  void Reset(uint32_t h2_error);                     // RST_STREAM if still open
  void Over();
  void ReadUploadPiece();
  void OnUploadPiece(ClientError error, std::string detail, std::string_view piece, bool end);
  // Lets go of the upload's source, after the current call (it may be inside the source's own
  // callback): its client is told, and what it held is freed.
  void DropUpload();

  std::shared_ptr<Pool> pool_;
  HttpRequest request_;
  ExchangeCallback done_;
  StreamCallback on_head_;
  std::weak_ptr<Connection> conn_;
  int32_t stream_id_ = -1;
  bool stream_open_ = false;  // nghttp2 has the stream (a reset can still be sent)
  size_t body_sent_ = 0;
  // Upload: the source, and its piece going out in DATA frames (valid until the next ReadSome).
  BodySourcePtr upload_;
  std::string_view upload_piece_;
  size_t upload_sent_ = 0;
  bool upload_end_ = false;      // `upload_piece_` is the body's last
  bool upload_reading_ = false;  // a ReadSome is outstanding: the client is slow, not the upstream
  bool upload_taken_ = false;    // a piece was asked for: the request cannot go again
  HttpResponse response_;
  http::fields trailers_;
  unsigned block_status_ = 0;  // :status of the HEADERS block being read; 0 in trailers
  uint64_t header_bytes_ = 0;
  bool head_done_ = false;  // the final response head arrived
  bool head_reported_ = false;
  bool ended_ = false;            // END_STREAM arrived: the response is complete
  bool ended_with_head_ = false;  // END_STREAM came on the final head: no body
  bool over_ = false;             // reported in full (or abandoned): nothing more to report
  bool reused_ = false;
  bool retried_ = false;
  ClientError error_ = ClientError::kNone;
  std::string error_detail_;
  std::string data_;   // streaming: body bytes the reader has not taken
  std::string piece_;  // streaming: the piece handed to the reader
  BodyReader::Callback piece_done_;
  Clock::time_point start_;
  Clock::time_point last_byte_;
  // Streaming: since when the exchange waits for the upstream (the last byte, or the
  // reader's ask when it had taken everything); a reader that does not ask is not the
  // upstream's stall.
  Clock::time_point idle_from_;
  Clock::time_point deadline_ = Clock::time_point::max();
  std::optional<asio::steady_timer> timer_;
};

class H2BodyReader : public BodyReader {
 public:
  explicit H2BodyReader(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}
  ~H2BodyReader() override { exchange_->Abandon(); }
  void ReadSome(Callback done) override { exchange_->ReadSome(std::move(done)); }
  uint64_t latency_us() const override { return exchange_->latency_us(); }
  bool ready() const override { return exchange_->ready(); }
  bool ended_with_head() const override { return exchange_->ended_with_head(); }
  const http::fields& trailers() const override { return exchange_->trailers(); }

 private:
  std::shared_ptr<Exchange> exchange_;
};

// One HTTP/2 connection to the upstream, multiplexing the pool's exchanges.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `tls`: h2 over TLS to `host` (ALPN must choose h2); nullptr: h2c.
  Connection(asio::io_context& io, std::weak_ptr<Pool> pool, const ClientOptions& options,
             std::string authority, std::shared_ptr<asio::ssl::context> tls, std::string host)
      : socket_(io),
        pool_(std::move(pool)),
        options_(options),
        authority_(std::move(authority)),
        tls_context_(std::move(tls)),
        host_(std::move(host)),
        connect_timer_(io),
        idle_timer_(io) {}
  ~Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  void Connect(const tcp::resolver::results_type& endpoints);
  // New streams may go here (not dead, no GOAWAY, stream ids left).
  bool accepting() const { return !dead_ && !goaway_; }
  bool idle() const { return connected_ && streams_.empty(); }
  void Submit(std::shared_ptr<Exchange> ex);
  // Gives `n` bytes of `stream_id` back to the flow-control windows.
  void Consume(int32_t stream_id, size_t n);
  // An upload's next piece came: its DATA frames go on.
  void ResumeData(int32_t stream_id);
  void ResetStream(int32_t stream_id, uint32_t h2_error);
  // Closes the connection when no stream is open (the pool shut down, or went away).
  void CloseWhenIdle();
  void Close(ClientError error, const std::string& detail);

 private:
  void Handshake();
  // The connection is open (and TLS set up): the HTTP/2 session starts.
  void Start();
  bool InitSession();
  void SubmitNow(const std::shared_ptr<Exchange>& ex);
  void Read();
  void Flush();
  void Dispatch();
  void ArmIdle();
  // The exchange on `stream_id`, remembered for Dispatch(); nullptr when none.
  Exchange* Find(int32_t stream_id);

  static Connection& Self(void* user_data) { return *static_cast<Connection*>(user_data); }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data);
  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data);
  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data);
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void*);

  tcp::socket socket_;
  std::weak_ptr<Pool> pool_;
  const ClientOptions options_;
  const std::string authority_;
  const std::shared_ptr<asio::ssl::context> tls_context_;
  const std::string host_;
  std::unique_ptr<TlsStream> tls_;  // over socket_, when tls_context_
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::shared_ptr<Exchange>> streams_;
  std::vector<std::shared_ptr<Exchange>> waiting_;  // submitted while connecting
  std::vector<std::shared_ptr<Exchange>> touched_;  // changed by the frames just read
  std::array<char, kH2ReadBytes> read_buf_;
  std::string out_;
  asio::steady_timer connect_timer_;
  asio::steady_timer idle_timer_;
  uint32_t streams_started_ = 0;
  bool connected_ = false;
  bool writing_ = false;
  bool goaway_ = false;
  bool close_when_idle_ = false;
  bool dead_ = false;
};

class Pool : public HttpClientPool, public std::enable_shared_from_this<Pool> {
 public:
  Pool(asio::io_context& io, Url upstream, ClientOptions options,
       std::shared_ptr<asio::ssl::context> tls, HttpFallback fallback)
      : io_(io),
        upstream_(std::move(upstream)),
        options_(options),
        tls_(std::move(tls)),
        fallback_(std::move(fallback)),
        resolver_(io) {}
  ~Pool() override {
    if (conn_) conn_->CloseWhenIdle();
  }

  void Send(HttpRequest request, ExchangeCallback done) override {
    ++stats_.exchanges;
    ++stats_.active;
    Dispatch(std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done)));
  }
  void SendStreaming(HttpRequest request, StreamCallback done) override {
    ++stats_.exchanges;
    ++stats_.active;
    Dispatch(std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done)));
  }
  // The body goes out in DATA frames as the source gives it, each piece asked for once the last
  // went out, so an upload goes no faster than the stream's window lets it.
  void SendUpload(HttpRequest head, BodySourcePtr body, StreamCallback done) override {
    ++stats_.exchanges;
    ++stats_.active;
    head.body().clear();
    Dispatch(std::make_shared<Exchange>(shared_from_this(), std::move(head), std::move(body),
                                        std::move(done)));
  }
  // Request faults write HTTP/1.x bytes; `doppel replay` refuses them for h2c targets first.
  void SendShaped(HttpRequest, RequestShape, ExchangeCallback done) override {
    asio::post(io_, [done = std::move(done)]() mutable {
      ExchangeResult result;
      result.error = ClientError::kConnect;
      result.detail = "request faults (reset, truncate, bandwidth) are HTTP/1.x only, not HTTP/2";
      done(std::move(result));
    });
  }
  void Shutdown() override {
    shutdown_ = true;
    if (conn_) conn_->CloseWhenIdle();
  }
  PoolStats stats() const override {
    PoolStats s = stats_;
    s.idle = conn_ && conn_->idle() ? 1 : 0;
    return s;
  }
  const Url& upstream() const override { return upstream_; }

  // Onto the current connection, or a new one when there is none that takes streams.
  void Dispatch(std::shared_ptr<Exchange> ex) {
    if (!conn_ || !conn_->accepting()) {
      if (conn_) conn_->CloseWhenIdle();
      ++stats_.connections_opened;
      conn_ = std::make_shared<Connection>(io_, weak_from_this(), options_, upstream_.Authority(),
                                           tls_, upstream_.host);
      conn_->Submit(std::move(ex));
      Connect(conn_);
      return;
    }
    conn_->Submit(std::move(ex));
  }
  void Retried() { ++stats_.retried; }
  void Reused() { ++stats_.reused; }
  void Finished() { --stats_.active; }
  // An exchange went to fallback_: the HTTP/1.1 pool counts it.
  void HandedBack() {
    --stats_.exchanges;
    --stats_.active;
  }
  const HttpFallback& fallback() const { return fallback_; }
  bool shutting_down() const { return shutdown_; }
  const ClientOptions& options() const { return options_; }
  asio::io_context& io() { return io_; }

 private:
  void Connect(const std::shared_ptr<Connection>& conn) {
    if (endpoints_) return conn->Connect(*endpoints_);
    resolver_.async_resolve(
        upstream_.host, std::to_string(upstream_.port),
        [self = shared_from_this(), conn](const error_code& ec, tcp::resolver::results_type r) {
          if (ec) {
            return conn->Close(ClientError::kConnect,
                               "cannot resolve " + self->upstream_.host + ": " + ec.message());
          }
          self->endpoints_ = std::move(r);
          conn->Connect(*self->endpoints_);
        });
  }

  asio::io_context& io_;
  Url upstream_;
  ClientOptions options_;
  std::shared_ptr<asio::ssl::context> tls_;
  HttpFallback fallback_;  // https:// pools only: where an http/1.1 choice sends exchanges
  tcp::resolver resolver_;
  std::optional<tcp::resolver::results_type> endpoints_;
  std::shared_ptr<Connection> conn_;
  PoolStats stats_;
  bool shutdown_ = false;
};

// ---------------------------------------------------------------------------------------
// Exchange

Exchange::Exchange(std::shared_ptr<Pool> pool, HttpRequest request, ExchangeCallback done)
    : pool_(std::move(pool)), request_(std::move(request)), done_(std::move(done)) {}

Exchange::Exchange(std::shared_ptr<Pool> pool, HttpRequest request, StreamCallback on_head)
    : pool_(std::move(pool)), request_(std::move(request)), on_head_(std::move(on_head)) {}

Exchange::Exchange(std::shared_ptr<Pool> pool, HttpRequest head, BodySourcePtr upload,
                   StreamCallback on_head)
    : pool_(std::move(pool)),
      request_(std::move(head)),
      on_head_(std::move(on_head)),
      upload_(std::move(upload)) {}

void Exchange::Started(std::shared_ptr<Connection> conn, int32_t stream_id, bool reused) {
  conn_ = conn;
  stream_id_ = stream_id;
  stream_open_ = true;
  reused_ = reused;
  body_sent_ = 0;  // a refused stream goes again from the start
  if (reused) pool_->Reused();
  if (start_ == Clock::time_point()) {
    start_ = Clock::now();
    last_byte_ = start_;
    idle_from_ = start_;
    if (pool_->options().response_timeout.count() > 0) {
      deadline_ = start_ + pool_->options().response_timeout;
    }
  }
  ArmTimer();
}

void Exchange::ArmTimer() {
  Clock::time_point at = deadline_;
  const auto idle = pool_->options().read_idle_timeout;
  if (streaming() && idle.count() > 0) at = std::min(at, idle_from_ + idle);
  if (at == Clock::time_point::max()) return;
  if (!timer_) timer_.emplace(pool_->io());
  timer_->expires_at(at);
  timer_->async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec) self->OnTimer();
  });
}

void Exchange::OnTimer() {
  if (over_ || ended_ || error_ != ClientError::kNone) return;
  const auto now = Clock::now();
  const auto idle = pool_->options().read_idle_timeout;
  if (now >= deadline_) {
    Fail(ClientError::kTimeout, "the upstream did not answer within " +
                                    std::to_string(pool_->options().response_timeout.count()) +
                                    " ms");
  } else if (streaming() && idle.count() > 0 && now - idle_from_ >= idle && !upload_reading_ &&
             (!head_reported_ || (piece_done_ && data_.empty()))) {
    Fail(ClientError::kTimeout,
         "no byte from the upstream for " + std::to_string(idle.count()) + " ms");
  } else {
    if (now - idle_from_ >= idle) idle_from_ = now;  // the reader holds the stream back
    return ArmTimer();  // else bytes came meanwhile: wait for the rest of the window
  }
  Reset(NGHTTP2_CANCEL);
  Progress();
}

bool Exchange::OnField(std::string_view name, std::string_view value) {
  header_bytes_ += name.size() + value.size() + 32;  // RFC 9113 6.5.2
  if (header_bytes_ > pool_->options().max_response_header) {
    Fail(ClientError::kBadResponse, "the upstream response head is over " +
                                        std::to_string(pool_->options().max_response_header) +
                                        " bytes");
    return false;
  }
  last_byte_ = idle_from_ = Clock::now();
  if (head_done_) {  // a HEADERS block after the head: trailers
    if (!name.empty() && name.front() != ':') trailers_.insert(name, value);
    return true;
  }
  if (name == ":status") {
    unsigned status = 0;
    std::from_chars(value.data(), value.data() + value.size(), status);
    block_status_ = status;  // nghttp2 checked it is three digits
  } else if (block_status_ >= 200 && !name.empty() && name.front() != ':') {
    response_.insert(name, value);
  }
  return true;
}

void Exchange::OnHeadersEnd(bool end_stream) {
  if (!head_done_ && block_status_ >= 100 && block_status_ < 200) {
    block_status_ = 0;  // 1xx: interim; the final head follows
    header_bytes_ = 0;
    return;
  }
  if (!head_done_ && block_status_ != 0) {
    head_done_ = true;
    ended_with_head_ = end_stream;
    response_.result(block_status_);
    response_.version(20);
  }
  if (end_stream) ended_ = true;
}

size_t Exchange::OnData(const uint8_t* data, size_t len) {
  last_byte_ = idle_from_ = Clock::now();
  if (over_ || error_ != ClientError::kNone) return len;  // nobody reads it: give it back
  const char* bytes = reinterpret_cast<const char*>(data);
  if (streaming()) {
    data_.append(bytes, len);
    return 0;  // given back as the reader takes it
  }
  if (response_.body().size() + len > pool_->options().max_response_body) {
    Fail(ClientError::kTooLarge, "the upstream response body is over " +
                                     std::to_string(pool_->options().max_response_body) + " bytes");
    Reset(NGHTTP2_CANCEL);
    return len;
  }
  response_.body().append(bytes, len);
  return len;
}

bool Exchange::OnClosed(uint32_t error_code, bool connection_lost, const std::string& why) {
  stream_open_ = false;
  if (ended_ || error_ != ClientError::kNone || over_) return false;
  const bool nothing_back = !head_done_ && block_status_ == 0;
  // Refused streams were not processed (RFC 9113 8.7); a lost connection may have been, so
  // only idempotent requests on a connection used before go again, as over HTTP/1.1.
  const bool may_retry = nothing_back && !retried_ && !upload_taken_ &&
                         (error_code == NGHTTP2_REFUSED_STREAM ||
                          (connection_lost && reused_ && IsIdempotent(request_.method_string())));
  if (may_retry) {
    retried_ = true;
    pool_->Retried();
    return true;
  }
  if (connection_lost) {
    Fail(ClientError::kReset, why);
  } else {
    Fail(ClientError::kReset,
         std::string("the upstream reset the stream (") + nghttp2_http2_strerror(error_code) + ")");
  }
  return false;
}

void Exchange::OnConnectFailed(ClientError error, const std::string& detail) {
  Fail(error, detail);
  Progress();
}

void Exchange::HandBack(const HttpFallback& fallback) {
  over_ = true;
  head_reported_ = true;
  if (timer_) timer_->cancel();  // armed when a lost connection had started it once
  pool_->HandedBack();
  fallback(std::move(request_), std::move(done_), std::move(on_head_), std::move(upload_));
}

void Exchange::Fail(ClientError error, std::string detail) {
  if (error_ != ClientError::kNone || ended_) return;
  error_ = error;
  error_detail_ = std::move(detail);
}

void Exchange::Reset(uint32_t h2_error) {
  if (!stream_open_) return;
  if (auto conn = conn_.lock()) conn->ResetStream(stream_id_, h2_error);
}

void Exchange::Over() {
  over_ = true;
  if (timer_) timer_->cancel();
  pool_->Finished();
  // An answer that came before the body went out whole ends the upload: the stream is reset,
  // so nghttp2 asks for no more of it, and the source is let go.
  if (upload_) Reset(NGHTTP2_CANCEL);
  DropUpload();
}

void Exchange::Progress() {
  if (over_) return;
  if (!head_reported_ &&
      (error_ != ClientError::kNone || (head_done_ && (streaming() || ended_)))) {
    head_reported_ = true;
    ExchangeResult result;
    result.reused_connection = reused_;
    if (start_ != Clock::time_point()) result.latency_us = latency_us();
    if (error_ != ClientError::kNone) {
      result.error = error_;
      result.detail = error_detail_;
      Over();
      if (streaming()) {
        StreamCallback done = std::move(on_head_);
        done(std::move(result), nullptr);
      } else {
        ExchangeCallback done = std::move(done_);
        done(std::move(result));
      }
      return;
    }
    if (!streaming()) {
      result.response = std::move(response_);
      result.trailers = std::move(trailers_);
      Over();
      ExchangeCallback done = std::move(done_);
      done(std::move(result));
      return;
    }
    result.response.base() = std::move(response_.base());
    StreamCallback done = std::move(on_head_);
    on_head_ = [](ExchangeResult&&, BodyReaderPtr) {};  // still streaming()
    done(std::move(result), std::make_unique<H2BodyReader>(shared_from_this()));
    return;  // the reader asks for the body
  }
  if (!head_reported_ || !piece_done_) return;
  BodyReader::Callback done = std::move(piece_done_);
  piece_done_ = nullptr;
  if (!data_.empty()) {
    piece_.clear();
    if (data_.size() <= BodyReader::kPieceBytes) {
      piece_.swap(data_);
    } else {
      piece_.assign(data_, 0, BodyReader::kPieceBytes);
      data_.erase(0, BodyReader::kPieceBytes);
    }
    if (auto conn = conn_.lock()) conn->Consume(stream_id_, piece_.size());
    const bool end = ended_ && data_.empty();
    if (end) Over();
    done(ClientError::kNone, "", piece_, end);
    return;
  }
  if (error_ != ClientError::kNone) {
    Over();
    done(error_, error_detail_, {}, false);
    return;
  }
  if (ended_) {
    Over();
    done(ClientError::kNone, "", {}, true);
    return;
  }
  piece_done_ = std::move(done);  // nothing yet: the next DATA frame reports
}

void Exchange::ReadSome(BodyReader::Callback done) {
  piece_done_ = std::move(done);
  if (data_.empty()) idle_from_ = Clock::now();  // waiting for the upstream from here
  if (ready()) {
    asio::post(pool_->io(), [self = shared_from_this()] { self->Progress(); });
  }
}

void Exchange::Abandon() {
  if (over_) return;
  piece_done_ = nullptr;
  Over();
  if (!ended_) Reset(NGHTTP2_CANCEL);
  if (!data_.empty()) {
    if (auto conn = conn_.lock()) conn->Consume(stream_id_, data_.size());
    data_.clear();
  }
}

ssize_t Exchange::ReadRequestBody(uint8_t* buf, size_t length, uint32_t* data_flags) {
  if (upload_ || upload_end_) {
    // Over (Over() reset the stream): the source, which owns the piece, may be gone.
    if (over_) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    const size_t n = std::min(length, upload_piece_.size() - upload_sent_);
    if (n > 0) std::memcpy(buf, upload_piece_.data() + upload_sent_, n);  // data() may be null
    upload_sent_ += n;
    if (upload_sent_ < upload_piece_.size()) return static_cast<ssize_t>(n);
    if (upload_end_) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF;
      DropUpload();
      return static_cast<ssize_t>(n);
    }
    if (n > 0) return static_cast<ssize_t>(n);
    if (!upload_reading_) ReadUploadPiece();
    return NGHTTP2_ERR_DEFERRED;
  }
  const std::string& body = request_.body();
  const size_t n = std::min(length, body.size() - body_sent_);
  std::memcpy(buf, body.data() + body_sent_, n);
  body_sent_ += n;
  if (body_sent_ == body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

// Posted: nghttp2 is inside mem_send here, and the source may answer from inside ReadSome.
void Exchange::ReadUploadPiece() {
  upload_reading_ = true;
  upload_taken_ = true;
  asio::post(pool_->io(), [self = shared_from_this()] {
    if (!self->upload_) return;  // the exchange is over
    self->upload_->ReadSome(
        [self](ClientError error, std::string detail, std::string_view piece, bool end) {
          self->OnUploadPiece(error, std::move(detail), piece, end);
        });
  });
}

void Exchange::OnUploadPiece(ClientError error, std::string detail, std::string_view piece,
                             bool end) {
  upload_reading_ = false;
  idle_from_ = Clock::now();  // waiting for the upstream again from here
  if (over_) return;
  if (error != ClientError::kNone) {
    Fail(error, "the request body: " + detail);
    Reset(NGHTTP2_CANCEL);
    DropUpload();
    return Progress();
  }
  upload_piece_ = piece;
  upload_sent_ = 0;
  upload_end_ = end;
  if (auto conn = conn_.lock(); conn && stream_open_) conn->ResumeData(stream_id_);
}

void Exchange::DropUpload() {
  if (!upload_) return;
  asio::post(pool_->io(), [upload = std::move(upload_)] {});
}

// ---------------------------------------------------------------------------------------
// Connection

void Connection::Connect(const tcp::resolver::results_type& endpoints) {
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (!ec && !self->connected_) {
      // The one timer bounds the connect and the TLS handshake after it: name the step.
      self->Close(ClientError::kTimeout, (self->tls_ ? "TLS handshake with " : "connect to ") +
                                             self->authority_ + " timed out");
    }
  });
  asio::async_connect(
      socket_, endpoints, [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
        if (self->dead_) return;
        if (ec) {
          return self->Close(ClientError::kConnect,
                             "connect to " + self->authority_ + ": " + ec.message());
        }
        error_code ignored;
        self->socket_.set_option(tcp::no_delay(true), ignored);
        if (self->tls_context_) return self->Handshake();
        self->Start();
      });
}

void Connection::Handshake() {
  const auto pool = pool_.lock();
  const bool fallback = pool && pool->fallback();
  tls_ = NewTlsStream(socket_, *tls_context_, host_, fallback);
  tls_->async_handshake(
      asio::ssl::stream_base::client, [self = shared_from_this()](const error_code& ec) {
        if (self->dead_) return;
        if (ec) {
          return self->Close(ClientError::kConnect,
                             "TLS handshake with " + self->authority_ + ": " + ec.message());
        }
        const std::string alpn(NegotiatedAlpn(self->tls_->native_handle()));
        const auto pool = self->pool_.lock();
        if (alpn != "h2" && pool && pool->fallback()) {  // no ALPN: HTTP/1.1 as well
          // An https:// upstream that chose h2 before chose HTTP/1.1 now (a rolling deploy,
          // or a balancer in front of both kinds): nothing was sent on this connection, so
          // its exchanges go back to be sent over HTTP/1.1.
          std::vector<std::shared_ptr<Exchange>> waiting;
          waiting.swap(self->waiting_);
          self->Close(ClientError::kNone, "");
          for (auto& ex : waiting) ex->HandBack(pool->fallback());
          return;
        }
        if (alpn != "h2") {
          return self->Close(ClientError::kConnect,
                             "TLS handshake with " + self->authority_ + ": the server chose " +
                                 (alpn.empty() ? std::string("no protocol") : "'" + alpn + "'") +
                                 " by ALPN, not h2");
        }
        self->Start();
      });
}

void Connection::Start() {
  connect_timer_.cancel();
  if (!InitSession()) return Close(ClientError::kConnect, "cannot start an HTTP/2 session");
  connected_ = true;
  std::vector<std::shared_ptr<Exchange>> waiting;
  waiting.swap(waiting_);
  for (auto& ex : waiting) SubmitNow(ex);
  Flush();
  Read();
}

bool Connection::InitSession() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_header_callback(cb, &Connection::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Connection::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Connection::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Connection::OnStreamClose);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return false;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);  // windows follow the readers
  const int rv = nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, options_.max_response_header},
  };
  return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) == 0 &&
         nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) ==
             0;
}

void Connection::Submit(std::shared_ptr<Exchange> ex) {
  idle_timer_.cancel();
  if (!connected_) {
    waiting_.push_back(std::move(ex));
    return;
  }
  SubmitNow(ex);
  Flush();
}

void Connection::SubmitNow(const std::shared_ptr<Exchange>& ex) {
  const HttpRequest& req = ex->request();
  H2Fields strings;
  strings.reserve(8);
  strings.emplace_back(":method", std::string(req.method_string()));
  strings.emplace_back(":scheme", tls_ ? "https" : "http");
  auto host = req.find(http::field::host);
  strings.emplace_back(":authority",
                       host != req.end() ? std::string(host->value()) : std::string(authority_));
  strings.emplace_back(":path", req.target().empty() ? "/" : std::string(req.target()));
  for (const auto& f : req) {
    std::string name = AsciiLower(f.name_string());
    if (IsConnectionSpecific(name)) continue;
    strings.emplace_back(std::move(name), std::string(f.value()));
  }
  strings.emplace_back("te", "trailers");  // RFC 9113 8.2.2; gRPC servers require it
  std::vector<nghttp2_nv> nva = H2NameValues(strings);
  nghttp2_data_provider provider{};
  provider.source.ptr = ex.get();
  provider.read_callback = &Connection::ReadBody;
  const int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                            ex->has_body() ? &provider : nullptr, ex.get());
  if (id < 0) {
    // Stream ids used up: this connection takes no more; a new one gets the request.
    goaway_ = true;
    if (auto pool = pool_.lock(); pool && id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
      return pool->Dispatch(ex);
    }
    return ex->OnConnectFailed(
        ClientError::kConnect,
        std::string("cannot open an HTTP/2 stream: ") + nghttp2_strerror(id));
  }
  streams_.emplace(id, ex);
  ex->Started(shared_from_this(), id, streams_started_++ > 0);
}

void Connection::Consume(int32_t stream_id, size_t n) {
  if (dead_ || n == 0) return;
  (void)nghttp2_session_consume(session_, stream_id, n);  // fails only for stream 0 or OOM
  Flush();
}

void Connection::ResumeData(int32_t stream_id) {
  if (dead_) return;
  (void)nghttp2_session_resume_data(session_, stream_id);  // fails only for a closed stream
  Flush();
}

void Connection::ResetStream(int32_t stream_id, uint32_t h2_error) {
  if (dead_) return;
  (void)nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, h2_error);  // closed ok
  Flush();
}

void Connection::CloseWhenIdle() {
  close_when_idle_ = true;
  goaway_ = true;
  if (streams_.empty() && waiting_.empty()) Close(ClientError::kNone, "");
}

void Connection::Close(ClientError error, const std::string& detail) {
  if (dead_) return;
  dead_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  connect_timer_.cancel();
  idle_timer_.cancel();
  std::vector<std::shared_ptr<Exchange>> waiting;
  waiting.swap(waiting_);
  for (auto& ex : waiting) ex->OnConnectFailed(error, detail);
  std::unordered_map<int32_t, std::shared_ptr<Exchange>> streams;
  streams.swap(streams_);
  auto pool = pool_.lock();
  for (auto& [id, ex] : streams) {
    if (ex->OnClosed(NGHTTP2_NO_ERROR, true, detail) && pool) {
      pool->Dispatch(ex);
    } else {
      ex->Progress();
    }
  }
}

void Connection::Read() {
  if (dead_) return;
  auto on_read = [self = shared_from_this()](error_code ec, size_t n) {
    if (self->dead_) return;
    if (ec) {
      return self->Close(ClientError::kReset,
                         "the upstream closed the connection: " + ec.message());
    }
    const ssize_t rv = nghttp2_session_mem_recv(
        self->session_, reinterpret_cast<const uint8_t*>(self->read_buf_.data()), n);
    if (rv < 0) {
      self->Dispatch();
      return self->Close(ClientError::kBadResponse,
                         std::string("HTTP/2 protocol error from the upstream: ") +
                             nghttp2_strerror(static_cast<int>(rv)));
    }
    self->Dispatch();
    self->Flush();
    if (!self->dead_) self->Read();
  };
  if (tls_) return tls_->async_read_some(asio::buffer(read_buf_), std::move(on_read));
  socket_.async_read_some(asio::buffer(read_buf_), std::move(on_read));
}

// Reports to the exchanges the frames just read changed, after nghttp2 returned: a caller's
// callback may submit, reset or consume, which nghttp2 does not allow from its callbacks.
void Connection::Dispatch() {
  std::vector<std::shared_ptr<Exchange>> touched;
  touched.swap(touched_);
  for (auto& ex : touched) ex->Progress();
}

void Connection::Flush() {
  if (writing_ || dead_) return;
  if (const int rv = GatherH2Frames(session_, &out_); rv != 0) {
    return Close(ClientError::kReset,
                 std::string("HTTP/2 session failed: ") + nghttp2_strerror(rv));
  }
  if (out_.empty()) {
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      Close(ClientError::kReset, "the upstream ended the HTTP/2 connection");
    }
  } else {
    writing_ = true;
    auto on_written = [self = shared_from_this()](error_code ec, size_t) {
      self->writing_ = false;
      if (self->dead_) return;
      if (ec) return self->Close(ClientError::kReset, "sending to the upstream: " + ec.message());
      self->Flush();
    };
    if (tls_) {
      asio::async_write(*tls_, asio::buffer(out_), std::move(on_written));
    } else {
      asio::async_write(socket_, asio::buffer(out_), std::move(on_written));
    }
  }
  Dispatch();  // streams our own resets closed while sending; out_ is not touched again
}

void Connection::ArmIdle() {
  auto pool = pool_.lock();
  if (close_when_idle_ || !pool || pool->shutting_down()) {
    return Close(ClientError::kNone, "");
  }
  idle_timer_.expires_after(options_.idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](const error_code& ec) {
    if (ec || self->dead_ || !self->streams_.empty()) return;
    self->goaway_ = true;
    (void)nghttp2_session_terminate_session(self->session_, NGHTTP2_NO_ERROR);  // closing
    self->Flush();
  });
}

Exchange* Connection::Find(int32_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return nullptr;
  if (touched_.empty() || touched_.back() != it->second) touched_.push_back(it->second);
  return it->second.get();
}

int Connection::OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                         size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                         void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;  // PUSH_PROMISE: push is disabled
  Exchange* ex = Self(user_data).Find(frame->hd.stream_id);
  if (ex == nullptr) return 0;
  const bool ok = ex->OnField({reinterpret_cast<const char*>(name), namelen},
                              {reinterpret_cast<const char*>(value), valuelen});
  return ok ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
}

int Connection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Connection& c = Self(user_data);
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
      if (Exchange* ex = c.Find(frame->hd.stream_id)) ex->OnHeadersEnd(end_stream);
      return 0;
    case NGHTTP2_DATA:
      if (end_stream) {
        if (Exchange* ex = c.Find(frame->hd.stream_id)) ex->OnEndStream();
      }
      return 0;
    case NGHTTP2_GOAWAY:
      c.goaway_ = true;  // streams above last_stream_id close as refused
      return 0;
    default:
      return 0;
  }
}

int Connection::OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id,
                            const uint8_t* data, size_t len, void* user_data) {
  Exchange* ex = Self(user_data).Find(stream_id);
  const size_t give_back = ex == nullptr ? len : ex->OnData(data, len);
  if (give_back > 0) (void)nghttp2_session_consume(session, stream_id, give_back);
  return 0;
}

int Connection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                              void* user_data) {
  Connection& c = Self(user_data);
  auto it = c.streams_.find(stream_id);
  if (it == c.streams_.end()) return 0;
  std::shared_ptr<Exchange> ex = std::move(it->second);
  c.streams_.erase(it);
  if (ex->OnClosed(error_code, false, "")) {
    // Refused: submitted again after nghttp2 returned, on a connection that takes streams.
    asio::post(c.socket_.get_executor(), [ex, pool = c.pool_] {
      if (auto p = pool.lock()) p->Dispatch(ex);
    });
  } else {
    c.touched_.push_back(std::move(ex));
  }
  if (c.streams_.empty() && c.waiting_.empty()) {
    asio::post(c.socket_.get_executor(), [self = c.shared_from_this()] {
      if (!self->dead_ && self->streams_.empty()) self->ArmIdle();
    });
  }
  return 0;
}

ssize_t Connection::ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* data_flags, nghttp2_data_source* source, void*) {
  return static_cast<Exchange*>(source->ptr)->ReadRequestBody(buf, length, data_flags);
}

}  // namespace

Result<HttpClientPoolPtr> NewH2ClientPool(asio::io_context& io, Url upstream, ClientOptions options,
                                          std::shared_ptr<asio::ssl::context> tls,
                                          HttpFallback fallback) {
  if (!upstream.http2() || upstream.tls() != (tls != nullptr)) {
    return Status::InvalidArgument(upstream.ToString() +
                                   (tls ? " is not an h2:// URL" : " is not an h2c:// URL"));
  }
  return HttpClientPoolPtr(std::make_shared<Pool>(io, std::move(upstream), options, std::move(tls),
                                                  std::move(fallback)));
}

}  // namespace doppel::net
