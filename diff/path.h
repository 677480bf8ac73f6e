// Field paths: how a position in a response is written (body.items[3].price,
// body["odd key"], headers.etag) and how rule paths with wildcards match it.
//
// Grammar (rule paths and rendered paths alike):
//   path    := root segment*
//   root    := ident                       e.g. body
//   segment := "." ident                   object member whose key is an identifier
//            | "[" "\"" json-chars "\"" "]" any object member, JSON string escapes
//            | "[" digits "]"              array element
//            | ".*" | "[\"*\"]"            wildcard: any object member (patterns only)
//            | "[*]"                       wildcard: any array element (patterns only)
//   ident   := [A-Za-z_$][A-Za-z0-9_$-]*
// A pattern matches a path only when both have the same number of segments and every
// segment matches: literal keys and indexes exactly, wildcards one segment of their kind.
// There is no substring or prefix matching: `body.id` does not match `body.user_id` nor
// `body.id.x`. (A literal key "*" can therefore only be matched by a wildcard.)
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::diff {

// One step of a concrete path while walking a document. `key` points into the document
// being compared and must outlive the step.
struct PathStep {
  bool is_index = false;
  std::string_view key;
  size_t index = 0;

  static PathStep Key(std::string_view k) { return {false, k, 0}; }
  static PathStep Index(size_t i) { return {true, {}, i}; }
};

// Appends ".key" or "[\"key\"]" (escaped) to *out.
void AppendKey(std::string* out, std::string_view key);
// Appends "[index]" to *out.
void AppendIndex(std::string* out, size_t index);
// Renders root + steps, e.g. ("body", [items, 3, price]) -> "body.items[3].price".
std::string RenderPath(std::string_view root, std::span<const PathStep> steps);
// Replaces every concrete array index with [*] ("body.items[3].id" -> "body.items[*].id"),
// so per-field statistics can aggregate over elements.
std::string GeneralizePath(std::string_view path);

// A parsed rule path. Immutable after Parse; safe to share between threads.
class PathPattern {
 public:
  // Errors name the offending character offset and what was expected.
  static Result<PathPattern> Parse(std::string_view text);

  // True when the pattern matches the concrete path `root` + `steps` exactly.
  bool Matches(std::string_view root, std::span<const PathStep> steps) const;
  // Number of segments after the root.
  size_t depth() const { return segments_.size(); }
  const std::string& root() const { return root_; }
  const std::string& text() const { return text_; }

 private:
  enum class Type { kKey, kIndex, kAnyKey, kAnyIndex };
  struct Segment {
    Type type;
    std::string key;
    size_t index = 0;
  };
  std::string text_;
  std::string root_;
  std::vector<Segment> segments_;
};

}  // namespace doppel::diff
