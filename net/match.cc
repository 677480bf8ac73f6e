#include "net/match.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "doppel/v1/rules.pb.h"
#include "net/proto_headers.h"
#include "net/regex.h"
#include "net/rules_file.h"
#include "net/url.h"

namespace doppel::net {

namespace {

// Compiles the rule blocks of a document that passed the schema check: match kinds,
// regexes, names.
class JsonRuleReader {
 public:
  explicit JsonRuleReader(const ConfigDoc& doc) : doc_(doc) {}

  Status Error(const std::string& path, const std::string& what) const {
    return doc_.Error(path, what);
  }

  Result<StringMatch> ReadStringMatch(const boost::json::value& v, const std::string& path,
                                      bool allow_present) const {
    if (v.is_string()) {
      return StringMatch::Make(StringMatch::Kind::kExact, std::string(v.as_string()));
    }
    if (!v.is_object())
      return Error(path, "expected a string or {\"exact\"|\"prefix\"|\"regex\": ...}");
    const auto& o = v.as_object();
    if (o.size() != 1)
      return Error(path, "expected exactly one of exact, prefix, regex" +
                             std::string(allow_present ? ", present" : ""));
    const auto& [key, val] = *o.begin();
    const std::string field = path + "." + std::string(key);
    if (key == "present") {
      if (!allow_present)
        return Error(field, "'present' is only for headers, query_params and client_cert_subject");
      if (!val.is_bool() || !val.as_bool()) return Error(field, "must be true");
      return StringMatch::Make(StringMatch::Kind::kPresent, "");
    }
    StringMatch::Kind kind;
    if (key == "exact")
      kind = StringMatch::Kind::kExact;
    else if (key == "prefix")
      kind = StringMatch::Kind::kPrefix;
    else if (key == "regex")
      kind = StringMatch::Kind::kRegex;
    else
      return Error(field, "unknown match kind (use exact, prefix, regex" +
                              std::string(allow_present ? " or present)" : ")"));
    if (!val.is_string()) return Error(field, "must be a string");
    auto m = StringMatch::Make(kind, std::string(val.as_string()));
    if (!m.ok()) return Error(field, m.status().message());
    return m;
  }

  Result<MatchBlock> ReadBlock(const boost::json::value& v, const std::string& path,
                               std::string default_name) const {
    if (!v.is_object()) return Error(path, "a rule must be an object");
    MatchBlock block;
    block.name = std::move(default_name);
    for (const auto& [key, val] : v.as_object()) {
      const std::string field = path + "." + std::string(key);
      if (key == "name") {
        if (!val.is_string() || val.as_string().empty())
          return Error(field, "must be a non-empty string");
        block.name = std::string(val.as_string());
      } else if (key == "method" || key == "uri") {
        DOPPEL_ASSIGN_OR_RETURN(auto m, ReadStringMatch(val, field, false));
        (key == "method" ? block.method : block.uri) = std::move(m);
      } else if (key == "client_cert_subject" || key == "clientCertSubject") {
        DOPPEL_ASSIGN_OR_RETURN(block.client_cert_subject, ReadStringMatch(val, field, true));
      } else if (key == "headers" || key == "query_params" || key == "queryParams") {
        if (!val.is_object()) return Error(field, "must be an object of name: match");
        auto& list = key == "headers" ? block.headers : block.query_params;
        for (const auto& [name, m] : val.as_object()) {
          auto sm = ReadStringMatch(m, field + "." + std::string(name), true);
          if (!sm.ok()) return sm.status();
          list.emplace_back(std::string(name), std::move(sm.value()));
        }
      } else {
        return Error(field,
                     "unknown field (expected name, method, uri, headers, query_params, "
                     "client_cert_subject)");
      }
    }
    return block;
  }

 private:
  const ConfigDoc& doc_;
};

}  // namespace

// RE2 (net/regex.h): matching time is linear in the value whatever the pattern, so a rule
// like "/api/(a+)+x" cannot stall the proxy thread (std::regex backtracks exponentially on
// it; found by fuzzing, tests/fuzz/rules_loader).
class MatchRegex {
 public:
  explicit MatchRegex(std::unique_ptr<re2::RE2> re) : re_(std::move(re)) {}
  bool FullMatch(std::string_view s) const {
    return re2::RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *re_);
  }

 private:
  std::unique_ptr<re2::RE2> re_;
};

Result<StringMatch> StringMatch::Make(Kind kind, std::string value) {
  StringMatch m;
  m.kind_ = kind;
  if (kind == Kind::kRegex) {
    DOPPEL_ASSIGN_OR_RETURN(auto re, CompileRegex(value, "regex"));
    m.regex_ = std::make_shared<const MatchRegex>(std::move(re));
  }
  m.value_ = std::move(value);
  return m;
}

bool StringMatch::Matches(std::optional<std::string_view> value) const {
  if (!value) return false;
  switch (kind_) {
    case Kind::kPresent:
      return true;
    case Kind::kExact:
      return *value == value_;
    case Kind::kPrefix:
      return value->substr(0, value_.size()) == value_;
    case Kind::kRegex:
      return regex_->FullMatch(*value);
  }
  return false;
}

std::vector<std::string> SplitItems(std::string_view s) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == ',') {
      out.back() += ',';
      ++i;
    } else if (s[i] == ',') {
      out.emplace_back();
    } else {
      out.back() += s[i];
    }
  }
  return out;
}

RequestView ViewOf(const doppel::v1::HttpRequest& request) {
  return RequestView{request.method(), request.target(),
                     [&request](std::string_view name) -> std::optional<std::string_view> {
                       const std::string* v = FindHeader(request.headers(), name);
                       if (v == nullptr) return std::nullopt;
                       return std::string_view(*v);
                     }};
}

bool BlockMatches(const MatchBlock& block, const RequestView& request) {
  if (block.method && !block.method->Matches(request.method)) return false;
  if (block.uri && !block.uri->Matches(TargetPath(request.target))) return false;
  for (const auto& [name, m] : block.headers) {
    if (!m.Matches(request.header ? request.header(name) : std::nullopt)) return false;
  }
  for (const auto& [name, m] : block.query_params) {
    std::optional<std::string> v = FindQueryParam(request.target, name);
    if (!m.Matches(v ? std::optional<std::string_view>(*v) : std::nullopt)) return false;
  }
  if (block.client_cert_subject) {
    const std::string_view subject = request.client_cert_subject;
    if (!block.client_cert_subject->Matches(subject.empty() ? std::nullopt
                                                            : std::optional(subject)))
      return false;
  }
  return true;
}

const MatchBlock* MatchRules::Match(const RequestView& request) const {
  for (const MatchBlock& block : blocks_) {
    if (BlockMatches(block, request)) return &block;
  }
  return nullptr;
}

const MatchBlock* MatchRules::Find(std::string_view name) const {
  for (const MatchBlock& block : blocks_) {
    if (block.name == name) return &block;
  }
  return nullptr;
}

Status MatchRules::Merge(MatchRules other) {
  for (MatchBlock& b : other.blocks_) {
    for (const MatchBlock& mine : blocks_) {
      if (mine.name == b.name)
        return Status::InvalidArgument("two rules are named '" + b.name + "'");
    }
    blocks_.push_back(std::move(b));
  }
  return Status::Ok();
}

Result<MatchRules> MatchRules::FromFlags(const std::vector<std::string>& flags) {
  MatchRules rules;
  for (size_t i = 0; i < flags.size(); ++i) {
    MatchBlock block;
    block.name = "match-" + std::to_string(i + 1);
    const auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("--match '" + flags[i] + "': " + why);
    };
    for (const std::string& item : SplitItems(flags[i])) {
      if (item.empty()) continue;
      // Split "field[op]value" where op is one of "=", "^=", "~=".
      size_t eq = item.find('=');
      std::string field = item.substr(0, eq);
      StringMatch::Kind kind = StringMatch::Kind::kExact;
      if (eq == std::string::npos) {
        kind = StringMatch::Kind::kPresent;
      } else if (!field.empty() && field.back() == '^') {
        kind = StringMatch::Kind::kPrefix;
        field.pop_back();
      } else if (!field.empty() && field.back() == '~') {
        kind = StringMatch::Kind::kRegex;
        field.pop_back();
      }
      std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
      if (field == "name") {
        if (kind != StringMatch::Kind::kExact || value.empty()) return bad("use name=NAME");
        block.name = value;
        continue;
      }
      auto m = StringMatch::Make(kind, value);
      if (!m.ok()) return bad(m.status().message());
      const bool is_header = field.rfind("header.", 0) == 0;
      const bool is_query = field.rfind("query.", 0) == 0;
      if (field == "method" || field == "uri") {
        if (kind == StringMatch::Kind::kPresent) return bad("'" + field + "' needs a value");
        (field == "method" ? block.method : block.uri) = std::move(m.value());
      } else if (field == "client_cert_subject") {
        block.client_cert_subject = std::move(m.value());
      } else if (is_header || is_query) {
        std::string name = field.substr(is_header ? 7 : 6);
        if (name.empty()) return bad("'" + field + "' needs a name");
        (is_header ? block.headers : block.query_params).emplace_back(name, std::move(m.value()));
      } else {
        return bad("unknown field '" + field +
                   "' (expected name, method, uri, header.NAME, query.NAME, "
                   "client_cert_subject)");
      }
    }
    MatchRules one;
    one.blocks_.push_back(std::move(block));
    DOPPEL_RETURN_IF_ERROR(rules.Merge(std::move(one)));
  }
  return rules;
}

namespace {

Status FromDoc(ConfigDoc doc, std::vector<MatchBlock>* blocks) {
  if (doc.value.is_array()) {
    // A bare list of rules is accepted for {"rules": [...]}.
    boost::json::object wrapped;
    wrapped["rules"] = std::move(doc.value);
    doc.value = std::move(wrapped);
    std::map<std::string, std::pair<size_t, size_t>> moved;
    for (auto& [path, pos] : doc.positions) moved.emplace("rules" + path, pos);
    doc.positions = std::move(moved);
  }
  DOPPEL_RETURN_IF_ERROR(
      CheckAgainstSchema(doc, *doppel::v1::MatchRulesFile::descriptor(), MatchShorthand()));
  const auto* top = doc.value.if_object();
  const auto it = top ? top->find("rules") : nullptr;
  if (top == nullptr || it == top->end() || !it->value().is_array()) {
    return Status::InvalidArgument("expected {\"rules\": [...]} at the top level");
  }
  const boost::json::array& list = it->value().as_array();
  JsonRuleReader reader(doc);
  for (size_t i = 0; i < list.size(); ++i) {
    DOPPEL_ASSIGN_OR_RETURN(auto block,
                            reader.ReadBlock(list[i], "rules[" + std::to_string(i) + "]",
                                             "rule-" + std::to_string(i + 1)));
    blocks->push_back(std::move(block));
    for (size_t j = 0; j + 1 < blocks->size(); ++j) {
      if ((*blocks)[j].name == blocks->back().name) {
        return reader.Error("rules[" + std::to_string(i) + "].name",
                            "two rules are named '" + blocks->back().name + "'");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

SchemaShorthand MatchShorthand() {
  return [](const google::protobuf::FieldDescriptor& f, const boost::json::value& v) {
    return f.message_type() == doppel::v1::MatchStringMatch::descriptor() && v.is_string();
  };
}

Result<MatchBlock> ReadMatchBlock(const ConfigDoc& doc, const boost::json::value& v,
                                  const std::string& path) {
  return JsonRuleReader(doc).ReadBlock(v, path, "");
}

Result<MatchRules> MatchRules::FromJson(std::string_view text) {
  DOPPEL_ASSIGN_OR_RETURN(auto doc, ParseConfig(text, ConfigFormat::kJson));
  MatchRules rules;
  DOPPEL_RETURN_IF_ERROR(FromDoc(std::move(doc), &rules.blocks_));
  return rules;
}

Result<MatchRules> MatchRules::FromYaml(std::string_view text) {
  DOPPEL_ASSIGN_OR_RETURN(auto doc, ParseConfig(text, ConfigFormat::kYaml));
  MatchRules rules;
  DOPPEL_RETURN_IF_ERROR(FromDoc(std::move(doc), &rules.blocks_));
  return rules;
}

Result<MatchRules> MatchRules::FromFile(const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(auto doc, LoadConfigFile(path));
  MatchRules rules;
  Status st = FromDoc(std::move(doc), &rules.blocks_);
  if (!st.ok()) return st.WithContext(path);
  return rules;
}

}  // namespace doppel::net
