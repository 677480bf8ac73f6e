#include "net/rules_file.h"

#include <google/protobuf/descriptor.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <sstream>
#include <vector>

namespace doppel::net {

namespace json = boost::json;
namespace pb = google::protobuf;

namespace {

std::pair<size_t, size_t> LineColumn(std::string_view text, size_t offset) {
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
  return {line, col};
}

std::string At(std::pair<size_t, size_t> lc) {
  return "line " + std::to_string(lc.first) + ", column " + std::to_string(lc.second);
}

// Positions of the object keys and array elements of a syntactically valid JSON document
// (comments and trailing commas allowed), by path. Boost.JSON keeps no source positions, so
// the text is walked once more. Refuses a key repeated within one object (Boost.JSON would
// keep only one of them, silently).
Status JsonPositions(std::string_view text, ConfigDoc* doc) {
  struct Frame {
    bool array;
    size_t index = 0;
    std::string path;
    bool expect_key = true;      // objects only
    bool expect_element = true;  // arrays only
  };
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
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (text.compare(i, 2, "//") == 0) {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
      continue;
    }
    if (text.compare(i, 2, "/*") == 0) {
      const size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 1;
      continue;
    }
    if (!stack.empty() && stack.back().array && stack.back().expect_element && c != ']') {
      doc->positions.emplace(child_path(), LineColumn(text, i));
      stack.back().expect_element = false;
    }
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
        if (!doc->positions.emplace(pending, LineColumn(text, start)).second) {
          return Status::InvalidArgument(At(LineColumn(text, start)) + ": " + pending +
                                         ": duplicate key");
        }
        stack.back().expect_key = false;
      }
    } else if (c == '{' || c == '[') {
      stack.push_back(Frame{c == '[', 0, child_path(), true, true});
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
    } else if (c == ',') {
      if (!stack.empty()) {
        if (stack.back().array) {
          ++stack.back().index;
          stack.back().expect_element = true;
        } else {
          stack.back().expect_key = true;
        }
      }
    }
  }
  return Status::Ok();
}

Result<ConfigDoc> ParseJson(std::string_view text) {
  json::parse_options options;
  options.allow_comments = true;
  options.allow_trailing_commas = true;
  options.max_depth = 64;
  json::stream_parser parser({}, options);
  boost::system::error_code ec;
  const size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    return Status::InvalidArgument(At(LineColumn(text, consumed)) +
                                   ": invalid JSON: " + ec.message());
  }
  ConfigDoc doc;
  doc.value = parser.release();
  DOPPEL_RETURN_IF_ERROR(JsonPositions(text, &doc));
  return doc;
}

// YAML -> JSON with positions. Bounded in depth and in nodes (aliases can make a small
// document expand enormously).
class YamlConverter {
 public:
  explicit YamlConverter(ConfigDoc* doc) : doc_(doc) {}

  Status Convert(const YAML::Node& node, const std::string& path, int depth, json::value* out) {
    if (depth > kMaxDepth) {
      return Status::InvalidArgument(Where(node) + path + ": nested deeper than " +
                                     std::to_string(kMaxDepth) + " levels");
    }
    if (++nodes_ > kMaxNodes) {
      return Status::InvalidArgument(Where(node) + "more than " + std::to_string(kMaxNodes) +
                                     " values (aliases expanded): not a rules file");
    }
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        *out = nullptr;
        return Status::Ok();
      case YAML::NodeType::Scalar:
        *out = Scalar(node);
        return Status::Ok();
      case YAML::NodeType::Sequence: {
        json::array arr;
        size_t i = 0;
        for (const YAML::Node& item : node) {
          const std::string p = path + "[" + std::to_string(i++) + "]";
          Remember(p, item.Mark());
          json::value v;
          DOPPEL_RETURN_IF_ERROR(Convert(item, p, depth + 1, &v));
          arr.push_back(std::move(v));
        }
        *out = std::move(arr);
        return Status::Ok();
      }
      case YAML::NodeType::Map: {
        json::object obj;
        for (auto it = node.begin(); it != node.end(); ++it) {
          if (!it->first.IsScalar()) {
            return Status::InvalidArgument(Where(it->first) + path +
                                           ": keys must be plain strings");
          }
          const std::string key = it->first.Scalar();
          const std::string p = path.empty() ? key : path + "." + key;
          Remember(p, it->first.Mark());
          if (obj.contains(key)) {
            return Status::InvalidArgument(Where(it->first) + p + ": duplicate key");
          }
          json::value v;
          DOPPEL_RETURN_IF_ERROR(Convert(it->second, p, depth + 1, &v));
          obj.emplace(key, std::move(v));
        }
        *out = std::move(obj);
        return Status::Ok();
      }
    }
    *out = nullptr;
    return Status::Ok();
  }

 private:
  static constexpr int kMaxDepth = 64;
  static constexpr size_t kMaxNodes = 100000;

  static json::value Scalar(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return json::string(s);  // quoted: always a string
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    if (s == "null" || s == "Null" || s == "NULL" || s == "~") return nullptr;
    if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
      boost::system::error_code ec;
      json::value v = json::parse(s, ec);
      if (!ec && v.is_number()) return v;
    }
    return json::string(s);
  }

  void Remember(const std::string& path, const YAML::Mark& m) {
    if (m.is_null()) return;
    doc_->positions.emplace(
        path, std::make_pair(static_cast<size_t>(m.line) + 1, static_cast<size_t>(m.column) + 1));
  }
  static std::string Where(const YAML::Node& node) {
    const YAML::Mark m = node.Mark();
    if (m.is_null()) return "";
    return At({static_cast<size_t>(m.line) + 1, static_cast<size_t>(m.column) + 1}) + ": ";
  }

  ConfigDoc* doc_;
  size_t nodes_ = 0;
};

Result<ConfigDoc> ParseYaml(std::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    std::string where;
    if (!e.mark.is_null()) {
      where =
          At({static_cast<size_t>(e.mark.line) + 1, static_cast<size_t>(e.mark.column) + 1}) + ": ";
    }
    return Status::InvalidArgument(where + "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("invalid YAML: ") + e.what());
  }
  ConfigDoc doc;
  YamlConverter conv(&doc);
  try {
    DOPPEL_RETURN_IF_ERROR(conv.Convert(root, "", 0, &doc.value));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("invalid YAML: ") + e.msg);
  }
  return doc;
}

const char* JsonTypeName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "a list";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

std::string KnownFields(const pb::Descriptor& type) {
  std::string out;
  for (int i = 0; i < type.field_count(); ++i) {
    if (i > 0) out += ", ";
    out += type.field(i)->name();
  }
  return out;
}

class SchemaChecker {
 public:
  SchemaChecker(const ConfigDoc& doc, const SchemaShorthand& shorthand)
      : doc_(doc), shorthand_(shorthand) {}

  Status Message(const json::value& v, const pb::Descriptor& type, const std::string& path) {
    if (!v.is_object()) {
      return doc_.Error(path.empty() ? "(top level)" : path,
                        std::string("expected an object with fields ") + KnownFields(type) +
                            ", got " + JsonTypeName(v));
    }
    for (const auto& [key, val] : v.as_object()) {
      const std::string p = path.empty() ? std::string(key) : path + "." + std::string(key);
      const pb::FieldDescriptor* f = type.FindFieldByName(std::string(key));
      if (f == nullptr) f = type.FindFieldByCamelcaseName(std::string(key));
      if (f == nullptr) {
        return doc_.Error(p, "unknown field (expected one of: " + KnownFields(type) + ")");
      }
      if (f->is_map()) {
        if (!val.is_object()) {
          return doc_.Error(
              p, std::string("expected an object of name: value, got ") + JsonTypeName(val));
        }
        const pb::FieldDescriptor* value_field = f->message_type()->map_value();
        for (const auto& [k, item] : val.as_object()) {
          DOPPEL_RETURN_IF_ERROR(Single(*value_field, item, p + "." + std::string(k)));
        }
      } else if (f->is_repeated()) {
        if (!val.is_array()) {
          return doc_.Error(p, std::string("expected a list, got ") + JsonTypeName(val));
        }
        const json::array& arr = val.as_array();
        for (size_t i = 0; i < arr.size(); ++i) {
          DOPPEL_RETURN_IF_ERROR(Single(*f, arr[i], p + "[" + std::to_string(i) + "]"));
        }
      } else {
        DOPPEL_RETURN_IF_ERROR(Single(*f, val, p));
      }
    }
    return Status::Ok();
  }

 private:
  Status Single(const pb::FieldDescriptor& f, const json::value& v, const std::string& path) {
    if (v.is_null()) return Status::Ok();  // absent, as in proto3 JSON
    switch (f.cpp_type()) {
      case pb::FieldDescriptor::CPPTYPE_MESSAGE:
        if (shorthand_ && shorthand_(f, v)) return Status::Ok();
        return Message(v, *f.message_type(), path);
      case pb::FieldDescriptor::CPPTYPE_STRING:
        if (!v.is_string()) return Expected(path, "a string", v);
        return Status::Ok();
      case pb::FieldDescriptor::CPPTYPE_BOOL:
        if (!v.is_bool()) return Expected(path, "true or false", v);
        return Status::Ok();
      case pb::FieldDescriptor::CPPTYPE_ENUM:
        if (!v.is_string()) return Expected(path, "a name", v);
        if (f.enum_type()->FindValueByName(std::string(v.as_string())) == nullptr) {
          return doc_.Error(path, "unknown value '" + std::string(v.as_string()) + "'");
        }
        return Status::Ok();
      default:
        if (!v.is_number()) return Expected(path, "a number", v);
        return Status::Ok();
    }
  }

  Status Expected(const std::string& path, const char* what, const json::value& v) {
    return doc_.Error(path, std::string("expected ") + what + ", got " + JsonTypeName(v));
  }

  const ConfigDoc& doc_;
  const SchemaShorthand& shorthand_;
};

}  // namespace

ConfigFormat FormatForPath(std::string_view path) {
  const size_t dot = path.rfind('.');
  if (dot == std::string_view::npos) return ConfigFormat::kJson;
  std::string ext(path.substr(dot + 1));
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == "yaml" || ext == "yml" ? ConfigFormat::kYaml : ConfigFormat::kJson;
}

std::string ConfigDoc::Where(const std::string& path) const {
  std::string p = path;
  while (!p.empty()) {
    auto it = positions.find(p);
    if (it != positions.end()) return At(it->second) + ": ";
    const size_t cut = p.find_last_of(".[");
    if (cut == std::string::npos) break;
    p.resize(cut);
  }
  return "";
}

Status ConfigDoc::Error(const std::string& path, const std::string& what) const {
  return Status::InvalidArgument(Where(path) + path + ": " + what);
}

Result<ConfigDoc> ParseConfig(std::string_view text, ConfigFormat format, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Status::InvalidArgument("the file is " + std::to_string(text.size()) +
                                   " bytes; rules files are limited to " +
                                   std::to_string(max_bytes));
  }
  return format == ConfigFormat::kYaml ? ParseYaml(text) : ParseJson(text);
}

Result<ConfigDoc> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = ParseConfig(ss.str(), FormatForPath(path));
  if (!doc.ok()) return doc.status().WithContext(path);
  return doc;
}

Status CheckAgainstSchema(const ConfigDoc& doc, const pb::Descriptor& type,
                          const SchemaShorthand& shorthand) {
  SchemaChecker checker(doc, shorthand);
  return checker.Message(doc.value, type, "");
}

}  // namespace doppel::net
