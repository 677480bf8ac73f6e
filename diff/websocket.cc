#include "diff/websocket.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <vector>

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

// The JSON value of one message's payload (see the header). `cut`: compare only the first
// `cut` bytes and the size (the recording kept no more); npos: the whole payload.
json::value MessageValue(const doppel::v1::WebSocketMessage& m, size_t cut,
                         const JsonDiffOptions& options) {
  const std::string& payload = m.payload();
  if (cut != std::string::npos) {
    const std::string_view head = std::string_view(payload).substr(0, cut);
    return json::value(std::to_string(m.payload_size()) + " bytes, the first " +
                       std::to_string(head.size()) + " sha256 " + Sha256Hex(head).substr(0, 16));
  }
  if (m.opcode() == kBinary) return json::value(SizeAndHash(payload));
  const size_t start = payload.find_first_not_of(" \t\r\n");
  if (start != std::string::npos && (payload[start] == '{' || payload[start] == '[')) {
    json::parse_options po;
    // One level is the array of messages around it.
    po.max_depth = options.max_parse_depth > 1 ? options.max_parse_depth - 1 : 1;
    boost::system::error_code ec;
    json::value v = json::parse(payload, ec, {}, po);
    if (!ec) return v;
  }
  return json::value(payload);
}

}  // namespace

void DiffWebSocketMessages(const doppel::v1::WebSocketSession& expected,
                           const doppel::v1::WebSocketSession& actual,
                           std::span<const CompiledRule* const> rules,
                           const JsonDiffOptions& options, DiffSink* sink) {
  const auto e = ServerDataMessages(expected), a = ServerDataMessages(actual);
  json::array ej, aj;
  for (size_t i = 0; i < e.size(); ++i) {
    const size_t cut = e[i]->payload_truncated() ? e[i]->payload().size() : std::string::npos;
    ej.push_back(MessageValue(*e[i], cut, options));
    if (i < a.size()) aj.push_back(MessageValue(*a[i], cut, options));
  }
  // A recording that kept only its first messages says nothing about the ones after.
  const size_t compared = expected.messages_truncated() ? e.size() : a.size();
  for (size_t i = e.size(); i < compared; ++i)
    aj.push_back(MessageValue(*a[i], std::string::npos, options));
  // Both texts are JSON built above, within the parse depth: DiffJson cannot refuse them.
  (void)DiffJson(json::serialize(ej), json::serialize(aj), kWebSocketRoot, rules, options, sink);
}

}  // namespace doppel::diff
