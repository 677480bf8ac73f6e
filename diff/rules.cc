#include "diff/rules.h"

#include <algorithm>

#include <boost/json.hpp>
#include <boost/regex.hpp>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "base/strings.h"

namespace doppel::diff {

class ValueRegex {
 public:
  explicit ValueRegex(boost::regex re) : re_(std::move(re)) {}
  bool Search(std::string_view value) const {
    constexpr size_t kMaxValueBytes = 64 * 1024;
    if (value.size() > kMaxValueBytes) return false;
    try {
      return boost::regex_search(value.begin(), value.end(), re_);
    } catch (const std::exception&) {
      // Boost.Regex gives up on pathological backtracking by throwing; treat as no match.
      return false;
    }
  }

 private:
  boost::regex re_;
};

namespace {

namespace json = boost::json;

constexpr std::string_view kActions[] = {"ignore",    "ignore-if-value",  "tolerance",
                                         "unordered", "unordered-by-key", "presence-only"};

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string LineColumn(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(offset - line_start + 1);
}

// Where each member and element of an already validated JSON text starts, keyed by a
// pointer-like path ("/rules/2/action"). Members point at their key, elements at their value.
// Boost.JSON's DOM keeps no source positions, so the text is walked once more here; it is
// known to be well-formed (comments and trailing commas allowed), which keeps this small.
class PositionIndex {
 public:
  explicit PositionIndex(std::string_view text) : text_(text) {
    size_t i = 0;
    SkipSpace(i);
    Value(i, "");
  }
  size_t Find(const std::string& pointer) const {
    auto it = offsets_.find(pointer);
    return it == offsets_.end() ? 0 : it->second;
  }
  // The first member key repeated within one object, if any.
  bool has_duplicate() const { return !duplicate_.empty(); }
  const std::string& duplicate() const { return duplicate_; }

 private:
  void SkipSpace(size_t& i) const {
    while (i < text_.size()) {
      char c = text_[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
      } else if (text_.compare(i, 2, "//") == 0) {
        while (i < text_.size() && text_[i] != '\n') ++i;
      } else if (text_.compare(i, 2, "/*") == 0) {
        size_t end = text_.find("*/", i + 2);
        i = end == std::string_view::npos ? text_.size() : end + 2;
      } else {
        break;
      }
    }
  }
  // Returns the raw (undecoded) contents of the string at text_[i] and moves past it.
  std::string String(size_t& i) const {
    size_t start = ++i;
    while (i < text_.size() && text_[i] != '"') i += text_[i] == '\\' ? 2 : 1;
    std::string s(text_.substr(start, std::min(i, text_.size()) - start));
    ++i;
    return s;
  }
  void Value(size_t& i, const std::string& pointer) {
    if (i >= text_.size()) return;
    char c = text_[i];
    if (c == '{') {
      ++i;
      while (true) {
        SkipSpace(i);
        if (i >= text_.size() || text_[i] == '}') break;
        size_t key_at = i;
        std::string member = pointer + "/" + String(i);
        if (!offsets_.emplace(member, key_at).second && duplicate_.empty()) duplicate_ = member;
        offsets_[member] = key_at;
        SkipSpace(i);
        ++i;  // ':'
        SkipSpace(i);
        Value(i, member);
        SkipSpace(i);
        if (i < text_.size() && text_[i] == ',') ++i;
      }
      ++i;
    } else if (c == '[') {
      ++i;
      for (size_t n = 0;; ++n) {
        SkipSpace(i);
        if (i >= text_.size() || text_[i] == ']') break;
        std::string element = pointer + "/" + std::to_string(n);
        offsets_[element] = i;
        Value(i, element);
        SkipSpace(i);
        if (i < text_.size() && text_[i] == ',') ++i;
      }
      ++i;
    } else if (c == '"') {
      String(i);
    } else {
      while (i < text_.size() &&
             std::string_view(",]} \t\r\n/").find(text_[i]) == std::string_view::npos) {
        ++i;
      }
    }
  }

  std::string_view text_;
  std::map<std::string, size_t> offsets_;
  std::string duplicate_;
};

// Builds errors that point into the source text.
class Locator {
 public:
  Locator(std::string_view text, const PositionIndex& index) : text_(text), index_(index) {}
  Status Error(const std::string& pointer, const std::string& message) const {
    return Status::InvalidArgument(LineColumn(text_, index_.Find(pointer)) + ": " + message);
  }

 private:
  std::string_view text_;
  const PositionIndex& index_;
};

// "rules[2].action" for messages, from "/rules/2/action".
std::string Where(const std::string& pointer) {
  std::string out;
  size_t i = 1;
  while (i <= pointer.size()) {
    size_t slash = pointer.find('/', i);
    if (slash == std::string::npos) slash = pointer.size();
    std::string part = pointer.substr(i, slash - i);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (numeric) {
      out += "[" + part + "]";
    } else {
      if (!out.empty()) out += ".";
      out += part;
    }
    i = slash + 1;
  }
  return out.empty() ? "the top level" : out;
}

Status CheckKeys(const Locator& loc, const json::object& obj, const std::string& pointer,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& member : obj) {
    std::string_view key = member.key();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return loc.Error(
        pointer + "/" + std::string(key),
        "unknown key " + Quote(key) + " in " + Where(pointer) + " (expected one of: " + list + ")");
  }
  return Status::Ok();
}

Status GetString(const Locator& loc, const json::object& obj, const std::string& pointer,
                 std::string_view key, std::string* out) {
  const json::value* v = obj.if_contains(key);
  if (!v) return Status::Ok();
  if (!v->is_string()) {
    return loc.Error(pointer + "/" + std::string(key),
                     Where(pointer + "/" + std::string(key)) + " must be a string");
  }
  *out = std::string(v->get_string());
  return Status::Ok();
}

Status GetStringList(const Locator& loc, const json::object& obj, const std::string& pointer,
                     std::string_view key, google::protobuf::RepeatedPtrField<std::string>* out) {
  const json::value* v = obj.if_contains(key);
  if (!v) return Status::Ok();
  std::string member = pointer + "/" + std::string(key);
  if (!v->is_array()) return loc.Error(member, Where(member) + " must be an array of strings");
  size_t i = 0;
  for (const json::value& e : v->get_array()) {
    std::string element = member + "/" + std::to_string(i++);
    if (!e.is_string()) return loc.Error(element, Where(element) + " must be a string");
    out->Add(std::string(e.get_string()));
  }
  return Status::Ok();
}

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
  if (out->path.root() != "body" && !(out->path.root() == "status" && out->path.depth() == 0)) {
    return Status::InvalidArgument(
        "path must start with \"body\" (or be \"status\"); headers are configured in the "
        "\"headers\" section");
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
      try {
        out->regex =
            std::make_shared<const ValueRegex>(boost::regex(r.regex(), boost::regex::perl));
      } catch (const std::exception& e) {
        return Status::InvalidArgument("bad regex " + Quote(r.regex()) + ": " + e.what());
      }
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
  return regex && regex->Search(value);
}

bool CompiledRule::WithinTolerance(double a, double b) const {
  double d = std::fabs(a - b);
  if (has_absolute && d <= absolute) return true;
  if (has_relative && d <= relative * std::max(std::fabs(a), std::fabs(b))) return true;
  return false;
}

Result<doppel::v1::DiffRules> ParseRulesJson(std::string_view text) {
  json::parse_options options;
  options.allow_comments = true;
  options.allow_trailing_commas = true;
  options.max_depth = 64;
  json::stream_parser parser({}, options);
  boost::system::error_code ec;
  size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
    consumed = text.size();
  }
  if (ec) {
    // Show where: the rest of the line from the stop position, or "end of input".
    std::string_view rest = text.substr(std::min(consumed, text.size()));
    rest = rest.substr(0, std::min(rest.find('\n'), size_t{30}));
    std::string near =
        rest.empty() ? std::string(" at end of input") : " at '" + std::string(rest) + "'";
    return Status::InvalidArgument(LineColumn(text, consumed) +
                                   ": malformed JSON: " + ec.message() + near);
  }
  json::value root = parser.release();

  PositionIndex index(text);
  Locator loc(text, index);
  if (index.has_duplicate()) {
    return loc.Error(index.duplicate(), "duplicate key in " + Where(index.duplicate()));
  }
  if (!root.is_object()) return loc.Error("", "the rules file must be a JSON object");
  const json::object& top = root.get_object();
  DOPPEL_RETURN_IF_ERROR(CheckKeys(loc, top, "", {"version", "headers", "rules", "endpoints"}));

  doppel::v1::DiffRules rules;
  rules.set_version(1);
  if (const json::value* v = top.if_contains("version")) {
    if (!v->is_int64() && !v->is_uint64()) return loc.Error("/version", "\"version\" must be 1");
    if (!(v->is_int64() ? v->get_int64() == 1 : v->get_uint64() == 1)) {
      return loc.Error("/version", "unsupported rules version (this doppel reads version 1)");
    }
  }
  if (const json::value* v = top.if_contains("headers")) {
    if (!v->is_object()) return loc.Error("/headers", "\"headers\" must be an object");
    const json::object& h = v->get_object();
    DOPPEL_RETURN_IF_ERROR(CheckKeys(loc, h, "/headers", {"ignore", "compare"}));
    DOPPEL_RETURN_IF_ERROR(
        GetStringList(loc, h, "/headers", "ignore", rules.mutable_headers()->mutable_ignore()));
    DOPPEL_RETURN_IF_ERROR(
        GetStringList(loc, h, "/headers", "compare", rules.mutable_headers()->mutable_compare()));
  }
  if (const json::value* v = top.if_contains("rules")) {
    if (!v->is_array()) return loc.Error("/rules", "\"rules\" must be an array of objects");
    size_t i = 0;
    for (const json::value& e : v->get_array()) {
      std::string p = "/rules/" + std::to_string(i++);
      if (!e.is_object()) return loc.Error(p, Where(p) + " must be an object");
      const json::object& o = e.get_object();
      DOPPEL_RETURN_IF_ERROR(CheckKeys(
          loc, o, p, {"endpoint", "path", "action", "regex", "absolute", "relative", "key"}));
      doppel::v1::DiffRule* r = rules.add_rules();
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "endpoint", r->mutable_endpoint()));
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "path", r->mutable_path()));
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "action", r->mutable_action()));
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "regex", r->mutable_regex()));
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "key", r->mutable_key()));
      for (std::string_view name : {"absolute", "relative"}) {
        const json::value* n = o.if_contains(name);
        if (!n) continue;
        if (!n->is_number()) {
          return loc.Error(p + "/" + std::string(name), Quote(name) + " must be a number");
        }
        double d = n->to_number<double>(ec);
        if (name == "absolute")
          r->set_absolute(d);
        else
          r->set_relative(d);
      }
      CompiledRule compiled;
      std::string field;
      Status st = CompileRule(*r, &compiled, &field);
      if (!st.ok()) return loc.Error(field.empty() ? p : p + "/" + field, st.message());
    }
  }
  if (const json::value* v = top.if_contains("endpoints")) {
    if (!v->is_array()) return loc.Error("/endpoints", "\"endpoints\" must be an array of objects");
    size_t i = 0;
    for (const json::value& e : v->get_array()) {
      std::string p = "/endpoints/" + std::to_string(i++);
      if (!e.is_object()) return loc.Error(p, Where(p) + " must be an object");
      const json::object& o = e.get_object();
      DOPPEL_RETURN_IF_ERROR(CheckKeys(loc, o, p, {"pattern"}));
      doppel::v1::EndpointPattern* ep = rules.add_endpoints();
      DOPPEL_RETURN_IF_ERROR(GetString(loc, o, p, "pattern", ep->mutable_pattern()));
      if (ep->pattern().empty()) return loc.Error(p, Where(p) + " needs a \"pattern\"");
      Result<EndpointTemplate> t = EndpointTemplate::Parse(ep->pattern());
      if (!t.ok()) return loc.Error(p + "/pattern", t.status().message());
    }
  }
  return rules;
}

Result<doppel::v1::DiffRules> LoadRulesFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open the rules file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": read error");
  Result<doppel::v1::DiffRules> rules = ParseRulesJson(buf.str());
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
  for (const std::string& h : rules.headers().compare()) set.header_compare_.push_back(AsciiLower(h));
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
  std::string_view path = TargetPath(target);
  for (const CompiledRule& r : rules_) {
    if (r.has_endpoint && r.endpoint.Matches(method, path)) out.push_back(&r);
  }
  for (const CompiledRule& r : rules_) {
    if (!r.has_endpoint) out.push_back(&r);
  }
  return out;
}

}  // namespace doppel::diff
