#include "report/excerpt.h"

#include <boost/json.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "base/strings.h"
#include "diff/body.h"
#include "diff/decode.h"
#include "diff/headers.h"
#include "diff/result.h"

namespace doppel::report {
namespace {

constexpr size_t kMaxPrettyInput = 4 << 20;  // larger JSON bodies are shown as they are
constexpr size_t kMaxDecoded = 8 << 20;
constexpr int kMaxPrettyDepth = 64;

void Indent(std::string* out, int depth) {
  out->push_back('\n');
  out->append(static_cast<size_t>(depth) * 2, ' ');
}

void Pretty(const boost::json::value& v, int depth, std::string* out);

// An object's members or an array's elements, one per line one level in, between `open` and
// `close`; `item` writes one. Empty: the two brackets alone.
template <class Container, class WriteItem>
void PrettyContainer(const Container& items, char open, char close, int depth, std::string* out,
                     WriteItem item) {
  out->push_back(open);
  bool first = true;
  for (const auto& x : items) {
    if (!first) out->push_back(',');
    first = false;
    Indent(out, depth + 1);
    item(x);
  }
  if (!first) Indent(out, depth);
  out->push_back(close);
}

void Pretty(const boost::json::value& v, int depth, std::string* out) {
  if (depth >= kMaxPrettyDepth) {
    out->append(boost::json::serialize(v));
    return;
  }
  if (v.is_object()) {
    PrettyContainer(v.get_object(), '{', '}', depth, out, [&](const auto& member) {
      out->append(boost::json::serialize(boost::json::string_view(member.key())));
      out->append(": ");
      Pretty(member.value(), depth + 1, out);
    });
  } else if (v.is_array()) {
    PrettyContainer(v.get_array(), '[', ']', depth, out,
                    [&](const boost::json::value& e) { Pretty(e, depth + 1, out); });
  } else if (v.is_double()) {
    // Shortest round-trip form ("0.01", "3.17e-05"); serialize() would write "1E-2".
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v.get_double());
    if (ec == std::errc()) {
      out->append(buf, end);
    } else {
      out->append(boost::json::serialize(v));
    }
  } else {
    out->append(boost::json::serialize(v));
  }
}

}  // namespace

void AppendHexEscape(unsigned char c, std::string* out) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\x%02x", c);
  *out += buf;
}

std::string PrettyJson(std::string_view text) {
  boost::json::error_code ec;
  boost::json::parse_options options;
  options.max_depth = 1024;  // deeper than kMaxPrettyDepth is rendered compactly
  boost::json::value v = boost::json::parse(text, ec, {}, options);
  if (ec) return {};
  std::string out;
  Pretty(v, 0, &out);
  return out;
}

std::string BodyForDisplay(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& headers,
                           std::string_view body, bool truncated, size_t max_bytes) {
  std::string content_type(diff::FirstHeader(headers, "content-type"));
  std::string text;
  if (truncated) {
    text = std::string(body);  // a cut stream cannot be decoded; show what was kept
  } else {
    Result<std::string> decoded = diff::DecodeBody(
        body, diff::FirstHeader(headers, "content-encoding"), content_type, kMaxDecoded);
    text = decoded.ok() ? std::move(decoded).value() : std::string(body);
  }
  diff::BodyKind kind = diff::BodyKindOf(content_type, text);
  if (kind == diff::BodyKind::kBinary) {
    text = "<binary, " + std::to_string(text.size()) + " bytes>";
  } else if (kind == diff::BodyKind::kJson && !truncated && text.size() <= kMaxPrettyInput) {
    std::string pretty = PrettyJson(text);
    if (!pretty.empty()) text = std::move(pretty);
  }
  std::string out = diff::Abbreviate(SanitizeUtf8(text), max_bytes);
  if (truncated) out += "\xE2\x80\xA6 (recording truncated)";
  return out;
}

}  // namespace doppel::report
