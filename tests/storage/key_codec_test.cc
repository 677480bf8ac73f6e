#include "storage/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace doppel::storage {
namespace {

TEST(KeyCodec, RoundTrip) {
  EnvelopeKey k{7, 1764201600123456ull, 42};
  std::string bytes = EncodeEnvelopeKey(k);
  ASSERT_EQ(bytes.size(), kEnvelopeKeySize);
  auto back = DecodeEnvelopeKey(bytes);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, k);
  EXPECT_EQ(bytes.substr(0, 4), SessionPrefix(7));
}

TEST(KeyCodec, RejectsWrongSize) {
  EXPECT_FALSE(DecodeEnvelopeKey("short").has_value());
  EXPECT_FALSE(DecodeEnvelopeKey(std::string(17, 'x')).has_value());
  EXPECT_EQ(DescribeEnvelopeKey("abc"), "malformed key of 3 bytes");
}

TEST(KeyCodec, BigEndianLayout) {
  std::string b = EncodeEnvelopeKey({0x01020304, 0x05060708090A0B0Cull, 0x0D0E0F10});
  const unsigned char want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(b, std::string(reinterpret_cast<const char*>(want), 16));
}

// Property: byte order of encoded keys equals (session, time, seq) order, for random keys
// including extremes.
TEST(KeyCodec, ByteOrderIsTimeOrder) {
  std::mt19937_64 rng(12345);
  std::vector<EnvelopeKey> keys;
  const uint64_t extremes[] = {0,          1,         255, 256, 65535, 1ull << 32, (1ull << 63) - 1,
                               1ull << 63, UINT64_MAX};
  for (int i = 0; i < 20000; ++i) {
    EnvelopeKey k;
    k.session_id = static_cast<uint32_t>(rng() % 4);
    k.arrival_us = (i % 10 == 0) ? extremes[rng() % 9] : rng() >> (rng() % 64);
    k.seq = static_cast<uint32_t>(rng() % 3 == 0 ? rng() : rng() % 4);
    keys.push_back(k);
  }
  auto tuple_less = [](const EnvelopeKey& a, const EnvelopeKey& b) {
    return std::tie(a.session_id, a.arrival_us, a.seq) <
           std::tie(b.session_id, b.arrival_us, b.seq);
  };
  std::vector<EnvelopeKey> by_tuple = keys, by_bytes = keys;
  std::stable_sort(by_tuple.begin(), by_tuple.end(), tuple_less);
  std::stable_sort(by_bytes.begin(), by_bytes.end(),
                   [](const EnvelopeKey& a, const EnvelopeKey& b) {
                     return EncodeEnvelopeKey(a) < EncodeEnvelopeKey(b);
                   });
  ASSERT_EQ(by_tuple.size(), by_bytes.size());
  for (size_t i = 0; i < by_tuple.size(); ++i) ASSERT_EQ(by_tuple[i], by_bytes[i]) << "at " << i;
}

TEST(KeyCodec, RunKeysSortRunInfoBeforeResults) {
  EXPECT_LT(EncodeRunInfoKey(3), EncodeRunResultKey(3, 0, 0));
  EXPECT_LT(EncodeRunResultKey(3, 1, 9), EncodeRunResultKey(3, 2, 0));
  EXPECT_LT(EncodeRunResultKey(3, UINT64_MAX, UINT32_MAX), EncodeRunInfoKey(4));
  EXPECT_EQ(EncodeRunResultKey(3, 5, 1).substr(0, 5), RunResultPrefix(3));
}

}  // namespace
}  // namespace doppel::storage
