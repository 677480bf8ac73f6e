// A 64-bit hash that is the same in every process and version (std::hash is not): FNV-1a over
// the bytes, then the splitmix64 finalizer so that every input bit moves every output bit.
// Sampling decisions by key (recorder/sampler.h) and request classes (diff/request_class.h)
// depend on it staying the same: changing it changes which requests a --sample-key keeps and
// every stored class label's hash.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace doppel {

// splitmix64's finalizer.
inline uint64_t StableHashFinish(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

// FNV-1a, one byte at a time: StableHash64(s) is StableHashFinish of StableHashByte over the
// bytes of s from kStableHashBasis, so a caller can hash bytes as it scans them.
inline constexpr uint64_t kStableHashBasis = 0xcbf29ce484222325ull;
inline uint64_t StableHashByte(uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ull; }

inline uint64_t StableHash64(std::string_view value) {
  uint64_t h = kStableHashBasis;
  for (unsigned char c : value) h = StableHashByte(h, c);
  return StableHashFinish(h);
}

// StableHash64 of the 8 bytes of `v` as they lie in memory, unrolled (request classes hash
// two of these per JSON member).
inline uint64_t StableHash64(uint64_t v) {
  unsigned char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  uint64_t h = kStableHashBasis;
  h = StableHashByte(h, b[0]);
  h = StableHashByte(h, b[1]);
  h = StableHashByte(h, b[2]);
  h = StableHashByte(h, b[3]);
  h = StableHashByte(h, b[4]);
  h = StableHashByte(h, b[5]);
  h = StableHashByte(h, b[6]);
  h = StableHashByte(h, b[7]);
  return StableHashFinish(h);
}

}  // namespace doppel
