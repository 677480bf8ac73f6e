// Fuzz target: EnvelopeCodec::Decode (storage/envelope_codec.h) on arbitrary bytes, as a
// store value or bundle record read from a corrupt or hostile file would be.
//
// Properties: no crash, no unbounded allocation (frames declaring more than the decode
// limit are refused before decompressing); an error says what is wrong; a value that
// decodes re-encodes (raw and zstd, with and without the dictionary) and decodes back to
// the same envelope. Two codecs: one without dictionaries (frames naming one must be
// refused) and one holding SampleDictionary() (the seeds compressed with it reach the
// dictionary path).
#include <cstdint>
#include <string>
#include <string_view>

#include "storage/envelope_codec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::storage::EnvelopeCodec;
using doppel::v1::Envelope;

// The production decode limit (StoreOptions::max_decoded_envelope_bytes).
constexpr uint64_t kMaxDecoded = 256ull << 20;

void CheckRoundTrip(EnvelopeCodec& codec, const Envelope& envelope) {
  const std::string serialized = envelope.SerializeAsString();
  std::string value;
  Envelope back;
  codec.EncodeRaw(envelope, &value);
  doppel::Status s = codec.Decode(value, &back);
  FUZZ_CHECK(s.ok(), "raw re-encoding does not decode: " + s.message());
  FUZZ_CHECK(back.SerializeAsString() == serialized, "raw round trip changed the envelope");
  s = codec.EncodeZstd(envelope, &value);
  FUZZ_CHECK(s.ok(), "zstd encoding failed: " + s.message());
  s = codec.Decode(value, &back);
  FUZZ_CHECK(s.ok(), "zstd re-encoding does not decode: " + s.message());
  FUZZ_CHECK(back.SerializeAsString() == serialized, "zstd round trip changed the envelope");
}

void DecodeWith(EnvelopeCodec& codec, std::string_view value) {
  Envelope envelope;
  const doppel::Status s = codec.Decode(value, &envelope);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "decode error without a message");
    return;
  }
  CheckRoundTrip(codec, envelope);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static EnvelopeCodec* plain = new EnvelopeCodec(3, kMaxDecoded);
  static EnvelopeCodec* with_dict = [] {
    auto* codec = new EnvelopeCodec(3, kMaxDecoded);
    const doppel::Status s = codec->AddDictionary(doppel::fuzz::SampleDictionary(), true);
    FUZZ_CHECK(s.ok(), "the sample dictionary does not load: " + s.message());
    return codec;
  }();
  const std::string_view value(reinterpret_cast<const char*>(data), size);
  const uint64_t declared = doppel::storage::DecodedSize(value);
  (void)declared;  // must not crash; may be anything for hostile input
  DecodeWith(*plain, value);
  DecodeWith(*with_dict, value);
  return 0;
}
