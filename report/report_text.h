// The terminal summary of a Report: a fixed-width table per target, the regressions per
// endpoint with their top fields and one exemplar each, compact "noise (masked)",
// "normalized" and "ignored" sections, and a last line with the verdict:
//   3 regressions in 2 endpoints — exit 1
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "report/report.h"

namespace doppel::report {

struct TextOptions {
  bool color = false;           // ANSI colors; the caller decides (TTY, NO_COLOR, --color)
  size_t max_fields = 5;        // field rows per endpoint
  size_t max_listed_paths = 6;  // paths per endpoint in the noise/normalized/ignored lines
  size_t max_value_bytes = 60;  // expected/actual renderings in exemplar lines
  // Exemplar lines show the differing values (header values, body excerpts) and the query
  // string. The CLI turns this off unless --log-bodies: terminal output often ends up in CI
  // logs; the HTML and JSON reports keep the values.
  bool show_values = true;
};

// Plain text (UTF-8), lines ending in '\n'. Control characters from the traffic are shown
// escaped (\n, \x1b), so a response cannot move the terminal's cursor or change its colors.
std::string RenderText(const Report& report, const TextOptions& options = {});

// `text` with C0 and C1 controls and DEL escaped as RenderText shows them, for other terminal
// output made of report text (the run comparison, compare.h).
std::string TerminalSafe(std::string_view text);

}  // namespace doppel::report
