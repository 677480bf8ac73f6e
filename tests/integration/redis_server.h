// RedisServer: a real redis-server for tests, on 127.0.0.1 and a free port, with nothing
// persisted (--save '' --appendonly no), its files in a temp directory. Killed with the test.
// RedisCluster: three of them in cluster mode, joined with `redis-cli --cluster create`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/child_process.h"

namespace doppel::testing {

class RedisServer {
 public:
  // `password` set: --requirepass. `cluster`: --cluster-enabled, with its bus on another
  // free port. Start() must be called.
  explicit RedisServer(std::string password = "", bool cluster = false);
  ~RedisServer();

  // TLS only (before Start): the port is a tls-port with this PEM certificate and key;
  // client certificates signed by `ca` are asked for, and required when `require_client_cert`.
  void UseTls(std::string cert, std::string key, std::string ca, bool require_client_cert);

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
  unsigned bus_port_ = 0;  // cluster mode only
  std::vector<std::string> tls_args_;
  std::unique_ptr<ChildProcess> process_;
};

class RedisCluster {
 public:
  RedisCluster();
  // Starts three masters, assigns them the 16384 slots (redis-cli --cluster create) and waits
  // until every node says cluster_state:ok. False (reason in error()) when that fails.
  bool Start();
  RedisServer& node(size_t i) { return *nodes_[i]; }
  size_t size() const { return nodes_.size(); }
  const std::string& error() const { return error_; }

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
  std::string error_;
};

}  // namespace doppel::testing
