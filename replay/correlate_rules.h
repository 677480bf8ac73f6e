// Explicit correlation rules (`doppel replay --correlate rules FILE`, issue #16): for the values
// automatic learning (replay/correlate.h) cannot see, a user names where a value comes from
// (an endpoint's answer: a JSON field, any header, a Set-Cookie, or a regex over the body or a
// header) and where it goes (requests of an endpoint pattern, at a request location). The file
// is JSON or YAML, read by net/rules_file.h and checked against doppel.v1.CorrelationRulesFile
// (proto/doppel/v1/rules.proto), so every error names line, column and field path:
//
//   version: 1
//   rules:
//     - name: ticket
//       extract:
//         endpoint: {method: POST, uri: /tickets}
//         location: body
//         regex: "ticket ([0-9a-f]+)"
//       inject:
//         endpoint: {method: GET, uri: {prefix: /tickets/}}
//         location: query:code
//
// The rules are learned against the recording like automatic correlations (the learner finds
// which recorded requests hold a value the rule extracted from an earlier answer of the same
// client) and applied live by the same LiveCorrelator; docs/stateful-replay.md.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "net/match.h"
#include "net/rules_file.h"

namespace doppel::replay {

struct CorrelationRule {
  std::string name;
  net::MatchBlock extract_endpoint;  // empty: every endpoint
  // "body", "body.PATH", "header:NAME" (NAME lower-case), "set-cookie:NAME".
  std::string extract_location;
  std::shared_ptr<const re2::RE2> regex;  // one capture group; null: the whole value
  net::MatchBlock inject_endpoint;
  // A request location of replay/correlate.h: path:N, query:NAME, header:NAME (lower-case),
  // header:NAME#bearer, cookie:NAME, body.PATH, form:NAME.
  std::string inject_location;
  // How the report shows the rule: "POST /tickets", "body ~ /ticket ([0-9a-f]+)/",
  // "GET /tickets/*".
  std::string source_endpoint, source_location, sink_endpoint;
};

struct CorrelationRules {
  bool auto_learn = true;  // the file's auto_learn: also learn correlations automatically
  std::vector<CorrelationRule> rules;
};

// Parses and checks a rules document; errors are "line L, column C: PATH: WHAT".
Result<CorrelationRules> ParseCorrelationRules(std::string_view text, net::ConfigFormat format);
// Reads `path` (.yaml/.yml: YAML, else JSON); errors are prefixed with the path.
Result<CorrelationRules> LoadCorrelationRules(const std::string& path);

// True when `request` matches `block` (method, path, headers, query parameters).
bool MatchesEndpoint(const net::MatchBlock& block, const doppel::v1::HttpRequest& request);

// The value `rule` extracts from `response` (the first capture of its regex, or the whole
// value at its location), or nullopt when the location is absent, the regex does not match
// or the value is empty. Bodies are decoded (Content-Encoding) first.
std::optional<std::string> ExtractValue(const CorrelationRule& rule,
                                        const doppel::v1::HttpResponse& response);

}  // namespace doppel::replay
