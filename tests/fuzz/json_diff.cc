// Fuzz target: the diff engine (diff/) on two arbitrary documents. The input is
// split at its first NUL byte into the expected (recorded) and the actual (replayed) text
// (no NUL: both sides are the whole input).
//
// Structure-aware inputs: when the first byte is 0x80 or above (no JSON text starts so), the
// rest drives a JSON generator instead (GeneratePair): objects whose member names are the ones
// the rules below name, arrays, numbers, token-like strings; the actual side is the same
// document generated again with every k-th choice moved by one. Raw bytes are almost never
// two similar valid documents, which is what the rules and the JSON diff are for; both
// generated documents must parse.
//
// Each pair goes through DiffJson directly, and through Differ::Compare as the bodies of a
// recorded and a replayed 200 response with a JSON content type — once without rules and
// once under a fixed rules file that uses every action on common member names — and once
// more as text/plain (the line diff) — and as the server messages of a recorded and a
// replayed WebSocket connection (diff/websocket.h), one message per line: a line starting
// with 0x01 is a binary message, and on the recorded side one starting with 0x02 was cut at
// half its length (payload_truncated).
//
// Properties: no crash, no exception, bounded output (at most max_diffs kept); a document
// compared with itself matches; swapping the sides does not change whether they match.
#include "diff/json_diff.h"

#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <utility>

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
    {"path": "body.*.x", "action": "ignore"},
    {"path": "websocket[*].updated_at", "action": "ignore"}
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

// The lines of `text` as a connection's server messages (see the top of the file); `recorded`:
// lines starting with 0x02 are cut at half (*cut set when there is one).
doppel::v1::WebSocketSession Messages(std::string_view text, bool recorded, bool* cut) {
  doppel::v1::WebSocketSession s;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    auto* m = s.add_messages();
    m->set_from_client(false);
    m->set_opcode(!line.empty() && line[0] == '\x01' ? 2 : 1);
    m->set_payload_size(line.size());
    if (recorded && !line.empty() && line[0] == '\x02') {
      line = line.substr(0, line.size() / 2);
      m->set_payload_truncated(true);
      *cut = true;
    }
    m->set_payload(std::string(line));
    start = end + 1;
  }
  return s;
}

void CompareWebSockets(const Differ& differ, std::string_view a, std::string_view b) {
  static const DiffConfig kLimits;
  HttpResponse handshake;
  handshake.set_status(101);
  bool cut = false;
  const auto ra = Messages(a, true, &cut), rb = Messages(b, true, &cut);
  const auto pa = Messages(a, false, &cut), pb = Messages(b, false, &cut);
  const auto ea = differ.Prepare("GET", "/chat", handshake, &ra);
  const auto eb = differ.Prepare("GET", "/chat", handshake, &rb);
  const auto ab = differ.Compare(*ea, handshake, &pb);
  const auto ba = differ.Compare(*eb, handshake, &pa);
  CheckResult(ab, kLimits);
  CheckResult(ba, kLimits);
  // A recording cut short compares less than the whole message: no symmetry to expect.
  if (!cut) FUZZ_CHECK(ab.match == ba.match, "WebSocket A vs B and B vs A disagree");
  const auto aa = differ.Compare(*ea, handshake, &pa);
  FUZZ_CHECK(aa.match, "a connection's messages differ from themselves: " +
                           (aa.diffs.empty() ? std::string("(omitted)") : aa.diffs[0].path));
}

// The generator's choices, read from the input's bytes (0 once they run out). With `every`
// set, each every-th choice from `offset` on is moved by one: the second document of a pair.
class Choices {
 public:
  Choices(std::span<const uint8_t> bytes, size_t every, size_t offset)
      : bytes_(bytes), every_(every), offset_(offset) {}
  unsigned Next(unsigned n) {
    unsigned v = at_ < bytes_.size() ? bytes_[at_] : 0;
    if (every_ != 0 && at_ >= offset_ && (at_ - offset_) % every_ == 0) ++v;
    ++at_;
    return v % n;
  }
  bool done() const { return at_ >= bytes_.size(); }

 private:
  std::span<const uint8_t> bytes_;
  size_t every_, offset_, at_ = 0;
};

void Generate(Choices& c, int depth, std::string* out) {
  // The member names the rules' paths use, and two they do not.
  static constexpr std::string_view kKeys[] = {"id",   "updated_at", "token", "items", "price",
                                               "tags", "session",    "x",     "b",     "name"};
  const unsigned kind = c.Next(depth >= 6 || c.done() ? 6 : 8);
  switch (kind) {
    case 0:
      out->append("true");
      break;
    case 1:
      out->append("null");
      break;
    case 2:
      out->append(std::to_string(static_cast<int>(c.Next(256)) - 128));
      break;
    case 3:  // near values: the tolerance rule's domain
      out->append(std::to_string(c.Next(100))).append(".").append(std::to_string(c.Next(1000)));
      break;
    case 4:  // a token the ignore-if-value regex accepts, or one it does not
      out->append(c.Next(2) ? "\"tok_" : "\"TOK-").append(std::to_string(c.Next(64))).append("\"");
      break;
    case 5:
      out->append("\"").append(kKeys[c.Next(std::size(kKeys))]).append("\"");
      break;
    case 6: {
      out->push_back('{');
      const unsigned n = c.Next(5);
      for (unsigned i = 0; i < n; ++i) {
        if (i) out->push_back(',');
        out->append("\"").append(kKeys[c.Next(std::size(kKeys))]).append("\":");
        Generate(c, depth + 1, out);
      }
      out->push_back('}');
      break;
    }
    default: {
      out->push_back('[');
      const unsigned n = c.Next(5);
      for (unsigned i = 0; i < n; ++i) {
        if (i) out->push_back(',');
        Generate(c, depth + 1, out);
      }
      out->push_back(']');
      break;
    }
  }
}

// The first byte's low bits choose how often the second document's choices move (never, or
// every 2nd to 64th) and from where.
std::pair<std::string, std::string> GeneratePair(std::span<const uint8_t> bytes) {
  const size_t every = bytes.empty() ? 0 : bytes[0] & 0x3f;
  const size_t offset = bytes.size() < 2 ? 0 : bytes[1];
  const auto rest = bytes.size() < 2 ? bytes.subspan(bytes.size()) : bytes.subspan(2);
  std::pair<std::string, std::string> pair;
  Choices a(rest, 0, 0), b(rest, every, offset);
  Generate(a, 0, &pair.first);
  Generate(b, 0, &pair.second);
  return pair;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Differ* plain = MakeDiffer(false).release();
  static const Differ* with_rules = MakeDiffer(true).release();
  const bool generated = size > 0 && data[0] >= 0x80;
  std::pair<std::string, std::string> pair;
  std::string_view a, b;
  if (generated) {
    pair = GeneratePair(std::span<const uint8_t>(data + 1, size - 1));
    a = pair.first;
    b = pair.second;
  } else {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const size_t nul = input.find('\0');
    a = input.substr(0, nul);
    b = nul == std::string_view::npos ? input : input.substr(nul + 1);
  }

  doppel::diff::DiffResult result;
  doppel::diff::DiffSink sink(&result, 100, 100);
  const doppel::diff::JsonDiffOptions options;
  const doppel::Status s = doppel::diff::DiffJson(a, b, "body", {}, options, &sink);
  FUZZ_CHECK(s.ok() || !generated, "a generated pair does not diff: " + s.message() + "\n" +
                                       std::string(a) + "\n" + std::string(b));
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "DiffJson error without a message");
    FUZZ_CHECK(result.diffs.empty(), "DiffJson reported diffs and an error");
  }

  CompareBodies(*plain, "application/json", a, b);
  CompareBodies(*with_rules, "application/json; charset=utf-8", a, b);
  CompareBodies(*plain, "text/plain", a, b);
  CompareWebSockets(*plain, a, b);
  CompareWebSockets(*with_rules, a, b);
  return 0;
}
