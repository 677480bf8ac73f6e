#include "recorder/request_checks.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <boost/url/parse.hpp>

#include "base/strings.h"
#include "net/url.h"

namespace doppel::recorder {

namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// RFC 3986 2.2-2.3: unreserved / sub-delims.
bool IsUnreservedOrSubDelim(char c) {
  return IsAlnum(c) || std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

// RFC 3986 3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ); IPv4address is a
// reg-name by its characters.
bool IsRegName(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !IsHexDigit(s[i + 1]) || !IsHexDigit(s[i + 2])) return false;
      i += 2;
    } else if (!IsUnreservedOrSubDelim(s[i])) {
      return false;
    }
  }
  return true;
}

// RFC 3986 3.2.2: what is between the brackets of an IP-literal: IPv6address, or IPvFuture
// ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )).
bool IsIpLiteral(std::string_view s) {
  if (!s.empty() && (s[0] == 'v' || s[0] == 'V')) {
    const size_t dot = s.find('.');
    if (dot == std::string_view::npos || dot < 2 || dot + 1 == s.size()) return false;
    if (!std::all_of(s.begin() + 1, s.begin() + dot, IsHexDigit)) return false;
    return std::all_of(s.begin() + dot + 1, s.end(),
                       [](char c) { return c == ':' || IsUnreservedOrSubDelim(c); });
  }
  if (s.size() > INET6_ADDRSTRLEN) return false;
  const std::string text(s);
  in6_addr addr;
  return inet_pton(AF_INET6, text.c_str(), &addr) == 1;
}

}  // namespace

size_t LeadingEmptyLines(std::string_view bytes) {
  size_t n = 0;
  for (;;) {
    if (bytes.substr(n, 1) == "\n") {
      n += 1;
    } else if (bytes.substr(n, 2) == "\r\n") {
      n += 2;
    } else {
      return n;
    }
  }
}

bool HasObsFold(std::string_view head) {
  for (size_t nl = head.find('\n'); nl != std::string_view::npos; nl = head.find('\n', nl + 1)) {
    if (nl + 1 < head.size() && (head[nl + 1] == ' ' || head[nl + 1] == '\t')) return true;
  }
  return false;
}

bool IsChunkedAlone(size_t fields, std::string_view value) {
  return fields == 1 && EqualsIgnoreCase(TrimSpaces(value), "chunked");
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

MethodCheck CheckMethod(std::string_view method) {
  if (!IsToken(method)) return MethodCheck::kNotToken;
  if (method == "CONNECT") return MethodCheck::kConnect;
  return MethodCheck::kForward;
}

std::string CheckHost(std::string_view host) {
  if (host.empty()) return "Host is empty";
  std::string_view rest;
  if (host[0] == '[') {
    const size_t close = host.find(']');
    if (close == std::string_view::npos || !IsIpLiteral(host.substr(1, close - 1))) {
      return "Host: not an IPv6 address in [brackets]";
    }
    rest = host.substr(close + 1);
  } else {
    const size_t colon = host.find(':');
    const std::string_view name = host.substr(0, colon);
    if (name.empty() || !IsRegName(name)) {
      return "Host must be a host name, an IPv4 address or an [IPv6] address, with an "
             "optional :port";
    }
    rest = colon == std::string_view::npos ? std::string_view() : host.substr(colon);
  }
  if (rest.empty()) return "";
  static const std::string kBadPort = "Host: the port must be digits, at most 65535";
  if (rest[0] != ':') return kBadPort;
  uint32_t port = 0;
  for (const char c : rest.substr(1)) {
    if (!IsDigit(c)) return kBadPort;
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) return kBadPort;
  }
  return "";
}

bool UnsupportedVersion(std::string_view head) {
  head = head.substr(0, std::min<size_t>(head.size(), 8192));
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos || eol < 9) return false;
  // A bare CR or LF before it: the line is malformed (a 400), whatever it ends with.
  if (head.substr(0, eol).find_first_of("\r\n") != std::string_view::npos) return false;
  const std::string_view v = head.substr(eol - 9, 9);  // " HTTP/x.y"
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.substr(0, 6) != " HTTP/" || !digit(v[6]) || v[7] != '.' || !digit(v[8])) return false;
  return !(v[6] == '1' && (v[8] == '0' || v[8] == '1'));
}

TargetCheck CheckRequestTarget(std::string_view method, std::string_view target, unsigned version,
                               size_t host_fields, std::string_view host) {
  TargetCheck out;
  if (host_fields > 1) {
    out.error = "more than one Host header";
    return out;
  }
  const bool origin_form = !target.empty() && target[0] == '/';
  if (origin_form || (target == "*" && method == "OPTIONS")) {
    if (host_fields == 0 && version >= 11) out.error = "HTTP/1.1 request without a Host header";
    if (host_fields == 1) out.error = CheckHost(host);
    return out;
  }
  // Absolute-form (RFC 9112 §3.2.2), parsed by Boost.URL; only "scheme://…" reaches it
  // (net::HasSchemeAndAuthority).
  static constexpr char kForms[] =
      "the request target must be a /path, an http(s):// URL, or * for OPTIONS";
  if (!net::HasSchemeAndAuthority(target)) {
    out.error = kForms;
    return out;
  }
  auto parsed = boost::urls::parse_absolute_uri(target);
  if (!parsed || !(EqualsIgnoreCase(parsed->scheme(), "http") ||
                   EqualsIgnoreCase(parsed->scheme(), "https"))) {
    out.error = kForms;
    return out;
  }
  const boost::urls::url_view& u = *parsed;
  const std::string_view authority = u.encoded_host_and_port();
  if (!u.has_authority() || authority.empty() || u.has_userinfo()) {
    out.error = "no host, or user info, in the absolute request target";
    return out;
  }
  // After an authority, a path is empty or starts with "/" (RFC 3986 3.3, path-abempty).
  // Boost.URL 1.81 ends a port at its first non-digit and takes the rest for the path
  // ("http://h:8a/x": port "8", path "a/x"), which would be forwarded as the target "a/x".
  const std::string_view path = u.encoded_path();
  if (!path.empty() && path[0] != '/') {
    out.error =
        "the absolute request target's authority must end at /, ? or the end (a port is digits)";
    return out;
  }
  out.error = CheckHost(authority);
  if (!out.error.empty()) return out;
  out.absolute = true;
  out.authority = std::string(authority);
  out.origin = u.encoded_path().empty() ? "/" : std::string(u.encoded_path());
  if (u.has_query()) out.origin += "?" + std::string(u.encoded_query());
  return out;
}

PrefaceMatch MatchH2Preface(std::string_view bytes) {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  if (bytes.size() >= kPreface.size()) {
    return bytes.substr(0, kPreface.size()) == kPreface ? PrefaceMatch::kYes : PrefaceMatch::kNo;
  }
  return kPreface.substr(0, bytes.size()) == bytes ? PrefaceMatch::kPrefix : PrefaceMatch::kNo;
}

}  // namespace doppel::recorder
