#include "tests/integration/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace doppel::testing {

ChildProcess::ChildProcess(std::vector<std::string> args, std::vector<std::string> env) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (auto& e : env) ::putenv(e.data());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    _exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  out_ = out[0];
  err_ = err[0];
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_ >= 0) ::close(out_);
  if (err_ >= 0) ::close(err_);
}

std::string ChildProcess::WaitForLine(const std::string& marker, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t nl;
    while ((nl = stdout_.find('\n')) != std::string::npos) {
      std::string line = stdout_.substr(0, nl);
      stdout_.erase(0, nl + 1);
      seen_ += line + "\n";
      size_t at = line.find(marker);
      if (at != std::string::npos) return line.substr(at + marker.size());
    }
    if (std::chrono::steady_clock::now() > deadline) return "";
    ReadSome(err_, &stderr_, 0);
    if (!ReadSome(out_, &stdout_, 100)) {
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        while (ReadSome(out_, &stdout_, 0)) {
        }
        if (stdout_.find(marker) == std::string::npos) return "";
      }
    }
  }
}

int ChildProcess::Wait(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    while (ReadSome(out_, &stdout_, 0)) {
    }
    while (ReadSome(err_, &stderr_, 0)) {
    }
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      while (ReadSome(out_, &stdout_, 20)) {
      }
      while (ReadSome(err_, &stderr_, 20)) {
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

bool ChildProcess::ReadSome(int fd, std::string* into, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[8192];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  if (n <= 0) return false;
  into->append(buf, static_cast<size_t>(n));
  return true;
}

unsigned PortOf(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return 0;
  return static_cast<unsigned>(std::strtoul(addr.c_str() + colon + 1, nullptr, 10));
}

unsigned FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  unsigned port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

std::string DoppelBinary() { return std::string(DOPPEL_BINARY_DIR) + "/tools/doppel"; }
std::string EchoBinary() { return std::string(DOPPEL_BINARY_DIR) + "/tools/echo/doppel-echo"; }

}  // namespace doppel::testing
