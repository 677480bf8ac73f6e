// All Beast/Asio client code of net/ lives here, so the heavy templates are compiled once.
#include "net/http_client.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <optional>
#include <sstream>
#include <vector>

#include "net/h2_client.h"
#include "net/headers.h"
#include "net/tls_server.h"

namespace doppel::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

bool IsIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE" ||
         method == "PUT" || method == "DELETE";
}

Result<std::shared_ptr<asio::ssl::context>> MakeClientTlsContext(const TlsClientOptions& options) {
  DOPPEL_ASSIGN_OR_RETURN(std::shared_ptr<asio::ssl::context> ctx, NewTlsContext(false));
  boost::system::error_code ec;
  if (options.verify) {
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (!options.ca_file.empty()) {
      ctx->load_verify_file(options.ca_file, ec);
      if (ec) {
        return Status::InvalidArgument("cannot load CA file '" + options.ca_file +
                                       "': " + ec.message());
      }
    } else {
      ctx->set_default_verify_paths(ec);
      if (ec) return Status::Internal("cannot load the system CA store: " + ec.message());
    }
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return Status::InvalidArgument(
        "a client certificate and its key go together: give both (PEM files)");
  }
  if (!options.cert_file.empty()) {
    DOPPEL_RETURN_IF_ERROR(UseCertificateAndKey(*ctx, options.cert_file, options.key_file,
                                                "client certificate", "client key"));
  }
  return ctx;
}

namespace {

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

constexpr size_t kReadBufferBytes = 16 * 1024;

bool AsksToUpgrade(const HttpRequest& request) { return request.count(http::field::upgrade) > 0; }

// One upstream connection, plain or TLS.
struct Connection {
  Connection(asio::io_context& io, asio::ssl::context* tls) {
    // Beast reads max(512, free capacity) bytes per recv: an empty flat_buffer would take a
    // 1 KB response in three recv calls, each with its own timer re-arm and reactor pass.
    buffer.reserve(kReadBufferBytes);
    if (tls != nullptr) {
      tls_stream.emplace(io, *tls);
    } else {
      tcp_stream.emplace(io);
    }
  }
  beast::tcp_stream& lowest() {
    return tls_stream ? beast::get_lowest_layer(*tls_stream) : *tcp_stream;
  }
  template <class F>
  void Visit(F&& f) {
    if (tls_stream) {
      f(*tls_stream);
    } else {
      f(*tcp_stream);
    }
  }
  // True when the peer has not closed the idle connection nor sent anything unexpected.
  bool LooksAlive() {
    auto& sock = lowest().socket();
    if (!sock.is_open()) return false;
    char byte;
    const ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  std::optional<beast::tcp_stream> tcp_stream;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
};

class PoolImpl;

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<PoolImpl> pool, HttpRequest request, ExchangeCallback done)
      : pool_(std::move(pool)), request_(std::move(request)), done_(std::move(done)) {}
  // Streaming: `on_head` gets the head and a BodyReader.
  Exchange(std::shared_ptr<PoolImpl> pool, HttpRequest request, StreamCallback on_head)
      : pool_(std::move(pool)), request_(std::move(request)), on_head_(std::move(on_head)) {}
  // Upload (SendUpload): streaming, the body read from `body` as it is written.
  Exchange(std::shared_ptr<PoolImpl> pool, HttpRequest head, BodySourcePtr body,
           StreamCallback on_head)
      : pool_(std::move(pool)),
        request_(std::move(head)),
        on_head_(std::move(on_head)),
        upload_(std::move(body)) {}
  // Shaped (SendShaped): written as `shape` says on a connection of its own.
  Exchange(std::shared_ptr<PoolImpl> pool, HttpRequest request, RequestShape shape,
           ExchangeCallback done)
      : pool_(std::move(pool)),
        request_(std::move(request)),
        done_(std::move(done)),
        shape_(shape) {}
  void Start();
  // The handshake offers http/1.1 only: for an exchange an HTTP/2 connection handed back
  // (the server chose http/1.1 there), so that it is not handed to and fro.
  void OfferOnlyHttp11() { offer_h2_ = false; }

  // ---- streaming, used by the BodyReader ----
  void ReadPiece(BodyReader::Callback done);
  // The reader was dropped before the body ended: the connection is closed.
  void Abandon();
  uint64_t latency_us() const;
  bool ready() const {
    return over_ || stream_parser_->is_done() || (conn_ && conn_->buffer.size() > 0);
  }
  const http::fields& trailers() const { return trailers_; }
  // After a 101 head: the connection, as a Tunnel; nullptr otherwise.
  TunnelPtr TakeTunnel();

 private:
  // Has the current parser note where a chunked body's trailer section starts.
  template <class Parser>
  void WatchForTrailers(Parser& parser);
  // Moves what the trailer section added to `message` (parsed into the message's fields, after
  // its header) into `out`.
  void TakeTrailers(http::fields& message, http::fields& out);
  bool streaming() const { return static_cast<bool>(on_head_); }
  // Whether the TLS handshake offers h2 by ALPN: not for an upgrade (HTTP/2 has none) nor a
  // shaped request (HTTP/1.x only).
  bool OffersH2() const { return offer_h2_ && !shape_ && !AsksToUpgrade(request_); }
  // Arms the stream's timer for the next operation: response_timeout (left) for Send();
  // for streaming the sooner of read_idle_timeout and what is left of response_timeout.
  void ArmTimer();
  std::string TimeoutDetail() const;
  // A read of the head (or, streaming, of the body) failed: retried, or the exchange fails.
  void OnReadError(const boost::system::error_code& ec, bool got_some);
  void ReadHead();
  void OnHead(const boost::system::error_code& ec);
  void OnPiece(const boost::system::error_code& ec);
  void OnRawPiece(const boost::system::error_code& ec, size_t n);
  void EndOfBody();
  void Connect();
  void OnResolved(const boost::system::error_code& ec, tcp::resolver::results_type results);
  void DoConnect();
  void OnConnected(const boost::system::error_code& ec);
  void OnHandshake(const boost::system::error_code& ec);
  void Write();
  void OnWrite(const boost::system::error_code& ec);
  // Upload: the head, then each piece of the body as the source gives it (chunked when the
  // head says so), then the response is read.
  void WriteUploadHead();
  void ReadUploadPiece();
  void EndUpload();
  void OnUploadPiece(ClientError error, std::string detail, std::string_view piece, bool end);
  // Whether a failed exchange may go again on a new connection: not once an upload's body
  // was asked for (its bytes are gone).
  bool MayRetry() const { return reused_ && !retried_ && !upload_taken_; }
  // Shaped: the serialized request goes out slice by slice (WriteSlice), then is read or cut.
  void WriteShaped();
  void WriteSlice();
  void SendSlice(size_t n);  // the next `n` bytes of wire_, now
  void OnSlice(const boost::system::error_code& ec, size_t n);
  void Read();
  void OnRead(const boost::system::error_code& ec);
  void Retry();
  void Finish(ClientError error, std::string detail);

  std::shared_ptr<PoolImpl> pool_;
  HttpRequest request_;
  ExchangeCallback done_;
  std::unique_ptr<Connection> conn_;
  std::optional<http::response_parser<http::string_body>> parser_;
  // The number of fields the message had when the last chunk's line arrived: the fields after
  // them are the trailer section's. Unset when the body had no last chunk (yet).
  std::optional<size_t> trailers_from_;
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> on_chunk_header_;
  http::fields trailers_;  // streaming: the trailers once the body ended
  Clock::time_point start_;
  Clock::time_point deadline_ = Clock::time_point::max();  // start_ + response_timeout, if set
  bool reused_ = false;
  bool retried_ = false;
  bool offer_h2_ = true;
  // Streaming only.
  StreamCallback on_head_;
  std::optional<http::response_parser<http::buffer_body>> stream_parser_;
  std::unique_ptr<char[]> piece_;  // the reader's buffer, piece_bytes_ long
  size_t piece_bytes_ = 0;
  // Set once a Content-Length body is read straight from the socket into piece_ (ReadPiece):
  // the body bytes still to come. The parser is not used for the rest of that body.
  std::optional<uint64_t> raw_left_;
  BodyReader::Callback piece_done_;
  Clock::time_point last_byte_;
  bool keep_ = false;        // the connection may go back to the pool after the body
  bool body_phase_ = false;  // the head went to on_head_; failures go to piece_done_
  bool over_ = false;        // the body ended, failed or was abandoned
  bool upgraded_ = false;    // the head was a 101: the connection may become a Tunnel
  // Upload only.
  BodySourcePtr upload_;  // dropped once the body was written whole
  std::optional<http::request_serializer<http::string_body>> upload_head_;
  std::string chunk_line_;     // the current chunk's size line
  bool upload_taken_ = false;  // a piece of the body was asked for
  // Shaped only.
  std::optional<RequestShape> shape_;
  std::string wire_;  // the serialized request
  size_t limit_ = 0;  // bytes of wire_ to write (less than all when truncated)
  size_t written_ = 0;
  std::unique_ptr<asio::steady_timer> pace_;  // between throttled slices
};

// A connection after its 101, for the caller to relay raw bytes over.
class ConnectionTunnel final : public Tunnel {
 public:
  explicit ConnectionTunnel(std::unique_ptr<Connection> conn) : conn_(std::move(conn)) {
    conn_->lowest().expires_never();
  }
  std::string TakeReceived() override {
    const auto data = conn_->buffer.cdata();
    std::string out(static_cast<const char*>(data.data()), data.size());
    conn_->buffer.consume(data.size());
    return out;
  }
  void ReadSome(char* data, size_t size, Handler done) override {
    conn_->Visit([&](auto& stream) { stream.async_read_some(asio::buffer(data, size), done); });
  }
  void Write(const char* data, size_t size, Handler done) override {
    conn_->Visit([&](auto& stream) { asio::async_write(stream, asio::buffer(data, size), done); });
  }
  void ShutdownSend() override {
    if (conn_->tls_stream) return Close();
    boost::system::error_code ignored;
    conn_->lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
  void Close() override { conn_->lowest().close(); }

 private:
  std::unique_ptr<Connection> conn_;
};

class StreamBodyReader : public BodyReader {
 public:
  explicit StreamBodyReader(std::shared_ptr<Exchange> exchange) : exchange_(std::move(exchange)) {}
  ~StreamBodyReader() override { exchange_->Abandon(); }
  void ReadSome(Callback done) override { exchange_->ReadPiece(std::move(done)); }
  uint64_t latency_us() const override { return exchange_->latency_us(); }
  bool ready() const override { return exchange_->ready(); }
  const http::fields& trailers() const override { return exchange_->trailers(); }
  TunnelPtr TakeTunnel() override { return exchange_->TakeTunnel(); }

 private:
  std::shared_ptr<Exchange> exchange_;
};

class PoolImpl : public HttpClientPool, public std::enable_shared_from_this<PoolImpl> {
 public:
  PoolImpl(asio::io_context& io, Url upstream, ClientOptions options,
           std::shared_ptr<asio::ssl::context> tls)
      : io_(io),
        upstream_(std::move(upstream)),
        options_(options),
        tls_(std::move(tls)),
        resolver_(io) {}

  void Send(HttpRequest request, ExchangeCallback done) override {
    if (h2_ && !AsksToUpgrade(request)) return h2_->Send(std::move(request), std::move(done));
    ++stats_.exchanges;
    ++stats_.active;
    std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done))->Start();
  }

  void SendStreaming(HttpRequest request, StreamCallback done) override {
    if (h2_ && !AsksToUpgrade(request)) {
      return h2_->SendStreaming(std::move(request), std::move(done));
    }
    ++stats_.exchanges;
    ++stats_.active;
    std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done))->Start();
  }

  void SendUpload(HttpRequest head, BodySourcePtr body, StreamCallback done) override {
    if (h2_) return h2_->SendUpload(std::move(head), std::move(body), std::move(done));
    ++stats_.exchanges;
    ++stats_.active;
    std::make_shared<Exchange>(shared_from_this(), std::move(head), std::move(body),
                               std::move(done))
        ->Start();
  }

  void SendShaped(HttpRequest request, RequestShape shape, ExchangeCallback done) override {
    ++stats_.exchanges;
    ++stats_.active;
    std::make_shared<Exchange>(shared_from_this(), std::move(request), shape, std::move(done))
        ->Start();
  }

  void Shutdown() override {
    shutdown_ = true;
    idle_.clear();
    if (h2_) h2_->Shutdown();
  }

  PoolStats stats() const override {
    PoolStats s = stats_;
    s.idle = idle_.size();
    AddCounts(h2_before_, s);
    if (h2_) {
      const PoolStats h2 = h2_->stats();
      AddCounts(h2, s);
      s.idle += h2.idle;
      s.active += h2.active;
    }
    return s;
  }

  // The upstream chose h2 by ALPN: from now on every exchange but an upgrade (HTTP/2 has
  // none) and a shaped one goes over HTTP/2, on a pool of its own (net/h2_client.h), until a
  // new connection's handshake chooses http/1.1 again (SwitchToHttp11).
  HttpClientPool& SwitchToH2() {
    if (!h2_) {
      Url h2 = upstream_;
      h2.scheme = "h2";
      h2_ =
          NewH2ClientPool(io_, std::move(h2), options_, tls_,
                          [weak = weak_from_this()](HttpRequest request, ExchangeCallback done,
                                                    StreamCallback on_head, BodySourcePtr upload) {
                            if (auto self = weak.lock()) {
                              self->SwitchToHttp11(std::move(request), std::move(done),
                                                   std::move(on_head), std::move(upload));
                            }
                          })
              .value();
    }
    return *h2_;
  }

  // The HTTP/2 pool's new connection found the upstream choosing http/1.1 (a rolling deploy
  // back, or a balancer in front of both kinds): exchanges go over HTTP/1.1 again, this one
  // first, without offering h2 (it is not handed back and forth); the next new connection
  // offers h2 again, so the pool keeps following the upstream. Streams open on the HTTP/2
  // pool's connections finish there.
  void SwitchToHttp11(HttpRequest request, ExchangeCallback done, StreamCallback on_head,
                      BodySourcePtr upload) {
    if (h2_) {
      AddCounts(h2_->stats(), h2_before_);
      h2_->Shutdown();
      h2_.reset();
    }
    ++stats_.exchanges;
    ++stats_.active;
    std::shared_ptr<Exchange> ex;
    if (upload) {
      ex = std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(upload),
                                      std::move(on_head));
    } else if (on_head) {
      ex = std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(on_head));
    } else {
      ex = std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done));
    }
    ex->OfferOnlyHttp11();
    ex->Start();
  }
  const Url& upstream() const override { return upstream_; }

  // `probe_always`: for requests that are not retried when the connection turns out closed
  // (POST, PATCH), so a connection the upstream closed while idle is never used for them.
  std::unique_ptr<Connection> TakeIdle(bool probe_always) {
    const auto now = Clock::now();
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      const auto idle = now - c->idle_since;
      // The liveness probe costs a syscall; a connection used within the last second is
      // taken as alive (servers close idle connections after seconds, and announce a close
      // after N requests with "Connection: close", which keeps it out of the pool).
      if (idle < options_.idle_timeout &&
          ((idle < std::chrono::seconds(1) && !probe_always) || c->LooksAlive())) {
        ++stats_.reused;
        return c;
      }
    }
    return nullptr;
  }

  void ReturnIdle(std::unique_ptr<Connection> c) {
    if (shutdown_ || idle_.size() >= options_.max_idle_connections) return;
    if (c->buffer.capacity() > kReadBufferBytes && c->buffer.size() == 0) {
      // A streamed body grew it (ReadPiece): an idle connection keeps the usual size.
      c->buffer.shrink_to_fit();
      c->buffer.reserve(kReadBufferBytes);
    }
    c->idle_since = Clock::now();
    idle_.push_back(std::move(c));
  }

  std::unique_ptr<Connection> NewConnection() {
    ++stats_.connections_opened;
    return std::make_unique<Connection>(io_, tls_.get());
  }

  // The running totals of `from` (not its idle and active gauges) added to `into`.
  static void AddCounts(const PoolStats& from, PoolStats& into) {
    into.connections_opened += from.connections_opened;
    into.exchanges += from.exchanges;
    into.reused += from.reused;
    into.retried += from.retried;
  }

  asio::io_context& io_;
  Url upstream_;
  ClientOptions options_;
  std::shared_ptr<asio::ssl::context> tls_;
  tcp::resolver resolver_;
  std::optional<tcp::resolver::results_type> endpoints_;
  std::vector<std::unique_ptr<Connection>> idle_;
  PoolStats stats_;
  bool shutdown_ = false;
  HttpClientPoolPtr h2_;  // while the upstream chooses h2
  PoolStats h2_before_;   // what the HTTP/2 pools before h2_ counted
};

void Exchange::Start() {
  if (shape_) return Connect();  // a connection of its own, since it is cut or held up
  conn_ = pool_->TakeIdle(upload_ || !IsIdempotent(request_.method_string()));
  if (conn_) {
    reused_ = true;
    Write();
  } else {
    Connect();
  }
}

void Exchange::Connect() {
  reused_ = false;
  conn_ = pool_->NewConnection();
  if (pool_->endpoints_) {
    DoConnect();
    return;
  }
  pool_->resolver_.async_resolve(pool_->upstream_.host, std::to_string(pool_->upstream_.port),
                                 [self = shared_from_this()](const boost::system::error_code& ec,
                                                             tcp::resolver::results_type results) {
                                   self->OnResolved(ec, std::move(results));
                                 });
}

void Exchange::OnResolved(const boost::system::error_code& ec,
                          tcp::resolver::results_type results) {
  if (ec)
    return Finish(ClientError::kConnect,
                  "cannot resolve " + pool_->upstream_.host + ": " + ec.message());
  pool_->endpoints_ = std::move(results);
  DoConnect();
}

void Exchange::DoConnect() {
  conn_->lowest().expires_after(pool_->options_.connect_timeout);
  conn_->lowest().async_connect(
      *pool_->endpoints_,
      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
        self->OnConnected(ec);
      });
}

void Exchange::OnConnected(const boost::system::error_code& ec) {
  if (ec) {
    pool_->endpoints_.reset();  // resolve again next time: the address may have moved
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout,
                    "connect to " + pool_->upstream_.Authority() + " timed out");
    }
    return Finish(ClientError::kConnect,
                  "connect to " + pool_->upstream_.Authority() + ": " + ec.message());
  }
  boost::system::error_code ignored;
  conn_->lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (!conn_->tls_stream) return Write();
  auto& tls = *conn_->tls_stream;
  const std::string& host = pool_->upstream_.host;
  if (!IsIpLiteral(host)) SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());
  tls.set_verify_callback(asio::ssl::host_name_verification(host), ignored);
  if (OffersH2()) {
    SSL_set_alpn_protos(tls.native_handle(),
                        reinterpret_cast<const unsigned char*>(kAlpnH2AndHttp11.data()),
                        static_cast<unsigned>(kAlpnH2AndHttp11.size()));
  }
  tls.async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->OnHandshake(ec); });
}

void Exchange::OnHandshake(const boost::system::error_code& ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout,
                    "TLS handshake with " + pool_->upstream_.Authority() + " timed out");
    }
    return Finish(ClientError::kConnect,
                  "TLS handshake with " + pool_->upstream_.Authority() + ": " + ec.message());
  }
  if (OffersH2() && NegotiatedAlpn(conn_->tls_stream->native_handle()) == "h2") {
    // Not a word was sent on this connection: the exchange goes over HTTP/2 instead.
    conn_.reset();
    --pool_->stats_.active;
    --pool_->stats_.exchanges;  // the HTTP/2 pool counts it
    HttpClientPool& h2 = pool_->SwitchToH2();
    if (upload_) return h2.SendUpload(std::move(request_), std::move(upload_), std::move(on_head_));
    if (streaming()) return h2.SendStreaming(std::move(request_), std::move(on_head_));
    return h2.Send(std::move(request_), std::move(done_));
  }
  Write();
}

void Exchange::ArmTimer() {
  Clock::duration wait = Clock::duration::max();
  if (streaming() && pool_->options_.read_idle_timeout.count() > 0) {
    wait = pool_->options_.read_idle_timeout;
  }
  if (deadline_ != Clock::time_point::max()) {
    wait = std::min(wait, std::max(Clock::duration::zero(), deadline_ - Clock::now()));
  }
  if (wait == Clock::duration::max()) {
    conn_->lowest().expires_never();
  } else {
    conn_->lowest().expires_after(wait);
  }
}

std::string Exchange::TimeoutDetail() const {
  if (Clock::now() >= deadline_) {
    return "the upstream did not answer within " +
           std::to_string(pool_->options_.response_timeout.count()) + " ms";
  }
  return "no byte from the upstream for " +
         std::to_string(pool_->options_.read_idle_timeout.count()) + " ms";
}

uint64_t Exchange::latency_us() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(last_byte_ - start_).count());
}

void Exchange::Write() {
  start_ = Clock::now();
  if (pool_->options_.response_timeout.count() > 0) {
    deadline_ = start_ + pool_->options_.response_timeout;
  }
  if (shape_) return WriteShaped();
  if (upload_) return WriteUploadHead();
  ArmTimer();
  conn_->Visit([&](auto& stream) {
    http::async_write(stream, request_,
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        self->OnWrite(ec);
                      });
  });
}

void Exchange::OnWrite(const boost::system::error_code& ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout, "sending the request upstream timed out");
    }
    if (MayRetry()) return Retry();
    return Finish(ClientError::kReset, "sending the request upstream: " + ec.message());
  }
  Read();
}

void Exchange::WriteUploadHead() {
  ArmTimer();
  upload_head_.emplace(request_);
  conn_->Visit([&](auto& stream) {
    http::async_write_header(
        stream, *upload_head_,
        [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
          if (ec) return self->OnWrite(ec);
          self->ReadUploadPiece();
        });
  });
}

// The last piece was written: the source (which owns it) is dropped, the answer read.
void Exchange::EndUpload() {
  upload_.reset();
  Read();
}

void Exchange::ReadUploadPiece() {
  // The source takes its time (a slow client): the upstream's timers wait for the writes.
  conn_->lowest().expires_never();
  upload_taken_ = true;
  upload_->ReadSome([self = shared_from_this()](ClientError error, std::string detail,
                                                std::string_view piece, bool end) {
    self->OnUploadPiece(error, std::move(detail), piece, end);
  });
}

void Exchange::OnUploadPiece(ClientError error, std::string detail, std::string_view piece,
                             bool end) {
  if (error != ClientError::kNone) return Finish(error, "the request body: " + detail);
  static constexpr std::string_view kCrlf = "\r\n", kLastChunk = "0\r\n\r\n";
  // By value into the write: the unused ones stay empty.
  std::array<asio::const_buffer, 4> out{};
  size_t n = 0;
  const bool chunked = request_.chunked();
  if (chunked && !piece.empty()) {
    char size[20];
    chunk_line_.assign(
        size, static_cast<size_t>(std::snprintf(size, sizeof size, "%zx\r\n", piece.size())));
    out[n++] = asio::buffer(chunk_line_);
    out[n++] = asio::buffer(piece.data(), piece.size());
    out[n++] = asio::buffer(kCrlf.data(), kCrlf.size());
  } else if (!piece.empty()) {
    out[n++] = asio::buffer(piece.data(), piece.size());
  }
  if (chunked && end) out[n++] = asio::buffer(kLastChunk.data(), kLastChunk.size());
  if (n == 0) {
    if (end) return EndUpload();
    return ReadUploadPiece();
  }
  ArmTimer();
  conn_->Visit([&](auto& stream) {
    asio::async_write(
        stream, out, [self = shared_from_this(), end](const boost::system::error_code& ec, size_t) {
          if (ec) return self->OnWrite(ec);
          if (end) return self->EndUpload();
          self->ReadUploadPiece();
        });
  });
}

void Exchange::WriteShaped() {
  std::ostringstream out;
  out << request_;
  wire_ = std::move(out).str();
  limit_ = wire_.size();
  if (shape_->truncate) {
    const size_t body = std::min(request_.body().size(), wire_.size());
    const size_t head = wire_.size() - body;
    limit_ = body > 0 ? head + body / 2 : head / 2;
  }
  if (shape_->bytes_per_second != 0) pace_ = std::make_unique<asio::steady_timer>(pool_->io_);
  WriteSlice();
}

void Exchange::WriteSlice() {
  if (Clock::now() >= deadline_) {
    return Finish(ClientError::kTimeout, "sending the request upstream timed out");
  }
  size_t n = limit_ - written_;
  if (pace_) {
    const uint64_t rate = shape_->bytes_per_second;
    n = std::min<size_t>(n, std::max<uint64_t>(1, rate / 10));
    const auto due = start_ + std::chrono::microseconds(written_ * 1'000'000 / rate);
    if (due > Clock::now()) {
      pace_->expires_at(due);
      pace_->async_wait([self = shared_from_this(), n](const boost::system::error_code& ec) {
        if (ec) return self->Finish(ClientError::kReset, "throttled request abandoned");
        self->SendSlice(n);
      });
      return;
    }
  }
  SendSlice(n);
}

void Exchange::SendSlice(size_t n) {
  ArmTimer();
  conn_->Visit([&](auto& stream) {
    asio::async_write(stream, asio::buffer(wire_.data() + written_, n),
                      [self = shared_from_this()](const boost::system::error_code& ec,
                                                  size_t wrote) { self->OnSlice(ec, wrote); });
  });
}

void Exchange::OnSlice(const boost::system::error_code& ec, size_t n) {
  if (ec) return OnWrite(ec);
  written_ += n;
  if (written_ < limit_) return WriteSlice();
  if (!shape_->truncate && !shape_->reset) return Read();
  // The client goes away: a TCP reset (SO_LINGER 0), with no answer read.
  auto& sock = conn_->lowest().socket();
  boost::system::error_code ignored;
  sock.set_option(asio::socket_base::linger(true, 0), ignored);
  sock.close(ignored);
  Finish(ClientError::kReset,
         std::string(shape_->truncate ? kRequestTruncatedByFault : kRequestResetByFault));
}

void Exchange::Read() {
  if (streaming()) return ReadHead();
  parser_.emplace();
  parser_->header_limit(pool_->options_.max_response_header);
  parser_->body_limit(pool_->options_.max_response_body);
  if (request_.method() == http::verb::head) parser_->skip(true);
  WatchForTrailers(*parser_);
  conn_->Visit([&](auto& stream) {
    http::async_read(stream, conn_->buffer, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->OnRead(ec);
                     });
  });
}

void Exchange::OnReadError(const boost::system::error_code& ec, bool got_some) {
  if (ec == beast::error::timeout) return Finish(ClientError::kTimeout, TimeoutDetail());
  // stream_truncated: a TLS peer that closed without close_notify, as servers and balancers
  // closing an idle connection often do.
  const bool closed_before_answer =
      !got_some && (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                    ec == asio::error::eof || ec == asio::error::broken_pipe ||
                    ec == asio::ssl::error::stream_truncated);
  if (closed_before_answer && !body_phase_ && MayRetry() &&
      IsIdempotent(request_.method_string())) {
    return Retry();
  }
  if (ec == http::error::body_limit) {
    return Finish(ClientError::kTooLarge, "the upstream response body is over " +
                                              std::to_string(pool_->options_.max_response_body) +
                                              " bytes");
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return Finish(ClientError::kBadResponse, "malformed upstream response: " + ec.message());
  }
  return Finish(ClientError::kReset, "the upstream closed the connection: " + ec.message());
}

void Exchange::OnRead(const boost::system::error_code& ec) {
  if (ec) return OnReadError(ec, parser_->got_some());
  const unsigned status = parser_->get().result_int();
  if (status >= 100 && status < 200 && status != 101) {
    Read();  // 1xx: interim, the final response follows on the same connection
    return;
  }
  ExchangeResult result;
  result.latency_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count());
  result.reused_connection = reused_;
  const bool keep = parser_->keep_alive() && request_.keep_alive() && status != 101 &&
                    !shape_.has_value() && ReusableFraming(parser_->get());
  result.response = parser_->release();
  TakeTrailers(result.response, result.trailers);
  if (keep) pool_->ReturnIdle(std::move(conn_));
  conn_.reset();
  --pool_->stats_.active;
  ExchangeCallback done = std::move(done_);
  done(std::move(result));
}

template <class Parser>
void Exchange::WatchForTrailers(Parser& parser) {
  trailers_from_.reset();
  // Beast calls this for each chunk's line; the last one (size 0) comes before the trailer
  // section is parsed, and the parser adds those fields to the message after its header's.
  on_chunk_header_ = [this, &parser](std::uint64_t size, beast::string_view, beast::error_code&) {
    if (size != 0) return;
    const http::fields& fields = parser.get();
    trailers_from_ = static_cast<size_t>(std::distance(fields.begin(), fields.end()));
  };
  parser.on_chunk_header(on_chunk_header_);
}

void Exchange::TakeTrailers(http::fields& message, http::fields& out) {
  if (!trailers_from_) return;
  auto it = message.begin();
  for (size_t i = 0; i < *trailers_from_ && it != message.end(); ++i) ++it;
  while (it != message.end()) {
    // Framing and hop-by-hop fields have no meaning after the body (RFC 9110 6.5.1): they
    // are not passed on, nor recorded as the response's.
    if (!IsHopByHop(it->name_string()) && it->name() != http::field::content_length &&
        it->name() != http::field::host) {
      out.insert(it->name_string(), it->value());
    }
    it = message.erase(it);
  }
  trailers_from_.reset();
}

void Exchange::ReadHead() {
  stream_parser_.emplace();
  stream_parser_->header_limit(pool_->options_.max_response_header);
  stream_parser_->body_limit(boost::none);  // the body is not held: the reader passes it on
  if (request_.method() == http::verb::head) stream_parser_->skip(true);
  WatchForTrailers(*stream_parser_);
  ArmTimer();
  conn_->Visit([&](auto& stream) {
    http::async_read_header(stream, conn_->buffer, *stream_parser_,
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        size_t) { self->OnHead(ec); });
  });
}

void Exchange::OnHead(const boost::system::error_code& ec) {
  if (ec) return OnReadError(ec, stream_parser_->got_some());
  // No reference to the parser's message is kept: its fields are moved out below.
  const unsigned status = stream_parser_->get().result_int();
  if (status >= 100 && status < 200 && status != 101) {
    ReadHead();  // 1xx: interim, the final response follows on the same connection
    return;
  }
  last_byte_ = Clock::now();
  ExchangeResult result;
  result.latency_us = latency_us();
  result.reused_connection = reused_;
  // Moved, not copied: the parser reads only the body from here on, and a chunked body's
  // trailer section lands in its emptied fields (TakeTrailers).
  result.response.base() = std::move(stream_parser_->get().base());
  stream_parser_->get().clear();
  trailers_from_.reset();
  upgraded_ = status == 101;
  keep_ = stream_parser_->keep_alive() && request_.keep_alive() && status != 101 &&
          ReusableFraming(stream_parser_->get());
  body_phase_ = true;
  StreamCallback done = std::move(on_head_);
  on_head_ = [](ExchangeResult&&, BodyReaderPtr) {};  // still streaming()
  done(std::move(result), std::make_unique<StreamBodyReader>(shared_from_this()));
}

void Exchange::ReadPiece(BodyReader::Callback done) {
  piece_done_ = std::move(done);
  if (!raw_left_ && stream_parser_->is_done()) {
    // Nothing (more) to read: HEAD, 204/304, Content-Length: 0, or all of it came along
    // with the head.
    asio::post(pool_->io_, [self = shared_from_this()] { self->EndOfBody(); });
    return;
  }
  // Allocated at the first read that needs it (not zeroed): a response without a body costs
  // no buffer, and a body of known length under kPieceBytes a buffer of its length.
  if (!piece_) {
    const auto left = stream_parser_->content_length_remaining();
    piece_bytes_ =
        left && *left > 0 && *left < BodyReader::kPieceBytes ? *left : BodyReader::kPieceBytes;
    piece_.reset(new char[piece_bytes_]);
  }
  // A Content-Length body with nothing of it buffered is read straight into piece_: through
  // the parser every byte would be copied twice (socket -> connection buffer -> piece_). Only
  // as many bytes as the body has left are asked for, so the connection's next response is
  // never read here and the connection can go back to the pool as it is.
  if (!raw_left_ && conn_->buffer.size() == 0) {
    if (const auto left = stream_parser_->content_length_remaining(); left && *left > 0) {
      raw_left_ = *left;
    }
  }
  ArmTimer();
  if (raw_left_) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(*raw_left_, piece_bytes_));
    conn_->Visit([&](auto& stream) {
      stream.async_read_some(asio::buffer(piece_.get(), want),
                             [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                               self->OnRawPiece(ec, n);
                             });
    });
    return;
  }
  auto& body = stream_parser_->get().body();
  body.data = piece_.get();
  body.size = piece_bytes_;
  // Beast reads as much as the connection's buffer has room for: with the 16 KiB that suit
  // heads, a large body would come in 16 KiB pieces, each its own recv, timer and write.
  if (piece_bytes_ > conn_->buffer.capacity()) conn_->buffer.reserve(piece_bytes_);
  conn_->Visit([&](auto& stream) {
    http::async_read_some(
        stream, conn_->buffer, *stream_parser_,
        [self = shared_from_this()](boost::system::error_code ec, size_t) { self->OnPiece(ec); });
  });
}

void Exchange::OnPiece(const boost::system::error_code& ec) {
  if (over_) return;  // abandoned meanwhile
  if (ec && ec != http::error::need_buffer) return OnReadError(ec, true);
  last_byte_ = Clock::now();
  const size_t n = piece_bytes_ - stream_parser_->get().body().size;
  if (stream_parser_->is_done()) {
    TakeTrailers(stream_parser_->get(), trailers_);
    over_ = true;
    if (keep_) pool_->ReturnIdle(std::move(conn_));
    conn_.reset();
    --pool_->stats_.active;
  }
  BodyReader::Callback done = std::move(piece_done_);
  done(ClientError::kNone, "", std::string_view(piece_.get(), n), over_);
}

void Exchange::OnRawPiece(const boost::system::error_code& ec, size_t n) {
  if (over_) return;  // abandoned meanwhile
  // The upstream closing before the Content-Length was reached fails the exchange, as the
  // parser's partial_message does.
  if (ec) return OnReadError(ec, true);
  last_byte_ = Clock::now();
  *raw_left_ -= n;
  if (*raw_left_ == 0) {
    over_ = true;
    if (keep_) pool_->ReturnIdle(std::move(conn_));
    conn_.reset();
    --pool_->stats_.active;
  }
  BodyReader::Callback done = std::move(piece_done_);
  done(ClientError::kNone, "", std::string_view(piece_.get(), n), over_);
}

void Exchange::EndOfBody() {
  if (over_) return;
  TakeTrailers(stream_parser_->get(), trailers_);
  over_ = true;
  last_byte_ = Clock::now();
  if (keep_) pool_->ReturnIdle(std::move(conn_));
  conn_.reset();
  --pool_->stats_.active;
  BodyReader::Callback done = std::move(piece_done_);
  done(ClientError::kNone, "", {}, true);
}

TunnelPtr Exchange::TakeTunnel() {
  if (!upgraded_ || over_ || !conn_) return nullptr;
  over_ = true;
  --pool_->stats_.active;
  return std::make_unique<ConnectionTunnel>(std::move(conn_));
}

void Exchange::Abandon() {
  if (over_) return;
  over_ = true;
  conn_.reset();
  --pool_->stats_.active;
}

void Exchange::Retry() {
  retried_ = true;
  ++pool_->stats_.retried;
  conn_.reset();
  Connect();
}

void Exchange::Finish(ClientError error, std::string detail) {
  if (body_phase_) {
    over_ = true;
    conn_.reset();
    --pool_->stats_.active;
    BodyReader::Callback done = std::move(piece_done_);
    done(error, std::move(detail), {}, false);
    return;
  }
  ExchangeResult result;
  result.error = error;
  result.detail = std::move(detail);
  result.reused_connection = reused_;
  if (start_ != Clock::time_point()) {
    result.latency_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count());
  }
  conn_.reset();
  --pool_->stats_.active;
  if (streaming()) {
    StreamCallback done = std::move(on_head_);
    done(std::move(result), nullptr);
    return;
  }
  ExchangeCallback done = std::move(done_);
  done(std::move(result));
}

}  // namespace

Result<std::shared_ptr<HttpClientPool>> HttpClientPool::Create(
    asio::io_context& io, Url upstream, ClientOptions options,
    std::shared_ptr<asio::ssl::context> tls) {
  if (upstream.tls() && !tls) {
    return Status::InvalidArgument(upstream.scheme + " upstream " + upstream.ToString() +
                                   " needs a TLS context");
  }
  if (!upstream.tls()) tls.reset();
  if (upstream.http2()) return NewH2ClientPool(io, std::move(upstream), options, std::move(tls));
  return std::shared_ptr<HttpClientPool>(
      std::make_shared<PoolImpl>(io, std::move(upstream), options, std::move(tls)));
}

// Everything of a recorded response but its body.
static void ToProtoHead(const HttpResponse& in, doppel::v1::HttpResponse* out) {
  out->Clear();
  out->set_status(in.result_int());
  out->set_reason(std::string(in.reason()));
  out->set_version(in.version());
  CopyHeaders(in, out->mutable_headers());
  out->set_body_size(in.body().size());
}

void ToProto(const HttpResponse& in, doppel::v1::HttpResponse* out) {
  ToProtoHead(in, out);
  out->set_body(in.body());
}

void ToProto(HttpResponse&& in, doppel::v1::HttpResponse* out) {
  ToProtoHead(in, out);
  out->set_body(std::move(in.body()));
}

}  // namespace doppel::net
