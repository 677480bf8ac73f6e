#include "diff/websocket.h"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <vector>

#include "base/utf8.h"
#include "diff/body.h"

namespace doppel::diff {
namespace {

namespace json = boost::json;

constexpr uint32_t kText = 1, kBinary = 2;  // RFC 6455 5.2

std::vector<const doppel::v1::WebSocketMessage*> ServerDataMessages(
    const doppel::v1::WebSocketSession& s) {
  std::vector<const doppel::v1::WebSocketMessage*> out;
  for (const auto& m : s.messages()) {
    if (!m.from_client() && (m.opcode() == kText || m.opcode() == kBinary)) out.push_back(&m);
  }
  return out;
}

// One message's payload as a JSON text (see the header). `cut`: compare only the first `cut`
// bytes and the size (the recording kept no more); npos: the whole payload.
std::string MessageJson(const doppel::v1::WebSocketMessage& m, size_t cut,
                        const JsonDiffOptions& options) {
  const std::string& payload = m.payload();
  auto quoted = [](std::string text) { return json::serialize(json::value(std::move(text))); };
  if (cut != std::string::npos) {
    const std::string_view head = std::string_view(payload).substr(0, cut);
    return quoted(std::to_string(m.payload_size()) + " bytes, the first " +
                  std::to_string(head.size()) + " sha256 " + Sha256Hex(head).substr(0, 16));
  }
  // Binary, and text that is not UTF-8 (which RFC 6455 5.6 forbids), compare as bytes.
  if (m.opcode() == kBinary || !IsValidUtf8(payload)) return quoted(SizeAndHash(payload));
  const size_t start = payload.find_first_not_of(" \t\r\n");
  // A JSON object or array goes in as written, once the diff's own parser accepts it.
  if (start != std::string::npos && (payload[start] == '{' || payload[start] == '[') &&
      JsonDocument::Parse(payload, options, "message").ok()) {
    return payload;
  }
  return quoted(payload);
}

// The messages' JSON texts as one JSON array.
std::string ArrayOf(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) out.append(out.size() > 1 ? "," : "").append(item);
  return out + "]";
}

}  // namespace

void DiffWebSocketMessages(const doppel::v1::WebSocketSession& expected,
                           const doppel::v1::WebSocketSession& actual,
                           std::span<const CompiledRule* const> rules,
                           const JsonDiffOptions& options, DiffSink* sink) {
  const auto e = ServerDataMessages(expected), a = ServerDataMessages(actual);
  std::vector<std::string> ej, aj;
  for (size_t i = 0; i < e.size(); ++i) {
    const size_t cut = e[i]->payload_truncated() ? e[i]->payload().size() : std::string::npos;
    ej.push_back(MessageJson(*e[i], cut, options));
    if (i < a.size()) aj.push_back(MessageJson(*a[i], cut, options));
  }
  // A recording that kept only its first messages says nothing about the ones after.
  const size_t compared = expected.messages_truncated() ? e.size() : a.size();
  for (size_t i = e.size(); i < compared; ++i)
    aj.push_back(MessageJson(*a[i], std::string::npos, options));
  const std::string et = ArrayOf(ej), at = ArrayOf(aj);
  if (DiffJson(et, at, kWebSocketRoot, rules, options, sink).ok()) return;
  // Each message parsed alone, but the list is deeper than the parser takes: compared as text,
  // as a body that is not JSON would be.
  if (et != at) {
    sink->Add(std::string(kWebSocketRoot), DiffKind::kValue,
              Abbreviate(et, options.max_rendered_bytes),
              Abbreviate(at, options.max_rendered_bytes),
              "compared as text: the messages are nested too deep to compare as JSON");
  }
}

}  // namespace doppel::diff
