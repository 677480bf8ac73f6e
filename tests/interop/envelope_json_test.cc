#include "interop/envelope_json.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "tests/net/websocket_echo.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::interop {
namespace {

TEST(EnvelopeJson, TextRoundTrip) {
  auto e = storage::testing::MakeEnvelope(123, 4, 5);
  e.set_error(v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  e.set_error_detail("no answer in 30s");
  auto o = EnvelopeToJson(e);
  EXPECT_EQ(o.at("request").at("target").as_string(), "/api/v1/orders/1005?expand=items");
  EXPECT_FALSE(o.at("response").as_object().contains("body_encoding"));
  v1::Envelope back;
  ASSERT_TRUE(EnvelopeFromJson(o, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, back));
}

// The client's protocol and TLS details (HTTP/2 and TLS on the listener) are printed by
// `doppel cat` and read back; absent, they are not printed.
TEST(EnvelopeJson, ClientProtocolAndTlsRoundTrip) {
  auto e = storage::testing::MakeEnvelope(7, 1);
  EXPECT_FALSE(EnvelopeToJson(e).contains("client_protocol"));
  e.set_scheme("https");
  e.set_client_protocol("h2");
  e.set_tls_version("TLSv1.3");
  e.set_alpn("h2");
  e.set_client_cert_subject("CN=billing,O=Example");
  auto o = EnvelopeToJson(e);
  EXPECT_EQ(o.at("client_protocol").as_string(), "h2");
  EXPECT_EQ(o.at("client_cert_subject").as_string(), "CN=billing,O=Example");
  EXPECT_EQ(o.at("tls_version").as_string(), "TLSv1.3");
  EXPECT_EQ(o.at("alpn").as_string(), "h2");
  v1::Envelope back;
  ASSERT_TRUE(EnvelopeFromJson(o, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, back));
}

TEST(EnvelopeJson, BinaryBodiesAreBase64AndMarked) {
  auto e = storage::testing::MakeEnvelope(1, 1);
  e.mutable_response()->set_body(std::string("\x89PNG\r\n\x1a\n\0\xff", 10));
  auto* h = e.mutable_request()->add_headers();
  h->set_name("X-Bin");
  h->set_value("\xc3\x28");
  auto o = EnvelopeToJson(e);
  EXPECT_EQ(o.at("response").at("body_encoding").as_string(), "base64");
  v1::Envelope back;
  ASSERT_TRUE(
      EnvelopeFromJson(boost::json::parse(boost::json::serialize(o)).as_object(), &back).ok());
  EXPECT_EQ(back.response().body(), e.response().body());
  EXPECT_EQ(back.request().headers(2).value(), "\xc3\x28");
}

// A relayed WebSocket connection's messages (text and binary payloads) are printed by
// `doppel cat` and read back whole.
TEST(EnvelopeJson, WebSocketSessionRoundTrip) {
  auto e = storage::testing::MakeEnvelope(9, 1);
  EXPECT_FALSE(EnvelopeToJson(e).contains("websocket"));
  auto* w = e.mutable_websocket();
  auto* text = w->add_messages();
  text->set_from_client(true);
  text->set_opcode(1);
  text->set_payload("hello");
  text->set_payload_size(5);
  text->set_at_us(10);
  auto* binary = w->add_messages();
  binary->set_opcode(2);
  binary->set_payload(std::string("\0\xff\x01", 3));
  binary->set_payload_size(900);
  binary->set_payload_truncated(true);
  binary->set_compressed(true);
  binary->set_at_us(20);
  w->set_messages_truncated(true);
  w->set_client_messages(70);
  w->set_server_messages(71);
  w->set_client_bytes(1234);
  w->set_server_bytes(5678);
  w->set_duration_us(99);
  w->set_ended("client closed");
  w->set_framing_error("primary: frame with reserved opcode 3");
  auto o = EnvelopeToJson(e);
  const auto& messages = o.at("websocket").at("messages").as_array();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].at("from").as_string(), "client");
  EXPECT_EQ(messages[0].at("payload").as_string(), "hello");
  EXPECT_EQ(messages[1].at("from").as_string(), "primary");
  EXPECT_EQ(messages[1].at("payload_encoding").as_string(), "base64");
  v1::Envelope back;
  ASSERT_TRUE(
      EnvelopeFromJson(boost::json::parse(boost::json::serialize(o)).as_object(), &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, back)) << back.DebugString();

  auto bad =
      boost::json::parse(
          R"({"request":{"method":"GET","target":"/"},"websocket":{"messages":[{"from":"x"}]}})")
          .as_object();
  EXPECT_NE(EnvelopeFromJson(bad, &back).message().find("websocket.messages[].from"),
            std::string::npos);
}

// Compressed messages (permessage-deflate) are also written decompressed, for reading, and
// read back as they were recorded; a session that does not decompress says why.
TEST(EnvelopeJson, CompressedWebSocketMessagesAreAlsoWrittenDecompressed) {
  auto e = storage::testing::MakeEnvelope(9, 1);
  const std::vector<std::string> plain = {R"({"op":"quote"})", R"({"op":"quote","n":2})"};
  const std::vector<std::string> sent = testing::PerMessageDeflate(plain);
  for (size_t i = 0; i < sent.size(); ++i) {
    auto* m = e.mutable_websocket()->add_messages();
    m->set_from_client(true);
    m->set_opcode(1);
    m->set_payload(sent[i]);
    m->set_payload_size(sent[i].size());
    m->set_compressed(true);
  }
  auto o = EnvelopeToJson(e);
  const auto& messages = o.at("websocket").at("messages").as_array();
  ASSERT_EQ(messages.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(messages[i].at("decompressed").as_string(), plain[i]) << i;
  }
  EXPECT_FALSE(o.at("websocket").as_object().contains("decompress_error"));
  v1::Envelope back;
  ASSERT_TRUE(
      EnvelopeFromJson(boost::json::parse(boost::json::serialize(o)).as_object(), &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, back)) << back.DebugString();

  e.mutable_websocket()->mutable_messages(0)->set_payload("\xff\xff not deflate");
  o = EnvelopeToJson(e);
  EXPECT_FALSE(o.at("websocket").at("messages").as_array()[0].as_object().contains("decompressed"));
  EXPECT_NE(std::string(o.at("websocket").at("decompress_error").as_string())
                .find("client message 1 of the recording does not decompress"),
            std::string::npos)
      << o.at("websocket").at("decompress_error");
}

// An event stream's piece timings survive an export and an import.
TEST(EnvelopeJson, StreamChunksRoundTrip) {
  auto e = storage::testing::MakeEnvelope(10, 1);
  EXPECT_FALSE(EnvelopeToJson(e).at("response").as_object().contains("chunks"));
  auto* r = e.mutable_response();
  for (uint64_t i = 0; i < 3; ++i) {
    auto* c = r->add_chunks();
    c->set_offset(i * 16);
    c->set_size(16);
    c->set_at_us(1000 * i);
  }
  r->set_chunks_truncated(true);
  auto o = EnvelopeToJson(e);
  EXPECT_EQ(o.at("response").at("chunks").as_array().size(), 3u);
  v1::Envelope back;
  ASSERT_TRUE(
      EnvelopeFromJson(boost::json::parse(boost::json::serialize(o)).as_object(), &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(e, back)) << back.DebugString();
  auto bad =
      boost::json::parse(R"({"request":{"method":"GET","target":"/"},"response":{"chunks":[1]}})")
          .as_object();
  EXPECT_NE(EnvelopeFromJson(bad, &back).message().find("response.chunks[]"), std::string::npos);
}

TEST(EnvelopeJson, WrongTypesNameTheField) {
  auto o = boost::json::parse(R"({"request":{"method":"GET","target":"/"},"seq":"x"})").as_object();
  v1::Envelope e;
  Status s = EnvelopeFromJson(o, &e);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'seq'"), std::string::npos);
  o = boost::json::parse(R"({"request":{"target":"/"}})").as_object();
  EXPECT_NE(EnvelopeFromJson(o, &e).message().find("method"), std::string::npos);
  o = boost::json::parse(R"({})").as_object();
  EXPECT_NE(EnvelopeFromJson(o, &e).message().find("request"), std::string::npos);
}

TEST(EnvelopeJson, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x90\xb5"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

TEST(EnvelopeJson, Base64) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(s), &back));
    EXPECT_EQ(back, s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  std::string out;
  EXPECT_FALSE(Base64Decode("a$b", &out));
}

}  // namespace
}  // namespace doppel::interop
