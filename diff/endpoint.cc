#include "diff/endpoint.h"

#include <utility>

#include "base/strings.h"
#include "diff/normalize.h"
#include "net/url.h"

namespace doppel::diff {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexChar(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(start));
      return out;
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

// Appends METHOD + " " + the templated `path` (a TargetPath), without splitting it into a
// vector: a per-request cost of the recorder's coverage sampling (request classes).
void AppendTemplatePath(std::string_view method, std::string_view path, std::string* out) {
  out->append(method);
  out->push_back(' ');
  if (path.front() != '/') {  // asterisk-form ("*") or something odd: keep it as it is
    out->append(path);
    return;
  }
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    const std::string_view seg = path.substr(0, slash);
    out->push_back('/');
    out->append(IsIdSegment(seg) ? std::string_view("{id}") : seg);
    if (slash == std::string_view::npos) return;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

bool IsIdSegment(std::string_view s) {
  if (s.empty()) return false;
  bool all_digits = true, all_hex = true, has_digit = false;
  for (char c : s) {
    if (!IsDigit(c))
      all_digits = false;
    else
      has_digit = true;
    if (!IsHexChar(c)) all_hex = false;
  }
  if (all_digits) return true;
  if (IsUuid(s) || IsUlid(s)) return true;
  return all_hex && has_digit && s.size() >= 8;
}

std::string TemplateEndpoint(std::string_view method, std::string_view target) {
  std::string out;
  out.reserve(method.size() + target.size() + 8);
  AppendTemplatePath(method, net::TargetPath(target), &out);
  return out;
}

Result<EndpointTemplate> EndpointTemplate::Parse(std::string_view text) {
  EndpointTemplate t;
  t.text_ = std::string(text);
  std::string_view rest = text;
  size_t space = rest.find(' ');
  if (space != std::string_view::npos) {
    t.method_ = std::string(rest.substr(0, space));
    if (t.method_ == "*") t.method_.clear();
    rest = rest.substr(space + 1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  }
  if (rest.empty() || rest.front() != '/') {
    return Status::InvalidArgument("bad endpoint \"" + std::string(text) +
                                   "\": expected \"METHOD /path/{id}\" or \"/path/{id}\"");
  }
  if (rest.find_first_of("?# ") != std::string_view::npos) {
    return Status::InvalidArgument("bad endpoint \"" + std::string(text) +
                                   "\": the path may not contain a query, fragment or space");
  }
  for (char c : t.method_) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-' || c == '_')) {
      return Status::InvalidArgument("bad endpoint \"" + std::string(text) + "\": bad method \"" +
                                     t.method_ + "\"");
    }
  }
  t.path_ = std::string(rest);
  for (std::string_view seg : SplitPath(rest)) t.segments_.emplace_back(seg);
  return t;
}

bool EndpointTemplate::Matches(std::string_view method, std::string_view path) const {
  if (!method_.empty() && !EqualsIgnoreCase(method_, method)) return false;
  if (path.empty() || path.front() != '/') return false;
  std::vector<std::string_view> segs = SplitPath(path);
  if (segs.size() != segments_.size()) return false;
  for (size_t i = 0; i < segs.size(); ++i) {
    const std::string& p = segments_[i];
    bool wildcard = p.size() >= 2 && p.front() == '{' && p.back() == '}';
    if (wildcard ? segs[i].empty() : segs[i] != p) return false;
  }
  return true;
}

std::string EndpointTemplate::NameFor(std::string_view method) const {
  if (!method_.empty()) return method_ + " " + path_;
  return std::string(method) + " " + path_;
}

std::string EndpointNamer::Name(std::string_view method, std::string_view target) const {
  std::string out;
  out.reserve(method.size() + target.size() + 8);
  AppendName(method, target, &out);
  return out;
}

void EndpointNamer::AppendName(std::string_view method, std::string_view target,
                               std::string* out) const {
  std::string_view path = net::TargetPath(target);
  for (const EndpointTemplate& t : patterns_) {
    if (t.Matches(method, path)) {
      out->append(t.NameFor(method));
      return;
    }
  }
  AppendTemplatePath(method, path, out);
}

}  // namespace doppel::diff
