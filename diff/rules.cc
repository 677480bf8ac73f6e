#include "diff/rules.h"

#include <re2/re2.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <tuple>

#include "base/strings.h"
#include "diff/websocket.h"
#include "net/regex.h"
#include "net/url.h"

namespace doppel::diff {

namespace {

namespace json = boost::json;

constexpr std::string_view kActions[] = {"ignore",    "ignore-if-value",  "tolerance",
                                         "unordered", "unordered-by-key", "presence-only"};

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Validates one rule and compiles it. On error, *field names the offending member ("" for
// the rule as a whole).
Status CompileRule(const doppel::v1::DiffRule& r, CompiledRule* out, std::string* field) {
  field->clear();
  if (r.path().empty()) return Status::InvalidArgument("rule needs a \"path\"");
  if (r.action().empty()) return Status::InvalidArgument("rule needs an \"action\"");
  *field = "action";
  Result<RuleAction> action = ParseRuleAction(r.action());
  if (!action.ok()) return action.status();
  out->action = action.value();
  *field = "path";
  Result<PathPattern> path = PathPattern::Parse(r.path());
  if (!path.ok()) return path.status();
  out->path = std::move(path).value();
  if (out->path.root() != "body" && out->path.root() != kWebSocketRoot &&
      !(out->path.root() == "status" && out->path.depth() == 0)) {
    return Status::InvalidArgument(
        "path must start with \"body\" or \"websocket\" (or be \"status\"); headers are "
        "configured in the \"headers\" section");
  }
  if (!r.endpoint().empty()) {
    *field = "endpoint";
    Result<EndpointTemplate> endpoint = EndpointTemplate::Parse(r.endpoint());
    if (!endpoint.ok()) return endpoint.status();
    out->has_endpoint = true;
    out->endpoint = std::move(endpoint).value();
  }
  std::string action_name = Quote(r.action());
  // Members that belong to another action are most likely a typo in the action.
  if (!r.regex().empty() && out->action != RuleAction::kIgnoreIfValue) {
    *field = "regex";
    return Status::InvalidArgument("\"regex\" only applies to action \"ignore-if-value\", not " +
                                   action_name);
  }
  if ((r.has_absolute() || r.has_relative()) && out->action != RuleAction::kTolerance) {
    *field = r.has_absolute() ? "absolute" : "relative";
    return Status::InvalidArgument(Quote(*field) + " only applies to action \"tolerance\", not " +
                                   action_name);
  }
  if (!r.key().empty() && out->action != RuleAction::kUnorderedByKey) {
    *field = "key";
    return Status::InvalidArgument("\"key\" only applies to action \"unordered-by-key\", not " +
                                   action_name);
  }
  field->clear();
  switch (out->action) {
    case RuleAction::kIgnoreIfValue: {
      if (r.regex().empty()) {
        return Status::InvalidArgument("action \"ignore-if-value\" needs a \"regex\"");
      }
      *field = "regex";
      Result<std::unique_ptr<re2::RE2>> re = net::CompileRegex(r.regex(), "ignore-if-value");
      if (!re.ok()) return re.status();
      out->regex = std::move(re).value();
      break;
    }
    case RuleAction::kTolerance:
      if (!r.has_absolute() && !r.has_relative()) {
        return Status::InvalidArgument(
            "action \"tolerance\" needs \"absolute\" and/or \"relative\"");
      }
      for (auto [name, has, value] : {std::tuple{"absolute", r.has_absolute(), r.absolute()},
                                      std::tuple{"relative", r.has_relative(), r.relative()}}) {
        if (has && !(value >= 0 && std::isfinite(value))) {
          *field = name;
          return Status::InvalidArgument(Quote(name) + " must be a finite number >= 0");
        }
      }
      out->has_absolute = r.has_absolute();
      out->has_relative = r.has_relative();
      out->absolute = r.absolute();
      out->relative = r.relative();
      break;
    case RuleAction::kUnorderedByKey:
      if (r.key().empty()) {
        return Status::InvalidArgument("action \"unordered-by-key\" needs a \"key\"");
      }
      out->key = r.key();
      break;
    default:
      break;
  }
  field->clear();
  return Status::Ok();
}

// The string at `key` of `obj` (already checked to be a string or null by the schema).
std::string StringAt(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// The elements of the list at `key` (checked by the schema), or none.
const json::array* ListAt(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  return v != nullptr ? v->if_array() : nullptr;
}

// A document already checked against doppel.v1.DiffRules, into the message, validated.
// Errors point into the document: "line L, column C: rules[2].action: ...".
Result<doppel::v1::DiffRules> FromDoc(const net::ConfigDoc& doc) {
  DOPPEL_RETURN_IF_ERROR(net::CheckAgainstSchema(doc, *doppel::v1::DiffRules::descriptor()));
  doppel::v1::DiffRules rules;
  rules.set_version(1);
  const json::object* top = doc.value.if_object();
  if (top == nullptr) return rules;  // not reached: the schema check wants an object
  if (const json::value* v = top->if_contains("version"); v != nullptr && !v->is_null()) {
    boost::system::error_code ec;
    const double version = v->to_number<double>(ec);
    if (ec || version != 1) {
      return doc.Error("version", "unsupported rules version (this doppel reads version 1)");
    }
  }
  if (const json::value* h = top->if_contains("headers"); h != nullptr && h->is_object()) {
    for (std::string_view list : {"ignore", "compare"}) {
      const json::array* names = ListAt(h->get_object(), list);
      if (names == nullptr) continue;
      auto* out = list == "ignore" ? rules.mutable_headers()->mutable_ignore()
                                   : rules.mutable_headers()->mutable_compare();
      for (const json::value& name : *names) {
        if (name.is_string()) out->Add(std::string(name.get_string()));
      }
    }
  }
  if (const json::array* list = ListAt(*top, "rules")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "rules[" + std::to_string(i) + "]";
      doppel::v1::DiffRule* r = rules.add_rules();
      const json::object* o = (*list)[i].if_object();
      if (o == nullptr) return doc.Error(where, "a rule needs a \"path\" and an \"action\"");
      r->set_endpoint(StringAt(*o, "endpoint"));
      r->set_path(StringAt(*o, "path"));
      r->set_action(StringAt(*o, "action"));
      r->set_regex(StringAt(*o, "regex"));
      r->set_key(StringAt(*o, "key"));
      for (std::string_view name : {"absolute", "relative"}) {
        const json::value* n = o->if_contains(name);
        if (n == nullptr || !n->is_number()) continue;
        boost::system::error_code ec;
        const double d = n->to_number<double>(ec);
        if (name == "absolute") {
          r->set_absolute(d);
        } else {
          r->set_relative(d);
        }
      }
      CompiledRule compiled;
      std::string field;
      Status st = CompileRule(*r, &compiled, &field);
      if (!st.ok()) return doc.Error(field.empty() ? where : where + "." + field, st.message());
    }
  }
  if (const json::array* list = ListAt(*top, "endpoints")) {
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string where = "endpoints[" + std::to_string(i) + "]";
      const json::object* o = (*list)[i].if_object();
      doppel::v1::EndpointPattern* ep = rules.add_endpoints();
      if (o != nullptr) ep->set_pattern(StringAt(*o, "pattern"));
      if (ep->pattern().empty()) return doc.Error(where, "needs a \"pattern\"");
      Result<EndpointTemplate> t = EndpointTemplate::Parse(ep->pattern());
      if (!t.ok()) return doc.Error(where + ".pattern", t.status().message());
    }
  }
  return rules;
}

}  // namespace

std::string_view RuleActionName(RuleAction action) { return kActions[static_cast<size_t>(action)]; }

Result<RuleAction> ParseRuleAction(std::string_view name) {
  for (size_t i = 0; i < std::size(kActions); ++i) {
    if (kActions[i] == name) return static_cast<RuleAction>(i);
  }
  std::string list;
  for (std::string_view a : kActions) list += (list.empty() ? "" : ", ") + std::string(a);
  return Status::InvalidArgument("unknown action " + Quote(name) + " (expected one of: " + list +
                                 ")");
}

bool CompiledRule::ValueMatches(std::string_view value) const {
  return regex != nullptr &&
         re2::RE2::PartialMatch(re2::StringPiece(value.data(), value.size()), *regex);
}

bool CompiledRule::WithinTolerance(double a, double b) const {
  double d = std::fabs(a - b);
  if (has_absolute && d <= absolute) return true;
  if (has_relative && d <= relative * std::max(std::fabs(a), std::fabs(b))) return true;
  return false;
}

Result<doppel::v1::DiffRules> ParseRules(std::string_view text, net::ConfigFormat format) {
  Result<net::ConfigDoc> doc = net::ParseConfig(text, format);
  if (!doc.ok()) return doc.status();
  return FromDoc(doc.value());
}

Result<doppel::v1::DiffRules> LoadRulesFile(const std::string& path) {
  Result<net::ConfigDoc> doc = net::LoadConfigFile(path);
  if (!doc.ok()) return doc.status();
  Result<doppel::v1::DiffRules> rules = FromDoc(doc.value());
  if (!rules.ok()) return rules.status().WithContext(path);
  return rules;
}

Result<RuleSet> RuleSet::Compile(const doppel::v1::DiffRules& rules) {
  if (rules.version() > 1) {
    return Status::InvalidArgument("unsupported rules version " + std::to_string(rules.version()) +
                                   " (this doppel reads version 1)");
  }
  RuleSet set;
  for (int i = 0; i < rules.rules_size(); ++i) {
    CompiledRule compiled;
    std::string field;
    Status st = CompileRule(rules.rules(i), &compiled, &field);
    if (!st.ok()) {
      return st.WithContext("rules[" + std::to_string(i) + "]" +
                            (field.empty() ? "" : "." + field));
    }
    set.rules_.push_back(std::move(compiled));
  }
  for (const std::string& h : rules.headers().ignore()) set.header_ignore_.push_back(AsciiLower(h));
  for (const std::string& h : rules.headers().compare()) {
    set.header_compare_.push_back(AsciiLower(h));
  }
  std::vector<EndpointTemplate> patterns;
  for (int i = 0; i < rules.endpoints_size(); ++i) {
    Result<EndpointTemplate> t = EndpointTemplate::Parse(rules.endpoints(i).pattern());
    if (!t.ok()) return t.status().WithContext("endpoints[" + std::to_string(i) + "].pattern");
    patterns.push_back(std::move(t).value());
  }
  set.endpoints_ = EndpointNamer(std::move(patterns));
  return set;
}

std::vector<const CompiledRule*> RuleSet::ForRequest(std::string_view method,
                                                     std::string_view target) const {
  std::vector<const CompiledRule*> out;
  std::string_view path = net::TargetPath(target);
  for (const CompiledRule& r : rules_) {
    if (r.has_endpoint && r.endpoint.Matches(method, path)) out.push_back(&r);
  }
  for (const CompiledRule& r : rules_) {
    if (!r.has_endpoint) out.push_back(&r);
  }
  return out;
}

Result<EndpointNamer> LoadEndpointNamer(const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(doppel::v1::DiffRules rules, LoadRulesFile(path));
  Result<RuleSet> set = RuleSet::Compile(rules);
  if (!set.ok()) return set.status().WithContext(path);
  return set->endpoints();
}

}  // namespace doppel::diff
