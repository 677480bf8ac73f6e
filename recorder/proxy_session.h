// One client connection of the capture proxy: reads each request, checks it, forwards it to
// the primary through the worker's pool (and its mirror lane), answers the client and
// captures the exchange when sampled. All Beast HTTP server templates of the proxy are
// instantiated in proxy_session.cc.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace doppel::recorder {

class RecorderImpl;
struct Worker;

class ProxySession {
 public:
  // Serves `socket` on `worker`'s thread until the client leaves, a timeout, or shutdown.
  // The session is in worker.sessions (and counted in live_sessions) while it lives.
  // REQUIRES: called on the worker's thread; `recorder` counts the connection as open
  // already (the session gives it back when it ends).
  static void Start(boost::asio::ip::tcp::socket&& socket, Worker& worker, RecorderImpl& recorder);

  // Shutdown: a connection waiting for its next request is closed now; one in the middle of
  // a request finishes it and closes afterwards. REQUIRES: on the worker's thread.
  virtual void OnDrain() = 0;

 protected:
  virtual ~ProxySession() = default;
};

}  // namespace doppel::recorder
