#include "recorder/adaptive_mirror.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/units.h"
#include "net/match.h"

namespace doppel::recorder {

namespace {

std::string Percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%%", p);
  return buf;
}

std::string Ms(uint64_t us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3gms", static_cast<double>(us) / 1000.0);
  return buf;
}

Result<double> ParseBudgetPercent(const std::string& key, const std::string& value) {
  const bool has_sign = !value.empty() && value.back() == '%';
  const std::string number = has_sign ? value.substr(0, value.size() - 1) : value;
  char* end = nullptr;
  const double p = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !(p > 0 && p <= 100)) {
    return Status::InvalidArgument(key + "='" + value +
                                   "' must be a percentage above 0, up to 100%");
  }
  return p;
}

}  // namespace

std::string MirrorBudget::ToString() const {
  std::string out;
  auto add = [&out](const std::string& item) { out += (out.empty() ? "" : ",") + item; };
  if (p99_us) add("p99=" + Ms(*p99_us));
  if (cpu_percent) add("cpu=" + Percent(*cpu_percent));
  if (errors_percent) add("errors=" + Percent(*errors_percent));
  return out;
}

Result<MirrorBudget> ParseMirrorBudget(std::string_view text) {
  MirrorBudget budget;
  const std::string where = "--mirror-budget '" + std::string(text) + "'";
  if (text.empty()) {
    return Status::InvalidArgument(where + ": give at least one of p99=, cpu=, errors=");
  }
  for (const std::string& item : net::SplitItems(text)) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (eq == std::string::npos || value.empty()) {
      return Status::InvalidArgument(where + ": '" + item +
                                     "' is not KEY=VALUE; use p99=DURATION, cpu=PERCENT%, "
                                     "errors=PERCENT%");
    }
    if (key == "p99") {
      auto us = ParseDurationUs(value, 1000);
      if (!us.ok() || us.value() < 100) {
        return Status::InvalidArgument(where + ": p99='" + value +
                                       "' must be a duration of at least 100us, e.g. 20ms");
      }
      budget.p99_us = us.value();
    } else if (key == "cpu") {
      auto p = ParseBudgetPercent(key, value);
      if (!p.ok()) return p.status().WithContext(where);
      budget.cpu_percent = p.value();
    } else if (key == "errors") {
      auto p = ParseBudgetPercent(key, value);
      if (!p.ok()) return p.status().WithContext(where);
      budget.errors_percent = p.value();
    } else {
      return Status::InvalidArgument(where + ": unknown key '" + key +
                                     "'; known keys: p99, cpu, errors");
    }
  }
  if (budget.empty()) {
    return Status::InvalidArgument(where + ": give at least one of p99=, cpu=, errors=");
  }
  return budget;
}

AimdController::AimdController(double configured_percent, MirrorBudget budget)
    : configured_(configured_percent), budget_(std::move(budget)), effective_(configured_percent) {}

std::string AimdController::OverBudget(const AdaptiveSignals& s) const {
  if (budget_.p99_us && s.primary_p99_us && *s.primary_p99_us > *budget_.p99_us) {
    return "primary p99 " + Ms(*s.primary_p99_us) + " over budget " + Ms(*budget_.p99_us);
  }
  if (budget_.cpu_percent && s.cpu_percent && *s.cpu_percent > *budget_.cpu_percent) {
    return "process CPU " + Percent(*s.cpu_percent) + " over budget " +
           Percent(*budget_.cpu_percent);
  }
  if (budget_.errors_percent && s.errors_percent && *s.errors_percent > *budget_.errors_percent) {
    return "mirror failures " + Percent(*s.errors_percent) + " over budget " +
           Percent(*budget_.errors_percent);
  }
  return "";
}

std::string AimdController::Tick(const AdaptiveSignals& signals) {
  const double before = effective_;
  std::string reason = OverBudget(signals);
  decreased_ = !reason.empty();
  if (decreased_) {
    effective_ *= kDecrease;
    if (effective_ < configured_ * kFloorShare) effective_ = 0;
  } else {
    effective_ = std::min(configured_, effective_ + configured_ * kIncreaseShare);
    reason = "within budget";
  }
  if (effective_ == before) return "";
  last_reason_ = reason;
  return reason;
}

const char* AimdController::state() const {
  if (decreased_) return "backing off";
  return effective_ >= configured_ ? "steady" : "recovering";
}

void SignalWindow::Push(std::vector<uint64_t> values) {
  snapshots_.push_back(std::move(values));
  while (snapshots_.size() > ticks_ + 1) snapshots_.pop_front();
}

std::vector<uint64_t> SignalWindow::Delta() const {
  if (snapshots_.empty()) return {};
  const std::vector<uint64_t>& newest = snapshots_.back();
  const std::vector<uint64_t>& oldest = snapshots_.front();
  std::vector<uint64_t> out(newest.size());
  for (size_t i = 0; i < newest.size(); ++i) {
    out[i] = i < oldest.size() && newest[i] >= oldest[i] ? newest[i] - oldest[i] : 0;
  }
  return out;
}

uint64_t ProcessCpuUs() {
  std::ifstream in("/proc/self/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name (field 2) may hold spaces: fields are counted after its ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(stat.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) return 0;
  return (utime + stime) * 1'000'000ull / static_cast<unsigned long long>(hz);
}

}  // namespace doppel::recorder
