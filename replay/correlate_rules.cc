#include "replay/correlate_rules.h"

#include <boost/json.hpp>
#include <charconv>
#include <set>

#include "base/strings.h"
#include "doppel/v1/rules.pb.h"
#include "net/proto_headers.h"
#include "net/regex.h"
#include "replay/correlate.h"

namespace doppel::replay {
namespace {

namespace json = boost::json;

constexpr std::string_view kExtractLocations = "body, body.PATH, header:NAME or set-cookie:NAME";
constexpr std::string_view kInjectLocations =
    "path:N, query:NAME, header:NAME, header:NAME#bearer, cookie:NAME, body.PATH or form:NAME";

// `prefix` followed by at least one character.
bool Named(std::string_view location, std::string_view prefix) {
  return location.size() > prefix.size() && location.starts_with(prefix);
}

bool IsJsonPath(std::string_view location) {
  return Named(location, "body.") || Named(location, "body[");
}

// A response location a rule may extract from; header names are lower-cased.
std::optional<std::string> ExtractLocation(std::string_view location) {
  if (location == "body" || IsJsonPath(location) || Named(location, "set-cookie:"))
    return std::string(location);
  if (Named(location, "header:")) return "header:" + AsciiLower(location.substr(7));
  return std::nullopt;
}

// A request location of correlate.h; header names are lower-cased.
std::optional<std::string> InjectLocation(std::string_view location) {
  if (Named(location, "path:")) {
    size_t n = 0;
    std::string_view digits = location.substr(5);
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
    return std::string(location);
  }
  if (Named(location, "query:") || Named(location, "cookie:") || Named(location, "form:") ||
      IsJsonPath(location))
    return std::string(location);
  if (Named(location, "header:")) {
    std::string name = AsciiLower(location.substr(7));
    const size_t hash = name.find('#');
    if (hash != std::string::npos && (hash == 0 || name.substr(hash) != "#bearer"))
      return std::nullopt;
    return "header:" + name;
  }
  return std::nullopt;
}

std::string Describe(const std::optional<net::StringMatch>& m) {
  if (!m) return "*";
  switch (m->kind()) {
    case net::StringMatch::Kind::kPrefix:
      return m->value() + "*";
    case net::StringMatch::Kind::kRegex:
      return "~/" + m->value() + "/";
    default:
      return m->value();
  }
}

// "POST /tickets", "GET /tickets/*", "* ~/\/v[12]\/.*/" (+ " [headers, query]" when those
// narrow it).
std::string DescribeEndpoint(const net::MatchBlock& b) {
  std::string out = Describe(b.method) + " " + Describe(b.uri);
  std::string extra;
  for (const auto& [name, m] : b.headers) extra += (extra.empty() ? "" : ", ") + name;
  for (const auto& [name, m] : b.query_params) extra += (extra.empty() ? "?" : ", ?") + name;
  return extra.empty() ? out : out + " [" + extra + "]";
}

const json::value* Get(const json::object& o, std::string_view name, std::string_view camel = {}) {
  if (const json::value* v = o.if_contains(name); v != nullptr && !v->is_null()) return v;
  if (camel.empty()) return nullptr;
  const json::value* v = o.if_contains(camel);
  return v != nullptr && !v->is_null() ? v : nullptr;
}

std::string StringAt(const json::object& o, std::string_view name) {
  const json::value* v = Get(o, name);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

class RulesReader {
 public:
  explicit RulesReader(const net::ConfigDoc& doc) : doc_(doc) {}

  Result<CorrelationRules> Read() {
    DOPPEL_RETURN_IF_ERROR(net::CheckAgainstSchema(
        doc_, *doppel::v1::CorrelationRulesFile::descriptor(), net::MatchShorthand()));
    const json::object& top = doc_.value.as_object();  // the schema check wants an object
    if (const json::value* v = Get(top, "version")) {
      boost::system::error_code ec;
      if (v->to_number<double>(ec) != 1 || ec)
        return doc_.Error("version", "unsupported version (this doppel reads version 1)");
    }
    CorrelationRules out;
    if (const json::value* v = Get(top, "auto_learn", "autoLearn")) out.auto_learn = v->as_bool();
    const json::value* list = Get(top, "rules");
    if (list == nullptr || list->as_array().empty())
      return doc_.Error("rules", "no rules: give at least one {name, extract, inject}");
    std::set<std::string> names;
    for (size_t i = 0; i < list->as_array().size(); ++i) {
      const std::string path = "rules[" + std::to_string(i) + "]";
      DOPPEL_ASSIGN_OR_RETURN(CorrelationRule rule, Rule(list->as_array()[i], path));
      if (!names.insert(rule.name).second)
        return doc_.Error(path + ".name", "two rules are named '" + rule.name + "'");
      out.rules.push_back(std::move(rule));
    }
    return out;
  }

 private:
  Result<CorrelationRule> Rule(const json::value& v, const std::string& path) {
    const json::object* o = v.if_object();
    if (o == nullptr) return doc_.Error(path, "a rule must be an object {name, extract, inject}");
    CorrelationRule rule;
    rule.name = StringAt(*o, "name");
    if (rule.name.empty())
      return doc_.Error(path + ".name", "required: the report counts substitutions under it");
    const json::value* extract = Get(*o, "extract");
    if (extract == nullptr)
      return doc_.Error(path + ".extract", "required: {endpoint, location[, regex]}");
    const json::value* inject = Get(*o, "inject");
    if (inject == nullptr) return doc_.Error(path + ".inject", "required: {endpoint, location}");
    const std::string ep = path + ".extract", ip = path + ".inject";
    const json::object& e = extract->as_object();
    const json::object& in = inject->as_object();
    DOPPEL_ASSIGN_OR_RETURN(rule.extract_endpoint, Endpoint(e, ep));
    DOPPEL_ASSIGN_OR_RETURN(rule.inject_endpoint, Endpoint(in, ip));

    DOPPEL_ASSIGN_OR_RETURN(rule.extract_location,
                            Location(e, ep, ExtractLocation, kExtractLocations));
    rule.source_location = rule.extract_location;
    if (const std::string regex = StringAt(e, "regex"); !regex.empty()) {
      auto compiled = net::CompileRegex(regex, "regex");
      if (!compiled.ok()) return doc_.Error(ep + ".regex", compiled.status().message());
      if ((*compiled)->NumberOfCapturingGroups() != 1) {
        return doc_.Error(ep + ".regex",
                          "needs exactly one capture group (the value), has " +
                              std::to_string((*compiled)->NumberOfCapturingGroups()));
      }
      rule.regex = std::move(*compiled);
      rule.source_location += " ~ /" + regex + "/";
    }

    DOPPEL_ASSIGN_OR_RETURN(rule.inject_location,
                            Location(in, ip, InjectLocation, kInjectLocations));
    rule.source_endpoint = DescribeEndpoint(rule.extract_endpoint);
    rule.sink_endpoint = DescribeEndpoint(rule.inject_endpoint);
    return rule;
  }

  // The `location` of an extract or inject block at `path`, as `parse` reads it.
  Result<std::string> Location(const json::object& o, const std::string& path,
                               std::optional<std::string> (*parse)(std::string_view),
                               std::string_view expected) {
    const std::string text = StringAt(o, "location");
    if (std::optional<std::string> location = parse(text)) return *location;
    return doc_.Error(path + ".location", text.empty()
                                              ? "required: one of " + std::string(expected)
                                              : "unknown location '" + text + "' (expected " +
                                                    std::string(expected) + ")");
  }

  // The `endpoint` of an extract or inject block; absent: every endpoint.
  Result<net::MatchBlock> Endpoint(const json::object& o, const std::string& path) {
    const json::value* v = Get(o, "endpoint");
    if (v == nullptr) return net::MatchBlock{};
    if (v->is_object() && v->as_object().contains("name"))
      return doc_.Error(path + ".endpoint.name", "an endpoint has no name (the rule has)");
    return net::ReadMatchBlock(doc_, *v, path + ".endpoint");
  }

  const net::ConfigDoc& doc_;
};

}  // namespace

Result<CorrelationRules> ParseCorrelationRules(std::string_view text, net::ConfigFormat format) {
  DOPPEL_ASSIGN_OR_RETURN(net::ConfigDoc doc, net::ParseConfig(text, format));
  return RulesReader(doc).Read();
}

Result<CorrelationRules> LoadCorrelationRules(const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(net::ConfigDoc doc, net::LoadConfigFile(path));
  Result<CorrelationRules> rules = RulesReader(doc).Read();
  if (!rules.ok()) return rules.status().WithContext(path);
  return rules;
}

bool MatchesEndpoint(const net::MatchBlock& block, const doppel::v1::HttpRequest& request) {
  return net::BlockMatches(block, net::ViewOf(request));
}

std::optional<std::string> ExtractValue(const CorrelationRule& rule,
                                        const doppel::v1::HttpResponse& response) {
  std::optional<std::string> whole;
  const std::string_view location = rule.extract_location;
  if (location == "body") {
    whole = ResponseBodyText(response);
  } else if (location.starts_with("header:")) {
    if (const std::string* v = net::FindHeader(response.headers(), location.substr(7))) whole = *v;
  } else {
    for (FoundValue& v : ResponseValues(response)) {
      if (v.location == location) {
        whole = std::move(v.value);
        break;
      }
    }
  }
  if (!whole) return std::nullopt;
  if (rule.regex != nullptr) {
    std::string captured;
    if (!re2::RE2::PartialMatch(*whole, *rule.regex, &captured)) return std::nullopt;
    whole = std::move(captured);
  }
  if (whole->empty()) return std::nullopt;
  return whole;
}

}  // namespace doppel::replay
