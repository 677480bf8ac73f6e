#include "tests/integration/redis_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace doppel::testing {
namespace {

bool Accepts(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

RedisServer::RedisServer(std::string password, bool cluster)
    : password_(std::move(password)), port_(FreePort()), bus_port_(cluster ? FreePort() : 0) {
  dir_ = MakeTempDir("redis-" + std::to_string(port_));  // a cluster's nodes share a process
}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::UseTls(std::string cert, std::string key, std::string ca,
                         bool require_client_cert) {
  tls_args_ = {"--tls-cert-file",    std::move(cert),
               "--tls-key-file",     std::move(key),
               "--tls-ca-cert-file", std::move(ca),
               "--tls-auth-clients", require_client_cert ? "yes" : "optional"};
}

bool RedisServer::Start() {
  std::vector<std::string> args = {"redis-server",
                                   "--port",
                                   tls_args_.empty() ? std::to_string(port_) : "0",
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_,
                                   "--logfile",
                                   dir_ + "/redis.log"};
  if (!tls_args_.empty()) {
    args.insert(args.end(), {"--tls-port", std::to_string(port_)});
    args.insert(args.end(), tls_args_.begin(), tls_args_.end());
  }
  if (!password_.empty()) {
    args.push_back("--requirepass");
    args.push_back(password_);
  }
  if (bus_port_ != 0) {
    args.insert(args.end(),
                {"--cluster-enabled", "yes", "--cluster-config-file", dir_ + "/nodes.conf",
                 "--cluster-port", std::to_string(bus_port_), "--cluster-node-timeout", "5000",
                 // A test may stop one master: the others go on serving theirs.
                 "--cluster-require-full-coverage", "no"});
  }
  process_ = std::make_unique<ChildProcess>(args);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Accepts(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for the listener
  }
  std::ifstream log(dir_ + "/redis.log");
  std::stringstream text;
  text << log.rdbuf();
  error_ = "redis-server on port " + std::to_string(port_) +
           " did not start: " + process_->all_stderr() + text.str();
  return false;
}

void RedisServer::Stop() {
  if (!process_) return;
  process_->Signal(SIGTERM);
  (void)process_->Wait(20000);
  process_.reset();
}

std::string RedisServer::Url(const std::string& stream) const {
  return (tls_args_.empty() ? "redis://" : "rediss://") +
         (password_.empty() ? "" : ":" + password_ + "@") + "127.0.0.1:" + std::to_string(port_) +
         "/" + stream;
}

RedisCluster::RedisCluster() {
  for (int i = 0; i < 3; ++i) nodes_.push_back(std::make_unique<RedisServer>("", true));
}

bool RedisCluster::Start() {
  std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
  for (auto& n : nodes_) {
    if (!n->Start()) {
      error_ = n->error();
      return false;
    }
    create.push_back("127.0.0.1:" + std::to_string(n->port()));
  }
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  ChildProcess cli(create);
  if (cli.Wait(60000) != 0) {
    error_ = "redis-cli --cluster create failed: " + cli.all_stdout() + cli.all_stderr();
    return false;
  }
  // The nodes agree through their bus: wait until each says the cluster is up.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  size_t ok = 0;
  while (ok < nodes_.size() && std::chrono::steady_clock::now() < deadline) {
    ChildProcess info({"redis-cli", "-p", std::to_string(nodes_[ok]->port()), "cluster", "info"});
    info.Wait(10000);
    if (info.all_stdout().find("cluster_state:ok") != std::string::npos) {
      ++ok;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling the gossip
    }
  }
  if (ok < nodes_.size()) {
    error_ = "the cluster did not reach cluster_state:ok within 30 s";
    return false;
  }
  return true;
}

}  // namespace doppel::testing
