// A deterministic, realistic JSON API traffic corpus for benchmarks and tests.
//
// The corpus models the public API of an online shop as a capture proxy would record it:
// product lists with query parameters, products by numeric id, orders by UUID, search,
// user profiles, order creation (POST with a JSON body), and a few 401/404/422/500/503
// answers. Request headers vary by client (browsers, mobile apps, scripts); credentials and
// cookies appear already redacted (`hmac:<64 hex>`, equal for equal values) as the recorder
// stores them. Popular products, users and list pages repeat with a skewed distribution, as
// in real traffic, so compressors see realistic repetition rather than pure noise.
//
// Determinism: the i-th envelope for a given seed is the same on every platform and standard
// library. Only std::mt19937_64 (fully specified by the standard) and integer arithmetic are
// used; no std:: distributions, no floating-point formatting, no clock, no locale.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "doppel/v1/envelope.pb.h"

namespace doppel::bench {

// Arrival time of the first envelope: 2026-11-27T00:00:00Z, in microseconds.
inline constexpr uint64_t kCorpusStartUs = 1795737600ull * 1000000ull;

// Streams the corpus one envelope at a time; memory stays flat. Not thread-safe.
class CorpusGenerator {
 public:
  explicit CorpusGenerator(uint64_t seed);
  ~CorpusGenerator();
  CorpusGenerator(const CorpusGenerator&) = delete;
  CorpusGenerator& operator=(const CorpusGenerator&) = delete;

  // Replaces *envelope with the next envelope. Arrival times strictly increase; seq counts
  // from 0.
  void Next(doppel::v1::Envelope* envelope);

  // Number of envelopes produced so far.
  uint64_t count() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The first `n` envelopes of the corpus for `seed`.
std::vector<doppel::v1::Envelope> GenerateCorpus(size_t n, uint64_t seed);

}  // namespace doppel::bench
