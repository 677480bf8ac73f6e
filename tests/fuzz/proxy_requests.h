// Shared by the in-process HTTP targets (http_framing.cc, http_smuggling.cc): a client
// connection's bytes through the capture proxy's request reader (recorder/request_reader.h)
// as ProxySession feeds it, and the request as the proxy forwards it to the primary.
#pragma once

#include <boost/beast/http.hpp>
#include <cstddef>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "net/headers.h"
#include "recorder/request_reader.h"

namespace doppel::fuzz {

// One request the proxy would forward, as the reader gave it, with the framing ProxySession
// passes to Exchange::Forward (RequestReader::ForwardFraming).
struct ReadRequest {
  recorder::RequestReader::Request request;
  bool chunked = false;     // forwarded chunked
  bool had_length = false;  // forwarded with a Content-Length
  size_t end = 0;           // offset just past its last byte in the input
};

// What the reader made of a connection's bytes.
struct ReadResult {
  std::vector<ReadRequest> requests;
  enum class End { kNeedMore, kRefused, kHttp2, kClosed } end = End::kNeedMore;
  recorder::RequestReader::Refusal refusal;   // kRefused
  boost::beast::http::fields refused_fields;  // kRefused: the head read so far (Exchange::Fail)
  bool in_body = false;  // kNeedMore: the last request's head was accepted, its body is incomplete
  size_t consumed = 0;   // bytes the reader consumed in all
};

// Feeds `bytes` to a reader with `limits`, `piece` bytes at a time (0: all at once; the
// unconsumed bytes stay in front of the next piece, as in the proxy's buffer), until the
// input is exhausted, a refusal or the HTTP/2 preface. Like the proxy, stops after a request
// that does not keep the connection alive (kClosed). `take_body`: a body's bytes are taken
// out (RequestReader::TakeBody) after each piece, as ProxySession does for a body that
// streams to the primary, and put back together in the request given.
inline ReadResult ReadRequests(std::string_view bytes, recorder::RequestReader::Limits limits,
                               size_t piece = 0, bool take_body = false) {
  using Event = recorder::RequestReader::Event;
  recorder::RequestReader reader(limits, /*h2_preface=*/true);
  reader.Start();
  ReadResult out;
  size_t offered = piece == 0 ? bytes.size() : std::min(piece, bytes.size());
  size_t pos = 0;  // the front of the proxy's buffer: bytes[pos, offered)
  bool in_body = false;
  std::string taken, piece_taken;  // take_body: the current body's bytes taken so far
  for (;;) {
    size_t used = 0;
    const Event event = reader.Parse(bytes.substr(pos, offered - pos), &used);
    pos += used;
    switch (event) {
      case Event::kHead:
        in_body = true;
        continue;
      case Event::kRequest: {
        in_body = false;
        ReadRequest r;
        r.request = reader.Release();
        if (take_body) {
          r.request.body().insert(0, taken);
          taken.clear();
        }
        const auto framing = recorder::RequestReader::ForwardFraming(r.request);
        r.chunked = framing.chunked;
        r.had_length = framing.content_length;
        r.end = pos;
        const bool keep_alive = r.request.keep_alive();
        out.requests.push_back(std::move(r));
        if (!keep_alive) {
          out.end = ReadResult::End::kClosed;
          out.consumed = pos;
          return out;
        }
        reader.Start();
        continue;
      }
      case Event::kRefused:
        out.end = ReadResult::End::kRefused;
        out.refusal = reader.refusal();
        out.refused_fields = reader.request().base();
        out.consumed = pos;
        return out;
      case Event::kHttp2:
        out.end = ReadResult::End::kHttp2;
        out.consumed = pos;
        return out;
      case Event::kNeedMore:
        if (take_body && in_body) {
          reader.TakeBody(&piece_taken);
          taken += piece_taken;
        }
        break;
    }
    if (offered == bytes.size()) break;
    offered = piece == 0 ? bytes.size() : std::min(offered + piece, bytes.size());
  }
  out.in_body = in_body;
  out.consumed = pos;
  return out;
}

// The request as Exchange::Forward (recorder/exchange.cc) sends it to the primary: hop-by-hop
// headers stripped, forwarding headers added, a Host, HTTP/1.1, framed by `chunked` or a
// Content-Length. Exchange::Forward needs a running recorder (its worker and pool), so its
// framing lines are repeated here; the header code is the proxy's own (net/headers.h).
inline std::string ForwardedBytes(recorder::RequestReader::Request req, bool chunked,
                                  bool had_length) {
  namespace http = boost::beast::http;
  net::StripHopByHop(req);
  net::AddForwardingHeaders(req, {"192.0.2.1", "http", req.version()});
  if (req.find(http::field::host) == req.end()) req.set(http::field::host, "upstream.test:8080");
  req.version(11);
  if (chunked) {
    req.chunked(true);
  } else if (had_length || !req.body().empty()) {
    req.content_length(req.body().size());
  }
  std::ostringstream out;
  out << req;
  return std::move(out).str();
}

}  // namespace doppel::fuzz
