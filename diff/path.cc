#include "diff/path.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>

namespace doppel::diff {
namespace {

bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '-'; }

bool IsIdent(std::string_view s) {
  if (s.empty() || !IsIdentStart(s[0])) return false;
  for (char c : s) {
    if (!IsIdentChar(c)) return false;
  }
  return true;
}

Status PathError(std::string_view text, size_t pos, std::string_view what) {
  return Status::InvalidArgument("bad path \"" + std::string(text) + "\" at offset " +
                                 std::to_string(pos) + ": " + std::string(what));
}

}  // namespace

void AppendKey(std::string* out, std::string_view key) {
  if (IsIdent(key)) {
    out->push_back('.');
    out->append(key);
    return;
  }
  out->push_back('[');
  out->append(boost::json::serialize(boost::json::string_view(key.data(), key.size())));
  out->push_back(']');
}

void AppendIndex(std::string* out, size_t index) {
  out->push_back('[');
  out->append(std::to_string(index));
  out->push_back(']');
}

std::string RenderPath(std::string_view root, std::span<const PathStep> steps) {
  std::string out(root);
  for (const PathStep& s : steps) {
    if (s.is_index) {
      AppendIndex(&out, s.index);
    } else {
      AppendKey(&out, s.key);
    }
  }
  return out;
}

std::string GeneralizePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  size_t i = 0;
  while (i < path.size()) {
    if (path.compare(i, 2, "[\"") == 0) {
      // Copy a quoted key verbatim, honoring escapes.
      size_t j = i + 2;
      while (j < path.size() && path[j] != '"') j += (path[j] == '\\') ? 2 : 1;
      j = std::min(path.size(), j + 2);  // closing quote and bracket
      out.append(path.substr(i, j - i));
      i = j;
    } else if (path[i] == '[') {
      size_t j = i + 1;
      while (j < path.size() && path[j] >= '0' && path[j] <= '9') ++j;
      if (j > i + 1 && j < path.size() && path[j] == ']') {
        out.append("[*]");
        i = j + 1;
      } else {
        out.push_back(path[i++]);
      }
    } else {
      out.push_back(path[i++]);
    }
  }
  return out;
}

Result<PathPattern> PathPattern::Parse(std::string_view text) {
  PathPattern p;
  p.text_ = std::string(text);
  size_t i = 0;
  while (i < text.size() && IsIdentChar(text[i])) ++i;
  if (i == 0 || !IsIdentStart(text[0])) {
    return PathError(text, 0, "expected a root name such as body");
  }
  p.root_ = std::string(text.substr(0, i));
  while (i < text.size()) {
    if (text[i] == '.') {
      ++i;
      if (i < text.size() && text[i] == '*') {
        p.segments_.push_back({Type::kAnyKey, {}, 0});
        ++i;
        continue;
      }
      size_t start = i;
      if (i >= text.size() || !IsIdentStart(text[i])) {
        return PathError(text, i,
                         "expected a key name or * after '.' (quote other keys: [\"key\"])");
      }
      while (i < text.size() && IsIdentChar(text[i])) ++i;
      p.segments_.push_back({Type::kKey, std::string(text.substr(start, i - start)), 0});
    } else if (text[i] == '[') {
      ++i;
      if (i < text.size() && text[i] == '*') {
        if (i + 1 >= text.size() || text[i + 1] != ']')
          return PathError(text, i + 1, "expected ']'");
        p.segments_.push_back({Type::kAnyIndex, {}, 0});
        i += 2;
      } else if (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        size_t index = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
          if (index > (SIZE_MAX - 9) / 10) return PathError(text, i, "index too large");
          index = index * 10 + static_cast<size_t>(text[i] - '0');
          ++i;
        }
        if (i >= text.size() || text[i] != ']') return PathError(text, i, "expected ']'");
        ++i;
        p.segments_.push_back({Type::kIndex, {}, index});
      } else if (i < text.size() && text[i] == '"') {
        // A JSON string: its end is the first quote no backslash escapes; Boost.JSON decodes it.
        size_t end = i + 1;
        while (end < text.size() && text[end] != '"') end += text[end] == '\\' ? 2 : 1;
        if (end >= text.size()) return PathError(text, text.size(), "unterminated quoted key");
        boost::system::error_code ec;
        const boost::json::value quoted = boost::json::parse(text.substr(i, end + 1 - i), ec);
        if (ec || !quoted.is_string()) {
          return PathError(text, i, "bad escape in quoted key (" + ec.message() + ")");
        }
        std::string key(quoted.get_string());
        i = end + 1;
        if (i >= text.size() || text[i] != ']') return PathError(text, i, "expected ']'");
        ++i;
        if (key == "*") {
          p.segments_.push_back({Type::kAnyKey, {}, 0});
        } else {
          p.segments_.push_back({Type::kKey, std::move(key), 0});
        }
      } else {
        return PathError(text, i, "expected an index, * or a quoted key after '['");
      }
    } else {
      return PathError(text, i, "expected '.' or '['");
    }
  }
  return p;
}

bool PathPattern::Matches(std::string_view root, std::span<const PathStep> steps) const {
  if (steps.size() != segments_.size() || root != root_) return false;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Segment& seg = segments_[i];
    const PathStep& step = steps[i];
    switch (seg.type) {
      case Type::kKey:
        if (step.is_index || step.key != seg.key) return false;
        break;
      case Type::kIndex:
        if (!step.is_index || step.index != seg.index) return false;
        break;
      case Type::kAnyKey:
        if (step.is_index) return false;
        break;
      case Type::kAnyIndex:
        if (!step.is_index) return false;
        break;
    }
  }
  return true;
}

}  // namespace doppel::diff
