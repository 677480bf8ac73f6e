// Async HTTP client for one upstream (scheme, host, port) and one io_context, used by the
// recorder (primary, mirrors) and the replayer (targets): HTTP/1.1 with a keep-alive
// connection pool for http:// and https://, HTTP/2 over one multiplexed connection for h2c://
// and, over TLS, h2:// (net/h2_client.cc). Callers see one interface and the same results for
// all.
//
// https:// lets the upstream choose: the TLS handshake offers h2 and http/1.1 by ALPN
// (RFC 7301), as browsers do. When the upstream chooses h2, the exchange goes over HTTP/2
// instead (nothing was sent on that connection), and so does every later one of the pool but
// an upgrade (WebSocket: HTTP/2 has no Upgrade, so its handshake offers only HTTP/1.1) and a
// SendShaped one; the exchanges in flight before the switch each spend one TLS handshake on
// it. The pool follows the upstream both ways: when a later HTTP/2 connection's handshake
// finds it choosing http/1.1 (a rolling deploy, a balancer in front of both kinds), the
// exchanges waiting for that connection and every later one go over HTTP/1.1 again, until a
// new connection's handshake chooses h2.
//
// Thread safety: none. A pool belongs to one io_context and is used only from the thread
// that runs it; create one pool per thread, so the hot path takes no lock.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/enum_names.h"
#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "net/url.h"

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}  // namespace ssl
}  // namespace boost::asio

namespace doppel::net {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// A response as recorded: status, reason, version, headers (CopyHeaders), body and its size.
// Replaces what *out held. The rvalue overload moves the body.
void ToProto(const HttpResponse& in, doppel::v1::HttpResponse* out);
void ToProto(HttpResponse&& in, doppel::v1::HttpResponse* out);

enum class ClientError {
  kNone = 0,
  kConnect,      // resolve, connect or TLS handshake failed (refused, unreachable, bad cert)
  kReset,        // the connection broke while sending or receiving
  kBadResponse,  // the upstream sent something that is not HTTP/1.x
  kTooLarge,     // the response body is over ClientOptions::max_response_body
  kTimeout,      // connect_timeout or response_timeout expired
  kMaxValue = kTimeout,
};
// "none", "connect", "reset", "bad-response", "too-large", "timeout": how run results and
// reports name a failed exchange.
inline constexpr EnumNames<ClientError, 6> kClientErrorNames{
    {"none", "connect", "reset", "bad-response", "too-large", "timeout"}, "error"};

// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 9.2.2): what a client may send again
// when a connection broke before any answer.
bool IsIdempotent(std::string_view method);

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  // From starting to send the request to the last byte of the response; 0: no limit.
  std::chrono::milliseconds response_timeout{30000};
  // SendStreaming() only: the longest wait for the next byte from the upstream (for the
  // response head, then between body pieces); 0: no limit. response_timeout still bounds the
  // whole exchange when set.
  std::chrono::milliseconds read_idle_timeout{60000};
  // A pooled connection idle for longer is closed instead of reused.
  std::chrono::milliseconds idle_timeout{50000};
  size_t max_idle_connections = 1024;
  uint64_t max_response_body = 1ull << 30;
  uint32_t max_response_header = 64 * 1024;
};

struct TlsClientOptions {
  bool verify = true;   // verify the certificate chain and the host name
  std::string ca_file;  // PEM bundle; empty: the system store
  // mTLS (both or neither): the client certificate chain (PEM, the certificate first) and its
  // private key, presented to servers that ask for one. The key file must not be readable by
  // group or others (CheckPrivateKeyFile, net/tls_server.h).
  std::string cert_file;
  std::string key_file;
};

// A client TLS context (TLS 1.2+). Share one per process; it is read-only after creation.
// Errors (InvalidArgument) name the file and what is wrong: a CA or certificate that does not
// load, a client certificate that expired or is not yet valid, a key that does not match it or
// that group or others may read; callers add which flag gave them.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(
    const TlsClientOptions& options);

struct ExchangeResult {
  ClientError error = ClientError::kNone;
  std::string detail;     // human-readable reason when error != kNone
  HttpResponse response;  // the final (non-1xx) response when error == kNone
  // Fields the upstream sent after the body (HTTP/2 trailers: gRPC's grpc-status; an
  // HTTP/1.1 chunked body's trailer section, without framing and hop-by-hop fields); Send()
  // only, SendStreaming() has BodyReader::trailers().
  boost::beast::http::fields trailers;
  uint64_t latency_us = 0;  // from starting to send the request to the last response byte
  bool reused_connection = false;
};
using ExchangeCallback = std::function<void(ExchangeResult&&)>;

// The connection of an exchange the upstream answered with 101 Switching Protocols (a
// WebSocket handshake): raw bytes both ways from then on, plain or TLS, never pooled. One read
// and one write may be outstanding at a time; handlers run on the pool's io_context.
class Tunnel {
 public:
  using Handler = std::function<void(const boost::system::error_code& ec, size_t n)>;
  virtual ~Tunnel() = default;
  // The bytes the upstream sent after the 101's head that were read along with it; the
  // first call takes them, later calls return "".
  virtual std::string TakeReceived() = 0;
  // Reads some bytes into [data, data + size); `n` read, or an error (eof when the upstream
  // closed). No timeout: the caller bounds idleness.
  virtual void ReadSome(char* data, size_t size, Handler done) = 0;
  // Writes all of [data, data + size).
  virtual void Write(const char* data, size_t size, Handler done) = 0;
  // Tells the upstream no more bytes come (TCP: shutdown of the sending side; TLS cannot
  // half-close, so it closes).
  virtual void ShutdownSend() = 0;
  // Closes the connection; outstanding operations end with operation_aborted.
  virtual void Close() = 0;
};
using TunnelPtr = std::unique_ptr<Tunnel>;

// The body of a response read by SendStreaming(): read piece by piece as the caller asks for
// it, so a caller that forwards each piece before asking for the next one bounds its memory
// and lets a slow reader slow the upstream down. Dropping the reader before the body ended
// closes the upstream connection.
class BodyReader {
 public:
  // Bytes of the body read at most per piece (the reader's buffer).
  static constexpr size_t kPieceBytes = 256 * 1024;
  // `piece` is valid until the next ReadSome() or the reader is dropped. `end`: the body is
  // complete (the last piece may be empty); the connection went back to the pool when both
  // sides allow keep-alive. On an error the exchange is over and the connection closed.
  using Callback =
      std::function<void(ClientError error, std::string detail, std::string_view piece, bool end)>;

  virtual ~BodyReader() = default;
  // Reads the next piece and calls `done` exactly once, on the pool's io_context, never from
  // inside ReadSome. REQUIRES: the previous callback ran, and it reported neither end nor error.
  virtual void ReadSome(Callback done) = 0;
  // From starting to send the request to the last byte read so far.
  virtual uint64_t latency_us() const = 0;
  // The fields sent after the body (HTTP/2 trailers, an HTTP/1.1 chunked trailer section);
  // complete once a ReadSome reported `end`, empty before and when there were none.
  virtual const boost::beast::http::fields& trailers() const = 0;
  // True when the next ReadSome() needs nothing more from the upstream (the body ended, or
  // bytes of it arrived with the head): a caller can then send the head and the first piece
  // together.
  virtual bool ready() const = 0;
  // True when the response ended with its head and has no body at all (HTTP/2: HEADERS with
  // END_STREAM, as in a gRPC trailers-only answer), so a relay can end its own head the same
  // way instead of sending an empty body. HTTP/1.1: false (framing says it).
  virtual bool ended_with_head() const { return false; }
  // After a 101 head (the request asked to upgrade, and the upstream agreed): the connection,
  // taken over by the caller; the reader reads nothing after. nullptr for any other response,
  // and from an HTTP/2 upstream.
  virtual TunnelPtr TakeTunnel() { return nullptr; }
};
using BodyReaderPtr = std::unique_ptr<BodyReader>;

// The body of a request sent by SendUpload(): the pool asks for the next piece only after
// the previous one was written upstream, so an upload goes no faster than the upstream takes
// it and memory stays one piece (the proxy's client connection is such a source).
class BodySource {
 public:
  // `piece` is valid until the next ReadSome() or the source is dropped; `end`: the body is
  // complete with it (the last piece may be empty). An error: the body cannot be had (the
  // client left, stalled, or sent a body that is malformed or too large), and the exchange
  // fails with it.
  using Callback = BodyReader::Callback;
  virtual ~BodySource() = default;
  // Calls `done` exactly once, possibly from inside ReadSome. REQUIRES: the previous callback
  // ran, and it reported neither end nor error.
  virtual void ReadSome(Callback done) = 0;
};
using BodySourcePtr = std::unique_ptr<BodySource>;

// `head.response` holds the final response's head (empty body) when error == kNone, and then
// `body` reads its body; latency_us is the time to the head.
using StreamCallback = std::function<void(ExchangeResult&& head, BodyReaderPtr body)>;

// A request sent badly on purpose, as a misbehaving client would (`doppel replay --fault`,
// docs/chaos.md). The kinds combine: a throttled request can also be truncated.
struct RequestShape {
  // The request's bytes (head, then body) go out no faster than this, in slices a tenth of a
  // second's worth apart; 0: at once.
  uint64_t bytes_per_second = 0;
  // Half the body is written (no body: half the head), then the connection is reset.
  bool truncate = false;
  // The whole request is written, then the connection is reset before the answer is read.
  bool reset = false;
  bool any() const { return bytes_per_second != 0 || truncate || reset; }
};
// The details of the kReset a truncated or reset SendShaped() ends with.
inline constexpr std::string_view kRequestTruncatedByFault =
    "fault injected: truncate (half the request written, then the connection reset)";
inline constexpr std::string_view kRequestResetByFault =
    "fault injected: reset (the request written, then the connection reset before the answer)";

struct PoolStats {
  uint64_t connections_opened = 0;
  uint64_t exchanges = 0;
  uint64_t reused = 0;   // exchanges that ran on a pooled connection
  uint64_t retried = 0;  // exchanges retried once after a pooled connection turned out closed
  size_t idle = 0;
  size_t active = 0;
};

class HttpClientPool {
 public:
  // `tls` is required for https and h2 upstreams and ignored otherwise.
  static Result<std::shared_ptr<HttpClientPool>> Create(
      boost::asio::io_context& io, Url upstream, ClientOptions options,
      std::shared_ptr<boost::asio::ssl::context> tls);

  virtual ~HttpClientPool() = default;

  // Sends `request` as given (target, Host and framing are the caller's: call
  // prepare_payload() or set chunked()) and calls `done` exactly once, on the pool's
  // io_context, never from inside Send. A connection goes back to the pool only after its
  // response was read whole and both sides allow keep-alive. When a pooled connection turns
  // out to have been closed by the upstream before any response byte, the exchange is
  // retried once on a new connection (for idempotent methods, or when the request could not
  // be written at all). A non-idempotent request only goes out on a pooled connection
  // that a liveness probe found open, since it is not retried.
  virtual void Send(HttpRequest request, ExchangeCallback done) = 0;

  // As Send(), but `done` gets the response head as soon as it was read, and a reader for
  // the body (see BodyReader). Timeouts: read_idle_timeout between bytes, response_timeout
  // (when set) for the whole exchange.
  virtual void SendStreaming(HttpRequest request, StreamCallback done) = 0;

  // As SendStreaming(), with the body read from `body` while it is written: `head` is the
  // request without its body, framed by a Content-Length or as chunked (the pieces are
  // chunked as they go). An upload is never retried, so it goes out on a new connection or
  // a pooled one that a liveness probe found open. An HTTP/2 pool reads the body whole
  // before it sends the request (the caller bounds it).
  virtual void SendUpload(HttpRequest head, BodySourcePtr body, StreamCallback done) = 0;

  // As Send(), with the request written as `shape` says, on a connection of its own that is
  // never pooled nor retried. HTTP/1.x only: an h2c pool fails the exchange with kConnect.
  virtual void SendShaped(HttpRequest request, RequestShape shape, ExchangeCallback done) = 0;

  // Closes idle connections and makes later exchanges not return theirs to the pool.
  virtual void Shutdown() = 0;

  virtual PoolStats stats() const = 0;
  virtual const Url& upstream() const = 0;
};
using HttpClientPoolPtr = std::shared_ptr<HttpClientPool>;

}  // namespace doppel::net
