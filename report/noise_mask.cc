#include "report/noise_mask.h"

#include "diff/path.h"
#include "report/excerpt.h"

namespace doppel::report {

std::string FieldOf(std::string_view path) { return SanitizeUtf8(diff::GeneralizePath(path)); }

NoiseMask::NoiseMask(const diff::DiffResult* noise) {
  if (noise == nullptr) return;
  for (const diff::FieldDiff& d : noise->diffs) fields_.insert(FieldOf(d.path));
}

bool NoiseMask::Masks(std::string_view path) const {
  return !fields_.empty() && fields_.count(FieldOf(path)) > 0;
}

bool NoiseMask::IsMismatch(const diff::DiffResult& candidate) const {
  if (candidate.omitted_diffs > 0) return true;
  for (const diff::FieldDiff& d : candidate.diffs) {
    if (!Masks(d.path)) return true;
  }
  return false;
}

}  // namespace doppel::report
