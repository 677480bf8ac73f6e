#include "net/websocket_frames.h"

#include <algorithm>

#include "net/codings.h"

namespace doppel::net {

namespace {

constexpr uint8_t kFin = 0x80;
constexpr uint8_t kRsv1 = 0x40;
constexpr uint8_t kMaskBit = 0x80;

bool IsKnownOpcode(uint8_t op) { return op <= 2 || (op >= 8 && op <= 10); }

}  // namespace

bool RecordWebSocketMessage(bool from_client, WebSocketMessage&& m,
                            std::chrono::steady_clock::time_point start, int* kept,
                            doppel::v1::WebSocketSession* session) {
  if (from_client) {
    session->set_client_messages(session->client_messages() + 1);
  } else {
    session->set_server_messages(session->server_messages() + 1);
  }
  if (*kept >= kWebSocketMessagesKept) {
    session->set_messages_truncated(true);
    return false;
  }
  ++*kept;
  auto* out = session->add_messages();
  out->set_from_client(from_client);
  out->set_opcode(static_cast<uint32_t>(m.opcode));
  out->set_payload(std::move(m.payload));
  out->set_payload_truncated(m.truncated);
  out->set_payload_size(m.size);
  out->set_compressed(m.compressed);
  out->set_at_us(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                           std::chrono::steady_clock::now() - start)
                                           .count()));
  return true;
}

Result<doppel::v1::WebSocketSession> InflateWebSocketSession(
    const doppel::v1::WebSocketSession& session, size_t max_bytes) {
  doppel::v1::WebSocketSession out = session;
  WebSocketInflater inflaters[2];  // [0] the server's messages, [1] the client's
  size_t total = 0;
  for (int i = 0; i < out.messages_size(); ++i) {
    doppel::v1::WebSocketMessage& m = *out.mutable_messages(i);
    if (!m.compressed()) continue;
    const std::string which = std::string(m.from_client() ? "client" : "server") + " message " +
                              std::to_string(i + 1) + " of the recording";
    if (m.payload_truncated()) {
      return Status::Unsupported(which + " is compressed and was cut at the capture limit (" +
                                 std::to_string(m.payload().size()) + " of " +
                                 std::to_string(m.payload_size()) + " bytes kept)");
    }
    Result<std::string> plain = inflaters[m.from_client() ? 1 : 0].Inflate(
        m.payload(), max_bytes > total ? max_bytes - total : 0);
    if (!plain.ok()) {
      return plain.status().WithContext(which + " does not decompress");
    }
    total += plain->size();
    m.set_payload_size(plain->size());
    m.set_payload(std::move(plain).value());
    m.set_compressed(false);
  }
  return out;
}

std::string EncodeWebSocketFrame(WebSocketOpcode opcode, std::string_view payload,
                                 const uint8_t* mask) {
  std::string out;
  out.reserve(payload.size() + 14);
  out.push_back(static_cast<char>(kFin | static_cast<uint8_t>(opcode)));
  const uint8_t mask_bit = mask != nullptr ? kMaskBit : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xffff) {
    out.push_back(static_cast<char>(mask_bit | 126));
    for (int shift = 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  }
  if (mask == nullptr) {
    out.append(payload);
    return out;
  }
  out.append(reinterpret_cast<const char*>(mask), 4);
  const size_t at = out.size();
  out.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) out[at + i] ^= static_cast<char>(mask[i % 4]);
  return out;
}

bool WebSocketFrameReader::Fail(std::string why) {
  state_ = State::kFailed;
  error_ = std::move(why);
  return false;
}

bool WebSocketFrameReader::Feed(std::string_view bytes, const OnMessage& on_message) {
  while (!bytes.empty()) {
    if (state_ == State::kFailed) return false;
    if (state_ == State::kHeader) {
      // 2 bytes, then the extended length (0, 2 or 8 bytes) and the masking key (0 or 4),
      // which the first 2 say.
      size_t need = 2;
      if (header_size_ >= 2) {
        const uint8_t len7 = header_[1] & 0x7f;
        need += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
        need += (header_[1] & kMaskBit) ? 4 : 0;
      }
      const size_t take = std::min(need - header_size_, bytes.size());
      std::copy_n(bytes.data(), take, header_ + header_size_);
      header_size_ += take;
      bytes.remove_prefix(take);
      if (header_size_ < need) continue;  // more header bytes, or the rest of its length
      if (need == 2 && ((header_[1] & 0x7f) >= 126 || (header_[1] & kMaskBit))) continue;
      if (!StartFrame()) return false;
      if (remaining_ == 0) EndFrame(on_message);
      continue;
    }
    // Payload bytes: unmasked into the message being read, up to the limit.
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, bytes.size()));
    WebSocketMessage& m = opcode_ >= 8 ? control_ : data_;
    if (m.payload.size() < payload_limit_) {
      const size_t keep =
          static_cast<size_t>(std::min<uint64_t>(n, payload_limit_ - m.payload.size()));
      const size_t at = m.payload.size();
      m.payload.append(bytes.data(), keep);
      if (masked_) {
        for (size_t i = 0; i < keep; ++i) m.payload[at + i] ^= mask_[(mask_offset_ + i) % 4];
      }
    }
    m.size += n;
    mask_offset_ += n;
    remaining_ -= n;
    bytes.remove_prefix(n);
    if (remaining_ == 0) EndFrame(on_message);
  }
  return state_ != State::kFailed;
}

bool WebSocketFrameReader::StartFrame() {
  fin_ = (header_[0] & kFin) != 0;
  opcode_ = header_[0] & 0x0f;
  const bool mask = (header_[1] & kMaskBit) != 0;
  const uint8_t len7 = header_[1] & 0x7f;
  if (!IsKnownOpcode(opcode_)) {
    return Fail("frame with reserved opcode " + std::to_string(opcode_));
  }
  if (mask != masked_) {
    return Fail(masked_ ? "client frame without a mask (RFC 6455 5.1)"
                        : "server frame with a mask (RFC 6455 5.1)");
  }
  size_t at = 2;
  if (len7 == 126) {
    remaining_ = (uint64_t{header_[2]} << 8) | header_[3];
    at = 4;
  } else if (len7 == 127) {
    remaining_ = 0;
    for (int i = 0; i < 8; ++i) remaining_ = (remaining_ << 8) | header_[2 + i];
    if (remaining_ >> 63) return Fail("frame length with its most significant bit set");
    at = 10;
  } else {
    remaining_ = len7;
  }
  if (mask) std::copy_n(header_ + at, 4, mask_);
  mask_offset_ = 0;
  if (opcode_ >= 8) {
    if (!fin_) return Fail("fragmented control frame (RFC 6455 5.5)");
    if (remaining_ > 125) return Fail("control frame over 125 bytes (RFC 6455 5.5)");
    control_ = {};
    control_.opcode = static_cast<WebSocketOpcode>(opcode_);
  } else if (opcode_ == 0) {
    if (!in_data_) return Fail("continuation frame without a message to continue");
  } else {
    if (in_data_) return Fail("new message before the previous one's final fragment");
    data_ = {};
    data_.opcode = static_cast<WebSocketOpcode>(opcode_);
    data_.compressed = (header_[0] & kRsv1) != 0;
    in_data_ = true;
  }
  state_ = State::kPayload;
  return true;
}

void WebSocketFrameReader::EndFrame(const OnMessage& on_message) {
  state_ = State::kHeader;
  header_size_ = 0;
  if (opcode_ >= 8) {
    control_.truncated = control_.payload.size() < control_.size;
    on_message(std::move(control_));
    control_ = {};
  } else if (fin_) {
    data_.truncated = data_.payload.size() < data_.size;
    in_data_ = false;
    on_message(std::move(data_));
    data_ = {};
  }
}

}  // namespace doppel::net
