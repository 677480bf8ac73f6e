#include "net/url.h"

#include <boost/url/params_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
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

bool HasSchemeAndAuthority(std::string_view url) {
  const size_t end = url.find("://");
  if (end == std::string_view::npos || end == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(url[0]))) return false;
  for (const char c : url.substr(0, end))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      return false;
  return true;
}

TargetParts SplitTarget(std::string_view target) {
  TargetParts out;
  // Origin-form ("/a/b?q", and "//a/b" is a path there, not an authority) is split by hand
  // below: where Boost.URL's parse_origin_form accepts a target, its path is what precedes
  // the first '?' and it holds no '#', so parsing it (a per-request cost on the proxy thread,
  // for request classes) would give the same parts.
  std::optional<boost::urls::url_view> u;  // none: origin-form, "*" and the like
  if (HasSchemeAndAuthority(target)) {
    if (auto r = boost::urls::parse_uri_reference(target)) u = *r;
  }
  if (u) {
    out.path = u->encoded_path();
    if (u->has_query()) out.query = u->encoded_query();
    return out;
  }
  const std::string_view before_fragment = target.substr(0, target.find('#'));
  const size_t q = before_fragment.find('?');
  out.path = before_fragment.substr(0, q);
  if (q != std::string_view::npos) out.query = before_fragment.substr(q + 1);
  return out;
}

std::string_view TargetPath(std::string_view target) {
  const std::string_view path = SplitTarget(target).path;
  return path.empty() ? "/" : path;
}

// Boost.URL's query views (1.81) read their last parameter on to the next '#' or NUL past the
// end of the view they were given, so they are only ever given a NUL-terminated copy.
std::vector<EncodedQueryItem> SplitQuery(std::string_view encoded) {
  std::vector<EncodedQueryItem> out;
  const std::string copy(encoded);
  if (auto parsed = boost::urls::parse_query(copy)) {
    const auto view = [&](std::string_view part) {  // the same characters in `encoded`
      if (part.empty()) return std::string_view();
      return encoded.substr(part.data() - copy.data(), part.size());
    };
    for (const auto& p : *parsed)
      out.push_back({view(p.key), p.has_value ? view(p.value) : std::string_view(), p.has_value});
    return out;
  }
  while (true) {
    const size_t amp = encoded.find('&');
    const std::string_view item = encoded.substr(0, amp);
    const size_t eq = item.find('=');
    out.push_back({item.substr(0, eq),
                   eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1),
                   eq != std::string_view::npos});
    if (amp == std::string_view::npos) return out;
    encoded.remove_prefix(amp + 1);
  }
}

std::optional<std::vector<QueryItem>> DecodeQuery(std::string_view encoded) {
  const std::string copy(encoded);  // NUL-terminated: see SplitQuery
  auto parsed = boost::urls::parse_query(copy);
  if (!parsed) return std::nullopt;
  boost::urls::encoding_opts form;
  form.space_as_plus = true;
  std::vector<QueryItem> out;
  for (const auto& p : boost::urls::params_view(*parsed, form)) {
    if (p.key.empty() && !p.has_value) continue;  // "a=1&&b=2": no parameter between the '&'s
    out.push_back({p.key, p.value, p.has_value});
  }
  return out;
}

std::optional<std::string> FindQueryParam(std::string_view target, std::string_view name) {
  const TargetParts parts = SplitTarget(target);
  if (!parts.query) return std::nullopt;
  auto items = DecodeQuery(*parts.query);
  if (!items) return std::nullopt;
  for (auto& item : *items)
    if (item.key == name) return std::move(item.value);
  return std::nullopt;
}

Result<Url> ParseUrl(std::string_view text) {
  const auto not_a_url = [&] {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "' is not a URL (expected http://host:port[/path])");
  };
  // Only "scheme://..." goes to Boost.URL (see HasSchemeAndAuthority: "http:?x" made it
  // assert, found by fuzz_flag_specs with assertions on).
  if (!HasSchemeAndAuthority(text)) return not_a_url();
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return not_a_url();
  const boost::urls::url_view& u = *parsed;
  Url url;
  url.scheme = std::string(u.scheme());
  for (char& c : url.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (url.scheme != "http" && url.scheme != "https" && url.scheme != "h2c" && url.scheme != "h2") {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "': scheme must be http, https, h2c (HTTP/2 in plaintext) or "
                                   "h2 (HTTP/2 over TLS)");
  }
  if (u.has_userinfo() || u.has_query() || u.has_fragment()) {
    return Status::InvalidArgument("'" + std::string(text) +
                                   "': user-info, query and fragment are not allowed");
  }
  url.host = std::string(u.host_address());
  if (url.host.empty()) return Status::InvalidArgument("'" + std::string(text) + "': no host");
  if (u.has_port()) {
    // Not u.port_number(): Boost.URL 1.81 wraps a port over 65535 (99999 became 34463).
    const std::string_view port_text = u.port();
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port == 0 || port > 65535) {
      return Status::InvalidArgument("'" + std::string(text) + "': bad port (expected 1..65535)");
    }
    url.port = static_cast<uint16_t>(port);
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
