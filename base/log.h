// The diagnostic lines doppel writes on stderr (docs/operations.md, "Logs"): one facility for
// every command and library, in two forms chosen once per process (`--log-format`):
//
//   text (the default): "PREFIX: MESSAGE", e.g. "doppel record: terminated, finishing ...",
//     exactly the lines doppel has always written; fields are not shown (the message already
//     says what they hold).
//   json: one object per line, keys in this order:
//     {"time":"2026-01-02T03:04:05.123Z","level":"info","component":"record",
//      "message":"...", <the fields, e.g. "requests":12,"stored":3>}
//     time: RFC 3339, UTC, milliseconds. level: debug|info|warn|error. A field named like one
//     of those four keys is written with a leading '_'. Text that is not UTF-8 is made so
//     (U+FFFD), so every line parses.
//
// Lines below the process's level (`--log-level`, default info) are not written. Each line
// is one write(2) to stderr under a process-wide mutex: lines of several threads never
// interleave. A command's result output (stdout) does not go through here.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel::log {

enum class Level : uint8_t { kDebug, kInfo, kWarn, kError };
enum class Format : uint8_t { kText, kJson };

// "debug", "info", "warn", "error" / "text", "json"; nullopt for anything else.
std::optional<Level> ParseLevel(std::string_view name);
std::optional<Format> ParseFormat(std::string_view name);
std::string_view LevelName(Level level);

// Who writes a line: its JSON "component", and the prefix of its text form ("doppel record"
// gives "doppel record: MESSAGE"; an empty prefix gives the message alone).
struct Component {
  std::string_view name;
  std::string_view prefix;
};

// The process's form and level. Call once at start, before other threads log; without a call:
// text, info.
void Configure(Format format, Level level);
Format CurrentFormat();
// Whether a line at `level` would be written.
bool Enabled(Level level);

// One line in `format` as Write writes it, '\n' included. `unix_us`: the line's time.
std::string FormatLine(Format format, int64_t unix_us, Level level, const Component& component,
                       std::string_view message, const boost::json::object& fields);

// Writes one line (unless `level` is below the process's level). Thread-safe.
void Write(Level level, const Component& component, std::string_view message,
           const boost::json::object& fields = {});
inline void Debug(const Component& c, std::string_view message,
                  const boost::json::object& fields = {}) {
  Write(Level::kDebug, c, message, fields);
}
inline void Info(const Component& c, std::string_view message,
                 const boost::json::object& fields = {}) {
  Write(Level::kInfo, c, message, fields);
}
inline void Warn(const Component& c, std::string_view message,
                 const boost::json::object& fields = {}) {
  Write(Level::kWarn, c, message, fields);
}
inline void Error(const Component& c, std::string_view message,
                  const boost::json::object& fields = {}) {
  Write(Level::kError, c, message, fields);
}

// A status line (record's counters, replay's progress). When StatusRewrites() (text form,
// stderr a terminal) it is the bare message rewritten in place ("\r", erase line, no newline),
// and the next Write first ends it with a newline so it stays on screen; otherwise it is a
// line like any other.
bool StatusRewrites();
void WriteStatus(Level level, const Component& component, std::string_view message,
                 const boost::json::object& fields = {});
// Erases a rewritten status line still on the terminal; nothing otherwise.
void ClearStatus();

}  // namespace doppel::log
