// ChildProcess: a real process for integration tests (doppel, doppel-echo, wrk), with stdout
// and stderr on pipes. Killed (SIGKILL) on destruction if still running, so a failing test
// never leaves processes behind.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "tests/base/temp_dir.h"

namespace doppel::testing {

class ChildProcess {
 public:
  // args[0] is the path of the program. `env` entries ("NAME=value") are added.
  explicit ChildProcess(std::vector<std::string> args, std::vector<std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads stdout until a line containing `marker`; returns the text after the marker on
  // that line ("" on EOF or timeout).
  std::string WaitForLine(const std::string& marker, int timeout_ms = 20000);
  // Waits for exit, draining both pipes; returns the exit code, 128+signal, or -1 on timeout.
  int Wait(int timeout_ms = 60000);
  void Signal(int sig);
  pid_t pid() const { return pid_; }
  std::string all_stdout() const { return seen_ + stdout_; }
  const std::string& all_stderr() const { return stderr_; }

 private:
  static bool ReadSome(int fd, std::string* into, int timeout_ms);
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool exited_ = false;
  std::string stdout_, stderr_, seen_;
};

// "listening on 127.0.0.1:PORT" -> PORT, from the text after the marker.
unsigned PortOf(const std::string& addr);

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed), for a child
// process that takes its port as a flag.
unsigned FreePort();

std::string DoppelBinary();
std::string EchoBinary();

}  // namespace doppel::testing
