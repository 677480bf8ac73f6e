// Upstream and target URLs (`http://host:port[/base]`, `https://...`) and listen addresses
// (`ADDR:PORT`), parsed once at start-up.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::net {

struct Url {
  std::string scheme;     // "http" or "https"
  std::string host;       // name or address, without IPv6 brackets
  uint16_t port = 0;      // explicit, or 80/443 by scheme
  std::string base_path;  // path prefix without a trailing '/', "" for none
  bool tls() const { return scheme == "https"; }
  // "host[:port]" as it would go into a Host header (port omitted when it is the default).
  std::string Authority() const;
  // The request target to send upstream for a client target ("/a?b" -> base_path + "/a?b").
  std::string TargetFor(std::string_view client_target) const;
  std::string ToString() const;
};

// Parses an absolute http(s) URL. Query, fragment and user-info are refused: they have no
// meaning for an upstream.
Result<Url> ParseUrl(std::string_view text);

struct HostPort {
  std::string host;  // without IPv6 brackets
  uint16_t port = 0;
  std::string ToString() const;  // "host:port", IPv6 in brackets
};

// Parses "ADDR:PORT" or "[v6]:PORT"; PORT may be 0 (ephemeral). A bare ":PORT" means
// 127.0.0.1 (never all interfaces by accident).
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace doppel::net
