// Is a field's mismatch rate on the candidate a regression, or just the noise the field
// shows anyway?
//
// For one field (and endpoint) we have two counts:
//   candidate: x1 mismatches out of n1 comparisons of the candidate against the recording
//   noise:     x2 mismatches out of n2 comparisons that should have matched (recorded primary
//              vs secondary, or the same request recorded twice)
// The field is a regression when its candidate rate p1 = x1/n1 is significantly *higher*
// than its noise rate p2 = x2/n2: a one-sided two-proportion z-test with pooled variance,
//   p  = (x1 + x2) / (n1 + n2)
//   z  = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))
//   p-value = P(Z >= z) = erfc(z / sqrt 2) / 2
// and it is reported only when all of these hold:
//   n1 >= min_samples                      (default 30: the normal approximation needs it,
//                                          and a handful of requests proves nothing)
//   p1 - p2 >= min_rate_difference         (default 0.01: a significant but negligible
//                                          difference is not worth failing a build)
//   p-value < alpha                        (default 0.01: at most 1 % of noise-only fields
//                                          get flagged by chance)
// Without noise data (n2 = 0) the test cannot run; then any mismatch counts: regression iff
// n1 >= min_samples and x1 > 0. So a real regression on a noisy field is still caught
// (e.g. 60 % vs 20 % noise), a field as noisy on the candidate as on the secondary is not,
// and small samples are never flagged.
#pragma once

#include <cstdint>

namespace doppel::diff {

struct Thresholds {
  double alpha = 0.01;
  uint64_t min_samples = 30;
  double min_rate_difference = 0.01;
};

// One-sided p-value of the pooled two-proportion z-test for p1 > p2 (see above). 1.0 when
// either total is 0 or the pooled rate is 0 or 1 (no evidence either way).
// REQUIRES: mismatches <= totals.
double RegressionPValue(uint64_t candidate_mismatches, uint64_t candidate_total,
                        uint64_t noise_mismatches, uint64_t noise_total);

bool IsRegression(uint64_t candidate_mismatches, uint64_t candidate_total,
                  uint64_t noise_mismatches, uint64_t noise_total,
                  const Thresholds& thresholds = {});

}  // namespace doppel::diff
