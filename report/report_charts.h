// Inline SVG charts for the HTML report (report_html.h): no script, nothing external, fixed
// sizes in a viewBox so the page scales them. Every text taken from the report is escaped.
//
// The latency plot is a percentile plot: latency on a log x axis, the percentile on a "nines"
// y axis (y = -log10(1 - q): p50 at 0.3, p90 at 1, p99 at 2, p99.9 at 3), so the tail gets as
// much room as the median and a tail regression is visible at a glance. The candidate's curve
// is solid, the recorded primary's dashed; p50/p90/p99/p99.9 are marked on both.
//
// The timeline plots requests (grey area), mismatches (orange) and errors (red) per bucket of
// the report's Timeline.
#pragma once

#include <string>
#include <string_view>

#include "report/report.h"

namespace doppel::report {

// An <svg> element, or a short note when neither distribution has a value. `label` names the
// plot for screen readers (<title>); the names label the solid and the dashed curve (the
// comparison of two runs plots run B solid, run A dashed).
std::string LatencyPlotSvg(const v1::Latency& candidate, const v1::Latency& recorded,
                           std::string_view label, std::string_view solid_name = "candidate",
                           std::string_view dashed_name = "recorded primary");

// An <svg> element, or a short note when the timeline is empty.
std::string TimelineSvg(const v1::Timeline& timeline, std::string_view label);

}  // namespace doppel::report
