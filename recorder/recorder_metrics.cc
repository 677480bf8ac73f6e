#include "recorder/recorder_metrics.h"

#include <iterator>
#include <string>

namespace doppel::recorder {

namespace {
constexpr const char* kFailureNames[] = {"bad_request",     "header_too_large", "body_too_large",
                                         "request_timeout", "upstream_connect", "upstream_reset",
                                         "upstream_timeout"};
static_assert(std::size(kFailureNames) == static_cast<size_t>(ProxyFailure::kCount));
}  // namespace

const char* FailureName(ProxyFailure f) { return kFailureNames[static_cast<int>(f)]; }

doppel::v1::ProxyError ToProxyError(ProxyFailure f) {
  switch (f) {
    case ProxyFailure::kBadRequest:
    case ProxyFailure::kHeaderTooLarge:
    case ProxyFailure::kRequestTimeout:
      return doppel::v1::PROXY_ERROR_BAD_REQUEST;
    case ProxyFailure::kBodyTooLarge:
      return doppel::v1::PROXY_ERROR_BODY_TOO_LARGE;
    case ProxyFailure::kUpstreamConnect:
      return doppel::v1::PROXY_ERROR_UPSTREAM_CONNECT;
    case ProxyFailure::kUpstreamReset:
      return doppel::v1::PROXY_ERROR_UPSTREAM_RESET;
    case ProxyFailure::kUpstreamTimeout:
      return doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT;
    case ProxyFailure::kCount:
      break;
  }
  return doppel::v1::PROXY_ERROR_NONE;
}

RecorderMetrics::RecorderMetrics(net::MetricsRegistry& r) {
  static constexpr const char* kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 0; i < 5; ++i) {
    requests[i] =
        r.AddCounter("doppel_requests_total", "Requests answered, by status class of the answer.",
                     std::string("class=\"") + kClasses[i] + "\"");
  }
  sampled = r.AddCounter("doppel_requests_sampled_total",
                         "Requests selected for capture (after match rules and sampling).");
  unmatched = r.AddCounter("doppel_requests_unmatched_total",
                           "Requests that matched no capture rule (rules in force only).");
  for (int i = 0; i < static_cast<int>(ProxyFailure::kCount); ++i) {
    errors[i] = r.AddCounter("doppel_proxy_errors_total",
                             "Requests the proxy answered itself or cut mid-response, by reason.",
                             std::string("reason=\"") + kFailureNames[i] + "\"");
  }
  for (ProxyFailure f : {ProxyFailure::kUpstreamReset, ProxyFailure::kUpstreamTimeout}) {
    cut[static_cast<int>(f)] = r.AddCounter(
        "doppel_responses_cut_total",
        "Responses cut mid-body because the primary failed or stalled (the client connection "
        "was closed), by reason.",
        std::string("reason=\"") + FailureName(f) + "\"");
  }
  accepted = r.AddCounter("doppel_connections_accepted_total", "Client connections accepted.");
  rejected = r.AddCounter("doppel_connections_rejected_total",
                          "Client connections closed at once: over --max-connections.");
  active = r.AddGauge("doppel_connections_active", "Open client connections.");
  request_bytes = r.AddCounter("doppel_request_body_bytes_total",
                               "Request body bytes forwarded to the primary.");
  response_bytes =
      r.AddCounter("doppel_response_body_bytes_total", "Response body bytes returned to clients.");
  upstream_reused = r.AddCounter("doppel_upstream_reused_total",
                                 "Primary exchanges on a pooled keep-alive connection.");
  latency = r.AddHistogram("doppel_primary_latency_seconds",
                           "Primary latency: request sent to last response byte read.");
  h2_connections = r.AddCounter("doppel_h2_connections_total",
                                "Client connections that spoke HTTP/2 (h2c or h2).");
  h2_streams = r.AddGauge("doppel_h2_streams_active", "HTTP/2 streams in flight.");
  static constexpr const char* kH2Closed =
      "HTTP/2 connections closed for what the client sent, by reason.";
  h2_closed_protocol =
      r.AddCounter("doppel_h2_connections_closed_total", kH2Closed, "reason=\"protocol\"");
  h2_closed_rapid_reset =
      r.AddCounter("doppel_h2_connections_closed_total", kH2Closed, "reason=\"rapid_reset\"");
  h2_closed_flood =
      r.AddCounter("doppel_h2_connections_closed_total", kH2Closed, "reason=\"flood\"");
  tls_handshake_failed =
      r.AddCounter("doppel_tls_handshakes_failed_total",
                   "TLS handshakes on the listener that failed or timed out (--tls-cert).");
  websockets = r.AddCounter("doppel_websockets_total",
                            "WebSocket connections relayed (the primary answered 101).");
  websockets_open = r.AddGauge("doppel_websockets_open", "WebSocket connections open now.");
}

uint64_t RecorderMetrics::errors_total() const {
  uint64_t n = 0;
  for (auto* c : errors) n += c->value();
  return n;
}

}  // namespace doppel::recorder
