// `doppel replay --reweight`: a coverage sample (docs/sampling.md) keeps rare classes whole
// and thins the hot ones, so replayed as recorded it over-represents the rare. Reweighted,
// each envelope is sent about w = s / p times, p its inclusion probability and s the scale
// that keeps the replay as long as the sample (s = envelopes / sum of 1/p): the hot classes'
// envelopes are repeated, the rare ones' thinned, and the replay's mix is the traffic's.
//
// Deterministic: an envelope is sent floor(w + u) times, u in [0, 1) a hash of its
// (arrival_us, seq) and the seed, so reruns send the same requests and the expected count is w.
// Copies go out back to back, at the envelope's time. Envelopes without a probability (0:
// recorded before it existed, imports) weigh as p = 1.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "replay/source.h"

namespace doppel::replay {

// Wraps `inner` (read once here to find the scale, then rewound). Rewind() starts the
// reweighted stream again.
Result<EnvelopeSourcePtr> ReweightSource(EnvelopeSourcePtr inner, uint64_t seed);

// How many times an envelope with inclusion probability `p` is sent at `scale`.
uint32_t ReweightCopies(const doppel::v1::Envelope& e, double scale, uint64_t seed);

}  // namespace doppel::replay
