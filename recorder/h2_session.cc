#include "recorder/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/strings.h"
#include "diff/grpc.h"
#include "net/h2_frames.h"
#include "net/headers.h"
#include "recorder/recorder_impl.h"
#include "recorder/request_checks.h"
#include "recorder/request_log.h"
#include "recorder/worker.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// Receive windows we announce: a stream's (SETTINGS_INITIAL_WINDOW_SIZE) and the
// connection's. The connection's window is given back as soon as DATA arrives, so one slow
// stream never holds the others back; a stream's, once its bytes were taken: at once while
// its body is buffered (up to --request-buffer), and when the primary's connection took them
// once the body streams (Upload), so a streamed body holds at most one window in the proxy.
constexpr int32_t kStreamWindow = 256 * 1024;
constexpr int32_t kConnectionWindow = 1 << 20;

// A request body over --request-buffer, on its way to the primary: what arrived and was not
// yet handed to the pool, and the piece the pool is writing (Connection::StartUpload).
struct Upload {
  std::string pending;             // DATA received, not yet handed to the pool
  std::string piece;               // handed to the pool; valid until its next ReadSome
  uint64_t pending_window = 0;     // bytes of `pending` whose stream window is not given back
  uint64_t piece_window = 0;       // the same for `piece`
  uint64_t received = 0;           // body bytes received in all
  net::BodySource::Callback done;  // the pool waits for the next piece
  std::unique_ptr<asio::steady_timer> timer;  // --request-timeout while it waits
  uint64_t waits = 0;                         // which wait the timer is for
  bool ended = false;     // END_STREAM arrived: `pending` holds the rest of the body
  bool released = false;  // the pool let go of the body (written whole, or the exchange failed)
  // The body cannot be had: the client reset the stream, left or stalled, or sent more than
  // --max-request-body (`refused`: answered 413 when the pool gives up).
  net::ClientError error = net::ClientError::kNone;
  std::string detail;
  bool refused = false;

  // DATA still goes to the primary (otherwise it is dropped, its window given back at once).
  bool taking() const { return !ended && !released && error == net::ClientError::kNone; }
};

// One request and its response on the connection. Shared by the connection's map (while
// nghttp2 has the stream open) and the callbacks of the upstream exchange in flight.
struct Stream {
  Stream(int32_t stream_id, Worker& worker, RecorderImpl& recorder, const ClientInfo& client)
      : id(stream_id), exchange(worker, recorder, client) {}

  const int32_t id;
  Exchange exchange;
  net::HttpRequest request;
  std::string authority;             // :authority
  std::vector<std::string> cookies;  // cookie fields, joined with "; " for HTTP/1.1
  uint64_t header_bytes = 0;         // header list size as RFC 9113 counts it
  uint64_t arrival_us = 0;
  std::optional<ProxyFailure> over_limit;  // headers or body over the limits
  bool head_done = false;                  // the request head was checked (and the capture decided)
  bool answered = false;                   // a response was submitted
  bool is_head = false;
  unsigned status = 0;
  // The response body: the primary's reader (owned by `exchange`), and the piece nghttp2 is
  // taking DATA frames from; the next piece is read only when this one went out.
  net::BodyReader* body = nullptr;
  std::string piece;
  size_t piece_offset = 0;
  net::H2Fields trailers;          // the primary's, sent at the end
  bool piece_end = false;          // `piece` is the body's last
  bool reading = false;            // a ReadSome is outstanding
  bool closed = false;             // nghttp2 closed the stream, or the connection went away
  std::unique_ptr<Upload> upload;  // the request body streams to the primary
};
using StreamPtr = std::shared_ptr<Stream>;

// `Transport` is tcp::socket (h2c) or TlsStream (h2).
template <class Transport>
class Connection final : public H2Session,
                         public std::enable_shared_from_this<Connection<Transport>> {
 public:
  Connection(Transport&& stream, Worker& worker, RecorderImpl& recorder, ClientInfo client)
      : socket_(std::move(stream)),
        worker_(worker),
        rec_(recorder),
        client_(std::move(client)),
        idle_timer_(socket_.get_executor()),
        write_timer_(socket_.get_executor()) {}

  ~Connection() override {
    if (session_ != nullptr) nghttp2_session_del(session_);
    worker_.sessions.erase(this);
    worker_.live_sessions.fetch_sub(1, std::memory_order_relaxed);
    rec_.open_connections().fetch_sub(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(-1);
  }

  void Start(std::string received) {
    worker_.sessions.insert(this);
    worker_.live_sessions.fetch_add(1, std::memory_order_relaxed);
    rec_.metrics().active->Add(1);
    rec_.metrics().h2_connections->Inc();
    if (!InitSession()) return CloseNow();
    ArmIdle();
    if (!Feed(received.data(), received.size())) return;
    Flush();
    Read();
  }

  void OnDrain() override {
    if (closed_ || draining_) return;
    draining_ = true;
    // Streams already opened finish; new ones are refused by the GOAWAY.
    (void)nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                                nullptr, 0);  // fails only when closing
    Flush();
  }

  void OnCut() override {
    boost::system::error_code ignored;
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
  }

 private:
  const RecorderOptions& opts() const { return rec_.options(); }
  tcp::socket& Socket() {
    if constexpr (std::is_same_v<Transport, tcp::socket>) {
      return socket_;
    } else {
      return boost::beast::get_lowest_layer(socket_).socket();
    }
  }

  bool InitSession() {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Connection::OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, &Connection::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Connection::OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Connection::OnFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Connection::OnFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Connection::OnStreamClose);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      return false;
    }
    nghttp2_option_set_max_outbound_ack(opt, kMaxOutboundAck);
    nghttp2_option_set_no_auto_window_update(opt, 1);  // OnDataChunk and Upload give it back
    const int rv = nghttp2_session_server_new2(&session_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
      session_ = nullptr;
      return false;
    }
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts().h2_max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts().max_header_bytes},
    };
    return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) ==
               0 &&
           nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                                 kConnectionWindow) == 0;
  }

  // ---- socket ----

  void Read() {
    if (closed_) return;
    socket_.async_read_some(asio::buffer(read_buf_),
                            [self = this->shared_from_this()](error_code ec, size_t n) {
                              if (self->closed_) return;
                              if (ec) return self->CloseNow();  // client gone
                              if (!self->Feed(self->read_buf_.data(), n)) return;
                              self->Flush();
                              if (nghttp2_session_want_read(self->session_)) self->Read();
                            });
  }

  // Hands bytes to nghttp2. False (and the connection closed) when nghttp2 found them fatal:
  // a bad preface, or a flood of frames it must acknowledge (NGHTTP2_ERR_FLOODED).
  bool Feed(const char* data, size_t n) {
    in_recv_ = true;
    const ssize_t rv =
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), n);
    in_recv_ = false;
    if (rv >= 0) {
      StartWaitingCalls();
      return true;
    }
    if (rv == NGHTTP2_ERR_FLOODED) {
      rec_.metrics().h2_closed_flood->Inc();
    } else {
      rec_.metrics().h2_closed_protocol->Inc();
    }
    CloseNow();
    return false;
  }

  // Writes what nghttp2 has to send, one batch at a time; closes the connection when
  // nghttp2 is done with it (GOAWAY exchanged, or a fatal error) or a drain finished.
  void Flush() {
    if (writing_ || closed_) return;
    if (net::GatherH2Frames(session_, &out_) != 0) return CloseNow();
    if (out_.empty()) {
      if ((!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) ||
          (draining_ && streams_.empty())) {
        CloseNow();
      }
      return;
    }
    writing_ = true;
    // A client that stops reading its answers is cut off after request_timeout.
    write_timer_.expires_after(opts().request_timeout);
    write_timer_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (!ec && self->writing_) self->CloseNow();
    });
    asio::async_write(socket_, asio::buffer(out_),
                      [self = this->shared_from_this()](error_code ec, size_t) {
                        self->writing_ = false;
                        self->write_timer_.cancel();
                        if (self->closed_) return;
                        if (ec) return self->CloseNow();
                        self->Flush();
                      });
  }

  // Flush, unless nghttp2 is inside mem_recv (a callback may not send): Read flushes after it.
  void FlushLater() {
    if (!in_recv_) Flush();
  }

  // No stream open for idle_timeout: the connection is closed with GOAWAY NO_ERROR.
  void ArmIdle() {
    idle_timer_.expires_after(opts().idle_timeout);
    idle_timer_.async_wait([self = this->shared_from_this()](error_code ec) {
      if (ec || self->closed_ || !self->streams_.empty()) return;
      (void)nghttp2_session_terminate_session(self->session_, NGHTTP2_NO_ERROR);  // closing
      self->Flush();
    });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    Socket().shutdown(tcp::socket::shutdown_both, ignored);
    Socket().close(ignored);
    idle_timer_.cancel();
    write_timer_.cancel();
    for (auto& [id, st] : streams_) Drop(*st);
    streams_.clear();
  }

  // The stream ends on the client's side (reset, or the connection closed): an exchange
  // still relaying is captured as cut. A ReadSome in flight finishes first (OnPiece).
  void Drop(Stream& st) {
    st.closed = true;
    rec_.metrics().h2_streams->Add(-1);
    if (st.upload && st.upload->taking()) {
      FailUpload(st, net::ClientError::kReset, "the client reset the stream or left");
    }
    if (st.body != nullptr && !st.reading) {
      st.exchange.Abort();
      st.body = nullptr;
    }
  }

  // ---- nghttp2 callbacks (on the worker's thread, from inside mem_recv / mem_send) ----

  static Connection& Self(void* user_data) { return *static_cast<Connection*>(user_data); }

  Stream* Find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Connection& c = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto st = std::make_shared<Stream>(frame->hd.stream_id, c.worker_, c.rec_, c.client_);
    st->arrival_us = c.opts().clock->WallUs();
    c.streams_.emplace(st->id, std::move(st));
    c.rec_.metrics().h2_streams->Add(1);
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    Connection& c = Self(user_data);
    // Trailers of a request (HEADERS after DATA) are not forwarded: the primary's HTTP/1.1
    // client carries none.
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Stream* st = c.Find(frame->hd.stream_id);
    if (st == nullptr || st->over_limit) return 0;
    st->header_bytes += namelen + valuelen + 32;  // RFC 9113 6.5.2
    if (st->header_bytes > c.opts().max_header_bytes) {
      st->over_limit = ProxyFailure::kHeaderTooLarge;
      return 0;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    // nghttp2 checked the fields (RFC 9113 8.2, 8.3): lower-case names, no connection-specific
    // fields, each pseudo-header once and before the others.
    if (n == ":method") {
      st->request.method_string(v);
      st->is_head = v == "HEAD";
    } else if (n == ":path") {
      st->request.target(v);
    } else if (n == ":authority") {
      st->authority = v;
    } else if (n == "cookie") {
      st->cookies.emplace_back(v);  // RFC 9113 8.2.3
    } else if (n.empty() || n.front() != ':') {
      st->request.insert(n, v);
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data) {
    Connection& c = Self(user_data);
    (void)nghttp2_session_consume_connection(session, len);  // fails only for a fatal session
    Stream* st = c.Find(stream_id);
    if (st != nullptr && st->upload && st->upload->taking()) {
      c.OnUploadData(*st, data, len);  // its stream window comes back as the primary takes it
      return 0;
    }
    (void)nghttp2_session_consume_stream(session, stream_id, len);
    if (st == nullptr || st->answered) return 0;  // refused already: the rest is dropped
    std::string& body = st->request.body();
    if (body.size() + len > c.opts().max_request_body) {
      body.clear();
      c.Refuse(*st, ProxyFailure::kBodyTooLarge, 413, c.BodyTooLarge());
      return 0;
    }
    body.append(reinterpret_cast<const char*>(data), len);
    if (body.size() > c.opts().request_buffer) c.StartUpload(*st);
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Connection& c = Self(user_data);
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA: {
        Stream* st = c.Find(frame->hd.stream_id);
        if (st == nullptr) return 0;
        const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          c.OnRequestHead(*st);
          if (!end && !st->answered) c.OnBodyAhead(*st);
        }
        if (end && st->upload) {
          c.EndUpload(*st);
        } else if (end && !st->answered) {
          c.Forward(*st);
        }
        return 0;
      }
      case NGHTTP2_RST_STREAM:
        // Rapid reset (CVE-2023-44487): a client that resets more streams than it lets finish
        // is cut off, so opening and cancelling streams cannot keep the proxy busy.
        if (++c.resets_ > kResetBudget + c.finished_ && !c.calmed_) {
          c.calmed_ = true;
          c.rec_.metrics().h2_closed_rapid_reset->Inc();
          (void)nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return 0;
      default:
        return 0;
    }
  }

  // A GOAWAY that nghttp2 sent for a frame it found malformed counts as a protocol close.
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Connection& c = Self(user_data);
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
        frame->goaway.error_code != NGHTTP2_ENHANCE_YOUR_CALM) {
      c.rec_.metrics().h2_closed_protocol->Inc();
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    Connection& c = Self(user_data);
    auto it = c.streams_.find(stream_id);
    if (it == c.streams_.end()) return 0;
    c.Drop(*it->second);
    c.streams_.erase(it);
    if (c.streams_.empty()) c.ArmIdle();
    return 0;
  }

  // Sends the response body: the current piece in DATA frames as the flow-control windows
  // allow, then (deferred) the next piece from the primary.
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
    Connection& c = Self(user_data);
    Stream& st = *static_cast<Stream*>(source->ptr);
    const size_t left = st.piece.size() - st.piece_offset;
    if (left > 0) {
      const size_t n = std::min(left, length);
      std::memcpy(buf, st.piece.data() + st.piece_offset, n);
      st.piece_offset += n;
      if (st.piece_offset == st.piece.size() && st.piece_end) c.EndBody(st, data_flags);
      return static_cast<ssize_t>(n);
    }
    if (st.piece_end) {
      c.EndBody(st, data_flags);
      return 0;
    }
    if (!st.reading && st.body != nullptr) c.ReadPiece(st);
    return NGHTTP2_ERR_DEFERRED;
  }

  // The response body's last DATA frame: END_STREAM on it, or on the trailers the primary
  // sent (gRPC's grpc-status), submitted from here as nghttp2 allows.
  void EndBody(Stream& st, uint32_t* data_flags) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    ++finished_;
    if (st.trailers.empty()) return;
    std::vector<nghttp2_nv> nva = net::H2NameValues(st.trailers);
    if (nghttp2_submit_trailer(session_, st.id, nva.data(), nva.size()) == 0) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }

  // ---- the exchange ----

  // The request head is complete: the checks an HTTP/1.1 head gets (recorder/
  // request_checks.h), then match rules and sampling.
  void OnRequestHead(Stream& st) {
    st.head_done = true;
    if (st.over_limit) {
      return Refuse(st, ProxyFailure::kHeaderTooLarge, 431,
                    "request header over " + std::to_string(opts().max_header_bytes) + " bytes");
    }
    net::HttpRequest& req = st.request;
    if (!st.cookies.empty()) {
      std::string joined;
      for (const std::string& cookie : st.cookies) {
        if (!joined.empty()) joined += "; ";
        joined += cookie;
      }
      req.set(http::field::cookie, joined);
    }
    switch (CheckMethod(req.method_string())) {
      case MethodCheck::kForward:
        break;
      case MethodCheck::kConnect:
        return Refuse(st, ProxyFailure::kBadRequest, 501,
                      "CONNECT is not supported: doppel forwards requests, it does not open "
                      "tunnels");
      case MethodCheck::kNotToken:
        return Refuse(st, ProxyFailure::kBadRequest, 400,
                      "malformed request: the method is not a token");
    }
    // :authority stands for Host (RFC 9113 8.3.1); a Host field, when sent too, must agree.
    size_t hosts = 0;
    for (const auto& f : req) hosts += f.name() == http::field::host;
    if (!st.authority.empty() && hosts == 0) {
      req.set(http::field::host, st.authority);
      hosts = 1;
    }
    const TargetCheck target =
        CheckRequestTarget(req.method_string(), req.target(), 11, hosts, req[http::field::host]);
    if (!target.error.empty()) {
      return Refuse(st, ProxyFailure::kBadRequest, 400, "malformed request: " + target.error);
    }
    req.erase(http::field::expect);  // 100-continue is implicit in HTTP/2's flow control
    net::RequestView view{req.method_string(), req.target(),
                          [&req](std::string_view name) -> std::optional<std::string_view> {
                            auto it = req.find(name);
                            if (it == req.end()) return std::nullopt;
                            return it->value();
                          }};
    st.exchange.DecideCapture(std::move(view), 20, st.arrival_us);
  }

  // `upload`: the body streams from the client (StartUpload); `st.request` is its head.
  void Forward(Stream& st, net::BodySourcePtr upload = nullptr) {
    if (!st.head_done) return;  // trailers without a head cannot happen; be safe
    net::HttpRequest& req = st.request;
    const bool had_length = req.find(http::field::content_length) != req.end();
    // A streamed body of unknown length goes to an HTTP/1.1 primary chunked.
    const bool chunked = upload != nullptr && !had_length;
    std::string logged;
    if (opts().log_bodies) logged = DescribeRequestForLog(req, req.body(), rec_.redactor());
    st.answered = true;  // the primary answers from here on
    StreamPtr ptr = streams_.at(st.id);
    st.exchange.Forward(
        std::move(req), 20, chunked, had_length,
        /*websocket=*/false, std::move(logged),
        [self = this->shared_from_this(), ptr](net::ExchangeResult&& head,
                                               net::BodyReaderPtr body) {
          self->OnUpstreamHead(*ptr, std::move(head), std::move(body));
        },
        std::move(upload));
  }

  // ---- a request body over --request-buffer streams to the primary ----
  //
  // Once the declared content-length, or the body received so far, is over --request-buffer,
  // the head goes to the primary and the pool reads the body from the stream piece by piece
  // (UploadSource). DATA waits in Upload::pending with its stream window not given back, and
  // the window returns only when the pool asks for the next piece (it wrote the last), so a
  // slow primary slows the client down and the stream holds at most one window. The limits
  // stay as over HTTP/1.1: --max-request-body (413 when the primary has not answered),
  // --request-timeout between the client's DATA while the pool waits for it.

  class UploadSource final : public net::BodySource {
   public:
    UploadSource(std::shared_ptr<Connection> connection, StreamPtr stream)
        : connection_(std::move(connection)), stream_(std::move(stream)) {}
    ~UploadSource() override { connection_->ReleaseUpload(*stream_); }
    void ReadSome(Callback done) override {
      // `done` may drop this source: the connection and the stream stay for the call.
      const std::shared_ptr<Connection> connection = connection_;
      const StreamPtr stream = stream_;
      connection->NextUploadPiece(stream, std::move(done));
    }

   private:
    std::shared_ptr<Connection> connection_;
    StreamPtr stream_;
  };

  std::string BodyTooLarge() const {
    return "request body over " + std::to_string(opts().max_request_body) + " bytes";
  }

  // A request head without END_STREAM: a declared length over --max-request-body is refused
  // before any of the body is read; one over --request-buffer streams from the start; and a
  // gRPC call whose END_STREAM is not among the bytes just read streams from there
  // (StartWaitingCalls): a client-streaming or bidirectional call's client may wait for an
  // answer before it sends its next message, so its messages cannot wait for the body's end,
  // while a unary call, whose message and END_STREAM come with its head, still goes out whole
  // (and so may go again on a fresh upstream stream when the upstream refused it).
  void OnBodyAhead(Stream& st) {
    auto it = st.request.find(http::field::content_length);
    uint64_t length = 0;
    if (it != st.request.end()) {
      const std::string_view v = it->value();
      // nghttp2 checked that it is a number (RFC 9113 8.1.1).
      (void)std::from_chars(v.data(), v.data() + v.size(), length);
    }
    if (length > opts().max_request_body) {
      return Refuse(st, ProxyFailure::kBodyTooLarge, 413, BodyTooLarge());
    }
    if (length > opts().request_buffer) return StartUpload(st);
    auto type = st.request.find(http::field::content_type);
    if (type != st.request.end() && diff::IsGrpcContentType(type->value())) {
      waiting_calls_.push_back(st.id);
    }
  }

  // After the bytes read went through nghttp2: the gRPC calls among them whose body has not
  // ended stream from here.
  void StartWaitingCalls() {
    std::vector<int32_t> ids;
    ids.swap(waiting_calls_);
    for (int32_t id : ids) {
      Stream* st = Find(id);
      if (st != nullptr && !st->answered && !st->upload) StartUpload(*st);
    }
  }

  void StartUpload(Stream& st) {
    auto upload = std::make_unique<Upload>();
    upload->pending = std::move(st.request.body());  // its window was given back
    upload->received = upload->pending.size();
    st.request.body().clear();
    st.upload = std::move(upload);
    StreamPtr ptr = streams_.at(st.id);
    Forward(st, std::make_unique<UploadSource>(this->shared_from_this(), std::move(ptr)));
  }

  void OnUploadData(Stream& st, const uint8_t* data, size_t len) {
    Upload& up = *st.upload;
    up.received += len;
    if (up.received > opts().max_request_body) {
      (void)nghttp2_session_consume_stream(session_, st.id, len);
      up.refused = true;
      return FailUpload(st, net::ClientError::kReset, BodyTooLarge());
    }
    up.pending.append(reinterpret_cast<const char*>(data), len);
    up.pending_window += len;
    if (up.done) DeliverUpload(st);
  }

  void EndUpload(Stream& st) {
    Upload& up = *st.upload;
    if (!up.taking()) return;
    up.ended = true;
    if (up.done) DeliverUpload(st);
  }

  // The body cannot be had: the pool gets the error now when it waits, or at its next ReadSome.
  void FailUpload(Stream& st, net::ClientError error, std::string detail) {
    Upload& up = *st.upload;
    up.error = error;
    up.detail = std::move(detail);
    GiveBack(st, up.pending_window);
    up.pending_window = 0;
    up.pending.clear();
    if (up.done) DeliverUpload(st);
  }

  // The pool wrote the last piece and asks for the next one.
  void NextUploadPiece(const StreamPtr& ptr, net::BodySource::Callback done) {
    Stream& st = *ptr;
    Upload& up = *st.upload;
    GiveBack(st, up.piece_window);
    up.piece_window = 0;
    up.piece.clear();
    up.done = std::move(done);
    if (up.error != net::ClientError::kNone || up.ended || !up.pending.empty()) {
      return DeliverUpload(st);
    }
    if (!up.timer) up.timer = std::make_unique<asio::steady_timer>(socket_.get_executor());
    up.timer->expires_after(opts().request_timeout);
    up.timer->async_wait([self = this->shared_from_this(), ptr, wait = ++up.waits](error_code ec) {
      Upload& up = *ptr->upload;
      if (ec || up.waits != wait || !up.done || self->closed_) return;
      self->rec_.metrics().errors[static_cast<int>(ProxyFailure::kRequestTimeout)]->Inc();
      self->FailUpload(*ptr, net::ClientError::kTimeout,
                       "the client sent no byte of it for " +
                           std::to_string(self->opts().request_timeout.count()) + " ms");
      if (!ptr->closed) {
        (void)nghttp2_submit_rst_stream(self->session_, NGHTTP2_FLAG_NONE, ptr->id,
                                        NGHTTP2_CANCEL);  // the stream is open: cannot fail
      }
      self->Flush();
    });
  }

  // Answers the pool's ReadSome: the error, or what arrived (the body's end with it).
  void DeliverUpload(Stream& st) {
    Upload& up = *st.upload;
    if (up.timer) up.timer->cancel();
    net::BodySource::Callback done = std::move(up.done);
    up.done = nullptr;
    if (up.error != net::ClientError::kNone) return done(up.error, up.detail, {}, false);
    up.piece = std::move(up.pending);
    up.pending.clear();
    up.piece_window = up.pending_window;
    up.pending_window = 0;
    const bool end = up.ended;
    st.exchange.CopyRequestAside(up.piece, end);
    done(net::ClientError::kNone, {}, up.piece, end);
  }

  // The pool let go of the body (the source was dropped): what it held is given back, and
  // DATA still to come is dropped as it arrives.
  void ReleaseUpload(Stream& st) {
    Upload& up = *st.upload;
    up.released = true;
    if (up.timer) up.timer->cancel();
    GiveBack(st, up.pending_window + up.piece_window);
    up.pending_window = up.piece_window = 0;
    up.pending.clear();
    up.piece.clear();
  }

  // Bytes of the stream's body were taken: its window grows by as much (WINDOW_UPDATE when
  // nghttp2 finds it worth sending).
  void GiveBack(Stream& st, uint64_t bytes) {
    if (bytes == 0 || st.closed || closed_) return;
    (void)nghttp2_session_consume_stream(session_, st.id, bytes);  // the stream is open
    FlushLater();
  }

  void OnUpstreamHead(Stream& st, net::ExchangeResult&& result, net::BodyReaderPtr body) {
    if (st.upload && st.upload->error != net::ClientError::kNone) {
      // The pool gave up on the body, which failed on the client's side, not the primary's.
      if (!st.upload->refused || st.closed || closed_) return;  // the stream was reset
      st.answered = false;
      Refuse(st, ProxyFailure::kBodyTooLarge, 413, st.upload->detail);
      return Flush();
    }
    std::optional<UpstreamFailure> failure = st.exchange.CheckUpstream(result);
    if (failure && failure->reset_by_fault) {
      // A reset fault: the stream is reset instead of answered.
      if (st.closed || closed_) return;
      (void)nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id,
                                      NGHTTP2_INTERNAL_ERROR);  // stream is open: cannot fail
      return Flush();
    }
    if (st.closed || closed_) {
      // The client reset the stream (or left) while the primary was answering.
      if (failure) {
        st.exchange.Fail(failure->failure, failure->status, failure->reason, true, "", nullptr);
      } else {
        (void)st.exchange.OnResponseHead(result.response, std::move(body), st.is_head);
        st.exchange.Abort();
      }
      return;
    }
    if (failure) {
      st.answered = false;
      Refuse(st, failure->failure, failure->status, failure->reason);
      return Flush();
    }
    net::HttpResponse& res = result.response;
    const unsigned upstream_version = res.version();
    // A primary's answer that ended with its head (a gRPC trailers-only answer) ends with the
    // head here too: an empty DATA frame after it would make it a different answer.
    const bool has_body = st.exchange.OnResponseHead(res, std::move(body), st.is_head) &&
                          !st.exchange.body()->ended_with_head();
    net::AppendVia(res, upstream_version, "doppel");
    if (has_body) {
      st.body = st.exchange.body();
    } else {
      st.exchange.OnPrimaryDone();
      st.exchange.EndRelay();
      ++finished_;
    }
    Submit(st, res.result_int(), res, has_body);
    Flush();
  }

  void ReadPiece(Stream& st) {
    st.reading = true;
    StreamPtr ptr = streams_.at(st.id);
    st.body->ReadSome([self = this->shared_from_this(), ptr](
                          net::ClientError error, std::string detail, std::string_view piece,
                          bool end) { self->OnPiece(*ptr, error, std::move(detail), piece, end); });
  }

  void OnPiece(Stream& st, net::ClientError error, std::string detail, std::string_view piece,
               bool end) {
    st.reading = false;
    if (st.closed) {  // the client went away mid-body
      if (!st.exchange.primary_done()) st.exchange.Abort();
      st.exchange.EndRelay();
      st.body = nullptr;
      return;
    }
    if (error != net::ClientError::kNone) {
      // The client has the head: resetting the stream tells it the response is incomplete.
      st.exchange.CutByPrimary(error, detail, st.status);
      st.exchange.Abort();
      st.body = nullptr;
      (void)nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id,
                                      NGHTTP2_INTERNAL_ERROR);  // stream is open: cannot fail
      return Flush();
    }
    st.exchange.CopyAside(piece);
    if (end) {
      for (const auto& f : st.body->trailers()) {
        if (!net::IsHopByHop(f.name_string())) {
          st.trailers.emplace_back(AsciiLower(f.name_string()), std::string(f.value()));
        }
      }
    }
    // Before the last piece goes out: the capture never waits for the client.
    if (end && !st.exchange.primary_done()) st.exchange.OnPrimaryDone();
    st.piece.assign(piece);
    st.piece_offset = 0;
    st.piece_end = end;
    if (end) {
      st.exchange.EndRelay();
      st.body = nullptr;
    }
    (void)nghttp2_session_resume_data(session_, st.id);  // the stream is open and deferred
    Flush();
  }

  // The proxy answers the stream itself (a request it refuses, or the primary failed).
  void Refuse(Stream& st, ProxyFailure failure, unsigned status, const std::string& reason) {
    if (st.answered) return;
    st.answered = true;
    std::string request;
    if (opts().log_bodies && failure < ProxyFailure::kUpstreamConnect) {
      request = DescribeRequestForLog(st.request, st.request.body(), rec_.redactor());
    }
    st.exchange.Fail(failure, status, reason,
                     /*head_read=*/failure != ProxyFailure::kHeaderTooLarge, request,
                     &st.request.base());
    http::fields fields;
    fields.set(http::field::content_type, "text/plain; charset=utf-8");
    fields.set(http::field::server, "doppel");
    st.piece = "doppel: " + reason + "\n";
    st.piece_offset = 0;
    st.piece_end = true;
    if (st.is_head) st.piece.clear();
    fields.set(http::field::content_length, std::to_string(st.piece.size()));
    Submit(st, status, fields, !st.is_head);
  }

  // HEADERS for the response (names lower-cased, RFC 9113 8.2.2) and, with `has_body`, its
  // DATA from ReadBody.
  void Submit(Stream& st, unsigned status, const http::fields& fields, bool has_body) {
    st.status = status;
    const unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5) rec_.metrics().requests[cls - 1]->Inc();
    net::H2Fields strings;
    strings.emplace_back(":status", std::to_string(status));
    for (const auto& f : fields) {
      strings.emplace_back(AsciiLower(f.name_string()), std::string(f.value()));
    }
    std::vector<nghttp2_nv> nva = net::H2NameValues(strings);
    nghttp2_data_provider provider{};
    provider.source.ptr = &st;
    provider.read_callback = &Connection::ReadBody;
    // Copies the fields; fails only for a stream nghttp2 closed already (nothing to answer).
    (void)nghttp2_submit_response(session_, st.id, nva.data(), nva.size(),
                                  has_body ? &provider : nullptr);
  }

  Transport socket_;
  Worker& worker_;
  RecorderImpl& rec_;
  const ClientInfo client_;  // the exchanges refer to it
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, StreamPtr> streams_;  // open streams by id
  std::vector<int32_t> waiting_calls_;              // gRPC calls read without END_STREAM
  std::array<char, net::kH2ReadBytes> read_buf_;
  std::string out_;  // the frames being written
  asio::steady_timer idle_timer_;
  asio::steady_timer write_timer_;
  uint64_t resets_ = 0;    // streams the client reset
  uint64_t finished_ = 0;  // responses sent in full
  bool writing_ = false;
  bool in_recv_ = false;  // inside nghttp2_session_mem_recv (Feed)
  bool draining_ = false;
  bool calmed_ = false;  // GOAWAY ENHANCE_YOUR_CALM was submitted
  bool closed_ = false;
};

}  // namespace

void H2Session::Start(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder,
                      ClientInfo client, std::string received) {
  std::make_shared<Connection<tcp::socket>>(std::move(socket), worker, recorder, std::move(client))
      ->Start(std::move(received));
}

void H2Session::StartTls(TlsStream&& stream, Worker& worker, RecorderImpl& recorder,
                         ClientInfo client) {
  std::make_shared<Connection<TlsStream>>(std::move(stream), worker, recorder, std::move(client))
      ->Start("");
}

}  // namespace doppel::recorder
