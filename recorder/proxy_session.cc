#include "recorder/proxy_session.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "base/strings.h"
#include "net/headers.h"
#include "net/tls_server.h"
#include "recorder/exchange.h"
#include "recorder/h2_session.h"
#include "recorder/recorder_impl.h"
#include "recorder/request_log.h"
#include "recorder/request_reader.h"
#include "recorder/worker.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using net::HttpRequest;
using net::HttpResponse;

// The client as the envelopes name it (address and port; the protocol is the caller's).
ClientInfo DescribeClient(const tcp::socket& socket) {
  ClientInfo client;
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (!ec) {
    client.ip = remote.address().to_string();
    client.addr = net::HostPort{client.ip, remote.port()}.ToString();
  }
  return client;
}

// `Stream` is beast::tcp_stream (plaintext) or TlsStream (TLS, handshake done).
template <class Stream>
class Session final : public ProxySession, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream&& stream, Worker& worker, RecorderImpl& recorder, ClientInfo client)
      : stream_(std::move(stream)),
        worker_(worker),
        rec_(recorder),
        client_(std::move(client)),
        reader_({rec_.options().max_header_bytes, rec_.options().max_request_body}, kPlaintext) {
    beast::error_code ec;
    Lowest().socket().set_option(tcp::no_delay(true), ec);
    // One recv for a typical request head instead of several 512-byte ones (Beast reads
    // max(512, free capacity) bytes at a time).
    buffer_.reserve(4096);
  }

  ~Session() override {
    if (tunnel_ && !tunnel_ended_) exchange_->EndWebSocket("shutdown");
    exchange_.reset();
    worker_.sessions.erase(this);
    worker_.live_sessions.fetch_sub(1, std::memory_order_relaxed);
    // A connection handed to the HTTP/2 session stays open and counted there.
    if (!handed_off_) rec_.open_connections().fetch_sub(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(-1);
  }

  void Start() {
    worker_.sessions.insert(this);
    worker_.live_sessions.fetch_add(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(1);
    ReadHeader();
  }

  void OnDrain() override {
    if (tunnel_) {
      if (!tunnel_ended_) EndTunnel("shutdown");
      return;
    }
    if (!in_request_ && buffer_.size() == 0) Lowest().cancel();
  }

  void OnCut() override {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

 private:
  static constexpr bool kPlaintext = std::is_same_v<Stream, beast::tcp_stream>;
  const RecorderOptions& opts() const { return rec_.options(); }
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }
  std::string_view BufferedBytes() const {
    const auto data = buffer_.cdata();
    return {static_cast<const char*>(data.data()), data.size()};
  }

  void ReadHeader() {
    if (worker_.draining) return Close();
    in_request_ = false;
    if (upload_.started) {  // the buffer and the piece go back to a request head's size
      buffer_.shrink_to_fit();
      buffer_.reserve(4096);
      upload_ = {};
    }
    exchange_.emplace(worker_, rec_, client_);
    reader_.Start();
    Lowest().expires_after(opts().idle_timeout);
    Parse();
  }

  // Feeds the buffered bytes to the reader, reading more as needed, until it has the request
  // head (checked), then the whole request, or refuses it (http::async_read_header and
  // http::async_read's loops, by hand, because the reader looks at the raw head).
  void Parse() {
    size_t used = 0;
    const RequestReader::Event event = reader_.Parse(BufferedBytes(), &used);
    buffer_.consume(used);
    switch (event) {
      case RequestReader::Event::kNeedMore:
        if (ShouldUpload()) return StartUpload();
        break;
      case RequestReader::Event::kHttp2:
        return HandOffToH2();
      case RequestReader::Event::kHead:
        return OnHeader();
      case RequestReader::Event::kRequest:  // after kHead, from the body on
        return OnRequest();
      case RequestReader::Event::kRefused:
        return Refuse();
    }
    stream_.async_read_some(
        buffer_.prepare(beast::read_size(buffer_, 65536)),
        [self = this->shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  // The connection speaks HTTP/2 (the client preface came first): the HTTP/2 session takes
  // the socket, the bytes read so far and the open connection's count.
  void HandOffToH2() {
    if constexpr (kPlaintext) {  // over TLS, ALPN chose the protocol before this session
      handed_off_ = true;
      exchange_.reset();
      client_.protocol = "h2c";
      std::string received(BufferedBytes());
      H2Session::Start(Lowest().release_socket(), worker_, rec_, client_, std::move(received));
    }
  }

  void OnRead(beast::error_code ec, size_t n) {
    buffer_.commit(n);
    if (ec) {
      // The timer cut a client in the middle of a request (tcp_stream closed the socket):
      // one that sent part of a head and stalled (slowloris), or a body too slowly. Nothing
      // can be answered, but it is counted.
      if (ec == beast::error::timeout && (in_request_ || buffer_.size() > 0)) {
        rec_.metrics().errors[static_cast<int>(ProxyFailure::kRequestTimeout)]->Inc();
      }
      return Close();  // client closed or left mid-body, idle timeout, or shutdown
    }
    Parse();
  }

  // The reader refused the request: answered, the connection closed afterwards.
  void Refuse() {
    if (reader_.head_read() && !in_request_) BeginRequest();
    const RequestReader::Refusal& refusal = reader_.refusal();
    Fail(refusal.failure, static_cast<http::status>(refusal.status), refusal.reason);
  }

  // A request head was read whole: the request is under way.
  void BeginRequest() {
    in_request_ = true;
    arrival_us_ = opts().clock->WallUs();
  }

  void OnHeader() {
    BeginRequest();
    DecideCapture();
    if (reader_.body_done()) return OnRequest();
    if (reader_.wants_continue() && reader_.request().version() >= 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Lowest().expires_after(opts().request_timeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = this->shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    Lowest().expires_after(opts().request_timeout);
    Parse();
  }

  // Match rules, then sampling (Exchange::DecideCapture).
  void DecideCapture() {
    const auto& req = reader_.request();
    net::RequestView view{req.method_string(), req.target(),
                          [&req](std::string_view name) -> std::optional<std::string_view> {
                            auto it = req.find(name);
                            if (it == req.end()) return std::nullopt;
                            return it->value();
                          }};
    exchange_->DecideCapture(std::move(view), req.version(), arrival_us_);
  }

  void OnRequest() { ForwardRequest(reader_.Release(), nullptr); }

  // `upload`: `req` is the head only, and the body streams from the client (StartUpload).
  void ForwardRequest(HttpRequest&& req, net::BodySourcePtr upload) {
    client_version_ = req.version();
    client_keep_alive_ = req.keep_alive();
    is_head_ = req.method() == http::verb::head;
    client_takes_trailers_ = net::AcceptsTrailers(req);
    websocket_ =
        req.method() == http::verb::get && req.version() == 11 && net::IsWebSocketUpgrade(req);
    const RequestReader::Framing framing =
        upload ? RequestReader::Framing{req.chunked(), !req.chunked()}
               : RequestReader::ForwardFraming(req);
    std::string logged;
    if (opts().log_bodies) logged = DescribeRequestForLog(req, req.body(), rec_.redactor());
    exchange_->Forward(
        std::move(req), client_version_, framing.chunked, framing.content_length, websocket_,
        std::move(logged),
        [self = this->shared_from_this()](net::ExchangeResult&& head, net::BodyReaderPtr body) {
          self->OnUpstreamHead(std::move(head), std::move(body));
        },
        std::move(upload));
  }

  // ---- A request body over --request-buffer streams to the primary ----
  //
  // Once the declared length, or the part of a chunked body read so far, is over
  // --request-buffer, the head goes to the primary and the pool reads the body from this
  // connection piece by piece (UploadSource), asking for the next piece only after it wrote
  // the last, so a slow primary slows the client down and the session holds one piece. The
  // limits stay: --max-request-body (a chunked body that passes it is refused 413 when the
  // primary has not answered), --request-timeout between the client's bytes.

  class UploadSource final : public net::BodySource {
   public:
    explicit UploadSource(std::shared_ptr<Session> session) : session_(std::move(session)) {}
    void ReadSome(Callback done) override { session_->NextUploadPiece(std::move(done)); }

   private:
    std::shared_ptr<Session> session_;
  };

  bool ShouldUpload() const {
    if (!in_request_ || !reader_.head_read() || upload_.started) return false;
    const uint64_t buffer = opts().request_buffer;
    return reader_.body_buffered() > buffer || reader_.content_length().value_or(0) > buffer;
  }

  void StartUpload() {
    upload_.started = upload_.open = true;
    HttpRequest head;
    head.base() = reader_.request().base();
    ForwardRequest(std::move(head), std::make_unique<UploadSource>(this->shared_from_this()));
  }

  void NextUploadPiece(net::BodySource::Callback done) {
    upload_.done = std::move(done);
    PumpUpload();
  }

  // The body parsed from what is buffered goes out as the next piece; with nothing new, more
  // is read from the client first.
  void PumpUpload() {
    size_t used = 0;
    const RequestReader::Event event = reader_.Parse(BufferedBytes(), &used);
    buffer_.consume(used);
    reader_.TakeBody(&upload_.piece);
    if (event == RequestReader::Event::kRefused) {
      upload_.refused = true;  // answered in OnUpstreamHead, when the pool gives up
      return DeliverUpload(net::ClientError::kReset, reader_.refusal().reason, false);
    }
    const bool end = event == RequestReader::Event::kRequest;
    if (end || !upload_.piece.empty()) {
      if (end) upload_.open = false;
      exchange_->CopyRequestAside(upload_.piece, end);
      return DeliverUpload(net::ClientError::kNone, {}, end);
    }
    Lowest().expires_after(opts().request_timeout);
    // A whole piece at a time (the buffer grows from its 4 KiB to kUploadRead; it is given
    // back before the next request): 4 KiB reads held a 1 GiB upload to 0.31x nginx's pace.
    stream_.async_read_some(buffer_.prepare(kUploadRead),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->OnUploadRead(ec, n);
                            });
  }

  void OnUploadRead(beast::error_code ec, size_t n) {
    buffer_.commit(n);
    if (!ec) return PumpUpload();
    upload_.lost = true;  // the connection is closed in OnUpstreamHead
    if (ec == beast::error::timeout) {
      rec_.metrics().errors[static_cast<int>(ProxyFailure::kRequestTimeout)]->Inc();
      return DeliverUpload(net::ClientError::kTimeout,
                           "the client sent no byte of it for " +
                               std::to_string(opts().request_timeout.count()) + " ms",
                           false);
    }
    DeliverUpload(net::ClientError::kReset, "the client left: " + ec.message(), false);
  }

  void DeliverUpload(net::ClientError error, std::string detail, bool end) {
    net::BodySource::Callback done = std::move(upload_.done);
    // A view of the piece itself, which stays until the next ReadSome: the pool writes from it.
    const std::string_view piece =
        error == net::ClientError::kNone ? std::string_view(upload_.piece) : std::string_view();
    done(error, std::move(detail), piece, end);
  }

  // The primary's response head arrived (or the exchange failed before it): checks it, starts
  // the capture's side copy and writes the head to the client; the body follows piece by
  // piece (RelayPiece), each read from the primary only after the previous piece was written
  // to the client, so a slow client slows the primary down and memory stays bounded.
  void OnUpstreamHead(net::ExchangeResult&& result, net::BodyReaderPtr body) {
    // The upload failed on the client's side (the pool gave up on it): not the primary's.
    if (upload_.refused) return Refuse();
    if (upload_.lost) return Close();
    if (auto failure = exchange_->CheckUpstream(result)) {
      if (failure->reset_by_fault) return ResetByFault();
      return Fail(failure->failure, static_cast<http::status>(failure->status),
                  std::move(failure->reason));
    }
    HttpResponse& res = result.response;
    if (websocket_ && res.result_int() == 101) {
      net::TunnelPtr tunnel = body ? body->TakeTunnel() : nullptr;
      if (!tunnel) {
        return Fail(ProxyFailure::kUpstreamReset, http::status::bad_gateway,
                    "primary answered 101 on a connection that cannot be relayed");
      }
      return StartTunnel(std::move(res), std::move(body), std::move(tunnel));
    }
    const bool upstream_chunked = res.chunked();
    const bool upstream_length = res.has_content_length();
    const unsigned upstream_version = res.version();
    no_body_ = !exchange_->OnResponseHead(res, std::move(body), is_head_);
    body_ = exchange_->body();
    net::AppendVia(res, upstream_version, "doppel");
    res.version(client_version_);
    // A primary that answered before the upload ended (or a fault that answered for it)
    // leaves the rest of the body unread: the connection closes after the answer.
    bool keep_alive = client_keep_alive_ && !upload_.open;
    linger_ = upload_.open;
    if (!no_body_ && upstream_chunked && client_version_ >= 11) {
      res.chunked(true);
    } else if (!no_body_ && !upstream_length) {
      // Close-delimited (the primary's, or chunked for an HTTP/1.0 client): the end of the
      // body is the end of the connection.
      keep_alive = false;
    }
    CountAnswer(res.result_int(), keep_alive);
    if (no_body_ || (upstream_length && res[http::field::content_length] == "0")) {
      OnPrimaryDone();  // the response is complete with its head
    }
    stream_res_.base() = std::move(res.base());
    stream_res_.keep_alive(keep_alive_);
    serializer_.emplace(stream_res_);
    // When (some of) the body came with the head, the head goes out with its first piece in
    // one write; otherwise at once, before waiting for the body (an event stream's head).
    if (body_->ready()) return ReadPiece();
    WriteHead([self = this->shared_from_this()] { self->ReadPiece(); });
  }

  template <class Next>
  void WriteHead(Next next) {
    Lowest().expires_after(opts().request_timeout);
    http::async_write_header(stream_, *serializer_,
                             [self = this->shared_from_this(), next](beast::error_code ec, size_t) {
                               if (ec) return self->AbortStream(ec);
                               next();
                             });
  }

  void ReadPiece() {
    body_->ReadSome([self = this->shared_from_this()](net::ClientError error, std::string detail,
                                                      std::string_view piece, bool end) {
      self->RelayPiece(error, std::move(detail), piece, end);
    });
  }

  void RelayPiece(net::ClientError error, std::string detail, std::string_view piece, bool end) {
    if (error != net::ClientError::kNone) return CutByPrimary(error, std::move(detail));
    exchange_->CopyAside(piece);
    // Before the last write: the capture never waits for the client.
    if (end && !exchange_->primary_done()) OnPrimaryDone();
    if (end && TrailersToClient()) return EndWithTrailers(piece);
    if (no_body_ || piece.empty()) {
      if (end) return EndBody();
      if (!no_body_ && !serializer_->is_header_done()) {
        return WriteHead([self = this->shared_from_this()] { self->ReadPiece(); });
      }
      return ReadPiece();
    }
    auto& b = stream_res_.body();
    b.data = const_cast<char*>(piece.data());  // only read from
    b.size = piece.size();
    // The last piece completes the message in the same write (the final chunk goes with it):
    // a small response is one write to the client, head, body and all.
    b.more = !end;
    Lowest().expires_after(opts().request_timeout);
    http::async_write(stream_, *serializer_,
                      [self = this->shared_from_this(), end](beast::error_code ec, size_t) {
                        if (ec == http::error::need_buffer) ec = {};  // the piece went out
                        if (ec) return self->AbortStream(ec);
                        if (end) return self->OnStreamDone();
                        self->ReadPiece();
                      });
  }

  // The primary's trailer section goes to the client when the body goes out chunked and the
  // client's TE listed "trailers" (RFC 9110 6.5, 10.1.4); hop-by-hop fields never do.
  bool TrailersToClient() const {
    if (no_body_ || !client_takes_trailers_ || !stream_res_.chunked()) return false;
    for (const auto& f : body_->trailers())
      if (!net::IsHopByHop(f.name_string())) return true;
    return false;
  }

  // The last piece as a chunk of its own, then the last chunk with the trailer section,
  // written here: Beast's serializer ends a chunked body without one.
  void EndWithTrailers(std::string_view piece) {
    last_chunk_ = "0\r\n";
    for (const auto& f : body_->trailers()) {
      if (net::IsHopByHop(f.name_string())) continue;
      last_chunk_.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
    }
    last_chunk_ += "\r\n";
    auto& b = stream_res_.body();
    // Only read from; none (need_buffer at once) for an empty piece.
    b.data = piece.empty() ? nullptr : const_cast<char*>(piece.data());
    b.size = piece.size();
    b.more = true;
    Lowest().expires_after(opts().request_timeout);
    // With an empty piece this writes the head if it is still here, and nothing else.
    http::async_write(stream_, *serializer_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec == http::error::need_buffer) ec = {};
                        if (ec) return self->AbortStream(ec);
                        asio::async_write(self->stream_, asio::buffer(self->last_chunk_),
                                          [self](beast::error_code ec2, size_t) {
                                            if (ec2) return self->AbortStream(ec2);
                                            self->OnStreamDone();
                                          });
                      });
  }

  // The body ended after its last piece was written (an empty end): the final chunk (chunked)
  // goes out, with the head if that is still here.
  void EndBody() {
    if (no_body_) {
      if (serializer_->is_header_done()) return OnStreamDone();
      return WriteHead([self = this->shared_from_this()] { self->OnStreamDone(); });
    }
    auto& b = stream_res_.body();
    b.data = nullptr;
    b.size = 0;
    b.more = false;
    Lowest().expires_after(opts().request_timeout);
    http::async_write(stream_, *serializer_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->AbortStream(ec);
                        self->OnStreamDone();
                      });
  }

  void OnPrimaryDone() { exchange_->OnPrimaryDone(); }

  void OnStreamDone() {
    EndRelay();
    OnWrite({});
  }

  void EndRelay() {
    body_ = nullptr;
    exchange_->EndRelay();  // before the body's end: closes the primary's connection
    serializer_.reset();
    stream_res_ = {};
  }

  // The primary failed or stalled mid-body: the client already has the head, so the only
  // way to tell it the response is incomplete is to close its connection.
  void CutByPrimary(net::ClientError error, std::string detail) {
    exchange_->CutByPrimary(error, detail, stream_res_.result_int());
    AbortStream({});
  }

  // The relay ends before the body did (client gone, or the primary failed): what was read is
  // captured as truncated, and the client connection is closed.
  void AbortStream(beast::error_code) {
    exchange_->Abort();
    EndRelay();
    in_request_ = false;
    Close();
  }

  // A reset fault: the connection is closed with a TCP reset instead of an answer.
  void ResetByFault() {
    in_request_ = false;
    beast::error_code ignored;
    Lowest().socket().set_option(asio::socket_base::linger(true, 0), ignored);
    Lowest().close();
  }

  // ---- WebSocket: after the primary's 101, raw bytes both ways ----
  //
  // The 101 goes to the client, then two pipes run until both sides closed, or either failed,
  // or no byte went either way for --upstream-idle-timeout: client to primary (ReadClient,
  // ForwardUp) and primary to client (ReadPrimary, ForwardDown). Each reads the next bytes only
  // after the previous ones were written, so a slow reader slows its writer down and each
  // pipe holds at most kTunnelBytes. The exchange reads the messages off the bytes as they go.

  void StartTunnel(HttpResponse&& res, net::BodyReaderPtr body, net::TunnelPtr tunnel) {
    const unsigned upstream_version = res.version();
    exchange_->OnResponseHead(res, std::move(body), /*is_head=*/false);
    exchange_->StartWebSocket();
    tunnel_ = std::move(tunnel);
    net::AppendVia(res, upstream_version, "doppel");
    res.set(http::field::connection, "Upgrade");
    res.set(http::field::upgrade, "websocket");
    res.version(11);
    CountAnswer(res.result_int(), /*keep_alive=*/false);
    response_ = std::move(res);
    Lowest().expires_after(opts().request_timeout);
    http::async_write(stream_, response_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->EndTunnel("client: " + ec.message());
                        self->RelayTunnel();
                      });
  }

  void RelayTunnel() {
    response_ = {};
    if (tunnel_ended_) return;  // shutdown while the 101 was being written
    Lowest().expires_never();
    up_ = std::make_unique<char[]>(kTunnelBytes);
    down_ = std::make_unique<char[]>(kTunnelBytes);
    Touch();
    if (opts().upstream_client.read_idle_timeout.count() > 0) {
      tunnel_timer_.emplace(worker_.io);
      ArmTunnelTimer();
    }
    // Bytes that came along with the handshake go first: the client's after its request,
    // the primary's after its 101.
    early_up_ = std::string(BufferedBytes());
    buffer_.consume(buffer_.size());
    early_down_ = tunnel_->TakeReceived();
    if (early_up_.empty()) {
      ReadClient();
    } else {
      ForwardUp(early_up_.data(), early_up_.size());
    }
    if (early_down_.empty()) {
      ReadPrimary();
    } else {
      ForwardDown(early_down_.data(), early_down_.size());
    }
  }

  void ReadClient() {
    stream_.async_read_some(asio::buffer(up_.get(), kTunnelBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->EndPipe(/*from_client=*/true, ec);
                              self->ForwardUp(self->up_.get(), n);
                            });
  }

  void ForwardUp(const char* data, size_t n) {
    Touch();
    exchange_->OnWebSocketBytes(/*from_client=*/true, {data, n});
    tunnel_->Write(data, n, [self = this->shared_from_this()](const beast::error_code& ec, size_t) {
      if (ec) return self->EndTunnel("primary: " + ec.message());
      self->ReadClient();
    });
  }

  void ReadPrimary() {
    tunnel_->ReadSome(down_.get(), kTunnelBytes,
                      [self = this->shared_from_this()](const beast::error_code& ec, size_t n) {
                        if (ec) return self->EndPipe(/*from_client=*/false, ec);
                        self->ForwardDown(self->down_.get(), n);
                      });
  }

  void ForwardDown(const char* data, size_t n) {
    Touch();
    exchange_->OnWebSocketBytes(/*from_client=*/false, {data, n});
    asio::async_write(stream_, asio::buffer(data, n),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->EndTunnel("client: " + ec.message());
                        self->ReadPrimary();
                      });
  }

  // A pipe's read ended. A clean close ends that direction only (the other side is told, and
  // may still answer); anything else ends the connection.
  void EndPipe(bool from_client, const beast::error_code& ec) {
    if (tunnel_ended_) return;
    // A TLS tunnel cannot half-close: telling the primary that the client closed closed it,
    // which ends the read from the primary with operation_aborted.
    const bool closed = ec == asio::error::eof ||
                        (!from_client && up_done_ && ec == asio::error::operation_aborted);
    if (!closed) return EndTunnel((from_client ? "client: " : "primary: ") + ec.message());
    if (closed_first_.empty()) closed_first_ = from_client ? "client closed" : "primary closed";
    if (from_client) {
      up_done_ = true;
      tunnel_->ShutdownSend();
    } else {
      down_done_ = true;
      if constexpr (kPlaintext) {
        beast::error_code ignored;
        Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      } else {
        return EndTunnel(closed_first_);  // TLS cannot half-close
      }
    }
    if (up_done_ && down_done_) EndTunnel(closed_first_);
  }

  void EndTunnel(std::string how) {
    if (tunnel_ended_) return;
    tunnel_ended_ = true;
    in_request_ = false;
    if (tunnel_timer_) tunnel_timer_->cancel();
    tunnel_->Close();
    Lowest().close();
    exchange_->EndWebSocket(std::move(how));
  }

  void Touch() { last_byte_ = std::chrono::steady_clock::now(); }

  void ArmTunnelTimer() {
    tunnel_timer_->expires_at(last_byte_ + opts().upstream_client.read_idle_timeout);
    tunnel_timer_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->tunnel_ended_) return;
      if (std::chrono::steady_clock::now() - self->last_byte_ >=
          self->opts().upstream_client.read_idle_timeout) {
        return self->EndTunnel("idle timeout");
      }
      self->ArmTunnelTimer();
    });
  }

  // Answers the request itself. Before a complete request was read the connection cannot be
  // reused (the rest of the request is unread), so it is closed after the answer.
  void Fail(ProxyFailure failure, http::status status, std::string reason) {
    const bool request_complete = failure >= ProxyFailure::kUpstreamConnect && !upload_.open;
    std::string request;
    if (opts().log_bodies && !request_complete) {
      request = DescribeRequestForLog(reader_.request(), reader_.request().body(), rec_.redactor());
    }
    exchange_->Fail(failure, static_cast<unsigned>(status), reason, in_request_, request,
                    &reader_.request().base());
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
    Lowest().expires_after(opts().request_timeout);
    http::async_write(
        stream_, response_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
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
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().close();
  }

  // After answering a request whose rest is unread: closing at once with unread bytes in
  // the socket makes the kernel send a reset, which can destroy our answer in flight. So
  // half-close, then read and discard (bounded in bytes and time) until the client closes.
  void LingeringClose() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(std::chrono::seconds(2));
    discard_ = std::make_unique<char[]>(kDiscardBytes);
    Discard(0);
  }

  void Discard(size_t total) {
    stream_.async_read_some(
        asio::buffer(discard_.get(), kDiscardBytes),
        [self = this->shared_from_this(), total](beast::error_code ec, size_t n) {
          if (ec || total + n > (1u << 20)) return self->Lowest().close();
          self->Discard(total + n);
        });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  Worker& worker_;
  RecorderImpl& rec_;
  ClientInfo client_;
  RequestReader reader_;              // the current request's framing and checks
  std::optional<Exchange> exchange_;  // the current request's trip (capture, mirrors)
  HttpResponse response_;
  // The response being relayed: its head (and the current piece) as written to the client,
  // the primary's body, and the side copies.
  http::response<http::buffer_body> stream_res_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  net::BodyReader* body_ = nullptr;  // the primary's body, owned by exchange_
  bool no_body_ = false;             // HEAD, 1xx, 204, 304
  static constexpr size_t kDiscardBytes = 16 * 1024;
  std::unique_ptr<char[]> discard_;  // only while lingering
  bool linger_ = false;
  bool in_request_ = false;
  // The current request's body streaming to the primary (StartUpload), read from the client
  // kUploadRead bytes at a time.
  static constexpr size_t kUploadRead = net::BodyReader::kPieceBytes;
  struct Upload {
    bool started = false;
    bool open = false;     // the body's end was not read yet
    bool refused = false;  // the body was refused (too large, malformed): reader_.refusal()
    bool lost = false;     // the client left or stalled mid-body
    std::string piece;     // the piece the pool is writing
    net::BodySource::Callback done;
  } upload_;
  bool handed_off_ = false;  // the connection went to the HTTP/2 session
  bool client_keep_alive_ = false;
  bool keep_alive_ = false;
  bool is_head_ = false;
  bool client_takes_trailers_ = false;  // the request's TE listed "trailers"
  std::string last_chunk_;              // the last chunk with trailers, while it is written
  bool websocket_ = false;              // the request asks to switch to WebSocket
  unsigned client_version_ = 11;
  // WebSocket, after the 101 (StartTunnel): the primary's connection, a buffer each way, the
  // handshake's early bytes, and the idle timer.
  static constexpr size_t kTunnelBytes = 16 * 1024;
  net::TunnelPtr tunnel_;
  std::unique_ptr<char[]> up_, down_;
  std::string early_up_, early_down_;
  std::optional<asio::steady_timer> tunnel_timer_;
  std::chrono::steady_clock::time_point last_byte_;
  std::string closed_first_;  // "client closed" or "primary closed", once one side has
  bool up_done_ = false;
  bool down_done_ = false;
  bool tunnel_ended_ = false;
  uint64_t arrival_us_ = 0;
};

}  // namespace

void ProxySession::Start(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder) {
  ClientInfo client = DescribeClient(socket);
  client.protocol = "http/1.1";
  std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), worker,
                                               recorder, std::move(client))
      ->Start();
}

void ProxySession::StartTls(tcp::socket&& socket, asio::ssl::context& tls, Worker& worker,
                            RecorderImpl& recorder) {
  ClientInfo client = DescribeClient(socket);
  client.scheme = "https";
  // Before the handshake, for both protocols ALPN may choose: without it, HTTP/2 over TLS
  // waited on Nagle and the client's delayed ACK, about 40 ms an answer (3,601 req/s against
  // nginx's 46,542 in bench/h2.sh; the plaintext sessions set it in their constructor).
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto stream = std::make_shared<TlsStream>(beast::tcp_stream(std::move(socket)), tls);
  beast::get_lowest_layer(*stream).expires_after(recorder.options().request_timeout);
  stream->async_handshake(
      asio::ssl::stream_base::server,
      [stream, &worker, &recorder, client = std::move(client)](beast::error_code ec) mutable {
        if (ec) {
          // Not TLS, a certificate the client refused, or too slow: nothing to answer.
          recorder.metrics().tls_handshake_failed->Inc();
          if (!recorder.options().tls_client_ca_file.empty()) {
            // With mTLS an operator needs to know why a client is turned away.
            const std::string verify = net::PeerVerifyError(stream->native_handle());
            recorder.LogRefusedClient(client.ip, verify.empty() ? ec.message() : verify);
          }
          recorder.open_connections().fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        beast::get_lowest_layer(*stream).expires_never();
        client.tls_version = net::NegotiatedTlsVersion(stream->native_handle());
        client.alpn = net::NegotiatedAlpn(stream->native_handle());
        client.client_cert_subject = net::PeerCertificateSubject(stream->native_handle());
        if (worker.draining) {
          recorder.open_connections().fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        if (client.alpn == "h2") {
          client.protocol = "h2";
          return H2Session::StartTls(std::move(*stream), worker, recorder, std::move(client));
        }
        client.protocol = "http/1.1";
        std::make_shared<Session<TlsStream>>(std::move(*stream), worker, recorder,
                                             std::move(client))
            ->Start();
      });
}

}  // namespace doppel::recorder
