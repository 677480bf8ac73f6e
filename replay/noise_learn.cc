#include "replay/noise_learn.h"

#include <algorithm>
#include <boost/json.hpp>
#include <map>
#include <unordered_map>
#include <utility>

#include "base/strings.h"
#include "diff/body.h"
#include "diff/diff.h"
#include "diff/endpoint.h"
#include "diff/path.h"
#include "storage/proxy_error.h"

namespace doppel::replay {
namespace {

namespace json = boost::json;

// A kept first response, with the endpoint name computed once.
struct Kept {
  doppel::v1::HttpResponse response;
  std::string endpoint;
};

struct EndpointCounts {
  uint64_t pairs = 0;
  std::map<std::string, uint64_t> varied;  // generalized path -> pairs it differed in
};

// method and target, then the first 64 bits (16 hex digits) of the SHA-256 of the body and
// the identity headers' lines, separated by characters that cannot occur in a method or a
// request-target.
std::string RequestKey(const doppel::v1::HttpRequest& request,
                       const std::vector<std::string>& key_headers) {
  // The body's length first keeps body and header lines apart.
  std::string hashed = std::to_string(request.body().size());
  hashed.append(":").append(request.body());
  for (const doppel::v1::Header& h : request.headers()) {
    for (const std::string& name : key_headers) {
      if (EqualsIgnoreCase(h.name(), name)) {
        hashed.append("\n").append(name).append(": ").append(h.value());
        break;
      }
    }
  }
  std::string key;
  key.reserve(request.method().size() + request.target().size() + 18);
  key.append(request.method()).push_back('\n');
  key.append(request.target()).push_back('\n');
  key.append(diff::Sha256Hex(hashed).substr(0, 16));
  return key;
}

bool Complete(const doppel::v1::Envelope& e) {
  return e.error() == doppel::v1::PROXY_ERROR_NONE && e.has_response() &&
         !e.request().body_truncated() && !e.response().body_truncated();
}

// Differences that say nothing about noise: limits and undecodable bodies, and
// Content-Length, which only follows a body that differed (the body field is learned).
bool Learnable(const diff::FieldDiff& d) {
  return d.kind != diff::DiffKind::kUncompared && d.path != "status" &&
         d.path != "headers.content-length";
}

std::string Quote(std::string_view s) { return json::serialize(json::value(json::string_view(s))); }

// "headers.x-cache" or "headers[\"odd.name\"]" (possibly followed by an index) -> the name.
std::string HeaderName(std::string_view path) {
  std::string_view rest = path.substr(std::string_view("headers").size());
  if (rest.starts_with(".")) {
    rest.remove_prefix(1);
    return std::string(rest.substr(0, rest.find('[')));
  }
  if (rest.starts_with("[\"")) {
    // The key is a JSON string up to the closing quote that is not escaped.
    size_t end = 2;
    while (end < rest.size() && rest[end] != '"') end += rest[end] == '\\' ? 2 : 1;
    boost::system::error_code ec;
    json::value v = json::parse(rest.substr(1, end), ec);
    if (!ec && v.is_string()) return std::string(v.as_string());
  }
  return {};
}

std::string VariedComment(const LearnedField& f) {
  return "// varied in " + std::to_string(f.varied) + " of " + std::to_string(f.pairs) +
         " identical requests";
}

}  // namespace

Result<NoiseLearnResult> LearnNoise(EnvelopeSource& source, const NoiseLearnOptions& options) {
  diff::DiffConfig config;
  config.rules = options.rules;
  // Every differing field must be attributed; the default cap is sized for reports.
  config.max_diffs = 100'000;
  config.max_listed_paths = 0;
  DOPPEL_ASSIGN_OR_RETURN(auto created, diff::Differ::Create(std::move(config)));
  const diff::Differ& differ = *created;

  std::vector<std::string> key_headers;
  for (const std::string& name : options.key_headers) key_headers.push_back(AsciiLower(name));

  NoiseLearnResult result;
  std::unordered_map<std::string, Kept> kept;
  size_t kept_bytes = 0;
  std::map<std::string, EndpointCounts> counts;  // by endpoint
  std::vector<std::string> paths;

  doppel::v1::Envelope e;
  while (source.Next(&e)) {
    ++result.envelopes;
    if (storage::ProxyRefused(e)) {
      ++result.refused;
      continue;
    }
    if (!Complete(e)) {
      ++result.incomplete;
      continue;
    }
    std::string key = RequestKey(e.request(), key_headers);
    auto it = kept.find(key);
    if (it == kept.end()) {
      size_t bytes = key.size() + e.response().ByteSizeLong();
      if (kept.size() >= options.max_keys || kept_bytes + bytes > options.max_kept_bytes) {
        result.key_cap_reached = true;
        ++result.not_kept;
        continue;
      }
      kept_bytes += bytes;
      std::string endpoint = differ.Endpoint(e.request().method(), e.request().target());
      kept.emplace(std::move(key), Kept{std::move(*e.mutable_response()), std::move(endpoint)});
      continue;
    }
    const Kept& first = it->second;
    if (first.response.status() != e.response().status()) {
      // 200 then 503 is an outage, not a noisy field; learning from it would hide regressions.
      ++result.status_changed;
      continue;
    }
    diff::DiffResult r =
        differ.Compare(e.request().method(), e.request().target(), first.response, e.response());
    ++result.pairs;
    EndpointCounts& ec = counts[first.endpoint];
    ++ec.pairs;
    if (r.omitted_diffs > 0) ++result.pairs_with_omitted;
    paths.clear();
    for (const diff::FieldDiff& d : r.diffs) {
      if (Learnable(d)) paths.push_back(diff::GeneralizePath(d.path));
    }
    // A field counts once per pair, however many array elements differed in it.
    std::sort(paths.begin(), paths.end());
    paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    for (std::string& p : paths) ++ec.varied[std::move(p)];
  }
  if (!source.status().ok()) return source.status();
  result.keys = kept.size();

  for (const auto& [endpoint, ec] : counts) {
    for (const auto& [path, varied] : ec.varied) {
      if (varied < options.min_pairs) {
        ++result.below_min_pairs;
        continue;
      }
      // Names a rules file cannot express (an odd request path) are counted, not written.
      if (!diff::EndpointTemplate::Parse(endpoint).ok() || !diff::PathPattern::Parse(path).ok()) {
        ++result.unrepresentable;
        continue;
      }
      result.fields.push_back(LearnedField{endpoint, path, varied, ec.pairs});
    }
  }
  return result;
}

std::string NoiseRulesJson(const NoiseLearnResult& result, std::string_view origin) {
  std::vector<const LearnedField*> headers, body;
  for (const LearnedField& f : result.fields) {
    if (f.path.starts_with("headers")) {
      headers.push_back(&f);
    } else if (f.path == "body" || f.path.starts_with("body.") || f.path.starts_with("body[")) {
      body.push_back(&f);
    }
  }

  std::string out;
  out += "// Learned by `doppel noise learn` from ";
  out += origin;
  out += ".\n";
  out += "// Fields that differed between identical requests (same method, target and body)\n";
  out += "// recorded with different responses. Review before use: a field that varies in\n";
  out += "// production can still carry a regression.\n";
  out += "{\n  \"version\": 1,\n";

  // The header ignore list is global: one entry per header, with the endpoints it varied on.
  std::map<std::string, std::vector<const LearnedField*>> by_header;
  for (const LearnedField* f : headers) {
    std::string name = HeaderName(f->path);
    if (!name.empty()) by_header[name].push_back(f);
  }
  if (!by_header.empty()) {
    out += "  \"headers\": {\n    \"ignore\": [\n";
    size_t i = 0;
    for (const auto& [name, fields] : by_header) {
      for (const LearnedField* f : fields)
        out += "      " + VariedComment(*f) + " to " + f->endpoint + "\n";
      out += "      " + Quote(name) + (++i < by_header.size() ? ",\n" : "\n");
    }
    out += "    ]\n  },\n";
  }

  out += "  \"rules\": [";
  for (size_t i = 0; i < body.size(); ++i) {
    const LearnedField& f = *body[i];
    out += i == 0 ? "\n" : ",\n";
    out += "    " + VariedComment(f) + "\n";
    out += "    {\"endpoint\": " + Quote(f.endpoint) + ", \"path\": " + Quote(f.path) +
           ", \"action\": \"ignore\"}";
  }
  out += body.empty() ? "]\n" : "\n  ]\n";
  out += "}\n";
  return out;
}

}  // namespace doppel::replay
