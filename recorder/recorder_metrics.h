// The capture proxy's metrics (`/metrics` on the admin endpoint) and the reasons it answers a
// request itself. Registered once per recorder; updated from every proxy thread.
#pragma once

#include <cstdint>

#include "doppel/v1/envelope.pb.h"
#include "net/metrics.h"

namespace doppel::recorder {

// Why the proxy answered itself; indexes RecorderMetrics::errors.
enum class ProxyFailure {
  kBadRequest,
  kHeaderTooLarge,
  kBodyTooLarge,
  kRequestTimeout,
  kUpstreamConnect,
  kUpstreamReset,
  kUpstreamTimeout,
  kCount
};

// The `reason` label of doppel_proxy_errors_total, e.g. "bad_request".
const char* FailureName(ProxyFailure f);

// The error recorded in the envelope of a request the proxy answered itself.
doppel::v1::ProxyError ToProxyError(ProxyFailure f);

struct RecorderMetrics {
  // Registers every series in `r`, which must outlive this.
  explicit RecorderMetrics(net::MetricsRegistry& r);
  uint64_t errors_total() const;

  net::Counter* requests[5];  // by status class of the answer: 1xx .. 5xx
  net::Counter* sampled;
  net::Counter* unmatched;
  // The stored / dropped counters are per sink (RecorderImpl registers them).
  net::Counter* errors[static_cast<int>(ProxyFailure::kCount)];
  // Responses cut mid-body (the head had gone to the client, so the client connection was
  // closed): by reason, kUpstreamReset or kUpstreamTimeout (the others stay 0 and unregistered).
  net::Counter* cut[static_cast<int>(ProxyFailure::kCount)] = {};
  net::Counter* accepted;
  net::Counter* rejected;
  net::Gauge* active;
  net::Counter* request_bytes;
  net::Counter* response_bytes;
  net::Counter* upstream_reused;
  net::Histogram* latency;
  // HTTP/2 client connections (recorder/h2_session.cc).
  net::Counter* h2_connections;
  net::Gauge* h2_streams;  // streams open now (requests in flight over HTTP/2)
  // Connections closed for what the client sent: a malformed frame or preface
  // (reason="protocol"), too many streams reset by the client (reason="rapid_reset", GOAWAY
  // ENHANCE_YOUR_CALM), or frames that make the proxy answer faster than the client reads its
  // answers, such as a PING or SETTINGS flood (reason="flood").
  net::Counter* h2_closed_protocol;
  net::Counter* h2_closed_rapid_reset;
  net::Counter* h2_closed_flood;
  net::Counter* tls_handshake_failed;  // --tls-cert: handshakes that failed or timed out
  // WebSocket connections relayed after a 101 (recorder/proxy_session.cc): all of them, and
  // those open now.
  net::Counter* websockets;
  net::Gauge* websockets_open;
};

}  // namespace doppel::recorder
