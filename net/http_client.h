// Async HTTP/1.1 client with a keep-alive connection pool, for one upstream (scheme, host,
// port) and one io_context. Used by the recorder (primary) and the replayer (targets).
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

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  // From starting to send the request to the last byte of the response.
  std::chrono::milliseconds response_timeout{30000};
  // A pooled connection idle for longer is closed instead of reused.
  std::chrono::milliseconds idle_timeout{50000};
  size_t max_idle_connections = 1024;
  uint64_t max_response_body = 1ull << 30;
  uint32_t max_response_header = 64 * 1024;
};

struct TlsClientOptions {
  bool verify = true;   // verify the certificate chain and the host name
  std::string ca_file;  // PEM bundle; empty: the system store
};

// A client TLS context (TLS 1.2+). Share one per process; it is read-only after creation.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(
    const TlsClientOptions& options);

struct ExchangeResult {
  ClientError error = ClientError::kNone;
  std::string detail;       // human-readable reason when error != kNone
  HttpResponse response;    // the final (non-1xx) response when error == kNone
  uint64_t latency_us = 0;  // from starting to send the request to the last response byte
  bool reused_connection = false;
};
using ExchangeCallback = std::function<void(ExchangeResult&&)>;

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
  // `tls` is required for https upstreams and ignored otherwise.
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

  // Closes idle connections and makes later exchanges not return theirs to the pool.
  virtual void Shutdown() = 0;

  virtual PoolStats stats() const = 0;
  virtual const Url& upstream() const = 0;
};
using HttpClientPoolPtr = std::shared_ptr<HttpClientPool>;

}  // namespace doppel::net
