// One request's trip through the capture proxy, whichever protocol the client spoke: match
// rules and sampling, the envelope, the request as forwarded (hop-by-hop headers stripped,
// forwarding headers added), the mirror copies, the primary's answer and its capture. The
// client sessions parse and write (proxy_session.cc for HTTP/1.x, h2_session.cc for HTTP/2);
// this is the part they share, so both behave alike. Internal to recorder/.
//
// Thread safety: none; an Exchange lives on its worker's thread.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "doppel/v1/envelope.pb.h"
#include "net/fault.h"
#include "net/http_client.h"
#include "net/match.h"
#include "recorder/recorder_metrics.h"

namespace doppel::recorder {

class RecorderImpl;
class MirroredRequest;
class MirrorUpload;
struct Worker;
struct Candidate;
struct LivePlan;

// The client connection as the envelopes record it.
struct ClientInfo {
  std::string ip = "unknown";
  std::string addr;  // "ip:port"
  std::string scheme = "http";
  std::string protocol;     // "http/1.1", "h2c", "h2"
  std::string tls_version;  // TLS only, e.g. "TLSv1.3"
  std::string alpn;         // TLS only: the agreed ALPN protocol, "" for none
  // --tls-client-ca only: the verified client certificate's subject (RFC 2253), "" for none.
  std::string client_cert_subject;
};

// What the proxy answers itself when the primary failed before its response head.
struct UpstreamFailure {
  ProxyFailure failure;
  unsigned status;  // 502 or 504
  std::string reason;
  // A reset fault (--fault reset): nothing is answered; the client's connection is closed
  // (HTTP/2: the stream is reset). Not a proxy error.
  bool reset_by_fault = false;
};

class Exchange {
 public:
  Exchange(Worker& worker, RecorderImpl& recorder, const ClientInfo& client);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Match rules, then sampling; on a hit, starts the envelope with the request line. With
  // --fault, also draws the request's faults. `view` reads the request's method, target and
  // headers; `version` is the client's (11, 20, ...). `view` gets the client's certificate
  // subject here (ClientInfo), for the match rules.
  void DecideCapture(net::RequestView view, unsigned version, uint64_t arrival_us);
  bool capturing() const { return envelope_ != nullptr; }

  // Forwards the complete request to the primary and calls `done` with its response head.
  // `req` is the request as the client sent it (`client_version`: 10, 11 or 20); it goes out
  // as HTTP/1.1 without hop-by-hop headers, with forwarding headers, a Host, framing
  // (`chunked`, or a Content-Length when the client sent one or there is a body), and is
  // copied to the mirrors. With --log-bodies `logged_request` describes it for failure lines.
  // Faults drawn for it apply here: a delay holds it (on a timer that dies with the
  // exchange), an abort or a reset answers `done` without the primary (and without a capture
  // or a mirror copy), a bandwidth or truncate fault wraps the primary's body reader.
  // `websocket`: the request asks to switch to WebSocket (net::IsWebSocketUpgrade, an
  // HTTP/1.1 GET): it keeps "Connection: Upgrade" and "Upgrade: websocket", and goes to no
  // mirror (a mirror could not relay the connection).
  // `upload`: the body is not in `req` but streams from the client (over --request-buffer):
  // `req` keeps the client's Content-Length (or goes chunked), the pieces reach the capture
  // through CopyRequestAside as the pool reads them, and so do the mirrors' (MirrorUpload),
  // which go out once the body is complete.
  void Forward(net::HttpRequest&& req, unsigned client_version, bool chunked, bool had_length,
               bool websocket, std::string logged_request, net::StreamCallback done,
               net::BodySourcePtr upload = nullptr);
  // A piece of a streamed request body, on its way to the primary (`end`: the last): counted,
  // copied into the capture up to --capture-body-limit and into the mirrors' copy.
  void CopyRequestAside(std::string_view piece, bool end);

  // The failure to answer when the primary gave no response head; nullopt when it did.
  // Counts a reused upstream connection.
  std::optional<UpstreamFailure> CheckUpstream(const net::ExchangeResult& result);

  // The primary's response head: hop-by-hop headers stripped from `res`, its capture and
  // mirror copy started. `is_head`: the request was HEAD. Returns whether a body follows
  // (false for HEAD, 1xx, 204, 304). The body is read through body().
  bool OnResponseHead(net::HttpResponse& res, net::BodyReaderPtr body, bool is_head);
  net::BodyReader* body() { return body_.get(); }

  // A piece of the primary's body, relayed to the client: copied into the capture (up to
  // --capture-body-limit) and the mirror copy, counted.
  void CopyAside(std::string_view piece);
  // The primary's response ended: latency counted, the mirrors and the capture get it.
  void OnPrimaryDone();
  bool primary_done() const { return primary_done_; }
  // Drops the primary's body reader (before the body's end: closes its connection).
  void EndRelay() { body_.reset(); }

  // The primary failed or stalled mid-body (`status`: the response's, already sent): counted,
  // logged, recorded as the envelope's error. Follow with Abort().
  void CutByPrimary(net::ClientError error, const std::string& detail, unsigned status);
  // The relay ends before the body did: the mirrors are told, what was read is captured as
  // truncated, the body reader dropped.
  void Abort();

  // The primary answered 101 to a WebSocket upgrade and the proxy relays the connection
  // (after OnResponseHead): the latency to the 101 is counted, and with a capture the
  // messages are recorded as they go by, up to net::kWebSocketMessagesKept each way.
  void StartWebSocket();
  // Bytes relayed one way over the WebSocket connection: counted and read for messages, when
  // captured.
  void OnWebSocketBytes(bool from_client, std::string_view bytes);
  // The connection ended (`how`: see WebSocketSession.ended): the envelope is written.
  void EndWebSocket(std::string how);

  // The proxy answers the request itself: counted, logged (`describe_request` says what the
  // request was when it was not forwarded), the envelope recorded with the error. A failure
  // before the request head was read (`head_read` false) is captured only at random, without
  // rules. `partial_headers`: the headers read so far, kept when the request is incomplete.
  void Fail(ProxyFailure failure, unsigned status, const std::string& reason, bool head_read,
            const std::string& describe_request, const boost::beast::http::fields* partial_headers);

 private:
  void StartEnvelope(uint64_t arrival_us);
  void DropEnvelope();
  // The envelope, on the heap, for the capture sinks.
  doppel::v1::Envelope TakeEnvelope();
  void FinishCapture(uint64_t latency_us);
  void SendToPrimary(net::HttpRequest&& req, net::BodySourcePtr upload, net::StreamCallback done);
  // The sampling decision on the finished envelope (error and response filled in): its
  // inclusion probability, and with coverage sampling its class, set. False when coverage
  // sampling drops it.
  bool KeepEnvelope();

  // The configuration this request runs under, taken when it is first needed (a reload while
  // the connection idles applies to its next request).
  const LivePlan& plan();

  Worker& worker_;
  RecorderImpl& rec_;
  const LivePlan* plan_ = nullptr;
  const ClientInfo& client_;
  // The envelope being built, when sampled: in `owned_`, or with coverage sampling (which
  // builds one for every candidate and drops most) on the arena of `candidate_`, taken from
  // the worker's free candidates and given back reset; the header fields wait in the
  // candidate until KeepEnvelope keeps it.
  doppel::v1::Envelope* envelope_ = nullptr;
  std::optional<doppel::v1::Envelope> owned_;
  std::unique_ptr<Candidate> candidate_;
  std::shared_ptr<MirroredRequest> mirrored_;    // the mirrors the request went to
  std::unique_ptr<MirrorUpload> mirror_upload_;  // a streamed body, held for the mirrors
  std::string logged_request_;                   // --log-bodies: the request, described
  net::BodyReaderPtr body_;
  std::optional<net::HttpResponse> mirror_copy_;  // with mirrors: head and first body bytes
  net::FaultPlan fault_;                          // --fault: this request's faults
  std::unique_ptr<boost::asio::steady_timer> fault_delay_;  // a delay fault's timer
  std::chrono::steady_clock::time_point head_time_;
  uint64_t request_body_size_ = 0;  // a streamed request body's bytes so far
  uint64_t body_size_ = 0;          // body bytes relayed so far
  bool body_cut_ = false;           // the relay ended before the body did
  bool primary_done_ = false;       // OnPrimaryDone ran
  bool event_stream_ = false;
  uint64_t draw_ = 0;  // coverage sampling: the key's hash or a random number
  struct WebSocketCapture;
  std::unique_ptr<WebSocketCapture> websocket_;  // a relayed WebSocket connection, captured
};

}  // namespace doppel::recorder
