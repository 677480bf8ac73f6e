// `doppel audit verify FILE`, and the audit lines every other command writes with
// --audit-log (audit/audit_log.h, docs/security.md "Audit log").
#include <boost/json/array.hpp>
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

namespace doppel::cli {
namespace {

constexpr log::Component kAuditLog{"audit", "doppel"};

// Exit codes of `audit verify`: 0 intact, 1 a bad line, 2 the file cannot be read.
int Verify(const std::string& file) {
  auto verdict = audit::VerifyAuditFile(file);
  if (!verdict.ok()) {
    log::Error({"audit", "doppel audit verify"}, verdict.status().message());
    return kExitError;
  }
  if (!verdict->intact) {
    std::cout << file << ": NOT intact: " << verdict->problem << " (line " << verdict->bad_line
              << " of " << verdict->lines << " read)\n";
    return kExitRegressions;
  }
  if (verdict->lines == 0) {
    std::cout << file << ": intact, empty\n";
    return kExitOk;
  }
  std::cout << file << ": intact, " << verdict->lines << " lines; SHA-256 of the last line "
            << verdict->last_hash
            << " (keep it elsewhere: a later verify that prints it for the same line shows that "
               "nothing after it was removed)\n";
  return kExitOk;
}

void Append(const GlobalOptions& global, boost::json::object entry) {
  if (global.audit == nullptr) return;
  Status s = global.audit->Append(entry);
  if (!s.ok()) {
    log::Warn(kAuditLog,
              "warning: audit line not written: " + s.message() + " (the command goes on)");
  }
}

}  // namespace

void AuditStart(const GlobalOptions& global, const std::string& command,
                const std::vector<std::string>& args) {
  boost::json::array masked;
  for (const std::string& a : audit::MaskArguments(args)) masked.emplace_back(a);
  Append(global, {{"command", command},
                  {"event", "start"},
                  {"args", std::move(masked)},
                  {"store", global.store},
                  {"version", DOPPEL_VERSION}});
}

void AuditEnd(const GlobalOptions& global, const std::string& command, int exit_code,
              uint64_t duration_ms) {
  if (global.audit == nullptr) return;
  boost::json::object entry{{"command", command},
                            {"event", "end"},
                            {"result", exit_code == kExitOk            ? "ok"
                                       : exit_code == kExitRegressions ? "regressions"
                                                                       : "error"},
                            {"exit_code", exit_code},
                            {"duration_ms", duration_ms}};
  if (global.audit_notes != nullptr) {
    for (const auto& [key, value] : *global.audit_notes) entry[key] = value;
  }
  Append(global, std::move(entry));
  if (const uint64_t failed = global.audit->failed_writes(); failed > 0) {
    log::Warn(
        kAuditLog,
        std::to_string(failed) + " audit line(s) could not be written to " + global.audit->where(),
        {{"failed", failed}, {"audit_log", global.audit->where()}});
  }
}

void WriteAudit(const GlobalOptions& global, const std::string& command,
                boost::json::object entry) {
  entry["command"] = command;
  Append(global, std::move(entry));
}

void AddAuditCommands(CLI::App& app, Runner* run) {
  auto* audit = app.add_subcommand("audit", "check an audit log (--audit-log)");
  audit->require_subcommand(1);
  auto* verify = audit->add_subcommand(
      "verify",
      "check an audit log's hash chain: exit 0 when intact, 1 naming the first line changed, "
      "removed or reordered, 2 when it cannot be read");
  auto file = std::make_shared<std::string>();
  verify->add_option("FILE", *file, "the audit log file")->required();
  verify->callback([run, file] { *run = [file] { return Verify(*file); }; });
}

}  // namespace doppel::cli
