// A 64-bit hash that is the same in every process and version (std::hash is not): FNV-1a over
// the bytes, then the splitmix64 finalizer so that every input bit moves every output bit.
// Sampling decisions by key (recorder/sampler.h) and request classes (diff/request_class.h)
// depend on it staying the same: changing it changes which requests a --sample-key keeps and
// every stored class label's hash.
#pragma once

#include <cstdint>
#include <string_view>

namespace doppel {

inline uint64_t StableHash64(std::string_view value) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : value) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

}  // namespace doppel
