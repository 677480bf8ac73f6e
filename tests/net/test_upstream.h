// Test helpers: a small blocking HTTP/1.1 upstream (one thread per connection) that records
// what it received, and blocking clients for well-formed and raw requests. Loopback only,
// port 0.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"

namespace doppel::testing {

struct ReceivedRequest {
  std::string method;
  std::string target;
  unsigned version = 11;
  std::vector<std::pair<std::string, std::string>> headers;  // in order
  std::string body;
  bool chunked = false;  // arrived with Transfer-Encoding: chunked
  uint64_t connection_id = 0;
  // First value of a header (case-insensitive), "" if absent.
  std::string Header(const std::string& name) const;
  bool HasHeader(const std::string& name) const;
};

// Endpoints (query parameters in brackets):
//   /chunked[n]        200, chunked body of n bytes ('c')
//   /size[n]           200, body of n bytes ('s') with Content-Length
//   /slow[ms]          sleeps ms, then 200 "slow"
//   /status[code]      answers with that status and body "status"
//   /reset             closes the connection without answering
//   /interim           sends "100 Continue" and a 102 first, then 200 "final"
//   /hop               200 with hop-by-hop headers and Set-Cookie: upstream-secret
//   /trailers          200, chunked "hello" with the trailers X-Checksum: sha-abc and
//                      Keep-Alive: timeout=5
//   anything else      200, echoes the request body
// HEAD gets the GET headers (Content-Length included) and no body.
class TestUpstream {
 public:
  TestUpstream();
  ~TestUpstream();
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<ReceivedRequest> requests() const;
  uint64_t connections() const { return connections_.load(); }
  void Stop();

  // Optional behaviour; may be changed while serving (thread-safe).
  // Consulted for each request before the endpoints above: a response it returns is sent
  // (Content-Length set from the body), nullopt falls through to the endpoints. Runs on the
  // connection's thread, so it may sleep to imitate a slow server.
  using Handler = std::function<std::optional<net::HttpResponse>(const ReceivedRequest&)>;
  void SetHandler(Handler handler);
  // A black hole: each request is read and recorded, never answered; the connection is
  // held (and whatever else arrives discarded) until the peer closes it or Stop().
  void SetNeverAnswer(bool on) { never_answer_ = on; }

 private:
  void AcceptLoop();
  void Serve(int fd, uint64_t id);

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<bool> never_answer_{false};
  mutable std::mutex mu_;
  Handler handler_;  // guarded by mu_
  std::vector<ReceivedRequest> requests_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

// A TCP socket listening on 127.0.0.1 at a free port (SO_REUSEADDR, `backlog`); sets *port.
// -1 on failure.
int ListenOnLoopback(int backlog, uint16_t* port);
// A TCP connection to 127.0.0.1:`port` with TCP_NODELAY; -1 when the connect fails.
int ConnectToLoopback(uint16_t port);

// Blocking keep-alive client. Errors become a response with status 0 and the message in the
// body, so tests can assert on them.
class TestClient {
 public:
  explicit TestClient(uint16_t port);
  ~TestClient();
  net::HttpResponse Send(net::HttpRequest request, bool head = false);
  bool connected() const { return fd_ >= 0; }
  // Writes raw bytes.
  bool Write(const std::string& raw);
  // Reads until the peer closes or `timeout_ms` passes; returns what arrived.
  std::string ReadAll(int timeout_ms = 5000);
  // Reads until `text` appears or timeout; returns what arrived.
  std::string ReadUntil(const std::string& text, int timeout_ms = 5000);
  bool PeerClosed(int timeout_ms = 2000);

 private:
  int fd_ = -1;
  std::string pending_;  // bytes read but not yet consumed
};

// send() until everything is written or the peer is gone; false then.
bool SendAll(int fd, const std::string& data);

// A port nothing listens on on 127.0.0.1: bound and never listened on, and kept bound for the
// life of the process (connects are refused; no other socket can take it).
uint16_t DeadPort();

// One request on a new connection.
net::HttpResponse Fetch(uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body = "",
                        std::vector<std::pair<std::string, std::string>> headers = {});

}  // namespace doppel::testing
