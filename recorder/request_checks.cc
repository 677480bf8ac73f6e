#include "recorder/request_checks.h"

#include <algorithm>

#include "base/strings.h"

namespace doppel::recorder {

bool UnsupportedVersion(std::string_view head) {
  head = head.substr(0, std::min<size_t>(head.size(), 8192));
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos || eol < 9) return false;
  const std::string_view v = head.substr(eol - 9, 9);  // " HTTP/x.y"
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.substr(0, 6) != " HTTP/" || !digit(v[6]) || v[7] != '.' || !digit(v[8])) return false;
  return !(v[6] == '1' && (v[8] == '0' || v[8] == '1'));
}

TargetCheck CheckRequestTarget(std::string_view method, std::string_view target, unsigned version,
                               size_t host_fields) {
  TargetCheck out;
  if (host_fields > 1) {
    out.error = "more than one Host header";
    return out;
  }
  const bool origin_form = !target.empty() && target[0] == '/';
  if (origin_form || (target == "*" && method == "OPTIONS")) {
    if (host_fields == 0 && version >= 11) out.error = "HTTP/1.1 request without a Host header";
    return out;
  }
  const size_t scheme_end = target.find("://");
  const std::string_view scheme = target.substr(0, scheme_end);
  if (scheme_end == std::string_view::npos ||
      !(EqualsIgnoreCase(scheme, "http") || EqualsIgnoreCase(scheme, "https"))) {
    out.error = "the request target must be a /path, an http(s):// URL, or * for OPTIONS";
    return out;
  }
  const std::string_view rest = target.substr(scheme_end + 3);
  const size_t end = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    out.error = "no host, or user info, in the absolute request target";
    return out;
  }
  out.absolute = true;
  out.authority = std::string(authority);
  out.origin = std::string(end == std::string_view::npos ? "/" : rest.substr(end));
  if (out.origin[0] == '?') out.origin.insert(0, "/");
  return out;
}

}  // namespace doppel::recorder
