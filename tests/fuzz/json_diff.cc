// Fuzz target: the diff engine (diff/) on two arbitrary documents. The input is
// split at its first NUL byte into the expected (recorded) and the actual (replayed) text
// (no NUL: both sides are the whole input).
//
// Each pair goes through DiffJson directly, and through Differ::Compare as the bodies of a
// recorded and a replayed 200 response with a JSON content type — once without rules and
// once under a fixed rules file that uses every action on common member names — and once
// more as text/plain (the line diff).
//
// Properties: no crash, no exception, bounded output (at most max_diffs kept); a document
// compared with itself matches; swapping the sides does not change whether they match.
#include "diff/json_diff.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "diff/diff.h"
#include "diff/rules.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::diff::DiffConfig;
using doppel::diff::Differ;
using doppel::diff::DifferPtr;
using doppel::v1::HttpResponse;

constexpr std::string_view kRules = R"({
  "version": 1,
  "headers": {"ignore": ["X-Build"]},
  "rules": [
    {"path": "body.updated_at", "action": "ignore"},
    {"endpoint": "GET /orders/{id}", "path": "body.token", "action": "ignore-if-value",
     "regex": "^tok_[a-z0-9]+$"},
    {"path": "body.items[*].price", "action": "tolerance", "absolute": 0.01, "relative": 0.001},
    {"path": "body.tags", "action": "unordered"},
    {"path": "body.items", "action": "unordered-by-key", "key": "id"},
    {"path": "body.session", "action": "presence-only"},
    {"path": "body[*].b", "action": "unordered"},
    {"path": "body.*.x", "action": "ignore"}
  ],
  "endpoints": [{"pattern": "GET /orders/{id}"}]
})";

DifferPtr MakeDiffer(bool with_rules) {
  DiffConfig config;
  if (with_rules) {
    auto rules = doppel::diff::ParseRulesJson(kRules);
    FUZZ_CHECK(rules.ok(), "the fixed rules do not parse: " + rules.status().message());
    config.rules = rules.value();
  }
  auto differ = Differ::Create(config);
  FUZZ_CHECK(differ.ok(), "Differ::Create failed: " + differ.status().message());
  return std::move(differ.value());
}

HttpResponse Response(std::string_view content_type, std::string_view body) {
  HttpResponse r;
  r.set_status(200);
  auto* h = r.add_headers();
  h->set_name("Content-Type");
  h->set_value(std::string(content_type));
  r.set_body(std::string(body));
  r.set_body_size(body.size());
  return r;
}

void CheckResult(const doppel::diff::DiffResult& r, const DiffConfig& limits) {
  FUZZ_CHECK(r.diffs.size() <= limits.max_diffs, "more diffs kept than max_diffs");
  FUZZ_CHECK(r.match == (r.diffs.empty() && r.omitted_diffs == 0),
             "match disagrees with the diffs reported");
}

void CompareBodies(const Differ& differ, std::string_view content_type, std::string_view a,
                   std::string_view b) {
  static const DiffConfig kLimits;
  const HttpResponse ra = Response(content_type, a), rb = Response(content_type, b);
  const auto ab = differ.Compare("GET", "/orders/17", ra, rb);
  const auto ba = differ.Compare("GET", "/orders/17", rb, ra);
  CheckResult(ab, kLimits);
  CheckResult(ba, kLimits);
  FUZZ_CHECK(ab.match == ba.match, "A vs B and B vs A disagree on whether they match");
  const auto aa = differ.Compare("GET", "/orders/17", ra, ra);
  FUZZ_CHECK(aa.match, "a document differs from itself: " +
                           (aa.diffs.empty() ? std::string("(omitted)") : aa.diffs[0].path));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Differ* plain = MakeDiffer(false).release();
  static const Differ* with_rules = MakeDiffer(true).release();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view a = input.substr(0, nul);
  const std::string_view b = nul == std::string_view::npos ? input : input.substr(nul + 1);

  doppel::diff::DiffResult result;
  doppel::diff::DiffSink sink(&result, 100, 100);
  const doppel::diff::JsonDiffOptions options;
  const doppel::Status s = doppel::diff::DiffJson(a, b, "body", {}, options, &sink);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "DiffJson error without a message");
    FUZZ_CHECK(result.diffs.empty(), "DiffJson reported diffs and an error");
  }

  CompareBodies(*plain, "application/json", a, b);
  CompareBodies(*with_rules, "application/json; charset=utf-8", a, b);
  CompareBodies(*plain, "text/plain", a, b);
  return 0;
}
