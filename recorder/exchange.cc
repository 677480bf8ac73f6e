#include "recorder/exchange.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>

#include "base/strings.h"
#include "diff/request_class.h"
#include "net/headers.h"
#include "net/websocket_frames.h"
#include "recorder/mirror.h"
#include "recorder/recorder_impl.h"
#include "recorder/worker.h"

namespace doppel::recorder {

namespace {

namespace http = boost::beast::http;

constexpr int kMaxStreamChunks = 1024;  // StreamChunk entries per envelope

void FillBody(const std::string& body, uint64_t limit, std::string* out, bool* truncated,
              uint64_t* size) {
  *size = body.size();
  *truncated = body.size() > limit;
  out->assign(body, 0, std::min<uint64_t>(limit, body.size()));
}

void AppendUpTo(std::string_view piece, uint64_t limit, std::string* out) {
  if (out->size() < limit) out->append(piece.substr(0, limit - out->size()));
}

net::RequestView ViewOf(const net::HttpRequest& req, std::string_view client_cert_subject) {
  return {req.method_string(), req.target(),
          [&req](std::string_view name) -> std::optional<std::string_view> {
            auto it = req.find(name);
            if (it == req.end()) return std::nullopt;
            return it->value();
          },
          client_cert_subject};
}

}  // namespace

// The capture of a relayed WebSocket connection: a frame reader each way, and the envelope's
// WebSocketSession being filled.
struct Exchange::WebSocketCapture {
  WebSocketCapture(uint64_t limit, doppel::v1::WebSocketSession* out)
      : from_client(limit, /*masked=*/true), from_primary(limit, /*masked=*/false), session(out) {}
  net::WebSocketFrameReader from_client;
  net::WebSocketFrameReader from_primary;
  doppel::v1::WebSocketSession* session;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int kept[2] = {0, 0};  // messages kept, [from_client]
  uint64_t latency_us = 0;
};

Exchange::Exchange(Worker& worker, RecorderImpl& recorder, const ClientInfo& client)
    : worker_(worker), rec_(recorder), client_(client) {}

Exchange::~Exchange() = default;

doppel::v1::Envelope Exchange::TakeEnvelope() {
  if (!candidate_) return std::move(*owned_);
  // Off the arena here, on the proxy thread, rather than under the capture queue's lock.
  doppel::v1::Envelope out;
  out.CopyFrom(*envelope_);
  return out;
}

void Exchange::DropEnvelope() {
  envelope_ = nullptr;
  owned_.reset();
  if (candidate_ && worker_.free_candidates.size() < Worker::kMaxFreeCandidates) {
    candidate_->Reset();
    worker_.free_candidates.push_back(std::move(candidate_));
  }
  candidate_.reset();
}

const LivePlan& Exchange::plan() {
  if (plan_ == nullptr) plan_ = &rec_.PlanFor(worker_);
  return *plan_;
}

void Exchange::StartEnvelope(uint64_t arrival_us) {
  if (worker_.coverage) {
    if (worker_.free_candidates.empty()) {
      candidate_ = std::make_unique<Candidate>();
    } else {
      candidate_ = std::move(worker_.free_candidates.back());
      worker_.free_candidates.pop_back();
    }
    envelope_ = google::protobuf::Arena::CreateMessage<doppel::v1::Envelope>(&candidate_->arena);
  } else {
    envelope_ = &owned_.emplace();
  }
  envelope_->set_arrival_us(arrival_us);
  envelope_->set_seq(rec_.NextSeq());
  envelope_->set_client_addr(client_.addr);
  envelope_->set_scheme(client_.scheme);
  envelope_->set_client_protocol(client_.protocol);
  // Empty for plaintext: not set, rather than an empty string allocated (on the arena too).
  if (!client_.tls_version.empty()) envelope_->set_tls_version(client_.tls_version);
  if (!client_.alpn.empty()) envelope_->set_alpn(client_.alpn);
  if (!client_.client_cert_subject.empty()) {
    envelope_->set_client_cert_subject(client_.client_cert_subject);
  }
}

void Exchange::DecideCapture(net::RequestView view, unsigned version, uint64_t arrival_us) {
  view.client_cert_subject = client_.client_cert_subject;
  const LivePlan& live = plan();
  if (live.faults) fault_ = live.faults->Draw(view);
  const net::MatchBlock* block = nullptr;
  if (!live.rules.empty()) {
    block = live.rules.Match(view);
    if (block == nullptr) {
      rec_.metrics().unmatched->Inc();
      return;
    }
  }
  const uint64_t random = worker_.rng.Next();
  if (!live.sampler.Sample(view, random)) return;
  // Coverage sampling decides once the class is known (KeepEnvelope); until then every
  // candidate is captured.
  if (worker_.coverage) draw_ = live.sampler.Draw(view, random);
  StartEnvelope(arrival_us);
  if (block != nullptr) envelope_->set_matched_rule(block->name);
  auto* r = envelope_->mutable_request();
  r->set_method(std::string(view.method));
  // Obs-text bytes (Beast accepts them) percent-encoded, or the envelope would not parse
  // back (base/strings.h); the primary still gets the target as sent.
  r->set_target(PercentEncodeNonAscii(view.target));
  r->set_version(version);
}

void Exchange::Forward(net::HttpRequest&& req, unsigned client_version, bool chunked,
                       bool had_length, bool websocket, std::string logged_request,
                       net::StreamCallback done, net::BodySourcePtr upload) {
  logged_request_ = std::move(logged_request);
  net::StripHopByHop(req);
  rec_.metrics().request_bytes->Inc(req.body().size());
  if (envelope_) {
    auto* r = envelope_->mutable_request();
    if (candidate_) {
      candidate_->request_fields.Assign(req);
    } else {
      net::CopyHeaders(req, r->mutable_headers());
    }
    uint64_t size = 0;
    bool truncated = false;
    FillBody(req.body(), rec_.options().capture_body_limit, r->mutable_body(), &truncated, &size);
    r->set_body_truncated(truncated);
    r->set_body_size(size);
  }
  net::AddForwardingHeaders(req, {client_.ip, client_.scheme, client_version});
  if (websocket) {
    // Hop-by-hop, but the handshake itself (RFC 6455 4.1): asked for again on this hop.
    req.set(http::field::connection, "Upgrade");
    req.set(http::field::upgrade, "websocket");
  }
  // HTTP/1.0 allows a request without Host; the upstream gets HTTP/1.1, which does not.
  if (req.find(http::field::host) == req.end()) {
    req.set(http::field::host, rec_.options().upstream.Authority());
  }
  req.version(11);
  if (chunked) {
    req.chunked(true);
  } else if (!upload && (had_length || !req.body().empty())) {
    req.content_length(req.body().size());
  }
  if (plan().fault_from_headers) {
    req.erase(net::kFaultDelayHeader);
    req.erase(net::kFaultAbortHeader);
  }
  if (fault_.replaces_response()) {
    // The primary never sees it: nothing to capture or to copy.
    DropEnvelope();
  } else if (worker_.mirror && !websocket) {
    // The copy is the request as forwarded, target as the client sent it (each mirror
    // applies its own base path); sent now, never waited for. A streamed body's copy is
    // filled as the body passes and sent when it is complete (CopyRequestAside).
    const net::RequestView view = ViewOf(req, client_.client_cert_subject);
    if (upload) {
      mirror_upload_ = worker_.mirror->HoldUpload(req, view);
    } else {
      mirrored_ = worker_.mirror->Dispatch(req, view);
    }
  }
  const net::Url& upstream = rec_.options().upstream;
  if (!upstream.base_path.empty()) req.target(upstream.TargetFor(req.target()));
  if (fault_.delay) {
    fault_delay_ = std::make_unique<boost::asio::steady_timer>(worker_.io, *fault_.delay);
    // The timer dies with the exchange (the client left): then the handler only returns.
    fault_delay_->async_wait([this, req = std::move(req), upload = std::move(upload),
                              done = std::move(done)](boost::system::error_code ec) mutable {
      if (ec) return;
      SendToPrimary(std::move(req), std::move(upload), std::move(done));
    });
    return;
  }
  SendToPrimary(std::move(req), std::move(upload), std::move(done));
}

void Exchange::CopyRequestAside(std::string_view piece, bool end) {
  rec_.metrics().request_bytes->Inc(piece.size());
  request_body_size_ += piece.size();
  if (mirror_upload_) {
    if (!mirror_upload_->Append(piece)) {
      mirror_upload_.reset();  // over the cap: given up, counted
    } else if (end) {
      mirrored_ =
          mirror_upload_->Send(ViewOf(mirror_upload_->request(), client_.client_cert_subject));
      mirror_upload_.reset();
    }
  }
  if (!envelope_) return;
  auto* r = envelope_->mutable_request();
  AppendUpTo(piece, rec_.options().capture_body_limit, r->mutable_body());
  r->set_body_size(request_body_size_);
  r->set_body_truncated(r->body().size() < request_body_size_);
}

void Exchange::SendToPrimary(net::HttpRequest&& req, net::BodySourcePtr upload,
                             net::StreamCallback done) {
  if (fault_.replaces_response()) {
    net::ExchangeResult result;
    net::BodyReaderPtr body;
    if (fault_.reset) {
      result.error = net::ClientError::kReset;
      result.detail = "fault injected: reset";
    } else {
      net::FaultAbort abort = net::MakeFaultAbort(fault_, worker_.io.get_executor());
      result.response = std::move(abort.head);
      body = std::move(abort.body);
    }
    // Answered later, as the pool would: `done` never runs inside Forward.
    boost::asio::post(worker_.io, [done = std::move(done), result = std::move(result),
                                   body = std::move(body)]() mutable {
      done(std::move(result), std::move(body));
    });
    return;
  }
  if (upload) return worker_.pool->SendUpload(std::move(req), std::move(upload), std::move(done));
  worker_.pool->SendStreaming(std::move(req), std::move(done));
}

std::optional<UpstreamFailure> Exchange::CheckUpstream(const net::ExchangeResult& result) {
  if (fault_.reset) {
    fault_ = {};
    return UpstreamFailure{ProxyFailure::kUpstreamReset, 0, "fault injected: reset",
                           /*reset_by_fault=*/true};
  }
  if (result.reused_connection) rec_.metrics().upstream_reused->Inc();
  switch (result.error) {
    case net::ClientError::kNone:
      return std::nullopt;
    case net::ClientError::kTimeout:
      return UpstreamFailure{ProxyFailure::kUpstreamTimeout, 504,
                             "primary timeout: " + result.detail};
    case net::ClientError::kConnect:
      return UpstreamFailure{ProxyFailure::kUpstreamConnect, 502,
                             "primary unreachable: " + result.detail};
    default:
      return UpstreamFailure{ProxyFailure::kUpstreamReset, 502, "primary failed: " + result.detail};
  }
}

bool Exchange::OnResponseHead(net::HttpResponse& res, net::BodyReaderPtr body, bool is_head) {
  body_ = std::move(body);
  const unsigned upstream_version = res.version();
  net::StripHopByHop(res);
  const unsigned status = res.result_int();
  const bool no_body = is_head || status == 204 || status == 304 || status / 100 == 1;
  if (fault_.shapes_body() && !no_body) {
    if (fault_.truncate) {
      std::optional<uint64_t> keep;
      if (res.has_content_length()) {
        keep =
            std::strtoull(std::string(res[http::field::content_length]).c_str(), nullptr, 10) / 2;
      }
      body_ = net::TruncateBody(std::move(body_), keep, worker_.io.get_executor());
      // The client sees a cut response; the primary's whole one is not what is captured.
      DropEnvelope();
    }
    if (fault_.bandwidth != 0) {
      body_ = net::ThrottleBody(std::move(body_), fault_.bandwidth, worker_.io.get_executor());
    }
  }
  body_size_ = 0;
  body_cut_ = false;
  primary_done_ = false;
  head_time_ = std::chrono::steady_clock::now();
  // The primary answered before the streamed request body ended: a copy would arrive after
  // the answer it is compared with, so it is not sent (counted).
  mirror_upload_.reset();
  if (mirrored_) mirror_copy_.emplace(res);  // the body follows in CopyAside
  if (envelope_) {
    auto* r = envelope_->mutable_response();
    r->set_status(status);
    r->set_reason(PercentEncodeNonAscii(res.reason()));
    r->set_version(upstream_version);
    if (candidate_) {
      candidate_->response_fields.Assign(res);
    } else {
      net::CopyHeaders(res, r->mutable_headers());
    }
    auto type = res.find(http::field::content_type);
    static constexpr std::string_view kEventStream = "text/event-stream";
    event_stream_ = type != res.end() &&
                    EqualsIgnoreCase(type->value().substr(0, kEventStream.size()), kEventStream);
  }
  return !no_body;
}

void Exchange::CopyAside(std::string_view piece) {
  const uint64_t limit = rec_.options().capture_body_limit;
  rec_.metrics().response_bytes->Inc(piece.size());
  if (envelope_ && !piece.empty()) {
    auto* r = envelope_->mutable_response();
    if (event_stream_) {
      if (r->chunks_size() < kMaxStreamChunks) {
        auto* c = r->add_chunks();
        c->set_offset(body_size_);
        c->set_size(piece.size());
        c->set_at_us(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                               std::chrono::steady_clock::now() - head_time_)
                                               .count()));
      } else {
        r->set_chunks_truncated(true);
      }
    }
    AppendUpTo(piece, limit, r->mutable_body());
  }
  if (mirror_copy_) AppendUpTo(piece, limit, &mirror_copy_->body());
  body_size_ += piece.size();
}

void Exchange::OnPrimaryDone() {
  primary_done_ = true;
  const uint64_t latency_us = body_->latency_us();
  if (fault_.abort_status == 0) rec_.metrics().latency->ObserveUs(latency_us);
  if (envelope_) {
    net::CopyHeaders(body_->trailers(), envelope_->mutable_response()->mutable_trailers());
  }
  if (mirrored_) {
    mirrored_->OnPrimary(*mirror_copy_, body_->trailers(), latency_us,
                         /*body_complete=*/mirror_copy_->body().size() == body_size_);
    mirrored_.reset();
  }
  FinishCapture(latency_us);
}

// Pushes the envelope of a relayed (or cut) response; a full queue drops it, never the
// stream (RecorderImpl::Capture does not wait).
void Exchange::FinishCapture(uint64_t latency_us) {
  mirror_copy_.reset();
  fault_.active.reset();  // the request is over for --max-active-faults
  if (!envelope_) return;
  auto* r = envelope_->mutable_response();
  r->set_body_size(body_size_);
  r->set_body_truncated(body_cut_ || r->body().size() < body_size_);
  r->set_latency_us(latency_us);
  if (KeepEnvelope()) rec_.Capture(TakeEnvelope());
  DropEnvelope();
}

bool Exchange::KeepEnvelope() {
  if (!worker_.coverage) {
    // Unset (0) reads as 1: everything kept.
    const double percent = plan().sampler.percent();
    if (percent < 100) envelope_->set_inclusion_probability(percent / 100);
    return true;
  }
  const auto field = [this](std::string_view name) {
    return candidate_->response_fields.Find(name).value_or(std::string_view());
  };
  std::string label = diff::ComputeClass(*envelope_, field("content-type"),
                                         field("content-encoding"), rec_.options().class_endpoints);
  const auto d = worker_.coverage->Decide(Sampler::HashKey(label), label, draw_);
  if (!d.keep) return false;
  candidate_->request_fields.CopyTo(envelope_->mutable_request()->mutable_headers());
  candidate_->response_fields.CopyTo(envelope_->mutable_response()->mutable_headers());
  envelope_->set_inclusion_probability(d.probability);
  envelope_->set_sample_class(std::move(label));
  return true;
}

void Exchange::CutByPrimary(net::ClientError error, const std::string& detail, unsigned status) {
  if (fault_.truncate && detail == net::kTruncatedByFault) {
    body_cut_ = true;  // injected, not the primary's failure: not a proxy error
    return;
  }
  const ProxyFailure failure = error == net::ClientError::kTimeout ? ProxyFailure::kUpstreamTimeout
                                                                   : ProxyFailure::kUpstreamReset;
  rec_.metrics().errors[static_cast<int>(failure)]->Inc();
  rec_.metrics().cut[static_cast<int>(failure)]->Inc();
  if (rec_.options().log_bodies) {
    rec_.LogFailure(status, FailureName(failure), logged_request_ + " from " + client_.addr,
                    "response cut mid-body: " + detail);
  }
  if (envelope_) {
    envelope_->set_error(ToProxyError(failure));
    envelope_->set_error_detail("response cut mid-body after " + std::to_string(body_size_) +
                                " bytes: " + detail);
  }
  body_cut_ = true;
}

void Exchange::Abort() {
  body_cut_ = true;
  if (mirrored_) {
    mirrored_->OnPrimaryFailed();
    mirrored_.reset();
  }
  FinishCapture(body_ ? body_->latency_us() : 0);
  body_.reset();
}

void Exchange::StartWebSocket() {
  primary_done_ = true;
  const uint64_t latency_us = body_->latency_us();
  rec_.metrics().latency->ObserveUs(latency_us);
  rec_.metrics().websockets->Inc();
  rec_.metrics().websockets_open->Add(1);
  body_.reset();
  if (!envelope_) return;
  websocket_ = std::make_unique<WebSocketCapture>(rec_.options().capture_body_limit,
                                                  envelope_->mutable_websocket());
  websocket_->latency_us = latency_us;
}

void Exchange::OnWebSocketBytes(bool from_client, std::string_view bytes) {
  if (!websocket_) return;
  WebSocketCapture& w = *websocket_;
  auto* session = w.session;
  if (from_client) {
    session->set_client_bytes(session->client_bytes() + bytes.size());
  } else {
    session->set_server_bytes(session->server_bytes() + bytes.size());
  }
  net::WebSocketFrameReader& reader = from_client ? w.from_client : w.from_primary;
  const bool framed = reader.Feed(bytes, [&](net::WebSocketMessage&& m) {
    int& kept = w.kept[from_client];
    // Past the cap this direction's messages are only counted: no payload is copied or
    // unmasked for them on the relay's path.
    if (net::RecordWebSocketMessage(from_client, std::move(m), w.start, &kept, session) &&
        kept == net::kWebSocketMessagesKept) {
      reader.set_payload_limit(0);
    }
  });
  if (!framed && session->framing_error().empty()) {
    session->set_framing_error((from_client ? "client: " : "primary: ") + reader.error());
  }
}

void Exchange::EndWebSocket(std::string how) {
  rec_.metrics().websockets_open->Add(-1);
  if (!websocket_) return;
  auto* session = websocket_->session;
  session->set_duration_us(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - websocket_->start)
                                .count()));
  session->set_ended(std::move(how));
  const uint64_t latency_us = websocket_->latency_us;
  websocket_.reset();
  FinishCapture(latency_us);
}

void Exchange::Fail(ProxyFailure failure, unsigned status, const std::string& reason,
                    bool head_read, const std::string& describe_request,
                    const http::fields* partial_headers) {
  fault_.active.reset();
  rec_.metrics().errors[static_cast<int>(failure)]->Inc();
  if (mirrored_) {
    mirrored_->OnPrimaryFailed();
    mirrored_.reset();
  }
  const bool request_complete = failure >= ProxyFailure::kUpstreamConnect;
  if (rec_.options().log_bodies) {
    rec_.LogFailure(
        status, FailureName(failure),
        (request_complete ? logged_request_ : describe_request) + " from " + client_.addr, reason);
  }
  if (!head_read && !envelope_ && plan().rules.empty() &&
      plan().sampler.SampleRandom(worker_.rng.Next())) {
    // Malformed before a header could be read: capture what is known, decided at random.
    StartEnvelope(rec_.options().clock->WallUs());
  }
  if (!envelope_) return;
  if (!request_complete && partial_headers != nullptr) {
    // Keep the headers we did read (the body is incomplete by definition).
    auto* r = envelope_->mutable_request();
    if (r->headers_size() == 0 && (!candidate_ || candidate_->request_fields.empty())) {
      http::fields copy = *partial_headers;
      net::StripHopByHop(copy);
      net::CopyHeaders(copy, r->mutable_headers());
    }
  }
  envelope_->set_error(ToProxyError(failure));
  envelope_->set_error_detail(reason);
  if (KeepEnvelope()) rec_.Capture(TakeEnvelope());
  DropEnvelope();
}

}  // namespace doppel::recorder
