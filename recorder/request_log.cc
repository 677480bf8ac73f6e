#include "recorder/request_log.h"

#include <boost/beast/core/string.hpp>

namespace doppel::recorder {

namespace {

void AppendEscaped(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      *out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      *out += "\\x";
      *out += kHex[c >> 4];
      *out += kHex[c & 15];
    } else {
      out->push_back(ch);
    }
  }
}

// With --no-redact the store keeps these verbatim, but a log still does not.
bool IsDefaultSensitive(std::string_view name) {
  for (const std::string& h : redact::Redactor::DefaultHeaders()) {
    if (boost::beast::iequals(h, name)) return true;
  }
  return false;
}

}  // namespace

std::string DescribeRequestForLog(const boost::beast::http::request_header<>& head,
                                  std::string_view body, const redact::Redactor* redactor,
                                  size_t max_body) {
  std::string out;
  AppendEscaped(head.method_string(), &out);
  out += ' ';
  AppendEscaped(head.target(), &out);
  out += " HTTP/" + std::to_string(head.version() / 10) + "." + std::to_string(head.version() % 10);
  for (const auto& f : head) {
    out += " | ";
    AppendEscaped(f.name_string(), &out);
    out += ": ";
    if (redactor != nullptr && redactor->ShouldRedact(f.name_string())) {
      out += redactor->Hash(f.value());
    } else if (redactor == nullptr && IsDefaultSensitive(f.name_string())) {
      out += "(" + std::to_string(f.value().size()) + " bytes, not logged)";
    } else {
      AppendEscaped(f.value(), &out);
    }
  }
  out += " | body " + std::to_string(body.size()) + " bytes";
  if (!body.empty()) {
    out += ": \"";
    AppendEscaped(body.substr(0, max_body), &out);
    out += body.size() > max_body ? "\"..." : "\"";
  }
  return out;
}

void RateLimitedLog::Write(log::Level level, const std::string& message,
                           const boost::json::object& fields) {
  if (!log::Enabled(level)) return;
  uint64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - window_ >= std::chrono::seconds(1)) {
      window_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= per_second_) {
      ++suppressed_;
      return;
    }
    ++in_window_;
    suppressed = suppressed_;
    suppressed_ = 0;
  }
  if (suppressed > 0) {
    log::Write(level, component_, "(" + std::to_string(suppressed) + " similar lines left out)",
               {{"left_out", suppressed}});
  }
  log::Write(level, component_, message, fields);
}

}  // namespace doppel::recorder
