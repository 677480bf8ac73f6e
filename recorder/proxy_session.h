// One client connection of the capture proxy: reads each request, checks it, forwards it to
// the primary through the worker's pool (and its mirror lane), answers the client and
// captures the exchange when sampled. All Beast HTTP server templates of the proxy are
// instantiated in proxy_session.cc.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace doppel::recorder {

// A client connection over TLS (--tls-cert), the handshake done.
using TlsStream = boost::asio::ssl::stream<boost::beast::tcp_stream>;

class RecorderImpl;
struct Worker;

class ProxySession {
 public:
  // Serves `socket` on `worker`'s thread until the client leaves, a timeout, or shutdown.
  // The session is in worker.sessions (and counted in live_sessions) while it lives.
  // REQUIRES: called on the worker's thread; `recorder` counts the connection as open
  // already (the session gives it back when it ends).
  static void Start(boost::asio::ip::tcp::socket&& socket, Worker& worker, RecorderImpl& recorder);
  // As Start, over TLS: the handshake first (bounded by request_timeout), then HTTP/2 when
  // ALPN chose "h2" (H2Session), else HTTP/1.x. A failed handshake closes the connection
  // (counted in doppel_tls_handshakes_failed_total). `tls` outlives the recorder's threads.
  static void StartTls(boost::asio::ip::tcp::socket&& socket, boost::asio::ssl::context& tls,
                       Worker& worker, RecorderImpl& recorder);

  // Shutdown: a connection waiting for its next request is closed now; one in the middle of
  // a request finishes it and closes afterwards. REQUIRES: on the worker's thread.
  virtual void OnDrain() = 0;
  // Shutdown, once the drain timeout has passed: the connection is closed now, mid-request or
  // not, and what was in flight unwinds as it does when a client leaves (a streamed upload's
  // pool exchange included, which the session would otherwise keep waiting for its next
  // piece). REQUIRES: on the worker's thread.
  virtual void OnCut() = 0;

 protected:
  virtual ~ProxySession() = default;
};

}  // namespace doppel::recorder
