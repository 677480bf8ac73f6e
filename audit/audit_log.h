// The audit log: one JSON line per doppel action that touches production traffic or recorded
// data (docs/security.md, "Audit log"), tamper-evident by a hash chain.
//
// Line format (one JSON object, one line, '\n'-terminated; keys in this order):
//   {"time":"2026-12-04T14:10:00.123Z","user":{"uid":1000,"name":"ana"},"host":"box",
//    "pid":4242,<the entry's own fields: command, event, args, result, ...>,
//    "seq":7,"prev":"<64 hex digits>"}
// `seq` counts the lines of one chain from 1. `prev` is the SHA-256 (hex) of the previous line
// of the file, its bytes without the newline; the first line of a chain carries
// "chain":"start" and a random 256-bit nonce as `prev`, so two files never share a chain.
// VerifyAuditFile walks the chain: a line changed, removed or reordered breaks it at that line
// (a changed line: the next line's `prev` no longer matches it; a removed or reordered one:
// `seq` jumps). The last line of a file has no successor: that it was not changed or removed
// is shown only by comparing with a copy of its hash kept elsewhere (the verifier prints it),
// or with the same lines sent to syslog.
//
// Several processes may append to one file: each append takes an exclusive flock(2) on it,
// reads the last line, and writes the new line with one write(2) on an O_APPEND descriptor,
// so lines never interleave and each one chains to the line written just before it. A writer
// that does not take the lock (another program) can break the chain; flock on NFS is only as
// good as the NFS locking. Logrotate with `create` (move, then a new file) starts a new chain
// in the new file; `copytruncate` would race with writers and is not supported.
//
// Writing never stops the caller: Append returns an error (disk full, lock not had within
// kLockWait) and counts it; the command goes on and reports the count.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::audit {

// The SHA-256 of `data`, 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);

// `args` (argv without the program) with secrets masked as "***": the password of any URL
// (scheme://user:PASSWORD@host, e.g. redis://:PASSWORD@host/stream), the values of
// --set-header and --mirror-set-header (Name=***), and of set-header=Name:VALUE items of a
// --mirror spec. Both "--flag VALUE" and "--flag=VALUE" are understood. File names stay (a
// key file's name is not its contents; doppel never logs contents).
std::vector<std::string> MaskArguments(const std::vector<std::string>& args);

class AuditLog {
 public:
  // Where "syslog" sends lines, as syslog(3) does.
  static constexpr const char* kSyslogSocket = "/dev/log";

  // How long Append waits for another process's lock before it gives up on the line.
  static constexpr std::chrono::milliseconds kLockWait{5000};

  // `where`: "syslog" (as syslog(3) sends them: a datagram per line to /dev/log, facility
  // LOG_AUTHPRIV, ident "doppel-audit"; the chain then spans this process's lines),
  // "syslog:SOCKET" (the same to another Unix socket: a daemon listening elsewhere, or a
  // test's own socket), or a file, created with mode 0600 when missing and appended to.
  // InvalidArgument naming the file when it cannot be opened for appending. A syslog socket
  // is connected at the first line; a line it does not take is an error of that Append.
  static Result<std::unique_ptr<AuditLog>> Open(const std::string& where);
  ~AuditLog();

  // Appends one line: time, user, host and pid, then `entry`'s fields, then seq and prev (a
  // field of `entry` with one of those names is replaced). Thread-safe. An error (the line
  // was not written whole) is counted in failed_writes(); the caller goes on.
  Status Append(const boost::json::object& entry);

  const std::string& where() const { return where_; }
  uint64_t failed_writes() const;

 private:
  AuditLog(std::string where, int fd);
  // The line to write given the previous line's hash and seq (0 before the first line).
  std::string Compose(const boost::json::object& entry, const std::string& prev, uint64_t seq,
                      bool start) const;
  Status AppendToFile(const boost::json::object& entry);
  Status SendToSyslog(const std::string& line);  // mu_ held

  const std::string where_;
  const int fd_;  // -1: syslog
  mutable std::mutex mu_;
  uint64_t failed_ = 0;         // guarded by mu_
  std::string syslog_prev_;     // guarded by mu_; syslog only
  uint64_t syslog_seq_ = 0;     // guarded by mu_; syslog only
  std::string syslog_socket_;   // syslog only: the socket's path
  int syslog_fd_ = -1;          // guarded by mu_; connected at the first line
  bool syslog_stream_ = false;  // guarded by mu_; a SOCK_STREAM socket (NUL-terminated lines)
  std::string user_, host_;     // who and where, read once
  uint32_t uid_ = 0;
  int pid_ = 0;
};

// What VerifyAuditFile found.
struct AuditVerdict {
  bool intact = false;
  uint64_t lines = 0;     // lines read
  uint64_t bad_line = 0;  // 1-based; the first line that is not what the chain says (!intact)
  std::string problem;    // what is wrong with it, for the user (!intact)
  std::string last_hash;  // SHA-256 of the last line (intact, lines > 0): keep it elsewhere
};

// Reads and checks an audit log file (see the format above). IoError when it cannot be read;
// otherwise the verdict.
Result<AuditVerdict> VerifyAuditFile(const std::string& path);
// The same for a file's contents.
AuditVerdict VerifyAuditText(std::string_view text);

}  // namespace doppel::audit
