// doppel-echo: a deterministic demo upstream (a small JSON shop API) for the demo,
// the integration tests and the benchmarks. Endpoints and the v2 behaviour changes are
// documented in shop.h and docs/doppel-echo.md.
//
// This header is free of Boost on purpose: the Beast/Asio server code lives in echo_server.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"

namespace doppel::echo {

// Which build of the API to imitate. kV2 carries exactly three deliberate regressions.
enum class Variant { kV1, kV2 };

struct EchoOptions {
  std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 0;               // 0 = an ephemeral port; see EchoServer::port()
  int threads = 1;                 // one io_context per thread
  Variant variant = Variant::kV1;
  bool noise = false;  // volatile fields and headers that differ on every response
  std::chrono::microseconds latency{0};         // added before each response; at most 1h
  std::chrono::microseconds latency_jitter{0};  // delay is uniform in latency ± jitter
  uint64_t seed = 1;  // seeds the generated catalogue; the same seed gives the same data
  uint64_t max_request_body = 8u << 20;  // larger bodies are answered 413
  bool stateful = false;                 // login, orders, CSRF form and cookie session (stateful.h)
  std::string jwt_secret;  // with stateful: HS256 secret of GET /jwt/me ("": no such endpoint)
};

// A running server. Thread-safe: Stop() may be called from any thread (also a signal
// handling thread), any number of times.
class EchoServer {
 public:
  // Binds and starts serving on options.threads threads before returning. Fails with
  // InvalidArgument for a bad host or thread count, Unavailable when the bind fails.
  static Result<std::unique_ptr<EchoServer>> Start(const EchoOptions& options);

  virtual ~EchoServer() = default;

  // The bound port (the real one when options.port was 0).
  virtual uint16_t port() const = 0;

  // Stops accepting, closes every connection and lets the worker threads return.
  virtual void Stop() = 0;

  // Blocks until the worker threads have returned (after Stop()).
  virtual void Wait() = 0;
};

}  // namespace doppel::echo
