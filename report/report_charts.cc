#include "report/report_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "report/report_html.h"

namespace doppel::report {
namespace {

// Plot geometry (viewBox units).
constexpr double kWidth = 560;
constexpr double kLeft = 56, kRight = 524;  // plot area, x (room for the last label)
constexpr double kMaxNines = 4;             // the top of the y axis: p99.99

constexpr std::string_view kCandidateColor = "#1a73e8";
constexpr std::string_view kRecordedColor = "#5f6368";

// Coordinates with one decimal: enough for a screen, and stable text for the golden file.
std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

double Nines(double q) {
  if (q >= 1) return kMaxNines;
  return std::min(kMaxNines, -std::log10(1 - q));
}

class LatencyAxes {
 public:
  LatencyAxes(double lo_decade, double hi_decade, double top, double bottom)
      : lo_(lo_decade), hi_(hi_decade), top_(top), bottom_(bottom) {}
  double X(uint64_t us) const {
    double l = std::log10(static_cast<double>(std::max<uint64_t>(us, 1)));
    return kLeft + (l - lo_) / (hi_ - lo_) * (kRight - kLeft);
  }
  double Y(double nines) const { return bottom_ - nines / kMaxNines * (bottom_ - top_); }

 private:
  double lo_, hi_, top_, bottom_;
};

// The step curve of one distribution: at each bucket's highest value, the share of values
// up to it.
std::string Curve(const v1::Latency& l, const LatencyAxes& axes, std::string_view color,
                  bool dashed, std::string_view name) {
  if (l.count() == 0 || l.bucket_le_us_size() == 0) return "";
  std::string points;
  uint64_t seen = 0;
  double previous_y = axes.Y(0);
  for (int i = 0; i < l.bucket_le_us_size() && i < l.bucket_counts_size(); ++i) {
    const double x = axes.X(l.bucket_le_us(i));
    seen += l.bucket_counts(i);
    const double y = axes.Y(Nines(static_cast<double>(seen) / static_cast<double>(l.count())));
    points += Num(x) + "," + Num(previous_y) + " " + Num(x) + "," + Num(y) + " ";
    previous_y = y;
  }
  points.pop_back();
  std::string out = "<polyline fill=\"none\" stroke=\"" + std::string(color) +
                    "\" stroke-width=\"2\"" +
                    (dashed ? std::string(" stroke-dasharray=\"5 3\"") : std::string()) +
                    " points=\"" + points + "\"/>\n";
  for (const MarkedPercentile& p : kMarkedPercentiles) {
    const uint64_t v = (l.*p.value)();
    out += "<circle class=\"mark\" cx=\"" + Num(axes.X(v)) + "\" cy=\"" +
           Num(axes.Y(Nines(p.percent / 100))) + "\" r=\"3.5\" fill=\"" + std::string(color) +
           "\"><title>" + HtmlEscape(name) + " " + std::string(p.name) + " " + FormatLatency(v) +
           "</title></circle>\n";
  }
  return out;
}

// A legend entry at (x, y): a short line and its label.
std::string LegendEntry(double x, double y, std::string_view color, bool dashed,
                        std::string_view text) {
  return "<line x1=\"" + Num(x) + "\" y1=\"" + Num(y - 4) + "\" x2=\"" + Num(x + 18) + "\" y2=\"" +
         Num(y - 4) + "\" stroke=\"" + std::string(color) + "\" stroke-width=\"" +
         (dashed ? std::string("2\" stroke-dasharray=\"5 3\"") : std::string("2\"")) +
         "/><text x=\"" + Num(x + 22) + "\" y=\"" + Num(y) + "\">" + HtmlEscape(text) + "</text>\n";
}

std::string SvgOpen(std::string_view cls, double height, std::string_view label) {
  return "<svg class=\"chart " + std::string(cls) + "\" xmlns=\"http://www.w3.org/2000/svg\" " +
         "viewBox=\"0 0 " + Num(kWidth) + " " + Num(height) + "\" role=\"img\"><title>" +
         HtmlEscape(label) + "</title>\n";
}

}  // namespace

std::string LatencyPlotSvg(const v1::Latency& candidate, const v1::Latency& recorded,
                           std::string_view label, std::string_view solid_name,
                           std::string_view dashed_name) {
  if (candidate.count() == 0 && recorded.count() == 0) {
    return "<p class=\"meta\">no latency to plot (no responses)</p>\n";
  }
  constexpr double kHeight = 230, kTop = 24, kBottom = 196;
  // The x axis spans whole decades around both distributions.
  uint64_t lo = UINT64_MAX, hi = 1;
  for (const v1::Latency* l : {&candidate, &recorded}) {
    if (l->count() == 0 || l->bucket_le_us_size() == 0) continue;
    lo = std::min(lo, l->bucket_le_us(0));
    hi = std::max(hi, l->max_us());
  }
  if (lo == UINT64_MAX) lo = 1;
  double lo_decade = std::floor(std::log10(static_cast<double>(std::max<uint64_t>(lo, 1))));
  double hi_decade = std::ceil(std::log10(static_cast<double>(std::max<uint64_t>(hi, 1))));
  if (hi_decade <= lo_decade) hi_decade = lo_decade + 1;
  const LatencyAxes axes(lo_decade, hi_decade, kTop, kBottom);

  std::string out = SvgOpen("latency", kHeight, label);
  out += "<g class=\"axes\">\n";
  for (const MarkedPercentile& p : kMarkedPercentiles) {
    const double y = axes.Y(Nines(p.percent / 100));
    out += "<line class=\"grid\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(y) + "\" x2=\"" +
           Num(kRight) + "\" y2=\"" + Num(y) + "\"/><text x=\"" + Num(kLeft - 6) + "\" y=\"" +
           Num(y + 4) + "\" text-anchor=\"end\">" + std::string(p.name) + "</text>\n";
  }
  for (double d = lo_decade; d <= hi_decade; ++d) {
    const auto us = static_cast<uint64_t>(std::llround(std::pow(10.0, d)));
    const double x = axes.X(us);
    out += "<line class=\"grid\" x1=\"" + Num(x) + "\" y1=\"" + Num(kTop) + "\" x2=\"" + Num(x) +
           "\" y2=\"" + Num(kBottom) + "\"/><text x=\"" + Num(x) + "\" y=\"" + Num(kBottom + 16) +
           "\" text-anchor=\"middle\">" + FormatLatency(us) + "</text>\n";
  }
  out += "<line class=\"axis\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(kBottom) + "\" x2=\"" +
         Num(kRight) + "\" y2=\"" + Num(kBottom) + "\"/>\n</g>\n";
  out += Curve(recorded, axes, kRecordedColor, /*dashed=*/true, dashed_name);
  out += Curve(candidate, axes, kCandidateColor, /*dashed=*/false, solid_name);
  out += "<g class=\"legend\">\n" +
         LegendEntry(kLeft + 8, 14, kCandidateColor, false,
                     std::string(solid_name) + " (" + std::to_string(candidate.count()) + ")") +
         LegendEntry(kLeft + 188, 14, kRecordedColor, true,
                     std::string(dashed_name) + " (" + std::to_string(recorded.count()) + ")") +
         "</g>\n</svg>\n";
  return out;
}

std::string TimelineSvg(const v1::Timeline& timeline, std::string_view label) {
  const int n =
      std::min({timeline.requests_size(), timeline.mismatches_size(), timeline.errors_size()});
  if (n == 0) return "<p class=\"meta\">no timeline (no requests)</p>\n";
  constexpr double kHeight = 190, kTop = 24, kBottom = 156;
  uint64_t peak = 1;
  for (int i = 0; i < n; ++i) peak = std::max(peak, timeline.requests(i));
  const double step = (kRight - kLeft) / n;
  auto x = [&](int i) { return kLeft + step * i; };
  auto y = [&](uint64_t v) {
    return kBottom - static_cast<double>(v) / static_cast<double>(peak) * (kBottom - kTop);
  };
  // A step line over the buckets of one series.
  auto steps = [&](const google::protobuf::RepeatedField<uint64_t>& values) {
    std::string points;
    for (int i = 0; i < n; ++i) {
      points += Num(x(i)) + "," + Num(y(values.Get(i))) + " " + Num(x(i + 1)) + "," +
                Num(y(values.Get(i))) + " ";
    }
    points.pop_back();
    return points;
  };
  const uint64_t seconds = std::max<uint32_t>(timeline.bucket_seconds(), 1);
  std::string out = SvgOpen("timeline", kHeight, label);
  out += "<g class=\"axes\">\n";
  for (uint64_t v : {uint64_t{0}, peak / 2, peak}) {
    if (v == 0 && peak == 0) continue;
    out += "<line class=\"grid\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(y(v)) + "\" x2=\"" +
           Num(kRight) + "\" y2=\"" + Num(y(v)) + "\"/><text x=\"" + Num(kLeft - 6) + "\" y=\"" +
           Num(y(v) + 4) + "\" text-anchor=\"end\">" + std::to_string(v) + "</text>\n";
  }
  for (int i : {0, n / 2, n}) {
    out += "<text x=\"" + Num(x(i)) + "\" y=\"" + Num(kBottom + 16) +
           "\" text-anchor=\"middle\">+" + std::to_string(static_cast<uint64_t>(i) * seconds) +
           "s</text>\n";
  }
  out += "</g>\n";
  out += "<polygon class=\"requests\" fill=\"#dadce0\" points=\"" + Num(kLeft) + "," +
         Num(kBottom) + " " + steps(timeline.requests()) + " " + Num(x(n)) + "," + Num(kBottom) +
         "\"/>\n";
  out +=
      "<polyline class=\"mismatches\" fill=\"none\" stroke=\"#e37400\" stroke-width=\"2\" "
      "points=\"" +
      steps(timeline.mismatches()) + "\"/>\n";
  out +=
      "<polyline class=\"errors\" fill=\"none\" stroke=\"#d93025\" stroke-width=\"2\" "
      "points=\"" +
      steps(timeline.errors()) + "\"/>\n";
  const std::string per = "per " + std::to_string(seconds) + "s";
  out += "<g class=\"legend\">\n" +
         LegendEntry(kLeft + 8, 14, "#9aa0a6", false, "requests " + per) +
         LegendEntry(kLeft + 160, 14, "#e37400", false, "mismatches") +
         LegendEntry(kLeft + 270, 14, "#d93025", false, "errors") + "</g>\n</svg>\n";
  return out;
}

}  // namespace doppel::report
