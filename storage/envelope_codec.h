// Envelope value codec: how one envelope becomes the bytes of one store value or bundle
// record, and back.
//
// Value format (documented in docs/storage-format.md):
//   byte 0 = codec tag
//     0x00  raw: the rest is a serialized doppel.v1.Envelope
//     0x01  zstd: the rest is one zstd frame holding a serialized Envelope; the frame's
//           dictionary id (0 = none) names the dictionary it needs
//   any other tag is refused as unsupported (written by a newer doppel).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::storage {

inline constexpr unsigned char kCodecRaw = 0x00;
inline constexpr unsigned char kCodecZstd = 0x01;

// Per-envelope compression trains one dictionary per session (or per stream writer) on its
// first envelopes, up to these bounds, and compresses without one until then. Why these values:
// storage/store.cc.
inline constexpr size_t kDictTrainSamples = 500;
inline constexpr size_t kDictTrainMaxBytes = 2 << 20;
inline constexpr size_t kDictSize = 64 << 10;

// Trains a zstd dictionary of at most `max_bytes` on the given samples. Returns an empty
// string when there are too few samples to train on (callers then compress without one).
std::string TrainDictionary(const std::vector<std::string>& samples, size_t max_bytes);
// The id zstd stored in a trained dictionary (0 for an empty or raw-content dictionary).
uint32_t DictionaryId(std::string_view dictionary);

// Size of the serialized envelope a value decodes to, read from its header without
// decompressing (0 when the value is malformed).
uint64_t DecodedSize(std::string_view value);

// Not thread-safe: holds one zstd compression and decompression context; use one per thread.
class EnvelopeCodec {
 public:
  explicit EnvelopeCodec(int level = 3, uint64_t max_decoded_bytes = 256ull << 20);
  ~EnvelopeCodec();
  EnvelopeCodec(const EnvelopeCodec&) = delete;
  EnvelopeCodec& operator=(const EnvelopeCodec&) = delete;

  // Makes `dictionary` available for encoding (when `use_for_encoding`) and for decoding
  // frames that name its id. An empty dictionary is ignored.
  Status AddDictionary(std::string_view dictionary, bool use_for_encoding);
  bool HasDictionary(uint32_t dict_id) const;

  // Appends the encoded value to *out (which is cleared first).
  void EncodeRaw(const doppel::v1::Envelope& envelope, std::string* out);
  Status EncodeZstd(const doppel::v1::Envelope& envelope, std::string* out);
  // Same, from an already serialized envelope.
  Status EncodeZstdSerialized(std::string_view serialized, std::string* out);

  // Decodes any supported value. Errors say what is wrong (unknown tag, size over the
  // limit, missing dictionary, bad frame, bad protobuf) but not where: the caller adds
  // the key or record number.
  Status Decode(std::string_view value, doppel::v1::Envelope* envelope);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel::storage
