#include "storage/envelope_codec.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include "tests/storage/test_envelopes.h"

namespace doppel::storage {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::MakeEnvelope;

void ExpectRoundTrip(EnvelopeCodec& codec, const doppel::v1::Envelope& e) {
  std::string value;
  ASSERT_TRUE(codec.EncodeZstd(e, &value).ok());
  EXPECT_EQ(static_cast<unsigned char>(value[0]), kCodecZstd);
  EXPECT_EQ(DecodedSize(value), e.ByteSizeLong());
  doppel::v1::Envelope back;
  ASSERT_TRUE(codec.Decode(value, &back).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(e, back));
  codec.EncodeRaw(e, &value);
  EXPECT_EQ(static_cast<unsigned char>(value[0]), kCodecRaw);
  ASSERT_TRUE(codec.Decode(value, &back).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(e, back));
}

TEST(EnvelopeCodec, RoundTripEmpty) {
  EnvelopeCodec codec;
  ExpectRoundTrip(codec, doppel::v1::Envelope());
}

TEST(EnvelopeCodec, RoundTripBinaryBodies) {
  EnvelopeCodec codec;
  auto e = MakeEnvelope(1, 1);
  std::string bin;
  for (int i = 0; i < 4096; ++i) bin.push_back(static_cast<char>(i * 7919 % 256));
  e.mutable_request()->set_body(bin);
  e.mutable_response()->set_body(std::string("\0\xff\xfe", 3) + bin);
  ExpectRoundTrip(codec, e);
}

TEST(EnvelopeCodec, RoundTripLargeAndManyHeaders) {
  EnvelopeCodec codec;
  auto e = MakeEnvelope(1, 1);
  e.mutable_response()->set_body(std::string(3 << 20, 'x'));
  for (int i = 0; i < 500; ++i) {
    auto* h = e.mutable_request()->add_headers();
    h->set_name("X-Header-" + std::to_string(i));
    h->set_value(std::string(i % 50, 'v'));
  }
  ExpectRoundTrip(codec, e);
}

TEST(EnvelopeCodec, DictionaryRoundTripAndSmaller) {
  std::vector<std::string> samples;
  for (int i = 0; i < 500; ++i) samples.push_back(MakeEnvelope(i, i, i).SerializeAsString());
  std::string dict = TrainDictionary(samples, 16 << 10);
  ASSERT_FALSE(dict.empty());
  ASSERT_NE(DictionaryId(dict), 0u);
  EnvelopeCodec with, without;
  ASSERT_TRUE(with.AddDictionary(dict, true).ok());
  auto e = MakeEnvelope(999, 1, 777);
  std::string a, b;
  ASSERT_TRUE(with.EncodeZstd(e, &a).ok());
  ASSERT_TRUE(without.EncodeZstd(e, &b).ok());
  EXPECT_LT(a.size(), b.size());
  ExpectRoundTrip(with, e);
  // A reader without the dictionary says which one is missing.
  doppel::v1::Envelope back;
  Status s = without.Decode(a, &back);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("dictionary " + std::to_string(DictionaryId(dict))),
            std::string::npos);
}

TEST(EnvelopeCodec, TooFewSamplesGiveNoDictionary) {
  EXPECT_TRUE(TrainDictionary({"a", "b"}, 1024).empty());
}

TEST(EnvelopeCodec, RefusesDecompressionBomb) {
  // 2 MiB of zeros compress to a few hundred bytes; a 1 MiB limit must refuse them before
  // allocating.
  std::string big(2 << 20, '\0');
  std::string frame(1 + ZSTD_compressBound(big.size()), '\0');
  frame[0] = static_cast<char>(kCodecZstd);
  size_t n = ZSTD_compress(frame.data() + 1, frame.size() - 1, big.data(), big.size(), 1);
  ASSERT_FALSE(ZSTD_isError(n));
  frame.resize(1 + n);
  EnvelopeCodec codec(3, 1 << 20);
  doppel::v1::Envelope e;
  Status s = codec.Decode(frame, &e);
  EXPECT_EQ(s.code(), Status::Code::kCorruption);
  EXPECT_NE(s.message().find("over the limit"), std::string::npos);
}

TEST(EnvelopeCodec, RejectsGarbageAndUnknownTags) {
  EnvelopeCodec codec;
  doppel::v1::Envelope e;
  EXPECT_EQ(codec.Decode("", &e).code(), Status::Code::kCorruption);
  EXPECT_EQ(codec.Decode("\x07xyz", &e).code(), Status::Code::kUnsupported);
  EXPECT_EQ(codec.Decode(std::string("\x01garbage", 8), &e).code(), Status::Code::kCorruption);
  EXPECT_EQ(codec.Decode(std::string("\x00\xff\xff\xff", 4), &e).code(), Status::Code::kCorruption);
  // Truncated zstd frame.
  std::string v;
  ASSERT_TRUE(codec.EncodeZstd(MakeEnvelope(1, 1, 3), &v).ok());
  EXPECT_FALSE(codec.Decode(v.substr(0, v.size() - 5), &e).ok());
}

}  // namespace
}  // namespace doppel::storage
