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

RedisServer::RedisServer(std::string password)
    : password_(std::move(password)), dir_(MakeTempDir("redis")), port_(FreePort()) {}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool RedisServer::Start() {
  std::vector<std::string> args = {
      "redis-server", "--port",    std::to_string(port_), "--bind", "127.0.0.1",
      "--save",       "",          "--appendonly",        "no",     "--dir",
      dir_,           "--logfile", dir_ + "/redis.log"};
  if (!password_.empty()) {
    args.push_back("--requirepass");
    args.push_back(password_);
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
  return "redis://" + (password_.empty() ? "" : ":" + password_ + "@") +
         "127.0.0.1:" + std::to_string(port_) + "/" + stream;
}

}  // namespace doppel::testing
