#include "diff/path.h"

#include <algorithm>
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

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 4 hex digits at text[pos]; -1 when malformed.
int64_t ReadHex4(std::string_view text, size_t pos) {
  if (pos + 4 > text.size()) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    int h = HexValue(text[pos + i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
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
  out->append("[\"");
  for (char c : key) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xF]);
    } else {
      out->push_back(c);
    }
  }
  out->append("\"]");
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
        ++i;
        std::string key;
        bool closed = false;
        while (i < text.size()) {
          char c = text[i];
          if (c == '"') {
            closed = true;
            ++i;
            break;
          }
          if (c != '\\') {
            key.push_back(c);
            ++i;
            continue;
          }
          if (i + 1 >= text.size()) break;
          char e = text[i + 1];
          i += 2;
          switch (e) {
            case '"':
              key.push_back('"');
              break;
            case '\\':
              key.push_back('\\');
              break;
            case '/':
              key.push_back('/');
              break;
            case 'b':
              key.push_back('\b');
              break;
            case 'f':
              key.push_back('\f');
              break;
            case 'n':
              key.push_back('\n');
              break;
            case 'r':
              key.push_back('\r');
              break;
            case 't':
              key.push_back('\t');
              break;
            case 'u': {
              int64_t cp = ReadHex4(text, i);
              if (cp < 0) return PathError(text, i, "bad \\u escape");
              i += 4;
              if (cp >= 0xD800 && cp <= 0xDBFF && text.compare(i, 2, "\\u") == 0) {
                int64_t lo = ReadHex4(text, i + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                  cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                  i += 6;
                }
              }
              AppendUtf8(&key, static_cast<uint32_t>(cp));
              break;
            }
            default:
              return PathError(text, i - 1, "bad escape in quoted key");
          }
        }
        if (!closed) return PathError(text, i, "unterminated quoted key");
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
