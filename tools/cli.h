// The doppel command line: each command family registers itself on the CLI11 app.
//
// A command's Add* function declares its options on `app` and, in the subcommand's
// callback, stores what to run in *run; main() runs it after parsing succeeded. A runner
// returns the process exit code: 0 ok, 1 regressions found, 2 usage/configuration/runtime
// error (with a message on stderr that says what to fix).
#pragma once

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <string>

namespace doppel::audit {
class AuditLog;
}
namespace doppel::redact {
struct RedactOptions;
}

namespace doppel::cli {

struct GlobalOptions {
  std::string store = "./doppel-data";  // --store, or $DOPPEL_STORE
  std::string command_line;             // argv joined (secrets masked), for run records
  std::string audit_log;                // --audit-log FILE|syslog, or $DOPPEL_AUDIT_LOG
  std::string log_format = "text";      // --log-format text|json (base/log.h)
  std::string log_level = "info";       // --log-level debug|info|warn|error
  // The open audit log (null without --audit-log), for lines a command writes while it runs
  // (record: "listening"; config reloads will write theirs here too) through WriteAudit.
  audit::AuditLog* audit = nullptr;
  // Fields a command adds to its audit "end" line: record its session and counts, replay its
  // run and outcome. main() owns the object; never null while a runner runs.
  boost::json::object* audit_notes = nullptr;
};

using Runner = std::function<int()>;

inline constexpr int kExitOk = 0;
inline constexpr int kExitRegressions = 1;
inline constexpr int kExitError = 2;

// tools/cmd_store.cc: sessions list|show|rm|retain, cat, export, import, runs list|rm.
void AddStoreCommands(CLI::App& app, const GlobalOptions& global, Runner* run);

// tools/cmd_replay.cc: replay, report.
void AddReplayCommands(CLI::App& app, const GlobalOptions& global, Runner* run);

// tools/cmd_record.cc: record (the capture proxy).
void AddRecordCommand(CLI::App& app, const GlobalOptions& global, Runner* run);

// tools/cmd_record.cc: --no-redact, --redact-header, --redact-query, --redact-json-path, the
// redaction flags `record` and `import` share (redact/redactor.h).
void AddRedactFlags(CLI::App* cmd, redact::RedactOptions* options);

// tools/cmd_noise.cc: noise learn.
void AddNoiseCommands(CLI::App& app, const GlobalOptions& global, Runner* run);

// tools/cmd_audit.cc: audit verify.
void AddAuditCommands(CLI::App& app, Runner* run);

// tools/cmd_audit.cc: the audit lines of one command, written by main() around its runner:
// "start" (the masked arguments) before it, "end" (result, exit code, duration and
// *global.audit_notes) after it. A line that cannot be written is reported on stderr and
// counted; the command goes on. No-ops without an audit log.
void AuditStart(const GlobalOptions& global, const std::string& command,
                const std::vector<std::string>& args);
void AuditEnd(const GlobalOptions& global, const std::string& command, int exit_code,
              uint64_t duration_ms);
// Writes one more line of `command` while it runs (`entry` holds "event" and its fields).
void WriteAudit(const GlobalOptions& global, const std::string& command, boost::json::object entry);

}  // namespace doppel::cli
