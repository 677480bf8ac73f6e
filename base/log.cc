#include "base/log.h"

#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <mutex>

#include "base/time_format.h"
#include "base/utf8.h"

namespace doppel::log {
namespace {

constexpr std::array<std::string_view, 4> kLevelNames = {"debug", "info", "warn", "error"};

std::atomic<Format> g_format{Format::kText};
std::atomic<Level> g_level{Level::kInfo};

std::mutex g_write_mu;
bool g_status_on_screen = false;  // guarded by g_write_mu: a rewritten status line, not ended

bool IsUtf8Clean(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// A JSON string: quotes, backslashes and control characters escaped (Boost.JSON's
// serializer), any invalid UTF-8 replaced first.
void AppendJsonString(std::string_view s, std::string* out) {
  *out += IsUtf8Clean(s) ? boost::json::serialize(s) : boost::json::serialize(SanitizeUtf8(s));
}

void AppendJsonValue(const boost::json::value& v, std::string* out) {
  if (v.is_string()) {
    AppendJsonString(v.get_string(), out);
  } else if (v.is_double() && !std::isfinite(v.get_double())) {
    *out += "null";  // JSON has no NaN or infinity
  } else if (v.is_double()) {
    // Shortest round-trip digits ("0.5", "12.25"); serialize() writes "5E-1".
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.get_double());
    if (ec == std::errc()) {
      out->append(buf, end);
    } else {
      *out += boost::json::serialize(v);
    }
  } else {
    *out += boost::json::serialize(v);
  }
}

bool Reserved(std::string_view key) {
  return key == "time" || key == "level" || key == "component" || key == "message";
}

// The whole of `line` to stderr: one write(2) unless the descriptor takes less at once.
void WriteAll(std::string_view line) {
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // stderr closed or full: a diagnostic is not worth stopping for
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<Level> ParseLevel(std::string_view name) {
  for (size_t i = 0; i < kLevelNames.size(); ++i) {
    if (kLevelNames[i] == name) return static_cast<Level>(i);
  }
  return std::nullopt;
}

std::optional<Format> ParseFormat(std::string_view name) {
  if (name == "text") return Format::kText;
  if (name == "json") return Format::kJson;
  return std::nullopt;
}

std::string_view LevelName(Level level) { return kLevelNames[static_cast<size_t>(level)]; }

void Configure(Format format, Level level) {
  g_format.store(format, std::memory_order_relaxed);
  g_level.store(level, std::memory_order_relaxed);
}

Format CurrentFormat() { return g_format.load(std::memory_order_relaxed); }

bool Enabled(Level level) { return level >= g_level.load(std::memory_order_relaxed); }

std::string FormatLine(Format format, int64_t unix_us, Level level, const Component& component,
                       std::string_view message, const boost::json::object& fields) {
  std::string out;
  if (format == Format::kText) {
    out.reserve(component.prefix.size() + message.size() + 3);
    if (!component.prefix.empty()) {
      out += component.prefix;
      out += ": ";
    }
    out += message;
    out += '\n';
    return out;
  }
  out.reserve(96 + message.size() + 24 * fields.size());
  out += "{\"time\":\"";
  out += FormatUtc(unix_us, 3);
  out += "\",\"level\":\"";
  out += LevelName(level);
  out += "\",\"component\":";
  AppendJsonString(component.name, &out);
  out += ",\"message\":";
  AppendJsonString(message, &out);
  for (const auto& [key, value] : fields) {
    out += ',';
    AppendJsonString(Reserved(key) ? "_" + std::string(key) : std::string(key), &out);
    out += ':';
    AppendJsonValue(value, &out);
  }
  out += "}\n";
  return out;
}

void Write(Level level, const Component& component, std::string_view message,
           const boost::json::object& fields) {
  if (!Enabled(level)) return;
  std::string line = FormatLine(CurrentFormat(), NowUs(), level, component, message, fields);
  std::lock_guard<std::mutex> lock(g_write_mu);
  if (g_status_on_screen) {
    line.insert(0, 1, '\n');
    g_status_on_screen = false;
  }
  WriteAll(line);
}

bool StatusRewrites() { return CurrentFormat() == Format::kText && ::isatty(STDERR_FILENO) == 1; }

void WriteStatus(Level level, const Component& component, std::string_view message,
                 const boost::json::object& fields) {
  if (!Enabled(level)) return;
  if (!StatusRewrites()) return Write(level, component, message, fields);
  std::string line = "\r\033[K";
  line += message;
  std::lock_guard<std::mutex> lock(g_write_mu);
  WriteAll(line);
  g_status_on_screen = true;
}

void ClearStatus() {
  std::lock_guard<std::mutex> lock(g_write_mu);
  if (!g_status_on_screen) return;
  WriteAll("\r\033[K");
  g_status_on_screen = false;
}

}  // namespace doppel::log
