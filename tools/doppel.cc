// doppel: record HTTP traffic, replay it against a new build, diff the answers.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "audit/audit_log.h"
#include "base/log.h"
#include "tools/cli.h"

#ifndef DOPPEL_VERSION
#define DOPPEL_VERSION "dev"
#endif

namespace {

// The subcommands parsed, e.g. "sessions rm".
std::string CommandPath(const CLI::App& app) {
  std::string path;
  for (const CLI::App* at = &app;;) {
    const std::vector<CLI::App*> subs = at->get_subcommands();
    if (subs.empty()) return path;
    at = subs.front();
    path += (path.empty() ? "" : " ") + at->get_name();
  }
}

// A flag value `parse` accepts, or CLI11's usage error: "'X' is not a NOUN; use A, B or C".
template <class Parse>
CLI::Validator OneOf(Parse parse, std::string noun, std::string choices) {
  return CLI::Validator(
      [=](std::string& text) {
        return parse(text) ? std::string() : "'" + text + "' is not a " + noun + "; use " + choices;
      },
      "", "");
}

constexpr doppel::log::Component kAuditLog{"audit", "doppel"};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"doppel — record HTTP traffic, replay it against a new build, diff the answers"};
  app.set_version_flag("--version", std::string("doppel ") + DOPPEL_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  doppel::cli::GlobalOptions global;
  if (const char* env = std::getenv("DOPPEL_STORE"); env && *env) global.store = env;
  if (const char* env = std::getenv("DOPPEL_AUDIT_LOG"); env && *env) global.audit_log = env;
  const std::vector<std::string> args(argv + 1, argv + argc);
  global.command_line = argv[0];
  for (const std::string& a : doppel::audit::MaskArguments(args)) global.command_line += " " + a;
  app.add_option("--store", global.store,
                 "store directory (default ./doppel-data, or $DOPPEL_STORE)");
  app.add_option("--audit-log", global.audit_log,
                 "append a hash-chained JSON line per action to FILE (mode 0600), or 'syslog' "
                 "(default $DOPPEL_AUDIT_LOG; check with `doppel audit verify FILE`)");
  app.add_option("--log-format", global.log_format,
                 "diagnostics on stderr as text (default) or json: one object a line with time, "
                 "level, component, message and fields (docs/operations.md)")
      ->check(OneOf(doppel::log::ParseFormat, "log format", "text or json"));
  app.add_option("--log-level", global.log_level,
                 "leave out diagnostics below this level: debug, info (default), warn or error")
      ->check(OneOf(doppel::log::ParseLevel, "log level", "debug, info, warn or error"));

  doppel::cli::Runner run;
  doppel::cli::AddStoreCommands(app, global, &run);
  doppel::cli::AddRecordCommand(app, global, &run);
  doppel::cli::AddReplayCommands(app, global, &run);
  doppel::cli::AddNoiseCommands(app, global, &run);
  doppel::cli::AddAuditCommands(app, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; real usage errors exit 2 with CLI11's message.
    int code = app.exit(e);
    return code == 0 ? 0 : doppel::cli::kExitError;
  }
  if (!run) {
    std::cerr << app.help();
    return doppel::cli::kExitError;
  }
  // Checked by the flags' validators above.
  doppel::log::Configure(*doppel::log::ParseFormat(global.log_format),
                         *doppel::log::ParseLevel(global.log_level));

  // Every command but `audit verify` (which reads the log, not traffic or recordings) is
  // audited: a line before it runs and one with its result.
  const std::string command = CommandPath(app);
  std::unique_ptr<doppel::audit::AuditLog> audit;
  if (!global.audit_log.empty() && command != "audit verify") {
    auto opened = doppel::audit::AuditLog::Open(global.audit_log);
    if (!opened.ok()) {
      doppel::log::Error(kAuditLog, opened.status().message());
      return doppel::cli::kExitError;
    }
    audit = std::move(opened.value());
    global.audit = audit.get();
  }
  boost::json::object notes;
  global.audit_notes = &notes;
  const auto started = std::chrono::steady_clock::now();
  doppel::cli::AuditStart(global, command, args);
  const int code = run();
  doppel::cli::AuditEnd(global, command, code,
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count());
  return code;
}
