// Stateful replay (issue #16): values a server hands out (a login token, a new order's id, a
// CSRF token, a session cookie) and that a client sends back later. Against a fresh target
// those values differ, so a replay sends the recorded ones and gets 401/403/404; with
// correlation it sends the target's own.
//
// Learning (CorrelationLearner, pure: envelopes in, a CorrelationPlan out) looks at a session
// in recorded order. A value that first appears in a recorded response and later appears in a
// request of the same client is a correlation: source (endpoint, location in the response) ->
// sink (endpoint, location in the request). Locations are strings:
//   response: "body.token" (JSON, diff path syntax), "header:location",
//             "header:location#last" (its last path segment), "set-cookie:sid"
//   request:  "path:2" (third non-empty path segment), "query:q", "header:x-csrf",
//             "header:authorization#bearer" (the token after "Bearer "), "cookie:sid",
//             "body.csrf", "form:csrf"
// Evidence rule (IsEvidence and the learner): a value is a candidate only when it is not
// empty, a string of at least kMinValueLength characters or an integer of at least
// kMinNumber; booleans, null, fractions and arrays/objects never are. A candidate seen in the
// responses of more than one client, or of more than kMaxSourceEndpoints endpoints, is a
// constant of the API, not something handed to one client, and is dropped.
//
// Redaction: recorded requests may hold "hmac:…" keyed hashes (redact/redactor.h) instead of
// the value. With the store's key, the learner hashes every candidate (and "Bearer " +
// candidate, the form an Authorization header is hashed in), so a redacted sink still
// correlates with the clear value in the response that handed it out.
//
// Explicit rules (replay/correlate_rules.h, --correlate rules FILE) are learned in the same
// pass: a value a rule extracts from a recorded answer (its source location is "rule:NAME")
// and that a later request of the same client holds at the rule's inject location is a sink of
// that rule. Rules skip the evidence rule (the user named the locations), and their sinks are
// counted in one correlation per rule, under its name.
//
// Applying (LiveCorrelator): during a replay, when a target answers a source request, the
// value at the source's location in the live answer replaces the recorded one at every later
// sink of the same client, per target; a per-client, per-target cookie jar applies the live
// Set-Cookie values. Learned and rule-based correlations take this one path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/report.pb.h"
#include "replay/correlate_rules.h"
#include "replay/replay.h"

namespace doppel::replay {

inline constexpr size_t kMinValueLength = 8;
inline constexpr int64_t kMinNumber = 1000;
inline constexpr size_t kMaxSourceEndpoints = 3;
// Candidate values the learner keeps at most (memory bound); later ones are not considered.
inline constexpr size_t kMaxCandidates = 1'000'000;

// The evidence rule for one value. `is_number`: the value is a JSON number's text.
bool IsEvidence(std::string_view value, bool is_number);

// A value found in a message, at a location (see above).
struct FoundValue {
  std::string location;
  std::string value;
  bool is_number = false;
};

// The body of a response as text (Content-Encoding undone), or nullopt (empty, truncated,
// undecodable).
std::optional<std::string> ResponseBodyText(const doppel::v1::HttpResponse& response);

// Every candidate location of a response / a request with its value (evidence not checked).
// Bodies are decoded (Content-Encoding) and parsed as JSON (or, for requests, as a form).
std::vector<FoundValue> ResponseValues(const doppel::v1::HttpResponse& response);
std::vector<FoundValue> RequestValues(const doppel::v1::HttpRequest& request);

// Replaces `recorded` by `live` at `location` of `request`; false when the location does not
// hold `recorded`. A "hmac:…" recorded value is replaced by `prefix` + `live` (a redacted
// Authorization header becomes "Bearer " + live).
bool ReplaceAt(std::string_view location, std::string_view recorded, std::string_view prefix,
               std::string_view live, doppel::v1::HttpRequest* request);

// The client a request belongs to: the value of the session's sample key ("header:NAME" or
// "query:NAME", when set and present), else the client address (the connection).
std::string ClientOf(const doppel::v1::Envelope& envelope, std::string_view sample_key);

// A learned correlation (concrete endpoints and locations), or an explicit rule's (`rule` set;
// its endpoints and source location as CorrelationRule describes them for the report).
struct Correlation {
  std::string rule;  // the rule's name; "" when learned
  std::string source_endpoint, source_location, sink_endpoint, sink_location;
  uint64_t recorded = 0;  // sink occurrences in the recording
};

// Where a recorded value came from.
struct ValueSource {
  std::string endpoint, location;
};

// (source endpoint, source location, sink endpoint, sink location), concrete: "POST /login",
// "body.token" (or "rule:NAME"), "GET /orders/{id}", "path:1".
using CorrelationKey = std::tuple<std::string, std::string, std::string, std::string>;

// What learning found; immutable afterwards.
struct CorrelationPlan {
  std::string mode = "auto";  // "auto", or "rules" with explicit rules (learned ones too or not)
  // Learned ones sorted by source, then sink; then one per explicit rule, in the file's order.
  std::vector<Correlation> correlations;
  std::map<CorrelationKey, size_t> index;  // -> correlations[i]
  // Recorded value -> its sources (with a sink): a learned one and rules' may both have it.
  std::map<std::string, std::vector<ValueSource>> values;
  // "hmac:…" seen at a sink -> (the recorded clear value, the prefix it was hashed with).
  std::map<std::string, std::pair<std::string, std::string>> hashed;
  std::map<std::string, std::set<std::string>> source_locations;  // endpoint -> locations
  std::map<std::string, std::set<std::string>> sink_locations;    // endpoint -> locations
  std::string sample_key;                                         // for ClientOf
  // The explicit rules, by name: what a "rule:NAME" source location extracts.
  std::map<std::string, CorrelationRule> rules;
};

// Keyed hash of a value as the store's Redactor computes it ("hmac:" + hex), or null.
using ValueHasher = std::function<std::string(std::string_view)>;

class CorrelationLearner {
 public:
  // `rules`: explicit rules (null: none); without them, or with their auto_learn, the
  // learner also learns correlations by itself.
  CorrelationLearner(std::string sample_key, ValueHasher hasher,
                     std::shared_ptr<const CorrelationRules> rules = nullptr);
  // Envelopes in recorded order. Errors (PROXY_ERROR_*) and unanswered ones add requests only.
  void Add(const doppel::v1::Envelope& envelope);
  CorrelationPlan Finish();

 private:
  struct Candidate {
    std::string client;
    ValueSource source;
    std::set<std::string> endpoints;
    bool shared = false;  // seen in another client's response: not evidence
  };
  // A sink hit: the candidate value and where it was sent; `rule` indexes rules_->rules
  // (npos: a learned correlation).
  struct Hit {
    std::string value, sink_endpoint, sink_location, hashed, prefix;
    size_t rule = std::string::npos;
    std::string source_endpoint;  // rule hits: where the client got the value
  };
  void AddCandidate(const std::string& client, const std::string& endpoint, const FoundValue& v);
  void AddHashes(const std::string& value);
  // The rules whose inject side `request` (a sink at `location` holding `value`) matches.
  void AddRuleHits(const std::string& client, const std::string& endpoint,
                   const doppel::v1::HttpRequest& request, const FoundValue& v,
                   const std::string& value, const std::string& hashed, const std::string& prefix);

  std::string sample_key_;
  ValueHasher hasher_;
  std::shared_ptr<const CorrelationRules> rules_;
  bool learn_ = true;
  // (client, value) -> (rule index, source endpoint) for every value a rule extracted.
  std::map<std::pair<std::string, std::string>, std::map<size_t, std::string>> rule_values_;
  std::map<std::string, Candidate> candidates_;
  std::map<std::string, std::pair<std::string, std::string>> by_hash_;  // hash -> value, prefix
  std::set<std::string> sent_first_;  // evidence values a client sent before any response had them
  std::vector<Hit> hits_;
};

// Replay-time counts, for the report.
struct CorrelationCounts {
  // Per correlation (the plan's order): substitutions on the first target, and sinks sent
  // unchanged because their source had not answered (or answered without the value).
  std::vector<uint64_t> substituted, unanswered;
  uint64_t cookies_applied = 0;  // requests whose Cookie header came from the jar (first target)
};

// The replay engine's RequestCorrelator for a learned plan: live values per target (lane),
// cookie jars per target and client, and the counts. Engine thread only.
class LiveCorrelator final : public RequestCorrelator {
 public:
  // REQUIRES: `plan` outlives this object. `lanes`: targets plus the secondary.
  LiveCorrelator(const CorrelationPlan& plan, size_t lanes);

  std::string ClientOf(const doppel::v1::Envelope& recorded) const override;
  bool Patch(size_t lane, const std::string& client, const doppel::v1::Envelope& recorded,
             doppel::v1::Envelope* patched) override;
  void Observe(size_t lane, const std::string& client, const doppel::v1::Envelope& recorded,
               const doppel::v1::HttpResponse& live) override;

  const CorrelationCounts& counts() const { return counts_; }

 private:
  const CorrelationPlan& plan_;
  // Per lane: client -> recorded value -> live value.
  std::vector<std::map<std::string, std::map<std::string, std::string>>> live_;
  // Per lane: client -> cookie name -> live value (from Set-Cookie).
  std::vector<std::map<std::string, std::map<std::string, std::string>>> jars_;
  CorrelationCounts counts_;
};

// Fills report.correlation from the plan and the counts.
void FillCorrelationReport(const CorrelationPlan& plan, const CorrelationCounts& counts,
                           doppel::v1::CorrelationReport* out);

}  // namespace doppel::replay
