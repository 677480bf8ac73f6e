// NoiseMask: the one noise model of a replay run. For one request, the fields where the
// recorded primary and the secondary (a known-good build) differed are noise, and a
// candidate difference at such a field is masked: neither the per-request verdict RunSink
// stores nor the report counts it as a mismatch.
//
// A field is a path with array indexes generalized to [*] (diff::GeneralizePath) and
// invalid UTF-8 replaced (SanitizeUtf8), the form reports name fields in: a secondary
// difference at body.items[0].x masks a candidate difference at body.items[1].x.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "diff/result.h"

namespace doppel::report {

// The field a concrete diff path belongs to: "body.items[3].id" -> "body.items[*].id".
std::string FieldOf(std::string_view path);

class NoiseMask {
 public:
  // `noise`: the secondary against the recording for the same request; nullptr (no
  // secondary, or it failed) masks nothing. Nothing is kept pointing into it.
  explicit NoiseMask(const diff::DiffResult* noise);

  // True when a candidate difference at `path` (concrete or already a field) is noise.
  bool Masks(std::string_view path) const;
  // True when the candidate differs from the recording at a field that is not noise, or
  // had differences beyond max_diffs (no path to mask them by).
  bool IsMismatch(const diff::DiffResult& candidate) const;

 private:
  std::set<std::string, std::less<>> fields_;
};

}  // namespace doppel::report
