// Header hygiene for one proxy hop (RFC 9110 section 7.6): hop-by-hop headers are removed,
// forwarding headers added. Used on requests going upstream and responses going back.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "net/proto_headers.h"

namespace doppel::net {

// Removes Connection and every header it names, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding and Upgrade. The caller re-frames the body for the next hop.
void StripHopByHop(boost::beast::http::fields& fields);

// Whether a response's framing lets its connection carry another response after it: no
// Transfer-Encoding, or one that is chunked alone (RFC 9112 6.1, 7). With anything else
// ("gzip, chunked", or a value with a byte no coding name has) parsers disagree on where the
// body ends: Beast took "chunked\xa7" for chunked where a strict reader reads to the close,
// and the bytes after Beast's end would be read as the next client's response.
bool ReusableFraming(const boost::beast::http::fields& fields);

// True when `name` is a hop-by-hop header by itself (not counting names listed in Connection).
bool IsHopByHop(std::string_view name);

// True when the request asks to switch to WebSocket (RFC 6455 4.1): Upgrade lists
// "websocket" and Connection lists "upgrade" (tokens, any case). The caller checks that the
// request is an HTTP/1.1 GET.
bool IsWebSocketUpgrade(const boost::beast::http::fields& fields);

// True when a request's TE lists "trailers" (RFC 9110 10.1.4): its client takes a trailer
// section after a chunked response body. TE is hop-by-hop: ask before StripHopByHop.
bool AcceptsTrailers(const boost::beast::http::fields& fields);

struct ForwardingInfo {
  std::string_view client_ip;  // appended to X-Forwarded-For
  std::string_view proto;      // X-Forwarded-Proto, "http" or "https"
  unsigned version = 11;       // protocol version of the hop received, for Via ("1.1 doppel")
  std::string_view via_name = "doppel";
};

// Appends the client to X-Forwarded-For, sets X-Forwarded-Proto, sets X-Forwarded-Host from
// Host when absent, and appends this hop to Via. Host itself is left untouched.
void AddForwardingHeaders(boost::beast::http::fields& fields, const ForwardingInfo& info);

// Appends every field of a Beast message to a recorded message's headers, in order and as
// received (names as the peer spelt them): the one Beast-to-proto header conversion.
void CopyHeaders(const boost::beast::http::fields& fields, ProtoHeaders* out);

// A copy of a Beast message's fields in one buffer (each field: its name's and value's sizes,
// then both), for the recorder's coverage candidates: most are dropped once classified, so
// their fields are written as proto headers (CopyTo) only when kept. clear() keeps the
// buffer's capacity for the next candidate.
class FlatFields {
 public:
  void Assign(const boost::beast::http::fields& fields);
  void clear() { bytes_.clear(); }
  bool empty() const { return bytes_.empty(); }
  // The first field named `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> Find(std::string_view name) const;
  // Appends every field to `out`, in order: what CopyHeaders would have.
  void CopyTo(ProtoHeaders* out) const;

 private:
  // Calls f(name, value) for each field in order, until it returns false.
  template <typename F>
  void ForEach(F&& f) const;

  std::string bytes_;
};

// Appends "<version> <name>" to Via (used on responses as well).
void AppendVia(boost::beast::http::fields& fields, unsigned version, std::string_view name);

}  // namespace doppel::net
