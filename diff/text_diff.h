// Line diff for text bodies: Myers' O(ND) algorithm on hashed lines after trimming the
// common prefix and suffix, with bounded effort. Inputs that would need more than
// max_edit_distance edits or max_work steps get one approximate hunk spanning everything
// between the common prefix and suffix (reported as such), so a huge input costs at most
// the budget, never quadratic time.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "diff/result.h"

namespace doppel::diff {

struct LineDiffOptions {
  char separator = '\n';            // '&' splits form bodies into fields
  size_t max_edit_distance = 1000;  // D bound: memory is O(D^2) ints
  size_t max_work = 20'000'000;     // inner-loop steps
  size_t max_rendered_bytes = 200;
};

// A changed range: `expected_count` lines from `expected_begin` (0-based) were replaced by
// `actual_count` lines from `actual_begin`. A count of 0 is a pure insertion/deletion.
struct LineHunk {
  size_t expected_begin = 0, expected_count = 0;
  size_t actual_begin = 0, actual_count = 0;
  bool operator==(const LineHunk&) const = default;
};

// Splits on the separator (a '\r' before '\n' is dropped). "" is one empty line.
std::vector<std::string_view> SplitLines(std::string_view text, char separator);

// The hunks turning expected into actual, in order. *approximate (optional) is set when the
// effort bound was hit and one covering hunk was returned instead of a minimal script.
std::vector<LineHunk> DiffLines(const std::vector<std::string_view>& expected,
                                const std::vector<std::string_view>& actual,
                                const LineDiffOptions& options, bool* approximate = nullptr);

// Reports each hunk as a kValue FieldDiff at `path`, detail in unified-diff form
// ("@@ -3,2 +3,3 @@", "(approximate)" appended when bounded), expected/actual the changed
// lines (abbreviated). Reports nothing when the texts are equal.
void ReportTextDiff(std::string_view expected, std::string_view actual, std::string_view path,
                    const LineDiffOptions& options, DiffSink* sink);

}  // namespace doppel::diff
