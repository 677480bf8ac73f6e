// RedisServer: a real redis-server for tests, on 127.0.0.1 and a free port, with nothing
// persisted (--save '' --appendonly no), its files in a temp directory. Killed with the test.
#pragma once

#include <memory>
#include <string>

#include "tests/integration/child_process.h"

namespace doppel::testing {

class RedisServer {
 public:
  // `password` set: --requirepass. Start() must be called.
  explicit RedisServer(std::string password = "");
  ~RedisServer();

  // Starts redis-server (again on the same port after Stop) and waits until it accepts
  // connections. False (with the reason in error()) when it did not within 20 s.
  bool Start();
  // Stops it (SIGTERM, then waits for the exit).
  void Stop();

  unsigned port() const { return port_; }
  // "redis://127.0.0.1:PORT/STREAM", with ":PASSWORD@" when the server has one.
  std::string Url(const std::string& stream) const;
  const std::string& error() const { return error_; }

 private:
  std::string password_, dir_, error_;
  unsigned port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace doppel::testing
