#include "diff/significance.h"

#include <algorithm>
#include <cmath>

namespace doppel::diff {

double RegressionPValue(uint64_t candidate_mismatches, uint64_t candidate_total,
                        uint64_t noise_mismatches, uint64_t noise_total) {
  if (candidate_total == 0 || noise_total == 0) return 1.0;
  double x1 = static_cast<double>(std::min(candidate_mismatches, candidate_total));
  double x2 = static_cast<double>(std::min(noise_mismatches, noise_total));
  double n1 = static_cast<double>(candidate_total), n2 = static_cast<double>(noise_total);
  double p = (x1 + x2) / (n1 + n2);
  double variance = p * (1 - p) * (1 / n1 + 1 / n2);
  if (!(variance > 0)) return 1.0;  // pooled rate 0 or 1: both sides identical
  double z = (x1 / n1 - x2 / n2) / std::sqrt(variance);
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

bool IsRegression(uint64_t candidate_mismatches, uint64_t candidate_total,
                  uint64_t noise_mismatches, uint64_t noise_total, const Thresholds& thresholds) {
  candidate_mismatches = std::min(candidate_mismatches, candidate_total);
  noise_mismatches = std::min(noise_mismatches, noise_total);
  if (candidate_total < thresholds.min_samples || candidate_mismatches == 0) return false;
  if (noise_total == 0) return true;
  double p1 = static_cast<double>(candidate_mismatches) / static_cast<double>(candidate_total);
  double p2 = static_cast<double>(noise_mismatches) / static_cast<double>(noise_total);
  if (p1 - p2 < thresholds.min_rate_difference) return false;
  return RegressionPValue(candidate_mismatches, candidate_total, noise_mismatches, noise_total) <
         thresholds.alpha;
}

}  // namespace doppel::diff
