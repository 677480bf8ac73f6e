// Reading WebSocket framing (RFC 6455 section 5) off one direction of a relayed connection, so
// the capture proxy can record the messages it relays. The proxy relays the bytes unchanged
// whatever this reader makes of them; the reader only looks. The replayer reads a target's
// messages with it, and writes its own with EncodeWebSocketFrame.
//
// Thread safety: none; one reader per direction of one connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::net {

// RFC 6455 5.2 opcodes.
enum class WebSocketOpcode : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10,
};

// One message as it went by: a data message's fragments joined, or one control frame.
struct WebSocketMessage {
  WebSocketOpcode opcode = WebSocketOpcode::kText;
  std::string payload;     // unmasked; at most the reader's payload limit
  uint64_t size = 0;       // the whole payload's size
  bool truncated = false;  // payload holds less than size
  // RSV1 on the message's first frame: compressed by an extension (permessage-deflate,
  // RFC 7692); payload is as sent, compressed.
  bool compressed = false;
};

// Messages a recorded connection keeps each way (WebSocketSession.messages), in the capture
// proxy's envelopes and in the replayer's record of what a target sent.
inline constexpr int kWebSocketMessagesKept = 64;

// Records `m`, a message that went one way over a connection that began at `start`, into
// *session: counted (client_messages or server_messages) and, while fewer than
// kWebSocketMessagesKept were kept that way (`*kept` counts them), kept with its time since
// `start`; past that, messages_truncated is set. Returns whether it was kept.
bool RecordWebSocketMessage(bool from_client, WebSocketMessage&& m,
                            std::chrono::steady_clock::time_point start, int* kept,
                            doppel::v1::WebSocketSession* session);

// What a recorded connection's messages may come to decompressed, in all: the bound on what a
// hostile recording (a decompression bomb) costs the replayer or `doppel cat`.
inline constexpr size_t kMaxDecompressedWebSocketBytes = 64u << 20;

// `session` with its compressed messages (permessage-deflate, RFC 7692) decompressed: each
// direction's in order (net::WebSocketInflater), payload_size the decompressed size, compressed
// cleared; the rest as it was. Errors name the message that stands in the way: kUnsupported
// for one cut at the capture limit while compressed (it and what follows it that way cannot
// be decompressed), kCorruption for one that is not valid DEFLATE, kResourceExhausted past
// `max_bytes` decompressed in all.
Result<doppel::v1::WebSocketSession> InflateWebSocketSession(
    const doppel::v1::WebSocketSession& session, size_t max_bytes);

// One unfragmented frame (FIN set) carrying `payload` (RFC 6455 5.2). `mask`: the 4-byte
// masking key of a client's frame (5.3), or null for a server's unmasked one.
std::string EncodeWebSocketFrame(WebSocketOpcode opcode, std::string_view payload,
                                 const uint8_t* mask);

class WebSocketFrameReader {
 public:
  using OnMessage = std::function<void(WebSocketMessage&&)>;

  // Keeps at most `payload_limit` bytes of each message's payload (the size is counted
  // whole). `masked`: the direction is client to server, whose frames must be masked
  // (RFC 6455 5.1).
  WebSocketFrameReader(uint64_t payload_limit, bool masked)
      : payload_limit_(payload_limit), masked_(masked) {}

  // Reads `bytes`, the next bytes of the direction, and calls `on_message` for each message
  // they complete. Returns false once the bytes are not WebSocket framing (error() says why);
  // from then on it reads nothing.
  bool Feed(std::string_view bytes, const OnMessage& on_message);

  // Why the bytes stopped being WebSocket framing; empty while they are.
  const std::string& error() const { return error_; }

  // Keeps at most `limit` bytes of each payload from here on (0: counts messages only, no
  // payload copied or unmasked).
  void set_payload_limit(uint64_t limit) { payload_limit_ = limit; }

 private:
  enum class State { kHeader, kPayload, kFailed };
  // The frame header in header_ is complete (`need` bytes of it): checks it and starts the
  // frame. False (and error_ set) when it breaks the rules.
  bool StartFrame();
  void EndFrame(const OnMessage& on_message);
  bool Fail(std::string why);

  uint64_t payload_limit_;
  const bool masked_;
  State state_ = State::kHeader;
  std::string error_;
  // The current frame.
  uint8_t header_[14] = {};
  size_t header_size_ = 0;
  uint8_t opcode_ = 0;
  bool fin_ = false;
  uint64_t remaining_ = 0;  // payload bytes of the frame still to read
  uint8_t mask_[4] = {};
  uint64_t mask_offset_ = 0;  // payload bytes of the frame read so far
  // The message being read: the data message (fragments so far) or the control frame.
  WebSocketMessage data_;
  bool in_data_ = false;  // a fragmented data message waits for its continuation
  WebSocketMessage control_;
};

}  // namespace doppel::net
