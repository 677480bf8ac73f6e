// Endpoints: how requests are grouped for rules and statistics — method + path template.
//
// Automatic templating replaces each path segment that looks like an identifier with {id}:
// all digits ("42"), a UUID, a ULID, or a hex string of 8+ characters holding at least one
// digit ("5f3a9c1e", but not the word "deadbeef"). The query string and fragment are
// dropped; an absolute-form target ("http://host/a?b") keeps only its path.
//   GET /users/42/orders?page=2  ->  GET /users/{id}/orders
// Explicit patterns from the rules file win over automatic templating, first match first.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::diff {

// True for a segment automatic templating turns into {id}.
bool IsIdSegment(std::string_view segment);
// METHOD + " " + templated path.
std::string TemplateEndpoint(std::string_view method, std::string_view target);

// "GET /api/v1/orders/{id}": a method (or "*", or none = any method) and a path whose
// "{name}" segments match exactly one non-empty segment and whose other segments match
// literally. Immutable after Parse.
class EndpointTemplate {
 public:
  static Result<EndpointTemplate> Parse(std::string_view text);
  // `path` is a TargetPath (no query). Methods compare case-insensitively.
  bool Matches(std::string_view method, std::string_view path) const;
  // The name of a matching request: the pattern as written, with the request's method when
  // the pattern names none.
  std::string NameFor(std::string_view method) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string method_;  // empty = any
  std::string path_;
  std::vector<std::string> segments_;  // "{...}" entries are wildcards
};

// Names endpoints: explicit patterns first, then automatic templating. Thread-safe (const).
class EndpointNamer {
 public:
  EndpointNamer() = default;
  explicit EndpointNamer(std::vector<EndpointTemplate> patterns) : patterns_(std::move(patterns)) {}
  std::string Name(std::string_view method, std::string_view target) const;
  // Name appended to `out` (a request class label is built on it).
  void AppendName(std::string_view method, std::string_view target, std::string* out) const;

 private:
  std::vector<EndpointTemplate> patterns_;
};

}  // namespace doppel::diff
