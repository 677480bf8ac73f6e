// Header hygiene for one proxy hop (RFC 9110 section 7.6): hop-by-hop headers are removed,
// forwarding headers added. Used on requests going upstream and responses going back.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <string_view>

#include "net/proto_headers.h"

namespace doppel::net {

// Removes Connection and every header it names, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding and Upgrade. The caller re-frames the body for the next hop.
void StripHopByHop(boost::beast::http::fields& fields);

// True when `name` is a hop-by-hop header by itself (not counting names listed in Connection).
bool IsHopByHop(std::string_view name);

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

// Appends "<version> <name>" to Via (used on responses as well).
void AppendVia(boost::beast::http::fields& fields, unsigned version, std::string_view name);

}  // namespace doppel::net
