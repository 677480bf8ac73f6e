// Fuzz target: the WebSocket frame reader (net/websocket_frames.h) on arbitrary bytes, as the
// capture proxy runs it on each direction of a relayed connection.
//
// Input: byte 0 picks the direction (bit 0: client, masked) and the piece size the bytes are
// fed in (bits 1-4); the rest are the connection's bytes.
// Properties: never a crash; the same messages and the same error whether the bytes come
// whole or in pieces; every message keeps at most the limit, says truncated exactly when it
// kept less than its size, and no message claims more payload than the bytes held; recorded,
// the messages decompress (net::InflateWebSocketSession) within the limit or the error names
// the message.
#include "net/websocket_frames.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::net::WebSocketFrameReader;
using doppel::net::WebSocketMessage;

constexpr uint64_t kLimit = 64;

struct Outcome {
  std::vector<WebSocketMessage> messages;
  std::string error;
};

Outcome Read(std::string_view bytes, bool masked, size_t piece) {
  WebSocketFrameReader reader(kLimit, masked);
  Outcome out;
  auto on = [&out](WebSocketMessage&& m) { out.messages.push_back(std::move(m)); };
  bool ok = true;
  for (size_t i = 0; i < bytes.size(); i += piece) {
    const bool fed = reader.Feed(bytes.substr(i, piece), on);
    FUZZ_CHECK(ok || !fed, "the reader read on after it failed");
    ok = ok && fed;
  }
  FUZZ_CHECK(ok == reader.error().empty(), "Feed's result and error() disagree");
  out.error = reader.error();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool masked = (data[0] & 1) != 0;
  const size_t piece = 1 + ((data[0] >> 1) & 0x0f);
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = Read(bytes, masked, bytes.size() + 1);
  const Outcome pieces = Read(bytes, masked, piece);
  FUZZ_CHECK(whole.error == pieces.error, "the error depends on how the bytes were split");
  FUZZ_CHECK(whole.messages.size() == pieces.messages.size(),
             "the messages depend on how the bytes were split");
  uint64_t kept = 0;
  for (size_t i = 0; i < whole.messages.size(); ++i) {
    const WebSocketMessage& a = whole.messages[i];
    const WebSocketMessage& b = pieces.messages[i];
    FUZZ_CHECK(a.opcode == b.opcode && a.payload == b.payload && a.size == b.size &&
                   a.truncated == b.truncated && a.compressed == b.compressed,
               "a message depends on how the bytes were split");
    FUZZ_CHECK(a.payload.size() <= kLimit, "a payload over the limit");
    FUZZ_CHECK(a.truncated == (a.payload.size() < a.size), "truncated is wrong");
    FUZZ_CHECK(a.size >= a.payload.size(), "a size under what was kept");
    kept += a.size;
  }
  FUZZ_CHECK(kept <= bytes.size(), "messages hold more payload than the bytes");

  // As recorded, the messages decompress (permessage-deflate, as the replayer does) within
  // the limit, or the error says which one stands in the way.
  doppel::v1::WebSocketSession session;
  int kept_count = 0;
  for (WebSocketMessage& m : Read(bytes, masked, bytes.size() + 1).messages) {
    doppel::net::RecordWebSocketMessage(masked, std::move(m), std::chrono::steady_clock::now(),
                                        &kept_count, &session);
  }
  constexpr size_t kInflateLimit = 1 << 20;
  auto plain = doppel::net::InflateWebSocketSession(session, kInflateLimit);
  if (plain.ok()) {
    FUZZ_CHECK(plain->messages_size() == session.messages_size(), "messages lost decompressing");
    size_t inflated = 0;
    for (int i = 0; i < plain->messages_size(); ++i) {
      const auto& m = plain->messages(i);
      FUZZ_CHECK(!m.compressed(), "a message still compressed");
      if (session.messages(i).compressed()) {
        FUZZ_CHECK(m.payload_size() == m.payload().size(), "payload_size is not the size");
        inflated += m.payload().size();
      }
    }
    FUZZ_CHECK(inflated <= kInflateLimit, "decompressed past the limit");
  } else {
    FUZZ_CHECK(plain.status().message().find("message ") != std::string::npos,
               "an error that does not name the message: " + plain.status().message());
  }
  return 0;
}
