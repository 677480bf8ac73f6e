// The doppel command line: each command family registers itself on the CLI11 app.
//
// A command's Add* function declares its options on `app` and, in the subcommand's
// callback, stores what to run in *run; main() runs it after parsing succeeded. A runner
// returns the process exit code: 0 ok, 1 regressions found, 2 usage/configuration/runtime
// error (with a message on stderr that says what to fix).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace doppel::redact {
struct RedactOptions;
}

namespace doppel::cli {

struct GlobalOptions {
  std::string store = "./doppel-data";  // --store, or $DOPPEL_STORE
  std::string command_line;             // argv joined, for run records
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

}  // namespace doppel::cli
