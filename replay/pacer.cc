#include "replay/pacer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/units.h"

namespace doppel::replay {

namespace {
std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}
}  // namespace

std::string PacingSpec::ToString() const {
  switch (mode) {
    case Mode::kRate:
      if (ramp_us == 0) return "rate=" + Num(rate_from);
      return "rate=" + Num(rate_from) + ":" + Num(rate_to) + ":" + Num(ramp_us / 1e6) + "s";
    case Mode::kSpeed:
      return "speed=" + Num(speed);
    case Mode::kMax:
      return "max";
  }
  return "?";
}

uint64_t PacingSpec::ThinkTimeUs(uint64_t recorded_gap_us) const {
  switch (mode) {
    case Mode::kRate:
      return recorded_gap_us;
    case Mode::kSpeed:
      return static_cast<uint64_t>(static_cast<double>(std::min(recorded_gap_us, max_gap_us)) /
                                   speed);
    case Mode::kMax:
      return 0;
  }
  return 0;
}

Result<PacingSpec> ParseRate(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("--rate '" + std::string(text) + "': " + why +
                                   " (use R, e.g. 500, or a ramp FROM:TO:OVER, e.g. 100:2000:60s)");
  };
  auto number = [](std::string_view s, double* out) {
    std::string str(s);
    char* end = nullptr;
    *out = std::strtod(str.c_str(), &end);
    return !str.empty() && end && *end == '\0' && std::isfinite(*out);
  };
  PacingSpec spec;
  spec.mode = PacingSpec::Mode::kRate;
  size_t c1 = text.find(':');
  if (c1 == std::string_view::npos) {
    if (!number(text, &spec.rate_from) || spec.rate_from <= 0) return bad("not a positive rate");
    spec.rate_to = spec.rate_from;
    return spec;
  }
  size_t c2 = text.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return bad("a ramp needs three parts");
  if (!number(text.substr(0, c1), &spec.rate_from) || spec.rate_from <= 0)
    return bad("FROM is not a positive rate");
  if (!number(text.substr(c1 + 1, c2 - c1 - 1), &spec.rate_to) || spec.rate_to <= 0)
    return bad("TO is not a positive rate");
  auto over = ParseDurationUs(text.substr(c2 + 1));
  if (!over.ok() || *over == 0) return bad("OVER is not a positive duration");
  spec.ramp_us = *over;
  return spec;
}

uint64_t Pacer::RateDueUs(const PacingSpec& spec, uint64_t index) {
  return DueOfCount(spec, static_cast<double>(index));
}

void Pacer::SetShare(double share) {
  if (!(share > 0) || share > 1 || share == share_) return;
  share_count_ += static_cast<double>(index_ - share_index_) / share_;
  share_index_ = index_;
  share_ = share;
}

uint64_t Pacer::DueOfCount(const PacingSpec& spec, double i) {
  const double r0 = spec.rate_from, r1 = spec.rate_to;
  if (spec.ramp_us == 0 || r0 == r1) return static_cast<uint64_t>(std::llround(i / r0 * 1e6));
  // Requests sent by time t (s) during the ramp: N(t) = r0 t + (r1 - r0) t² / (2T).
  const double T = spec.ramp_us / 1e6;
  const double a = (r1 - r0) / (2 * T);
  const double n_ramp = r0 * T + a * T * T;  // requests sent during the whole ramp
  double t;
  if (i <= n_ramp) {
    // Solve a t² + r0 t - i = 0 for the positive root, in a form stable for small a.
    t = 2 * i / (r0 + std::sqrt(r0 * r0 + 4 * a * i));
  } else {
    t = T + (i - n_ramp) / r1;
  }
  return static_cast<uint64_t>(std::llround(t * 1e6));
}

uint64_t Pacer::Next(uint64_t recorded_us) {
  switch (spec_.mode) {
    case PacingSpec::Mode::kMax:
      ++index_;
      return 0;
    case PacingSpec::Mode::kRate: {
      const double count = share_count_ + static_cast<double>(index_++ - share_index_) / share_;
      return DueOfCount(spec_, count);
    }
    case PacingSpec::Mode::kSpeed: {
      if (have_prev_ && recorded_us > prev_recorded_us_) {
        uint64_t gap = recorded_us - prev_recorded_us_;
        if (gap > spec_.max_gap_us) gap = spec_.max_gap_us;
        due_us_ += gap / spec_.speed;
      }
      // An earlier timestamp than the previous one is a zero gap; the reference stays at
      // the latest time seen so one outlier cannot cause a long sleep later either.
      if (!have_prev_ || recorded_us > prev_recorded_us_) prev_recorded_us_ = recorded_us;
      have_prev_ = true;
      ++index_;
      return static_cast<uint64_t>(due_us_);
    }
  }
  return 0;
}

}  // namespace doppel::replay
