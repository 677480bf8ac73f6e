#include "net/codings.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "net/websocket_frames.h"
#include "tests/net/websocket_echo.h"

namespace doppel::net {
namespace {

const std::string kText = "{\"hello\":\"world\",\"n\":[1,2,3]}";

// An encoder independent of the module, for the forms EncodeContent does not write.
// window_bits: 15 + 16 gzip, 15 zlib, -15 raw deflate.
std::string ZlibDeflate(const std::string& in, int window_bits) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string Encode(const std::string& in, std::string_view coding) {
  Result<std::string> r = EncodeContent(in, coding);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r.value() : std::string();
}

Status::Code DecodeCode(const std::string& body, std::string_view coding, size_t limit) {
  return DecodeContent(body, coding, limit).status().code();
}

TEST(CodingsTest, ParseCodingNames) {
  EXPECT_EQ(ParseCoding(""), Coding::kIdentity);
  EXPECT_EQ(ParseCoding(" Identity "), Coding::kIdentity);
  EXPECT_EQ(ParseCoding("GZIP"), Coding::kGzip);
  EXPECT_EQ(ParseCoding("x-gzip"), Coding::kGzip);
  EXPECT_EQ(ParseCoding("deflate"), Coding::kDeflate);
  EXPECT_EQ(ParseCoding("zstd"), Coding::kZstd);
  EXPECT_EQ(ParseCoding("br"), Coding::kBrotli);
  EXPECT_EQ(ParseCoding("compress"), std::nullopt);
  EXPECT_EQ(ParseCoding("gzip, br"), std::nullopt);  // one token, not a list
}

TEST(CodingsTest, EveryCodingRoundTrips) {
  std::string big;
  for (int i = 0; i < 20000; ++i) big += kText;  // several decoder output chunks
  for (const char* coding : {"identity", "gzip", "x-gzip", "deflate", "zstd", "br"}) {
    for (const std::string& body : {kText, big}) {
      std::string encoded = Encode(body, coding);
      if (std::string_view(coding) != "identity") {
        EXPECT_NE(encoded, body) << coding;
      }
      Result<std::string> r = DecodeContent(encoded, coding, 1 << 20);
      ASSERT_TRUE(r.ok()) << coding << ": " << r.status().ToString();
      EXPECT_EQ(r.value(), body) << coding;
    }
  }
}

TEST(CodingsTest, EncodingIsDeterministic) {
  // No time stamp in the gzip header: the same body always gives the same bytes.
  EXPECT_EQ(Encode(kText, "gzip"), Encode(kText, "gzip"));
  std::string gz;
  GzipEncoder encoder;
  ASSERT_TRUE(encoder.Compress(kText, &gz));
  EXPECT_EQ(gz, Encode(kText, "gzip"));
  ASSERT_TRUE(encoder.Compress("second message", &gz));  // the encoder is reusable
  EXPECT_EQ(DecodeContent(gz, "gzip", 1024).value(), "second message");
}

TEST(CodingsTest, IdentityAndEmptyValueReturnTheBody) {
  EXPECT_EQ(DecodeContent(kText, "", 1024).value(), kText);
  EXPECT_EQ(DecodeContent(kText, "identity", 1024).value(), kText);
  EXPECT_EQ(Encode(kText, ""), kText);
}

TEST(CodingsTest, EmptyBodyStaysEmptyWhateverTheHeaderSays) {
  EXPECT_EQ(DecodeContent("", "gzip", 1024).value(), "");
  EXPECT_EQ(DecodeContent("", "unknown-coding", 1024).value(), "");
}

TEST(CodingsTest, DeflateAcceptsZlibWrappedAndRaw) {
  EXPECT_EQ(DecodeContent(ZlibDeflate(kText, 15), "deflate", 1024).value(), kText);
  EXPECT_EQ(DecodeContent(ZlibDeflate(kText, -15), "deflate", 1024).value(), kText);
}

TEST(CodingsTest, GzipFromZlibAndConcatenatedMembers) {
  EXPECT_EQ(DecodeContent(ZlibDeflate(kText, 15 + 16), "gzip", 1024).value(), kText);
  std::string two = Encode("abc", "gzip") + Encode("def", "gzip");
  EXPECT_EQ(DecodeContent(two, "gzip", 1024).value(), "abcdef");
}

TEST(CodingsTest, StackedCodingsAreAppliedInOrderAndUndoneInReverse) {
  // RFC 9110 §8.4: "gzip, br" means gzip was applied first, then br.
  std::string body = Encode(kText, "gzip, br");
  EXPECT_EQ(body, Encode(Encode(kText, "gzip"), "br"));
  Result<std::string> outer = DecodeContent(body, "br", 1 << 20);
  ASSERT_TRUE(outer.ok()) << outer.status().ToString();
  EXPECT_TRUE(IsGzipMagic(outer.value()));
  EXPECT_EQ(DecodeContent(body, "gzip, br", 1024).value(), kText);
  EXPECT_EQ(DecodeContent(body, " gzip ,, BR ", 1024).value(), kText);
  // The wrong order is an error, not garbage.
  EXPECT_FALSE(DecodeContent(body, "br, gzip", 1024).ok());
  EXPECT_EQ(DecodeContent(Encode(kText, "zstd, deflate"), "zstd, deflate", 1024).value(), kText);
}

TEST(CodingsTest, BombsStopAtTheLimit) {
  std::string zeros(10 << 20, '\0');
  for (const char* coding : {"gzip", "deflate", "zstd", "br"}) {
    std::string bomb = Encode(zeros, coding);
    ASSERT_LT(bomb.size(), 64u << 10) << coding;
    EXPECT_EQ(DecodeCode(bomb, coding, 1 << 20), Status::Code::kResourceExhausted) << coding;
    EXPECT_TRUE(DecodeContent(bomb, coding, 10 << 20).ok()) << coding;
  }
  // Raw deflate too, and each step of a stack counts against the limit.
  EXPECT_EQ(DecodeCode(ZlibDeflate(zeros, -15), "deflate", 1 << 20),
            Status::Code::kResourceExhausted);
  EXPECT_EQ(DecodeCode(Encode(zeros, "gzip, br"), "gzip, br", 1 << 20),
            Status::Code::kResourceExhausted);
  EXPECT_EQ(DecodeCode(std::string(100, 'x'), "identity", 99), Status::Code::kResourceExhausted);
}

TEST(CodingsTest, TruncatedAndCorruptStreamsAreErrors) {
  for (const char* coding : {"gzip", "deflate", "zstd", "br"}) {
    std::string encoded = Encode(kText, coding);
    for (size_t cut : {encoded.size() / 2, encoded.size() - 1}) {
      EXPECT_EQ(DecodeCode(encoded.substr(0, cut), coding, 1024), Status::Code::kCorruption)
          << coding << " cut at " << cut;
    }
    EXPECT_EQ(DecodeCode("this is not compressed at all", coding, 1024), Status::Code::kCorruption)
        << coding;
  }
}

TEST(CodingsTest, UnknownCodingIsUnsupported) {
  for (std::string_view value : {"compress", "gzip, compress", "x-foo"}) {
    Result<std::string> r = DecodeContent("x", value, 1024);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
    EXPECT_NE(r.status().message().find("supported: gzip, deflate, zstd, br"), std::string::npos)
        << r.status().message();
    EXPECT_EQ(EncodeContent("x", value).status().code(), Status::Code::kUnsupported);
  }
}

// Feeds `gz` to a GzipStreamDecoder `step` bytes at a time; returns the output, or the error.
Result<std::string> StreamDecode(const std::string& gz, size_t step, bool* complete) {
  GzipStreamDecoder d;
  std::string out, pending;
  char buf[7];  // a small output buffer: many calls per chunk
  size_t fed = 0;
  while (true) {
    std::string_view in = pending;
    Result<size_t> n = d.Decode(&in, buf, sizeof buf);
    if (!n.ok()) return n.status();
    pending = std::string(in);
    out.append(buf, n.value());
    if (n.value() > 0) continue;
    if (fed == gz.size()) break;
    size_t k = std::min(step, gz.size() - fed);
    pending += gz.substr(fed, k);
    fed += k;
  }
  *complete = pending.empty() && d.member_done();
  return out;
}

TEST(CodingsTest, GzipStreamDecoderInAnyChunking) {
  std::string two = Encode(kText, "gzip") + Encode("tail", "gzip");
  for (size_t step : {1u, 2u, 5u, 4096u}) {
    bool complete = false;
    Result<std::string> r = StreamDecode(two, step, &complete);
    ASSERT_TRUE(r.ok()) << "step " << step << ": " << r.status().ToString();
    EXPECT_EQ(r.value(), kText + "tail") << step;
    EXPECT_TRUE(complete) << step;
  }
}

TEST(CodingsTest, GzipStreamDecoderTruncatedAndTrailingGarbage) {
  std::string gz = Encode(kText, "gzip");
  bool complete = true;
  Result<std::string> cut = StreamDecode(gz.substr(0, gz.size() - 4), 3, &complete);
  ASSERT_TRUE(cut.ok()) << cut.status().ToString();  // the caller decides: it is not complete
  EXPECT_FALSE(complete);
  Result<std::string> garbage = StreamDecode(gz + "xyz", 3, &complete);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), Status::Code::kCorruption);
  EXPECT_NE(garbage.status().message().find("after the end"), std::string::npos);
  std::string bad_member("\x1f\x8b\x08\x00garbage-garbage-garbage", 27);
  Result<std::string> bad = StreamDecode(bad_member, 4, &complete);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a valid gzip stream"), std::string::npos);
}

// permessage-deflate (RFC 7692): a later message refers back into the earlier ones' window.
TEST(CodingsTest, WebSocketInflaterKeepsTheWindowBetweenMessages) {
  const std::vector<std::string> plain = {R"({"op":"quote","sku":"A-7","qty":1})",
                                          R"({"op":"quote","sku":"A-7","qty":2})", "", "x"};
  const std::vector<std::string> sent = testing::PerMessageDeflate(plain);
  ASSERT_EQ(sent.size(), plain.size());
  EXPECT_LT(sent[1].size(), sent[0].size());  // the second one refers back
  WebSocketInflater inflater;
  for (size_t i = 0; i < plain.size(); ++i) {
    Result<std::string> r = inflater.Inflate(sent[i], 1 << 20);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    EXPECT_EQ(*r, plain[i]) << i;
  }
  // Without the first message's window the second cannot be read.
  WebSocketInflater fresh;
  Result<std::string> alone = fresh.Inflate(sent[1], 1 << 20);
  EXPECT_FALSE(alone.ok() && *alone == plain[1]);
}

TEST(CodingsTest, WebSocketInflaterStopsAtTheLimitAndOnDamage) {
  const std::vector<std::string> bomb = testing::PerMessageDeflate({std::string(8 << 20, 'a')});
  ASSERT_LT(bomb[0].size(), 64u << 10);
  WebSocketInflater inflater;
  EXPECT_EQ(inflater.Inflate(bomb[0], 1 << 20).status().code(), Status::Code::kResourceExhausted);
  WebSocketInflater damaged;
  EXPECT_EQ(damaged.Inflate("\xff\xff\xff\xff not deflate", 1 << 20).status().code(),
            Status::Code::kCorruption);
}

// A recorded connection: each direction decompressed with its own window, plain messages
// left as they were; a compressed message cut at the capture limit is named.
TEST(CodingsTest, InflateWebSocketSessionDecompressesEachDirection) {
  const std::vector<std::string> client = {"hello server", "hello server, again"};
  const std::vector<std::string> server = {"hello client", "hello client, again"};
  const auto client_sent = testing::PerMessageDeflate(client);
  const auto server_sent = testing::PerMessageDeflate(server);
  doppel::v1::WebSocketSession s;
  auto add = [&](bool from_client, const std::string& payload, bool compressed) {
    auto* m = s.add_messages();
    m->set_from_client(from_client);
    m->set_opcode(1);
    m->set_payload(payload);
    m->set_payload_size(payload.size());
    m->set_compressed(compressed);
    m->set_at_us(static_cast<uint64_t>(s.messages_size()) * 1000);
  };
  add(true, client_sent[0], true);
  add(false, server_sent[0], true);
  add(false, "sent plain", false);  // RSV1 is per message
  add(true, client_sent[1], true);
  add(false, server_sent[1], true);
  Result<doppel::v1::WebSocketSession> plain = InflateWebSocketSession(s, 1 << 20);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  const std::vector<std::string> want = {client[0], server[0], "sent plain", client[1], server[1]};
  ASSERT_EQ(plain->messages_size(), 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(plain->messages(i).payload(), want[static_cast<size_t>(i)]) << i;
    EXPECT_EQ(plain->messages(i).payload_size(), want[static_cast<size_t>(i)].size()) << i;
    EXPECT_FALSE(plain->messages(i).compressed()) << i;
    EXPECT_EQ(plain->messages(i).at_us(), s.messages(i).at_us()) << i;
  }
  EXPECT_EQ(InflateWebSocketSession(s, 20).status().code(), Status::Code::kResourceExhausted);

  s.mutable_messages(4)->set_payload_truncated(true);
  s.mutable_messages(4)->set_payload_size(4096);
  Result<doppel::v1::WebSocketSession> cut = InflateWebSocketSession(s, 1 << 20);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(cut.status().message().find("server message 5 of the recording is compressed and was "
                                        "cut at the capture limit"),
            std::string::npos)
      << cut.status().message();
}

}  // namespace
}  // namespace doppel::net
