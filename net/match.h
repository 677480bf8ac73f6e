// Capture rules in the spirit of Istio's HTTPMatchRequest: a rule set is a list of named
// blocks; a request matches the first block all of whose fields match (blocks are OR'd,
// fields inside a block AND'd). An empty rule set matches nothing: callers treat "no rules"
// as "everything".
//
// Flag syntax, one block per --match (items separated by ',', a literal comma as '\,'):
//   name=NAME  method=GET  method~=GET|HEAD
//   uri=/exact  uri^=/prefix  uri~=/regex/.*
//   header.X-User=alice  header.X-User^=al  header.X-User~=a.*  header.X-User   (present)
//   query.debug=1  query.debug^=1  query.debug~=[0-9]+  query.debug         (present)
//   client_cert_subject^=CN=billing  client_cert_subject   (mTLS: a verified client cert)
// `uri` is matched against the path without the query string; regexes must match the whole
// value (ECMAScript syntax); header names are case-insensitive.
//
// File syntax (docs/recorder.md), JSON or the same structure in YAML:
//   {"rules": [{"name": "checkout", "method": {"exact": "POST"},
//               "uri": {"prefix": "/checkout"},
//               "headers": {"x-user": {"regex": "a.*"}},
//               "query_params": {"debug": {"present": true}},
//               "client_cert_subject": {"prefix": "CN=billing"}}]}
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "net/rules_file.h"

namespace doppel::net {

class MatchRegex;  // a compiled regex (RE2, net/regex.h); defined in match.cc

class StringMatch {
 public:
  enum class Kind { kExact, kPrefix, kRegex, kPresent };
  static Result<StringMatch> Make(Kind kind, std::string value);
  // `value` is nullopt when the header or parameter is absent: only kPresent... and nothing
  // else matches then.
  bool Matches(std::optional<std::string_view> value) const;
  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }

 private:
  Kind kind_ = Kind::kExact;
  std::string value_;
  std::shared_ptr<const MatchRegex> regex_;
};

struct MatchBlock {
  std::string name;
  std::optional<StringMatch> method;
  std::optional<StringMatch> uri;
  std::vector<std::pair<std::string, StringMatch>> headers;       // name, match
  std::vector<std::pair<std::string, StringMatch>> query_params;  // name, match
  // The verified client certificate's subject (RFC 2253); mTLS listeners only.
  std::optional<StringMatch> client_cert_subject;
};

// What a rule looks at. `header` returns the first value of a header (case-insensitive
// name), or nullopt.
struct RequestView {
  std::string_view method;
  std::string_view target;  // origin-form, "/path?query"
  std::function<std::optional<std::string_view>(std::string_view name)> header;
  // The verified client certificate's subject; "" when the client presented none.
  std::string_view client_cert_subject = {};
};

class MatchRules {
 public:
  // One block per flag value (see the syntax above); unnamed blocks are "match-1", ...
  static Result<MatchRules> FromFlags(const std::vector<std::string>& flags);
  // A JSON or YAML document checked against the proto schema v1::MatchRulesFile
  // (proto/doppel/v1/rules.proto); errors name the line and column and the field path.
  static Result<MatchRules> FromJson(std::string_view text);
  static Result<MatchRules> FromYaml(std::string_view text);
  // By extension: .yaml/.yml is YAML, anything else JSON.
  static Result<MatchRules> FromFile(const std::string& path);

  bool empty() const { return blocks_.empty(); }
  const std::vector<MatchBlock>& blocks() const { return blocks_; }
  // The first matching block, or nullptr.
  const MatchBlock* Match(const RequestView& request) const;
  // The block named `name`, or nullptr.
  const MatchBlock* Find(std::string_view name) const;
  // Appends the blocks of `other` (names must stay unique).
  Status Merge(MatchRules other);

 private:
  std::vector<MatchBlock> blocks_;
};

// Splits a flag value on ',' except "\," (a literal comma): "a,b\,c" -> {"a", "b,c"}.
std::vector<std::string> SplitItems(std::string_view s);

// For files that embed a match rule (doppel.v1.MatchRule) in their own schema (correlation
// rules, replay/correlate_rules.h): the shorthand to pass to CheckAgainstSchema (a bare
// string where a MatchStringMatch is expected means {"exact": ...}), and the reader of one
// block at `path` of a document that passed that check (errors name line, column and path).
SchemaShorthand MatchShorthand();
Result<MatchBlock> ReadMatchBlock(const ConfigDoc& doc, const boost::json::value& v,
                                  const std::string& path);

// True when every field of `block` matches `request`.
bool BlockMatches(const MatchBlock& block, const RequestView& request);

// A recorded request as rules see it (headers looked up in place; no client certificate).
// REQUIRES: `request` outlives the view.
RequestView ViewOf(const doppel::v1::HttpRequest& request);

}  // namespace doppel::net
