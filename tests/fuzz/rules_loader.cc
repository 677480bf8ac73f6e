// Fuzz target: the two rule-file loaders on arbitrary text —
//   - diff rules (diff/rules.h ParseRules, JSON and YAML, then Differ::Create as
//     `doppel replay --rules FILE` does), and
//   - recorder match rules (net/match.h MatchRules::FromJson and FromYaml, `doppel record
//     --rules FILE`), plus each line of the text as one `--match` flag (FromFlags).
//
// Properties: Ok or an error with a message (ParseRules' name a line and column whenever the
// document is an object); never a crash or an escaping exception (bad regexes included);
// rules that parse compile (Differ::Create accepts what ParseRules accepted); compiled rules
// can be applied: each match rule set is run against a few requests, each Differ on one
// response pair.
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "diff/diff.h"
#include "diff/rules.h"
#include "net/match.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::net::MatchRules;

void ApplyMatchRules(const MatchRules& rules) {
  struct Request {
    std::string_view method, target, header_name, header_value;
  };
  static const Request kRequests[] = {
      {"GET", "/api/v1/orders/42?expand=items&debug=1", "x-user", "alice"},
      {"POST", "/checkout", "content-type", "application/json"},
      {"DELETE", "/a%20b/c?q=x+y&q=2", "x-api-key", ""},
      {"GET", "/", "", ""},
  };
  for (const auto& r : kRequests) {
    doppel::net::RequestView view{
        r.method, r.target, [&r](std::string_view name) -> std::optional<std::string_view> {
          if (r.header_name.empty() || name.size() != r.header_name.size()) return std::nullopt;
          for (size_t i = 0; i < name.size(); ++i) {
            if (std::tolower(static_cast<unsigned char>(name[i])) != r.header_name[i]) {
              return std::nullopt;
            }
          }
          return r.header_value;
        }};
    const doppel::net::MatchBlock* block = rules.Match(view);
    if (block != nullptr) FUZZ_CHECK(!block->name.empty(), "a matching block without a name");
  }
}

void LoadDiffRules(std::string_view text, doppel::net::ConfigFormat format) {
  auto parsed = doppel::diff::ParseRules(text, format);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.status().message().empty(), "diff rules error without a message");
    return;
  }
  doppel::diff::DiffConfig config;
  config.rules = parsed.value();
  auto differ = doppel::diff::Differ::Create(config);
  FUZZ_CHECK(differ.ok(),
             "ParseRules accepted rules that Differ::Create refuses: " + differ.status().message());
  doppel::v1::HttpResponse expected, actual;
  expected.set_status(200);
  actual.set_status(200);
  for (auto* r : {&expected, &actual}) {
    auto* h = r->add_headers();
    h->set_name("Content-Type");
    h->set_value("application/json");
  }
  expected.set_body(
      R"({"id":1,"items":[{"id":"a","price":1.5}],"token":"tok_1","tags":["x","y"]})");
  actual.set_body(R"({"id":1,"items":[{"id":"a","price":1.6}],"token":"tok_2","tags":["y","x"]})");
  const auto result = (*differ)->Compare("GET", "/users/42", expected, actual);
  (void)result;
  (void)(*differ)->Endpoint("POST", "/api/v1/orders/9f1c/items?x=1");
}

void LoadMatchRules(std::string_view text) {
  for (const bool yaml : {false, true}) {
    auto rules = yaml ? MatchRules::FromYaml(text) : MatchRules::FromJson(text);
    if (!rules.ok()) {
      FUZZ_CHECK(!rules.status().message().empty(), "match rules error without a message");
    } else {
      ApplyMatchRules(rules.value());
    }
  }
  std::vector<std::string> flags;
  std::string_view rest = text;
  while (!rest.empty() && flags.size() < 16) {
    const size_t nl = rest.find('\n');
    flags.emplace_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  auto from_flags = MatchRules::FromFlags(flags);
  if (!from_flags.ok()) {
    FUZZ_CHECK(!from_flags.status().message().empty(), "FromFlags error without a message");
  } else {
    ApplyMatchRules(from_flags.value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  LoadDiffRules(text, doppel::net::ConfigFormat::kJson);
  LoadDiffRules(text, doppel::net::ConfigFormat::kYaml);
  LoadMatchRules(text);
  return 0;
}
