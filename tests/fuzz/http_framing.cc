// Fuzz target: bytes a client sends on one connection into the capture proxy's request
// framing and checks (recorder/request_reader.h, the code ProxySession runs), in process:
// no sockets, no threads. The input is read as the proxy reads it (pipelined requests until
// the bytes end, a refusal, the HTTP/2 preface or a request without keep-alive), three
// times: with the proxy's default limits whole, with them in pieces of 1-16 bytes (the first
// byte picks the size: TCP may split the stream anywhere; each body's bytes are taken out as
// they come, as for a body that streams to the primary), and whole with small limits
// (256-byte head, 64-byte body) so the 431/413 paths are reached. For each request read,
// what the proxy would forward (ForwardedBytes: hop-by-hop removal and framing as in
// Exchange::Forward) and the capture envelope's request are built; for a refusal, the
// envelope of the failure with the headers read so far.
//
// Properties: no crash, UB or leak, and
//   - whole and piecewise reading give the same requests and the same end (a refusal with
//     the same status and reason): the answer never depends on how the bytes arrived, but
//     for a bad head refused at once and waited on in pieces (Beast; see Run);
//   - a refusal has a status the proxy answers with (400, 413, 431, 501, 505) and a reason;
//   - a request's body is within the body limit; its method is a token and not CONNECT;
//     its target is origin-form or "*" (absolute form was rewritten);
//   - the forwarded bytes read back by the reader (generous limits) as exactly one request,
//     all bytes used, with the same method, target and body, and at most one Host: the
//     primary sees the message framed as the proxy understood it;
//   - the envelope (and a refusal's) survives the store (fuzz::CheckStorable).
#include <cstdint>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "net/headers.h"
#include "recorder/recorder.h"
#include "recorder/request_checks.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/proxy_requests.h"

namespace {

namespace http = boost::beast::http;
using doppel::fuzz::ReadResult;
using doppel::recorder::RequestReader;

// The proxy's defaults (RecorderOptions), and small ones.
RequestReader::Limits DefaultLimits() {
  const doppel::recorder::RecorderOptions o;
  return {o.max_header_bytes, o.max_request_body};
}
constexpr RequestReader::Limits kSmallLimits{256, 64};

// A summary to compare two readings of the same bytes by.
std::string Describe(const ReadResult& r) {
  std::string out;
  for (const auto& req : r.requests) {
    out += std::string(req.request.method_string()) + " " + std::string(req.request.target()) +
           " body=" + std::to_string(req.request.body().size()) +
           " end=" + std::to_string(req.end) + "\n";
  }
  out += "end=" + std::to_string(static_cast<int>(r.end));
  if (r.end == ReadResult::End::kRefused) {
    out += " " + std::to_string(r.refusal.status) + " " + r.refusal.reason;
  }
  return out;
}

void CheckForwarded(const doppel::fuzz::ReadRequest& r, RequestReader::Limits limits) {
  const auto& req = r.request;
  FUZZ_CHECK(req.body().size() <= limits.max_body_bytes, "body over the limit");
  FUZZ_CHECK(
      doppel::recorder::CheckMethod(req.method_string()) == doppel::recorder::MethodCheck::kForward,
      req.method_string());
  const std::string_view target = req.target();
  FUZZ_CHECK(target == "*" || (!target.empty() && target[0] == '/'), target);

  const std::string forwarded = doppel::fuzz::ForwardedBytes(req, r.chunked, r.had_length);
  const auto again = doppel::fuzz::ReadRequests(forwarded, {1u << 20, 1u << 20});
  FUZZ_CHECK(again.requests.size() == 1, "forwarded request does not read back as one:\n" +
                                             Describe(again) + "\n--\n" + forwarded);
  FUZZ_CHECK(again.consumed == forwarded.size(),
             "bytes left after the forwarded request:\n" + forwarded);
  const auto& back = again.requests[0].request;
  FUZZ_CHECK(back.method_string() == req.method_string(), forwarded);
  FUZZ_CHECK(back.target() == req.target(), forwarded);
  FUZZ_CHECK(back.body() == req.body(), forwarded);
  FUZZ_CHECK(back.count(http::field::host) == 1, forwarded);

  // The capture envelope's request, as Exchange::Forward fills it.
  doppel::v1::Envelope envelope;
  auto* e = envelope.mutable_request();
  e->set_method(std::string(req.method_string()));
  e->set_target(doppel::PercentEncodeNonAscii(req.target()));
  e->set_version(req.version());
  auto copy = req;
  doppel::net::StripHopByHop(copy);
  doppel::net::CopyHeaders(copy, e->mutable_headers());
  e->set_body(req.body().substr(0, 1024));
  e->set_body_size(req.body().size());
  doppel::fuzz::CheckStorable(envelope, "forwarded request");
}

// The envelope Exchange::Fail records for a refused request: the headers read so far.
void CheckRefusal(const ReadResult& r) {
  const unsigned s = r.refusal.status;
  FUZZ_CHECK(s == 400 || s == 413 || s == 431 || s == 501 || s == 505, std::to_string(s));
  FUZZ_CHECK(!r.refusal.reason.empty(), "refusal without a reason");
  doppel::v1::Envelope envelope;
  envelope.set_error_detail(r.refusal.reason);
  http::fields copy = r.refused_fields;
  doppel::net::StripHopByHop(copy);
  doppel::net::CopyHeaders(copy, envelope.mutable_request()->mutable_headers());
  doppel::fuzz::CheckStorable(envelope, "refused request");
}

void Run(std::string_view bytes, RequestReader::Limits limits, size_t piece) {
  const ReadResult whole = doppel::fuzz::ReadRequests(bytes, limits);
  for (const auto& r : whole.requests) CheckForwarded(r, limits);
  if (whole.end == ReadResult::End::kRefused) CheckRefusal(whole);
  if (piece != 0) {
    // In pieces, each body's bytes are taken out as they come, as for a body that streams
    // to the primary (ProxySession's upload): put back together, they are the same body.
    const ReadResult split = doppel::fuzz::ReadRequests(bytes, limits, piece, /*take_body=*/true);
    for (size_t i = 0; i < whole.requests.size() && i < split.requests.size(); ++i) {
      FUZZ_CHECK(whole.requests[i].request.body() == split.requests[i].request.body(),
                 "request " + std::to_string(i) + ": the body taken in pieces differs");
    }
    const std::string a = Describe(whole), b = Describe(split);
    if (a != b) {
      // Beast parses the lines of a head as they come when it gets them at once, but after a
      // need_more it waits for the end of the head, and a request line whose version is
      // shorter than "HTTP/x.y" leaves it waiting past that end (for the header limit or the
      // timeout). So a bad head can be refused when it comes at once and waited on when it
      // comes in pieces. Nothing is forwarded either way: only that difference is allowed.
      const bool same_requests = a.substr(0, a.rfind("end=")) == b.substr(0, b.rfind("end="));
      const auto waits = [](const ReadResult& r) {
        return r.end == ReadResult::End::kNeedMore && !r.in_body;
      };
      const bool refused_or_waits = (waits(whole) && split.end == ReadResult::End::kRefused) ||
                                    (waits(split) && whole.end == ReadResult::End::kRefused);
      FUZZ_CHECK(same_requests && refused_or_waits,
                 "whole:\n" + a + "\nin pieces of " + std::to_string(piece) + ":\n" + b);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static const RequestReader::Limits defaults = DefaultLimits();
  const size_t piece = size == 0 ? 1 : 1 + data[0] % 16;
  Run(bytes, defaults, piece);
  Run(bytes, kSmallLimits, 0);
  return 0;
}
