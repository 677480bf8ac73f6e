#include "net/url.h"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>

namespace doppel::net {

std::string Url::Authority() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  const uint16_t default_port = tls() ? 443 : 80;
  if (port != default_port) out += ":" + std::to_string(port);
  return out;
}

std::string Url::TargetFor(std::string_view client_target) const {
  if (base_path.empty()) return std::string(client_target);
  std::string out = base_path;
  if (client_target.empty() || client_target[0] != '/') out += '/';
  out += client_target;
  return out;
}

std::string Url::ToString() const {
  std::string out = scheme + "://";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  out += ":" + std::to_string(port) + base_path;
  return out;
}

Result<Url> ParseUrl(std::string_view text) {
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a URL (expected http://host:port[/path])");
  }
  const boost::urls::url_view& u = *parsed;
  Url url;
  url.scheme = std::string(u.scheme());
  for (char& c : url.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.scheme != "http" && url.scheme != "https") {
    return Status::InvalidArgument("'" + std::string(text) + "': scheme must be http or https");
  }
  if (u.has_userinfo() || u.has_query() || u.has_fragment()) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "': user-info, query and fragment are not allowed");
  }
  url.host = std::string(u.host_address());
  if (url.host.empty()) return Status::InvalidArgument("'" + std::string(text) + "': no host");
  if (u.has_port()) {
    if (u.port().empty() || u.port_number() == 0) {
      return Status::InvalidArgument("'" + std::string(text) + "': bad port");
    }
    url.port = u.port_number();
  } else {
    url.port = url.tls() ? 443 : 80;
  }
  url.base_path = std::string(u.encoded_path());
  while (!url.base_path.empty() && url.base_path.back() == '/') url.base_path.pop_back();
  return url;
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  const auto bad = [&](const char* why) {
    return Status::InvalidArgument("'" + std::string(text) + "' is not ADDR:PORT (" + why + ")");
  };
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("unbalanced '['");
    }
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing ':PORT'");
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) return bad("put IPv6 addresses in brackets");
  }
  if (hp.host.empty()) hp.host = "127.0.0.1";
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    return bad("port must be 0..65535");
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

}  // namespace doppel::net
