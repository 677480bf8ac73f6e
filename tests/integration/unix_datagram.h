// A Unix datagram socket bound in a test's temp directory, standing in for a daemon that
// listens on one: systemd's $NOTIFY_SOCKET, syslog's /dev/log.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace doppel::testing {

class UnixDatagramSocket {
 public:
  explicit UnixDatagramSocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~UnixDatagramSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  UnixDatagramSocket(const UnixDatagramSocket&) = delete;
  UnixDatagramSocket& operator=(const UnixDatagramSocket&) = delete;

  bool bound() const { return bound_; }
  // Datagrams until one contains `text` (all of them, joined by "|"), or the timeout.
  std::string WaitFor(const std::string& text, int timeout_ms = 20000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      const std::string message(buf, static_cast<size_t>(n));
      received_.push_back(message);
      seen_ += message + "|";
      if (message.find(text) != std::string::npos) return seen_;
    }
    return seen_;
  }
  // Every datagram WaitFor read, in order.
  const std::vector<std::string>& received() const { return received_; }

 private:
  int fd_ = -1;
  bool bound_ = false;
  std::string seen_;
  std::vector<std::string> received_;
};

}  // namespace doppel::testing
