#include "replay/correlate.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <tuple>

#include "base/strings.h"
#include "diff/decode.h"
#include "diff/endpoint.h"
#include "net/proto_headers.h"
#include "net/url.h"

namespace doppel::replay {
namespace {

namespace json = boost::json;

constexpr size_t kMaxBodyBytes = 8 << 20;  // larger (decoded) bodies are not looked into
constexpr std::string_view kHmac = "hmac:";
constexpr std::string_view kBearer = "Bearer ";
constexpr std::string_view kRuleSource = "rule:";  // a rule's source location: "rule:NAME"

std::string Endpoint(const doppel::v1::HttpRequest& r) {
  return diff::TemplateEndpoint(r.method(), r.target());
}

// Calls fn(path, value) for every scalar of `v`, paths in diff syntax ("body.items[0].id").
// fn may change the value in place.
void WalkJson(json::value& v, const std::string& path,
              const std::function<void(const std::string&, json::value&)>& fn) {
  if (v.is_object()) {
    for (auto& kv : v.as_object()) WalkJson(kv.value(), path + "." + std::string(kv.key()), fn);
  } else if (v.is_array()) {
    auto& a = v.as_array();
    for (size_t i = 0; i < a.size(); ++i) WalkJson(a[i], path + "[" + std::to_string(i) + "]", fn);
  } else {
    fn(path, v);
  }
}

// The body of a message as text (decoded), or nullopt (empty, truncated, undecodable).
template <typename Message>
std::optional<std::string> BodyText(const Message& m) {
  if (m.body().empty() || m.body_truncated()) return std::nullopt;
  const std::string* ce = net::FindHeader(m.headers(), "content-encoding");
  const std::string* ct = net::FindHeader(m.headers(), "content-type");
  auto body = diff::DecodeBody(m.body(), ce ? *ce : "", ct ? *ct : "", kMaxBodyBytes);
  if (!body.ok()) return std::nullopt;
  return std::move(*body);
}

// The body of a message as JSON, or nullopt (truncated, undecodable, not JSON).
template <typename Message>
std::optional<json::value> JsonBody(const Message& m) {
  std::optional<std::string> body = BodyText(m);
  if (!body) return std::nullopt;
  json::error_code ec;
  json::value v = json::parse(*body, ec);
  if (ec || !(v.is_object() || v.is_array())) return std::nullopt;
  return v;
}

void AddJsonValues(json::value& body, std::vector<FoundValue>* out) {
  WalkJson(body, "body", [&](const std::string& path, json::value& v) {
    if (v.is_string()) out->push_back({path, std::string(v.as_string()), false});
    if (v.is_int64()) out->push_back({path, std::to_string(v.as_int64()), true});
    if (v.is_uint64()) out->push_back({path, std::to_string(v.as_uint64()), true});
  });
}

// "a=1; b=2" -> (name, value) pairs.
std::vector<std::pair<std::string, std::string>> SplitCookies(std::string_view header) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view item = TrimSpaces(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    out.emplace_back(std::string(TrimSpaces(item.substr(0, eq))),
                     std::string(TrimSpaces(item.substr(eq + 1))));
  }
  return out;
}

std::string JoinCookies(const std::vector<std::pair<std::string, std::string>>& cookies) {
  std::string s;
  for (const auto& [name, value] : cookies) s += (s.empty() ? "" : "; ") + name + "=" + value;
  return s;
}

// The non-empty segments of a path.
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!seg.empty()) out.push_back(seg);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool LooksLikeForm(const doppel::v1::HttpRequest& r) {
  const std::string* ct = net::FindHeader(r.headers(), "content-type");
  if (ct != nullptr) return AsciiLower(*ct).find("x-www-form-urlencoded") != std::string::npos;
  return r.body().find('=') != std::string::npos &&
         r.body().find_first_of(" \r\n{[") == std::string::npos;
}

// Replaces every occurrence of `from` in `s` by `to`; false when there is none.
bool ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  bool any = false;
  for (size_t at = s->find(from); !from.empty() && at != std::string::npos;
       at = s->find(from, at + to.size())) {
    s->replace(at, from.size(), to);
    any = true;
  }
  return any;
}

// Rebuilds an encoded query (or form body) with item `key`'s value replaced.
bool ReplaceQueryItem(std::string* encoded, std::string_view key, std::string_view recorded,
                      std::string_view live) {
  std::string out;
  bool any = false, first = true;
  for (const auto& item : net::SplitQuery(*encoded)) {
    if (!first) out += '&';
    first = false;
    if (item.has_value && item.key == key && item.value == recorded) {
      out += std::string(item.key) + "=" + std::string(live);
      any = true;
    } else {
      out += std::string(item.key) + (item.has_value ? "=" + std::string(item.value) : "");
    }
  }
  if (any) *encoded = out;
  return any;
}

// Adds `source` to the sources of `value` unless it is there.
void AddSource(CorrelationPlan* plan, const std::string& value, ValueSource source) {
  auto& sources = plan->values[value];
  for (const ValueSource& s : sources)
    if (s.endpoint == source.endpoint && s.location == source.location) return;
  sources.push_back(std::move(source));
}

}  // namespace

bool IsEvidence(std::string_view value, bool is_number) {
  if (value.empty()) return false;
  if (is_number) {
    int64_t n = 0;
    auto r = std::from_chars(value.data(), value.data() + value.size(), n);
    if (r.ec == std::errc::result_out_of_range) return true;  // a huge integer is an id
    if (r.ec != std::errc() || r.ptr != value.data() + value.size()) return false;
    return n >= kMinNumber || n <= -kMinNumber;
  }
  return value.size() >= kMinValueLength && value != "true" && value != "false" && value != "null";
}

std::optional<std::string> ResponseBodyText(const doppel::v1::HttpResponse& response) {
  return BodyText(response);
}

std::vector<FoundValue> ResponseValues(const doppel::v1::HttpResponse& response) {
  std::vector<FoundValue> out;
  if (auto body = JsonBody(response)) AddJsonValues(*body, &out);
  for (const auto& h : response.headers()) {
    if (EqualsIgnoreCase(h.name(), "location")) {
      out.push_back({"header:location", h.value(), false});
      auto segments = Segments(net::TargetPath(h.value()));
      if (!segments.empty())
        out.push_back({"header:location#last", std::string(segments.back()), false});
    } else if (EqualsIgnoreCase(h.name(), "set-cookie")) {
      std::string_view v = h.value();
      auto cookies = SplitCookies(v.substr(0, v.find(';')));
      if (!cookies.empty())
        out.push_back({"set-cookie:" + cookies[0].first, cookies[0].second, false});
    }
  }
  return out;
}

std::vector<FoundValue> RequestValues(const doppel::v1::HttpRequest& request) {
  std::vector<FoundValue> out;
  net::TargetParts parts = net::SplitTarget(request.target());
  auto segments = Segments(parts.path);
  for (size_t i = 0; i < segments.size(); ++i)
    out.push_back({"path:" + std::to_string(i), std::string(segments[i]), false});
  if (parts.query) {
    for (const auto& item : net::SplitQuery(*parts.query))
      if (item.has_value)
        out.push_back({"query:" + std::string(item.key), std::string(item.value), false});
  }
  for (const auto& h : request.headers()) {
    const std::string name = AsciiLower(h.name());
    if (name == "cookie" && !h.value().starts_with(kHmac)) {
      for (auto& [n, v] : SplitCookies(h.value())) out.push_back({"cookie:" + n, v, false});
      continue;
    }
    out.push_back({"header:" + name, h.value(), false});
    if (h.value().size() > kBearer.size() && EqualsIgnoreCase(h.value().substr(0, 7), kBearer))
      out.push_back({"header:" + name + "#bearer", h.value().substr(kBearer.size()), false});
  }
  if (auto body = JsonBody(request)) {
    AddJsonValues(*body, &out);
  } else if (!request.body().empty() && !request.body_truncated() && LooksLikeForm(request)) {
    for (const auto& item : net::SplitQuery(request.body()))
      if (item.has_value)
        out.push_back({"form:" + std::string(item.key), std::string(item.value), false});
  }
  return out;
}

bool ReplaceAt(std::string_view location, std::string_view recorded, std::string_view prefix,
               std::string_view live, doppel::v1::HttpRequest* request) {
  auto starts = [&](std::string_view p) { return location.starts_with(p); };
  if (starts("path:")) {
    size_t index = 0;
    std::string_view n = location.substr(5);
    if (std::from_chars(n.data(), n.data() + n.size(), index).ec != std::errc()) return false;
    net::TargetParts parts = net::SplitTarget(request->target());
    auto segments = Segments(parts.path);
    if (index >= segments.size() || segments[index] != recorded) return false;
    std::string target;
    size_t seen = 0;
    std::string_view path = parts.path;
    // Keep the slashes as they were; only the index-th non-empty segment changes.
    for (size_t i = 0; i <= path.size(); ++i) {
      size_t end = path.find('/', i);
      if (end == std::string_view::npos) end = path.size();
      std::string_view seg = path.substr(i, end - i);
      if (!seg.empty()) target += seen++ == index ? std::string(live) : std::string(seg);
      if (end < path.size()) target += '/';
      i = end;
    }
    if (parts.query) target += "?" + std::string(*parts.query);
    request->set_target(target);
    return true;
  }
  if (starts("query:")) {
    net::TargetParts parts = net::SplitTarget(request->target());
    if (!parts.query) return false;
    std::string query(*parts.query);
    if (!ReplaceQueryItem(&query, location.substr(6), recorded, live)) return false;
    request->set_target(std::string(parts.path) + "?" + query);
    return true;
  }
  if (starts("form:")) {
    return ReplaceQueryItem(request->mutable_body(), location.substr(5), recorded, live);
  }
  if (starts("header:")) {
    std::string_view name = location.substr(7);
    name = name.substr(0, name.find('#'));
    bool any = false;
    for (auto& h : *request->mutable_headers()) {
      if (!EqualsIgnoreCase(h.name(), name)) continue;
      if (recorded.starts_with(kHmac)) {
        if (h.value() != recorded) continue;
        h.set_value(std::string(prefix) + std::string(live));
        any = true;
      } else {
        any |= ReplaceAll(h.mutable_value(), recorded, live);
      }
    }
    return any;
  }
  if (starts("cookie:")) {
    std::string_view name = location.substr(7);
    bool any = false;
    for (auto& h : *request->mutable_headers()) {
      if (!EqualsIgnoreCase(h.name(), "cookie")) continue;
      auto cookies = SplitCookies(h.value());
      for (auto& [n, v] : cookies) {
        if (n == name && v == recorded) {
          v = live;
          any = true;
        }
      }
      if (any) h.set_value(JoinCookies(cookies));
    }
    return any;
  }
  if (starts("body")) {
    if (net::FindHeader(request->headers(), "content-encoding") != nullptr) return false;
    auto body = JsonBody(*request);
    if (!body) return false;
    bool any = false;
    WalkJson(*body, "body", [&](const std::string& path, json::value& v) {
      if (path != location) return;
      if (v.is_string() && (v.as_string() == recorded)) {
        v = json::string(recorded.starts_with(kHmac) ? std::string(prefix) + std::string(live)
                                                     : std::string(live));
        any = true;
      } else if ((v.is_int64() || v.is_uint64()) && json::serialize(v) == recorded) {
        json::error_code ec;
        json::value n = json::parse(live, ec);
        v = !ec && n.is_number() ? n : json::value(json::string(live));
        any = true;
      }
    });
    if (any) request->set_body(json::serialize(*body));
    return any;
  }
  return false;
}

std::string ClientOf(const doppel::v1::Envelope& envelope, std::string_view sample_key) {
  const auto& req = envelope.request();
  if (sample_key.starts_with("header:")) {
    const std::string* v = net::FindHeader(req.headers(), sample_key.substr(7));
    if (v != nullptr && !v->empty()) return "key:" + *v;
  } else if (sample_key.starts_with("query:")) {
    auto v = net::FindQueryParam(req.target(), sample_key.substr(6));
    if (v && !v->empty()) return "key:" + *v;
  }
  return "addr:" + envelope.client_addr();
}

// ---- learning ----

CorrelationLearner::CorrelationLearner(std::string sample_key, ValueHasher hasher,
                                       std::shared_ptr<const CorrelationRules> rules)
    : sample_key_(std::move(sample_key)),
      hasher_(std::move(hasher)),
      rules_(std::move(rules)),
      learn_(rules_ == nullptr || rules_->auto_learn) {}

void CorrelationLearner::AddHashes(const std::string& value) {
  if (!hasher_) return;
  by_hash_.emplace(hasher_(value), std::make_pair(value, std::string()));
  by_hash_.emplace(hasher_(std::string(kBearer) + value),
                   std::make_pair(value, std::string(kBearer)));
}

void CorrelationLearner::AddRuleHits(const std::string& client, const std::string& endpoint,
                                     const doppel::v1::HttpRequest& request, const FoundValue& v,
                                     const std::string& value, const std::string& hashed,
                                     const std::string& prefix) {
  auto extracted = rule_values_.find({client, value});
  if (extracted == rule_values_.end()) return;
  for (const auto& [i, source_endpoint] : extracted->second) {
    const CorrelationRule& rule = rules_->rules[i];
    // A redacted "Authorization: Bearer T" is one hash of the whole value: the rule's
    // header:authorization#bearer sink is that header.
    const bool at = rule.inject_location == v.location ||
                    (prefix == kBearer && rule.inject_location == v.location + "#bearer");
    if (!at || !MatchesEndpoint(rule.inject_endpoint, request)) continue;
    hits_.push_back({value, endpoint, v.location, hashed, prefix, i, source_endpoint});
  }
}

void CorrelationLearner::AddCandidate(const std::string& client, const std::string& endpoint,
                                      const FoundValue& v) {
  if (!IsEvidence(v.value, v.is_number) || v.value.starts_with(kHmac)) return;
  if (sent_first_.contains(v.value)) return;  // the client had it before any response
  auto it = candidates_.find(v.value);
  if (it != candidates_.end()) {
    Candidate& c = it->second;
    if (c.client != client) c.shared = true;
    c.endpoints.insert(endpoint);
    return;
  }
  if (candidates_.size() >= kMaxCandidates) return;
  Candidate& c = candidates_[v.value];
  c.client = client;
  c.source = {endpoint, v.location};
  c.endpoints.insert(endpoint);
  AddHashes(v.value);
}

void CorrelationLearner::Add(const doppel::v1::Envelope& e) {
  const std::string client = ClientOf(e, sample_key_);
  const std::string endpoint = Endpoint(e.request());
  // The request comes before its own response: its values can only be sinks of earlier
  // responses.
  for (const FoundValue& v : RequestValues(e.request())) {
    std::string value = v.value, hashed, prefix;
    if (v.value.starts_with(kHmac)) {
      auto h = by_hash_.find(v.value);
      if (h == by_hash_.end()) continue;
      hashed = v.value;
      value = h->second.first;
      prefix = h->second.second;
    }
    if (rules_) AddRuleHits(client, endpoint, e.request(), v, value, hashed, prefix);
    if (!learn_) continue;
    auto c = candidates_.find(value);
    if (c == candidates_.end()) {
      if (hashed.empty() && IsEvidence(value, false) && sent_first_.size() < kMaxCandidates)
        sent_first_.insert(value);
      continue;
    }
    if (c->second.client != client) continue;
    hits_.push_back({value, endpoint, v.location, hashed, prefix});
  }
  if (e.error() != doppel::v1::PROXY_ERROR_NONE || e.response().status() == 0) return;
  for (size_t i = 0; rules_ && i < rules_->rules.size(); ++i) {
    const CorrelationRule& rule = rules_->rules[i];
    if (!MatchesEndpoint(rule.extract_endpoint, e.request())) continue;
    std::optional<std::string> value = ExtractValue(rule, e.response());
    if (!value || value->starts_with(kHmac) || rule_values_.size() >= kMaxCandidates) continue;
    rule_values_[{client, *value}].emplace(i, endpoint);  // the first answer that had it
    AddHashes(*value);
  }
  if (!learn_) return;
  for (const FoundValue& v : ResponseValues(e.response())) AddCandidate(client, endpoint, v);
}

CorrelationPlan CorrelationLearner::Finish() {
  CorrelationPlan plan;
  plan.sample_key = sample_key_;
  // Learned correlations first (sorted by key), then one per rule in the file's order.
  std::map<CorrelationKey, uint64_t> counts;
  auto add = [&](const Hit& hit, const ValueSource& source) {
    AddSource(&plan, hit.value, source);
    if (!hit.hashed.empty()) plan.hashed[hit.hashed] = {hit.value, hit.prefix};
    plan.source_locations[source.endpoint].insert(source.location);
    plan.sink_locations[hit.sink_endpoint].insert(hit.sink_location);
  };
  for (const Hit& hit : hits_) {
    if (hit.rule != std::string::npos) continue;
    const Candidate& c = candidates_.at(hit.value);
    if (c.shared || c.endpoints.size() > kMaxSourceEndpoints) continue;
    ++counts[{c.source.endpoint, c.source.location, hit.sink_endpoint, hit.sink_location}];
    add(hit, c.source);
  }
  for (const auto& [key, n] : counts) {
    const auto& [se, sl, ke, kl] = key;
    plan.index[key] = plan.correlations.size();
    plan.correlations.push_back({"", se, sl, ke, kl, n});
  }
  if (rules_ == nullptr) return plan;
  plan.mode = "rules";
  const size_t first_rule = plan.correlations.size();
  for (const CorrelationRule& rule : rules_->rules) {
    plan.correlations.push_back({rule.name, rule.source_endpoint, rule.source_location,
                                 rule.sink_endpoint, rule.inject_location, 0});
    plan.rules.emplace(rule.name, rule);
  }
  for (const Hit& hit : hits_) {
    if (hit.rule == std::string::npos) continue;
    const ValueSource source{hit.source_endpoint,
                             std::string(kRuleSource) + rules_->rules[hit.rule].name};
    add(hit, source);
    plan.index[{source.endpoint, source.location, hit.sink_endpoint, hit.sink_location}] =
        first_rule + hit.rule;
    ++plan.correlations[first_rule + hit.rule].recorded;
  }
  return plan;
}

void FillCorrelationReport(const CorrelationPlan& plan, const CorrelationCounts& counts,
                           doppel::v1::CorrelationReport* out) {
  out->set_mode(plan.mode);
  out->set_cookies_applied(counts.cookies_applied);
  for (size_t i = 0; i < plan.correlations.size(); ++i) {
    const Correlation& c = plan.correlations[i];
    auto* r = out->add_correlations();
    r->set_rule(c.rule);
    r->set_source_endpoint(c.source_endpoint);
    r->set_source_location(c.source_location);
    r->set_sink_endpoint(c.sink_endpoint);
    r->set_sink_location(c.sink_location);
    r->set_recorded(c.recorded);
    r->set_substituted(i < counts.substituted.size() ? counts.substituted[i] : 0);
    r->set_unanswered(i < counts.unanswered.size() ? counts.unanswered[i] : 0);
    out->set_substituted(out->substituted() + r->substituted());
    out->set_unanswered(out->unanswered() + r->unanswered());
  }
}

// ---- applying live ----

LiveCorrelator::LiveCorrelator(const CorrelationPlan& plan, size_t lanes)
    : plan_(plan), live_(lanes), jars_(lanes) {
  counts_.substituted.assign(plan.correlations.size(), 0);
  counts_.unanswered.assign(plan.correlations.size(), 0);
}

std::string LiveCorrelator::ClientOf(const doppel::v1::Envelope& recorded) const {
  return replay::ClientOf(recorded, plan_.sample_key);
}

bool LiveCorrelator::Patch(size_t lane, const std::string& client,
                           const doppel::v1::Envelope& recorded, doppel::v1::Envelope* patched) {
  const std::string endpoint = Endpoint(recorded.request());
  auto sinks = plan_.sink_locations.find(endpoint);
  auto jar = jars_[lane].find(client);
  const bool has_jar = jar != jars_[lane].end() && !jar->second.empty() &&
                       net::FindHeader(recorded.request().headers(), "cookie") != nullptr;
  if (sinks == plan_.sink_locations.end() && !has_jar) return false;
  *patched = recorded;
  bool changed = false;
  if (sinks != plan_.sink_locations.end()) {
    for (const FoundValue& v : RequestValues(recorded.request())) {
      if (!sinks->second.contains(v.location)) continue;
      std::string value = v.value, prefix;
      if (v.value.starts_with(kHmac)) {
        auto h = plan_.hashed.find(v.value);
        if (h == plan_.hashed.end()) continue;
        value = h->second.first;
        prefix = h->second.second;
      }
      auto sources = plan_.values.find(value);
      if (sources == plan_.values.end()) continue;
      auto idx = plan_.index.end();
      for (const ValueSource& s : sources->second) {
        idx = plan_.index.find({s.endpoint, s.location, endpoint, v.location});
        if (idx != plan_.index.end()) break;
      }
      if (idx == plan_.index.end()) continue;
      const auto& live_values = live_[lane][client];
      auto live = live_values.find(value);
      if (live != live_values.end() &&
          ReplaceAt(v.location, v.value, prefix, live->second, patched->mutable_request())) {
        changed = true;
        if (lane == 0) ++counts_.substituted[idx->second];
      } else if (lane == 0) {
        ++counts_.unanswered[idx->second];
      }
    }
  }
  if (has_jar) {
    for (auto& h : *patched->mutable_request()->mutable_headers()) {
      if (!EqualsIgnoreCase(h.name(), "cookie")) continue;
      std::vector<std::pair<std::string, std::string>> cookies;
      if (!h.value().starts_with(kHmac)) cookies = SplitCookies(h.value());
      for (const auto& kept : jar->second) {
        auto it = std::find_if(cookies.begin(), cookies.end(),
                               [&](const auto& c) { return c.first == kept.first; });
        if (it != cookies.end())
          it->second = kept.second;
        else
          cookies.emplace_back(kept.first, kept.second);
      }
      h.set_value(JoinCookies(cookies));
    }
    changed = true;
    if (lane == 0) ++counts_.cookies_applied;
  }
  return changed;
}

void LiveCorrelator::Observe(size_t lane, const std::string& client,
                             const doppel::v1::Envelope& recorded,
                             const doppel::v1::HttpResponse& live) {
  for (const auto& h : live.headers()) {
    if (!EqualsIgnoreCase(h.name(), "set-cookie")) continue;
    std::string_view v = h.value();
    auto cookies = SplitCookies(v.substr(0, v.find(';')));
    if (!cookies.empty()) jars_[lane][client][cookies[0].first] = cookies[0].second;
  }
  auto sources = plan_.source_locations.find(Endpoint(recorded.request()));
  if (sources == plan_.source_locations.end()) return;
  auto& live_values = live_[lane][client];
  std::map<std::string, std::string> live_at;
  for (FoundValue& v : ResponseValues(live))
    if (sources->second.contains(v.location)) live_at.emplace(v.location, std::move(v.value));
  for (const FoundValue& v : ResponseValues(recorded.response())) {
    if (!sources->second.contains(v.location) || !plan_.values.contains(v.value)) continue;
    auto l = live_at.find(v.location);
    if (l != live_at.end()) live_values[v.value] = l->second;
  }
  // Explicit rules' sources ("rule:NAME"): the rule's own extraction, on both answers.
  for (const std::string& location : sources->second) {
    if (!location.starts_with(kRuleSource)) continue;
    auto rule = plan_.rules.find(location.substr(kRuleSource.size()));
    if (rule == plan_.rules.end() ||
        !MatchesEndpoint(rule->second.extract_endpoint, recorded.request()))
      continue;
    std::optional<std::string> was = ExtractValue(rule->second, recorded.response());
    if (!was || !plan_.values.contains(*was)) continue;
    if (std::optional<std::string> now = ExtractValue(rule->second, live))
      live_values[*was] = std::move(*now);
  }
}

}  // namespace doppel::replay
