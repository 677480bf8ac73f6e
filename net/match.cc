#include "net/match.h"

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <sstream>

namespace doppel::net {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Line and column (1-based) of a byte offset.
std::string Position(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

// Offsets of the object keys of a syntactically valid JSON document, by path
// ("rules[1].uri.prefix"), so semantic errors can name a line.
std::map<std::string, size_t> KeyOffsets(std::string_view text) {
  struct Frame {
    bool array;
    size_t index = 0;
    std::string path;
    bool expect_key = true;  // objects only
  };
  std::map<std::string, size_t> out;
  std::vector<Frame> stack;
  std::string pending;  // path of the value that follows a key
  auto child_path = [&]() -> std::string {
    if (stack.empty()) return "";
    Frame& f = stack.back();
    if (f.array) return f.path + "[" + std::to_string(f.index) + "]";
    return pending;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = i;
      std::string s;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\')
          ++i;
        else
          s += text[i];
      }
      if (!stack.empty() && !stack.back().array && stack.back().expect_key) {
        const std::string& base = stack.back().path;
        pending = base.empty() ? s : base + "." + s;
        out.emplace(pending, start);
        stack.back().expect_key = false;
      }
    } else if (c == '{' || c == '[') {
      Frame f{c == '[', 0, child_path(), true};
      stack.push_back(std::move(f));
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
    } else if (c == ',') {
      if (!stack.empty()) {
        if (stack.back().array)
          ++stack.back().index;
        else
          stack.back().expect_key = true;
      }
    }
  }
  return out;
}

class JsonRuleReader {
 public:
  explicit JsonRuleReader(std::string_view text) : text_(text), offsets_(KeyOffsets(text)) {}

  Status Error(const std::string& path, const std::string& what) const {
    // Name the deepest known key on the path.
    std::string p = path;
    while (!p.empty()) {
      auto it = offsets_.find(p);
      if (it != offsets_.end()) {
        return Status::InvalidArgument(Position(text_, it->second) + ": " + path + ": " + what);
      }
      const size_t cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p.resize(cut);
    }
    return Status::InvalidArgument(path + ": " + what);
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
      if (!allow_present) return Error(field, "'present' is only for headers and query_params");
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

  Result<MatchBlock> ReadBlock(const boost::json::value& v, size_t index) const {
    const std::string path = "rules[" + std::to_string(index) + "]";
    if (!v.is_object()) return Error(path, "a rule must be an object");
    MatchBlock block;
    block.name = "rule-" + std::to_string(index + 1);
    for (const auto& [key, val] : v.as_object()) {
      const std::string field = path + "." + std::string(key);
      if (key == "name") {
        if (!val.is_string() || val.as_string().empty())
          return Error(field, "must be a non-empty string");
        block.name = std::string(val.as_string());
      } else if (key == "method" || key == "uri") {
        auto m = ReadStringMatch(val, field, false);
        if (!m.ok()) return m.status();
        (key == "method" ? block.method : block.uri) = std::move(m.value());
      } else if (key == "headers" || key == "query_params" || key == "queryParams") {
        if (!val.is_object()) return Error(field, "must be an object of name: match");
        auto& list = key == "headers" ? block.headers : block.query_params;
        for (const auto& [name, m] : val.as_object()) {
          auto sm = ReadStringMatch(m, field + "." + std::string(name), true);
          if (!sm.ok()) return sm.status();
          list.emplace_back(std::string(name), std::move(sm.value()));
        }
      } else {
        return Error(field, "unknown field (expected name, method, uri, headers, query_params)");
      }
    }
    return block;
  }

 private:
  std::string_view text_;
  std::map<std::string, size_t> offsets_;
};

// Splits on ',' except "\,".
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

}  // namespace

Result<StringMatch> StringMatch::Make(Kind kind, std::string value) {
  StringMatch m;
  m.kind_ = kind;
  if (kind == Kind::kRegex) {
    try {
      m.regex_ = std::make_shared<const std::regex>(value, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return Status::InvalidArgument("bad regex '" + value + "': " + e.what());
    }
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
      return std::regex_match(value->begin(), value->end(), *regex_);
  }
  return false;
}

std::string_view TargetPath(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::optional<std::string> QueryParam(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  const size_t hash = query.find('#');
  if (hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    if (PercentDecode(key) != name) continue;
    return eq == std::string_view::npos ? std::string() : PercentDecode(item.substr(eq + 1));
  }
  return std::nullopt;
}

const MatchBlock* MatchRules::Match(const RequestView& request) const {
  for (const MatchBlock& block : blocks_) {
    if (block.method && !block.method->Matches(request.method)) continue;
    if (block.uri && !block.uri->Matches(TargetPath(request.target))) continue;
    bool ok = true;
    for (const auto& [name, m] : block.headers) {
      if (!m.Matches(request.header ? request.header(name) : std::nullopt)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    for (const auto& [name, m] : block.query_params) {
      std::optional<std::string> v = QueryParam(request.target, name);
      if (!m.Matches(v ? std::optional<std::string_view>(*v) : std::nullopt)) {
        ok = false;
        break;
      }
    }
    if (ok) return &block;
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
      } else if (is_header || is_query) {
        std::string name = field.substr(is_header ? 7 : 6);
        if (name.empty()) return bad("'" + field + "' needs a name");
        (is_header ? block.headers : block.query_params).emplace_back(name, std::move(m.value()));
      } else {
        return bad("unknown field '" + field +
                   "' (expected name, method, uri, header.NAME, query.NAME)");
      }
    }
    MatchRules one;
    one.blocks_.push_back(std::move(block));
    DOPPEL_RETURN_IF_ERROR(rules.Merge(std::move(one)));
  }
  return rules;
}

Result<MatchRules> MatchRules::FromJson(std::string_view text) {
  boost::json::stream_parser parser;
  boost::system::error_code ec;
  const size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return Status::InvalidArgument(Position(text, consumed) + ": invalid JSON: " + ec.message());
  }
  boost::json::value doc = parser.release();
  JsonRuleReader reader(text);
  const boost::json::array* list = nullptr;
  if (doc.is_array()) {
    list = &doc.as_array();
  } else if (doc.is_object()) {
    for (const auto& [key, val] : doc.as_object()) {
      if (key != "rules")
        return reader.Error(std::string(key), "unknown field (expected \"rules\")");
    }
    auto it = doc.as_object().find("rules");
    if (it == doc.as_object().end() || !it->value().is_array()) {
      return Status::InvalidArgument("expected {\"rules\": [...]} at the top level");
    }
    list = &it->value().as_array();
  } else {
    return Status::InvalidArgument("expected {\"rules\": [...]} at the top level");
  }
  MatchRules rules;
  for (size_t i = 0; i < list->size(); ++i) {
    auto block = reader.ReadBlock((*list)[i], i);
    if (!block.ok()) return block.status();
    MatchRules one;
    one.blocks_.push_back(std::move(block.value()));
    Status st = rules.Merge(std::move(one));
    if (!st.ok()) return reader.Error("rules[" + std::to_string(i) + "].name", st.message());
  }
  return rules;
}

Result<MatchRules> MatchRules::FromJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read rules file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  auto rules = FromJson(ss.str());
  if (!rules.ok()) return rules.status().WithContext(path);
  return rules;
}

}  // namespace doppel::net
