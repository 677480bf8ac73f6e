// Upstream and target URLs (`http://host:port[/base]`, `https://...`) and listen addresses
// (`ADDR:PORT`), parsed once at start-up.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::net {

struct Url {
  // "http", "https", "h2c" (HTTP/2 with prior knowledge, in plaintext: RFC 9113 3.3) or "h2"
  // (HTTP/2 over TLS, chosen by ALPN: RFC 9113 3.2)
  std::string scheme;
  std::string host;       // name or address, without IPv6 brackets
  uint16_t port = 0;      // explicit, or 80/443 by scheme
  std::string base_path;  // path prefix without a trailing '/', "" for none
  bool tls() const { return scheme == "https" || scheme == "h2"; }
  bool http2() const { return scheme == "h2c" || scheme == "h2"; }
  // "host[:port]" as it would go into a Host header (port omitted when it is the default).
  std::string Authority() const;
  // The request target to send upstream for a client target ("/a?b" -> base_path + "/a?b").
  std::string TargetFor(std::string_view client_target) const;
  std::string ToString() const;
};

// Parses an absolute http, https, h2c or h2 URL. Query, fragment and user-info are refused: they
// have no meaning for an upstream.
Result<Url> ParseUrl(std::string_view text);

// True for "scheme://..." (a scheme of letters, digits, '+', '-', '.' starting with a letter):
// the only non-path form doppel hands to Boost.URL's URI parsers. (Boost.URL 1.81 asserts on
// some scheme-without-authority references, such as "l6:?".)
bool HasSchemeAndAuthority(std::string_view url);

// A request target (origin-form "/a?b", absolute-form "http://h/a?b", "*") split by Boost.URL.
// The fragment, which clients should not send, is left out. A target Boost.URL refuses (a raw
// space, a bad escape: imports and old stores can hold them, the proxy refuses them) is split
// at its first '?' and '#'. Views point into `target`.
struct TargetParts {
  std::string_view path;                  // encoded; "" when the target has none
  std::optional<std::string_view> query;  // encoded, without the '?'; nullopt when none
};
TargetParts SplitTarget(std::string_view target);

// The path of `target` ("/" when it has none), for endpoint keys and rules.
std::string_view TargetPath(std::string_view target);

// One `key[=value]` of a query, as written (still percent-encoded); views into the query.
struct EncodedQueryItem {
  std::string_view key, value;
  bool has_value = false;
};

// Splits an encoded query (without '?') at '&' and each item at its first '=', keeping empty
// items ("a&&b" has three), so joining them with '&' gives the query back. Boost.URL splits
// a valid query; one it refuses (a bad escape, a raw space) is split the same way by hand.
std::vector<EncodedQueryItem> SplitQuery(std::string_view encoded);

struct QueryItem {
  std::string key, value;  // percent-decoded, '+' as a space (HTML form encoding)
  bool has_value = false;  // "a=" has a value (empty), "a" has none
};

// The parameters of an encoded query (without '?'), in order, decoded. nullopt when the query
// is not valid percent-encoding; `encoded` is then the caller's to show or refuse as it is.
std::optional<std::vector<QueryItem>> DecodeQuery(std::string_view encoded);

// The decoded value of the first query parameter of `target` named `name` ("" for "?a" and
// "?a="); nullopt when there is none or the query is not valid percent-encoding.
std::optional<std::string> FindQueryParam(std::string_view target, std::string_view name);

struct HostPort {
  std::string host;  // without IPv6 brackets
  uint16_t port = 0;
  std::string ToString() const;  // "host:port", IPv6 in brackets
};

// Parses "ADDR:PORT" or "[v6]:PORT"; PORT may be 0 (ephemeral). A bare ":PORT" means
// 127.0.0.1 (never all interfaces by accident).
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace doppel::net
