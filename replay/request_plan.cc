#include "replay/request_plan.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "base/strings.h"
#include "net/proto_headers.h"
#include "net/url.h"
#include "net/websocket_frames.h"
#include "storage/proxy_error.h"

namespace doppel::replay {
namespace {

uint64_t Mix64(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The user's --rewrite-path replacement (ECMAScript's $1, $&, $$, as before RE2) in RE2's
// rewrite syntax (\1, \0, \\); \1..\9 are kept, any other backslash stays literal.
std::string ToRe2Rewrite(std::string_view repl) {
  std::string out;
  for (size_t i = 0; i < repl.size(); ++i) {
    const char c = repl[i];
    const char next = i + 1 < repl.size() ? repl[i + 1] : '\0';
    if (c == '\\' && next >= '0' && next <= '9') {
      out += c;
      out += next;
      ++i;
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '$' && next >= '0' && next <= '9') {
      out += '\\';
      out += next;
      ++i;
    } else if (c == '$' && next == '&') {
      out += "\\0";
      ++i;
    } else if (c == '$' && next == '$') {
      out += '$';
      ++i;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

bool InPercent(uint64_t arrival_us, uint32_t seq, double percent, uint64_t seed) {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  uint64_t h = Mix64(Mix64(arrival_us ^ Mix64(seed)) ^ seq);
  // Top 53 bits as a fraction in [0, 1).
  double u = static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);
  return u * 100.0 < percent;
}

bool IsUnsafeMethod(std::string_view m) {
  return EqualsIgnoreCase(m, "POST") || EqualsIgnoreCase(m, "PUT") ||
         EqualsIgnoreCase(m, "PATCH") || EqualsIgnoreCase(m, "DELETE");
}

bool SplitAssignment(std::string_view text, std::string* left, std::string* right) {
  size_t eq = text.find('=');
  size_t colon = text.find(':');
  size_t at = std::min(eq, colon);
  if (at == std::string_view::npos || at == 0) return false;
  *left = std::string(text.substr(0, at));
  std::string_view r = text.substr(at + 1);
  if (text[at] == ':') {
    while (!r.empty() && r.front() == ' ') r.remove_prefix(1);
  }
  *right = std::string(r);
  return true;
}

Result<std::shared_ptr<const Selector>> Selector::Create(const SelectionOptions& o) {
  if (!(o.percent >= 0 && o.percent <= 100))
    return Status::InvalidArgument("--percent must be between 0 and 100");
  auto s = std::shared_ptr<Selector>(new Selector());
  s->opts_ = o;
  for (const auto& m : o.methods) s->methods_upper_.push_back(Upper(m));
  if (!o.path_regex.empty()) {
    DOPPEL_ASSIGN_OR_RETURN(auto re, net::CompileRegex(o.path_regex, "--path-regex"));
    s->path_ = std::move(re);
  }
  for (const auto& h : o.header_regex) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0)
      return Status::InvalidArgument("--header-regex '" + h + "' must look like 'Name: REGEX'");
    std::string value = h.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    DOPPEL_ASSIGN_OR_RETURN(auto re, net::CompileRegex(value, "--header-regex"));
    s->headers_.emplace_back(h.substr(0, colon), std::move(re));
  }
  return std::shared_ptr<const Selector>(s);
}

void DecisionCounts::Count(Decision d) {
  // In the order of Decision's values.
  uint64_t* const by_decision[] = {&send,     &refused, &not_in_percent,
                                   &filtered, &unsafe,  &websocket};
  ++*by_decision[static_cast<size_t>(d)];
}

bool Selector::IsReadOnlyGrpcCall(const doppel::v1::HttpRequest& req) const {
  if (!opts_.grpc_schema) return false;
  const std::string* type = net::FindHeader(req.headers(), "content-type");
  return type != nullptr && diff::IsGrpcContentType(*type) &&
         opts_.grpc_schema->HasNoSideEffects(net::TargetPath(req.target()));
}

namespace {

bool AnyCompressed(const doppel::v1::WebSocketSession& session) {
  return std::any_of(session.messages().begin(), session.messages().end(),
                     [](const auto& m) { return m.compressed(); });
}

}  // namespace

bool ReplayableWebSocket(const doppel::v1::WebSocketSession& session) {
  for (const auto& m : session.messages()) {
    if (m.from_client() && m.payload_truncated()) return false;
  }
  return !AnyCompressed(session) ||
         net::InflateWebSocketSession(session, net::kMaxDecompressedWebSocketBytes).ok();
}

void DecompressWebSocketForReplay(doppel::v1::WebSocketSession* session) {
  if (!AnyCompressed(*session)) return;
  auto plain = net::InflateWebSocketSession(*session, net::kMaxDecompressedWebSocketBytes);
  if (plain.ok()) *session = std::move(plain).value();
}

Decision Selector::Decide(const doppel::v1::Envelope& e) const {
  if (storage::ProxyRefused(e)) return Decision::kRefused;
  if (e.has_websocket() && !(opts_.websocket && ReplayableWebSocket(e.websocket())))
    return Decision::kWebSocket;
  const auto& req = e.request();
  if (!InPercent(e.arrival_us(), e.seq(), opts_.percent, opts_.seed))
    return Decision::kNotInPercent;
  if (!methods_upper_.empty() && std::find(methods_upper_.begin(), methods_upper_.end(),
                                           Upper(req.method())) == methods_upper_.end())
    return Decision::kFiltered;
  if (path_ && !re2::RE2::PartialMatch(req.target(), *path_)) return Decision::kFiltered;
  for (const auto& [name, re] : headers_) {
    bool any = false;
    for (const auto& h : req.headers())
      if (EqualsIgnoreCase(h.name(), name) && re2::RE2::PartialMatch(h.value(), *re)) any = true;
    if (!any) return Decision::kFiltered;
  }
  if (!opts_.allow_unsafe && IsUnsafeMethod(req.method()) && !IsReadOnlyGrpcCall(req)) {
    return Decision::kUnsafe;
  }
  return Decision::kSend;
}

Result<std::shared_ptr<const Rewriter>> Rewriter::Create(const RewriteOptions& o) {
  auto r = std::shared_ptr<Rewriter>(new Rewriter());
  r->opts_ = o;
  for (const auto& [re, repl] : o.rewrite_path) {
    DOPPEL_ASSIGN_OR_RETURN(auto compiled, net::CompileRegex(re, "--rewrite-path"));
    std::string rewrite = ToRe2Rewrite(repl);
    if (std::string why; !compiled->CheckRewriteString(rewrite, &why))
      return Status::InvalidArgument("--rewrite-path '" + re + "=" + repl + "': " + why);
    r->paths_.emplace_back(std::move(compiled), std::move(rewrite));
  }
  return std::shared_ptr<const Rewriter>(r);
}

void Rewriter::Build(const doppel::v1::Envelope& e, const std::string& authority,
                     const std::string& base_path, OutgoingRequest* out,
                     uint64_t* dropped_redacted) const {
  const auto& req = e.request();
  out->method = req.method();
  std::string target = req.target().empty() ? "/" : req.target();
  for (const auto& [re, rewrite] : paths_) re2::RE2::GlobalReplace(&target, *re, rewrite);
  out->target = base_path + target;
  out->version = req.version() == 10 ? 10 : 11;
  out->headers.clear();
  auto listed = [](const auto& list, std::string_view name) {
    for (const auto& item : list)
      if (EqualsIgnoreCase(item, name)) return true;
    return false;
  };
  bool host_seen = false;
  for (const auto& h : req.headers()) {
    const std::string& name = h.name();
    if (EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
        EqualsIgnoreCase(name, "Expect"))
      continue;
    if (listed(opts_.remove_headers, name)) continue;
    bool overridden = false;
    for (const auto& [n, v] : opts_.set_headers) overridden |= EqualsIgnoreCase(n, name);
    if (overridden) continue;
    if (EqualsIgnoreCase(name, "Host")) {
      host_seen = true;
      out->headers.emplace_back("Host", opts_.keep_host ? h.value() : authority);
      continue;
    }
    if (h.value().rfind("hmac:", 0) == 0) {
      if (dropped_redacted) ++*dropped_redacted;
      continue;
    }
    out->headers.emplace_back(name, h.value());
  }
  if (!host_seen && !listed(opts_.remove_headers, "Host")) {
    bool set = false;
    for (const auto& [n, v] : opts_.set_headers) set |= EqualsIgnoreCase(n, "Host");
    if (!set) out->headers.emplace_back("Host", authority);
  }
  for (const auto& [n, v] : opts_.set_headers) out->headers.emplace_back(n, v);
  out->body = req.body();
}

}  // namespace doppel::replay
