#include "diff/body.h"

#include <openssl/evp.h>

#include <algorithm>

#include "base/strings.h"
#include "diff/decode.h"
#include "diff/headers.h"

namespace doppel::diff {
namespace {

constexpr std::string_view kRoot = "body";

bool IsUtf8Text(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j) {
      if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

// The rule at the body root of the ignore family, if any.
const CompiledRule* RootIgnoreRule(std::span<const CompiledRule* const> rules) {
  for (const CompiledRule* r : rules) {
    if (r->path.depth() == 0 && r->path.root() == kRoot &&
        (r->action == RuleAction::kIgnore || r->action == RuleAction::kPresenceOnly)) {
      return r;
    }
  }
  return nullptr;
}

}  // namespace

BodyKind BodyKindOf(std::string_view content_type, std::string_view body) {
  std::string type = AsciiLower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.erase(0, 1);
  if (type.empty()) {
    size_t first = body.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && (body[first] == '{' || body[first] == '[')) {
      return BodyKind::kJson;
    }
    return IsUtf8Text(body) ? BodyKind::kText : BodyKind::kBinary;
  }
  auto ends_with = [&type](std::string_view suffix) {
    return type.size() >= suffix.size() &&
           type.compare(type.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (type == "application/json" || type == "text/json" || ends_with("+json")) {
    return BodyKind::kJson;
  }
  if (type == "application/x-www-form-urlencoded") return BodyKind::kForm;
  if (type.rfind("text/", 0) == 0 || ends_with("+xml") || type == "application/xml" ||
      type == "application/javascript" || type == "application/x-ndjson" ||
      type == "application/ndjson" || type == "application/yaml" || type == "application/x-yaml" ||
      type == "application/graphql") {
    return BodyKind::kText;
  }
  return BodyKind::kBinary;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xF]);
  }
  return out;
}

std::string SizeAndHash(std::string_view bytes) {
  return std::to_string(bytes.size()) + " bytes, sha256 " + Sha256Hex(bytes).substr(0, 16);
}

// A body as compared: Content-Encoding and charset undone, gRPC messages as JSON.
static Result<std::string> DecodeForDiff(const doppel::v1::HttpResponse& response,
                                         std::string_view path, const BodyDiffOptions& options) {
  const std::string_view type = FirstHeader(response.headers(), "content-type");
  if (IsGrpcContentType(type)) {
    return DecodeGrpcBody(response.body(), FirstHeader(response.headers(), "grpc-encoding"), path,
                          /*response=*/true, options.grpc, options.max_decoded_bytes);
  }
  return DecodeBody(response.body(), FirstHeader(response.headers(), "content-encoding"), type,
                    options.max_decoded_bytes);
}

const Result<std::string>& PreparedBody::Decoded() const {
  decoded_once_.Call([this] {
    decoded_.emplace(DecodeForDiff(response_, path_, options_));
    if (options_.on_expected_decoded) options_.on_expected_decoded();
  });
  return *decoded_;
}

const Result<JsonDocument>& PreparedBody::Json() const {
  json_once_.Call(
      [this] { json_.emplace(JsonDocument::Parse(Decoded().value(), options_.json, "expected")); });
  return *json_;
}

void DiffBodies(const PreparedBody& prepared, const doppel::v1::HttpResponse& actual,
                std::span<const CompiledRule* const> rules, DiffSink* sink) {
  const BodyDiffOptions& options = prepared.options();
  const doppel::v1::HttpResponse& expected = prepared.response();
  const std::string& eb = expected.body();
  const std::string& ab = actual.body();
  if (const CompiledRule* rule = RootIgnoreRule(rules)) {
    if (rule->action == RuleAction::kPresenceOnly && eb.empty() != ab.empty()) {
      sink->Add(std::string(kRoot), eb.empty() ? DiffKind::kExtra : DiffKind::kMissing,
                eb.empty() ? "" : std::to_string(eb.size()) + " bytes",
                ab.empty() ? "" : std::to_string(ab.size()) + " bytes");
      return;
    }
    if (eb != ab) sink->Ignored(std::string(kRoot));
    return;
  }
  if (expected.body_truncated() || actual.body_truncated()) {
    uint64_t es = expected.body_truncated() ? expected.body_size() : eb.size();
    uint64_t as = actual.body_truncated() ? actual.body_size() : ab.size();
    size_t common = std::min(eb.size(), ab.size());
    if (es == as && eb.compare(0, common, ab, 0, common) == 0) return;
    sink->Add(std::string(kRoot), DiffKind::kValue, std::to_string(es) + " bytes",
              std::to_string(as) + " bytes",
              "a body was truncated at capture: compared by raw prefix and original size only");
    return;
  }
  if (eb == ab) return;  // byte-equal raw bodies are equal however they are encoded

  std::string_view etype = FirstHeader(expected.headers(), "content-type");
  std::string_view atype = FirstHeader(actual.headers(), "content-type");
  const Result<std::string>& ed = prepared.Decoded();
  Result<std::string> ad = DecodeForDiff(actual, prepared.path(), options);
  if (!ed.ok() || !ad.ok()) {
    std::string why = !ed.ok() ? "expected body: " + ed.status().message()
                               : "actual body: " + ad.status().message();
    sink->Add(std::string(kRoot), DiffKind::kUncompared,
              ed.ok() ? Abbreviate(ed.value(), options.text.max_rendered_bytes) : "",
              ad.ok() ? Abbreviate(ad.value(), options.text.max_rendered_bytes) : "", why);
    return;
  }
  const std::string& e = ed.value();
  const std::string& a = ad.value();
  if (e == a) return;

  const std::string_view type = etype.empty() ? atype : etype;
  BodyKind kind = IsGrpcContentType(type) ? BodyKind::kJson : BodyKindOf(type, e);
  switch (kind) {
    case BodyKind::kJson:
      if (prepared.Json().ok() &&
          DiffJson(prepared.Json().value(), a, kRoot, rules, options.json, sink).ok()) {
        return;
      }
      // Not JSON on one side (an HTML error page, a cut body): show it as lines.
      ReportTextDiff(e, a, kRoot, options.text, sink);
      return;
    case BodyKind::kText:
      ReportTextDiff(e, a, kRoot, options.text, sink);
      return;
    case BodyKind::kForm: {
      LineDiffOptions form = options.text;
      form.separator = '&';
      ReportTextDiff(e, a, kRoot, form, sink);
      return;
    }
    case BodyKind::kBinary:
      sink->Add(std::string(kRoot), DiffKind::kValue, SizeAndHash(e), SizeAndHash(a));
      return;
  }
}

}  // namespace doppel::diff
