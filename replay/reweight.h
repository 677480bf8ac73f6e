// `doppel replay --reweight`: a coverage sample (docs/sampling.md) keeps rare classes whole
// and thins the hot ones, so replayed as recorded it over-represents the rare. Reweighted, the
// replay sends each class as many requests as the traffic had of it (times --reweight-scale),
// so its mix and its volume are the traffic's.
//
//  * Class totals. A coverage session's record holds the requests the recorder saw of each
//    class (SessionCounts.classes). A class's total T_c is that count or, for a class the
//    record lacks (imports, a class that left the recorder's bounded table), the sum of its
//    envelopes' 1/p (Horvitz-Thompson). T_c is spread over the class's envelopes in proportion
//    to their 1/p: envelope i of class c weighs w_i = scale * T_c * (1/p_i) / sum_c(1/p).
//    Calibrating to the counted totals (post-stratification) takes the sampling noise out of
//    the class mix: only rounding is left.
//  * Rounding, systematic within a class: its envelopes, in order, are sent
//    floor(W_i + u_c) - floor(W_{i-1} + u_c) times, W_i the running sum of their weights and
//    u_c in [0, 1) a hash of the class and the seed. So a class is sent floor(scale * T_c + u_c)
//    times in all (its expected count exactly), and reruns with a seed send the same requests.
//  * Envelopes without a class (uniform sampling, imports) weigh scale/p each, rounded as
//    floor(w + u), u a hash of the envelope's (arrival_us, seq) and the seed. p = 0 (unknown,
//    recorded before it existed) reads as 1, so a uniform 100 % session replays as recorded
//    at scale 1.
// Copies go out back to back, at the envelope's time. One envelope is sent at most 10^6 times
// (a corrupt probability or count must not make a flood).
#pragma once

#include <cstdint>

#include "base/status.h"
#include "replay/source.h"

namespace doppel::replay {

struct ReweightOptions {
  double scale = 1;  // --reweight-scale: 0.1 sends a tenth of the traffic's requests
  uint64_t seed = 0;
};

// Wraps `inner` (read once here to find each class's weights, then rewound). Rewind() starts
// the reweighted stream again, the same copies each time.
// REQUIRES: options.scale > 0 and finite.
Result<EnvelopeSourcePtr> ReweightSource(EnvelopeSourcePtr inner, const ReweightOptions& options);

}  // namespace doppel::replay
