#include "net/websocket_frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace doppel::net {
namespace {

// One frame as RFC 6455 5.2 lays it out; masked with `key` when `mask` is set.
std::string Frame(uint8_t first, const std::string& payload, bool mask,
                  const char key[4] = "\x11\x22\x33\x44") {
  std::string out(1, static_cast<char>(first));
  const uint8_t mask_bit = mask ? 0x80 : 0;
  if (payload.size() < 126) {
    out += static_cast<char>(mask_bit | payload.size());
  } else if (payload.size() <= 0xffff) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i) out += static_cast<char>((uint64_t{payload.size()} >> (8 * i)));
  }
  if (!mask) return out + payload;
  out.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i) out += static_cast<char>(payload[i] ^ key[i % 4]);
  return out;
}

std::vector<WebSocketMessage> ReadAll(WebSocketFrameReader& reader, const std::string& bytes,
                                      size_t piece = 0, bool* ok = nullptr) {
  std::vector<WebSocketMessage> out;
  auto on = [&](WebSocketMessage&& m) { out.push_back(std::move(m)); };
  bool fine = true;
  if (piece == 0) {
    fine = reader.Feed(bytes, on);
  } else {
    for (size_t i = 0; i < bytes.size() && fine; i += piece) {
      fine = reader.Feed(std::string_view(bytes).substr(i, piece), on);
    }
  }
  if (ok != nullptr) *ok = fine;
  return out;
}

TEST(WebSocketFramesTest, MaskedClientMessagesAreUnmaskedWhateverThePieces) {
  const std::string binary("\x00\x01\x02\xff", 4);
  const std::string big(70000, 'x');   // a 64-bit length
  const std::string medium(300, 'm');  // a 16-bit length
  const std::string bytes = Frame(0x81, "hello", true) + Frame(0x82, binary, true) +
                            Frame(0x81, medium, true) + Frame(0x82, big, true) +
                            Frame(0x88, std::string("\x03\xe8", 2) + "bye", true);
  for (size_t piece : {size_t{0}, size_t{1}, size_t{3}, size_t{7}}) {
    WebSocketFrameReader reader(1 << 20, /*masked=*/true);
    const auto m = ReadAll(reader, bytes, piece);
    ASSERT_EQ(m.size(), 5u) << "pieces of " << piece << ": " << reader.error();
    EXPECT_EQ(m[0].opcode, WebSocketOpcode::kText);
    EXPECT_EQ(m[0].payload, "hello");
    EXPECT_EQ(m[1].opcode, WebSocketOpcode::kBinary);
    EXPECT_EQ(m[1].payload, binary);
    EXPECT_EQ(m[2].payload, medium);
    EXPECT_EQ(m[3].payload, big);
    EXPECT_EQ(m[3].size, big.size());
    EXPECT_FALSE(m[3].truncated);
    EXPECT_EQ(m[4].opcode, WebSocketOpcode::kClose);
    EXPECT_EQ(m[4].payload, std::string("\x03\xe8", 2) + "bye");
    EXPECT_TRUE(reader.error().empty());
  }
}

TEST(WebSocketFramesTest, FragmentsAreJoinedAndControlFramesComeBetween) {
  // "Hel" + ping + "lo" (RFC 6455 5.6's example, with a ping in the middle), then an empty
  // text message.
  const std::string bytes = Frame(0x01, "Hel", false) + Frame(0x89, "p", false) +
                            Frame(0x80, "lo", false) + Frame(0x81, "", false);
  WebSocketFrameReader reader(1 << 20, /*masked=*/false);
  const auto m = ReadAll(reader, bytes, 2);
  ASSERT_EQ(m.size(), 3u) << reader.error();
  EXPECT_EQ(m[0].opcode, WebSocketOpcode::kPing);
  EXPECT_EQ(m[0].payload, "p");
  EXPECT_EQ(m[1].opcode, WebSocketOpcode::kText);
  EXPECT_EQ(m[1].payload, "Hello");
  EXPECT_EQ(m[1].size, 5u);
  EXPECT_EQ(m[2].payload, "");
  EXPECT_EQ(m[2].size, 0u);
}

TEST(WebSocketFramesTest, PayloadsAreKeptUpToTheLimitAndCountedWhole) {
  WebSocketFrameReader reader(4, /*masked=*/true);
  const auto m = ReadAll(reader, Frame(0x01, "abc", true) + Frame(0x80, "defgh", true) +
                                     Frame(0xc1, "zz", true));  // RSV1: compressed
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].payload, "abcd");
  EXPECT_EQ(m[0].size, 8u);
  EXPECT_TRUE(m[0].truncated);
  EXPECT_FALSE(m[0].compressed);
  EXPECT_TRUE(m[1].compressed);
  EXPECT_FALSE(m[1].truncated);
}

// With the limit at 0 messages are only counted (what the capture does past its cap).
TEST(WebSocketFramesTest, ALimitOfZeroCountsWithoutKeeping) {
  WebSocketFrameReader reader(1024, /*masked=*/true);
  reader.set_payload_limit(0);
  const auto m = ReadAll(reader, Frame(0x81, "hello", true) + Frame(0x89, "p", true));
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].payload, "");
  EXPECT_EQ(m[0].size, 5u);
  EXPECT_TRUE(m[0].truncated);
  EXPECT_EQ(m[1].opcode, WebSocketOpcode::kPing);
}

TEST(WebSocketFramesTest, BytesThatAreNotWebSocketFramingStopTheReader) {
  struct Case {
    std::string bytes;
    bool masked;
    std::string error;
  };
  const Case cases[] = {
      {Frame(0x81, "hi", false), true, "client frame without a mask"},
      {Frame(0x81, "hi", true), false, "server frame with a mask"},
      {Frame(0x83, "hi", false), false, "reserved opcode 3"},
      {Frame(0x09, "p", false), false, "fragmented control frame"},
      {Frame(0x89, std::string(126, 'p'), false), false, "control frame over 125 bytes"},
      {Frame(0x80, "x", false), false, "continuation frame without a message"},
      {Frame(0x01, "a", false) + Frame(0x81, "b", false), false, "before the previous one's"},
      {std::string("\x82\x7f\x80\0\0\0\0\0\0\0", 10), false, "most significant bit"},
      {"GET / HTTP/1.1\r\n\r\n", false, "reserved opcode"},
  };
  for (const Case& c : cases) {
    WebSocketFrameReader reader(1024, c.masked);
    bool ok = true;
    ReadAll(reader, c.bytes + Frame(0x81, "after", c.masked), 0, &ok);
    EXPECT_FALSE(ok) << c.error;
    EXPECT_NE(reader.error().find(c.error), std::string::npos) << reader.error();
    // Once failed, it reads nothing more.
    bool more = true;
    EXPECT_TRUE(ReadAll(reader, Frame(0x81, "x", c.masked), 0, &more).empty());
    EXPECT_FALSE(more);
  }
}

// What EncodeWebSocketFrame writes is one frame as RFC 6455 lays it out (the same bytes as
// Frame() above), and reads back whole: every length encoding, masked and not.
TEST(EncodeWebSocketFrame, WritesFramesTheReaderReadsBack) {
  const uint8_t key[4] = {0x11, 0x22, 0x33, 0x44};
  for (size_t size : {size_t{0}, size_t{5}, size_t{125}, size_t{126}, size_t{300}, size_t{70000}}) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i * 7);
    for (bool masked : {true, false}) {
      const std::string bytes =
          EncodeWebSocketFrame(WebSocketOpcode::kBinary, payload, masked ? key : nullptr);
      EXPECT_EQ(bytes, Frame(0x82, payload, masked)) << size << " " << masked;
      WebSocketFrameReader reader(1 << 20, masked);
      bool ok = false;
      const auto messages = ReadAll(reader, bytes, 0, &ok);
      ASSERT_TRUE(ok) << reader.error();
      ASSERT_EQ(messages.size(), 1u);
      EXPECT_EQ(messages[0].opcode, WebSocketOpcode::kBinary);
      EXPECT_EQ(messages[0].payload, payload);
    }
  }
  EXPECT_EQ(EncodeWebSocketFrame(WebSocketOpcode::kClose, "\x03\xe8", nullptr),
            std::string("\x88\x02\x03\xe8"));
}

}  // namespace
}  // namespace doppel::net
