// Which requests are captured: `--sample PCT`, decided per request either at random or by a
// hash of a key taken from the request (`header:NAME` or `query:NAME`), so that all requests
// carrying one value (a user, a session id) are in or out together.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "net/match.h"

namespace doppel::recorder {

class Sampler {
 public:
  enum class KeyKind { kNone, kHeader, kQuery };

  // percent: 0..100, fractions allowed. key: "", "header:NAME" or "query:NAME".
  static Result<Sampler> Create(double percent, const std::string& key);

  // `random64` is a uniformly distributed value from the caller's generator; it decides
  // requests without a key (and requests whose key is absent).
  bool Sample(const net::RequestView& request, uint64_t random64) const;
  // The value a decision compares: the hash of the request's key value when --sample-key is
  // set and the request carries it, `random64` otherwise. Coverage sampling draws with it.
  uint64_t Draw(const net::RequestView& request, uint64_t random64) const;

  // The same decision for a known key value (exposed for tests and tools).
  bool SampleValue(std::string_view key_value) const { return Admit(HashKey(key_value)); }
  bool SampleRandom(uint64_t random64) const { return Admit(random64); }

  // Stable 64-bit hash (base/stable_hash.h): the same value gives the same decision across
  // processes and versions.
  static uint64_t HashKey(std::string_view value);

  double percent() const { return percent_; }
  const std::string& key() const { return key_; }
  KeyKind key_kind() const { return kind_; }

 private:
  bool Admit(uint64_t v) const { return all_ || v < threshold_; }

  double percent_ = 100;
  std::string key_;
  KeyKind kind_ = KeyKind::kNone;
  std::string key_name_;
  bool all_ = true;
  uint64_t threshold_ = 0;
};

// splitmix64: a small, fast generator for per-thread sampling decisions.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace doppel::recorder
