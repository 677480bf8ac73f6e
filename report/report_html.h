// One self-contained HTML page for a Report: inline CSS and SVG, no script, no network, links
// only to its own anchors. A summary strip (verdict, regressions by severity, match rate, p99
// change, links to the endpoints to look at); a summary table per target; per target a latency
// percentile plot and a timeline (report_charts.h); per endpoint its latency plot, a table of
// its fields, side-by-side expected/actual exemplar bodies with the differing lines
// highlighted (<details>, open for regressions) and lines of normalized or ignored members
// marked quietly, noise (masked) fields in their own table, normalized and ignored paths
// listed. Everything taken from the traffic is escaped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "report/report.h"

namespace doppel::report {

struct HtmlOptions {
  size_t max_fields_with_exemplars = 10;  // per endpoint, regressions first
  bool show_passing_endpoints = true;     // endpoints without any difference, collapsed
};

std::string RenderHtml(const Report& report, const HtmlOptions& options = {});

// The page's start up to and including <body>: doctype, charset, the title (escaped) and the
// report's inline style sheet. Shared by RenderHtml and the run comparison (compare.h).
std::string HtmlPageStart(std::string_view title);

// & < > " ' as entities; invalid UTF-8 replaced by U+FFFD and control characters other than
// tab/CR/LF shown as "\xNN", so the text can go into element content or a quoted attribute.
std::string HtmlEscape(std::string_view text);

}  // namespace doppel::report
