// Service life (issue #18, docs/operations.md): `doppel record` under a systemd-style
// $NOTIFY_SOCKET tells its supervisor READY=1 once it listens, its status line as STATUS=,
// and STOPPING=1 when SIGTERM starts the drain. The test is the supervisor: a Unix datagram
// socket in a temp directory, as systemd's notify socket is.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool bound() const { return bound_; }
  // Datagrams until one contains `text` (all of them, joined by "|"), or the timeout.
  std::string WaitFor(const std::string& text, int timeout_ms = 20000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) != 1) continue;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      const std::string message(buf, static_cast<size_t>(n));
      seen_ += message + "|";
      if (message.find(text) != std::string::npos) return seen_;
    }
    return seen_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool bound_ = false;
  std::string seen_;
};

TEST(NotifyTest, RecordTellsTheSupervisorReadyStatusAndStopping) {
  const std::string dir = MakeTempDir("notify");
  TestUpstream primary;
  NotifySocket notify(dir + "/notify.sock");
  ASSERT_TRUE(notify.bound());
  ChildProcess rec({DoppelBinary(), "--store", dir + "/store", "record", "--listen", "127.0.0.1:0",
                    "--upstream", primary.url(), "--session", "svc"},
                   {"NOTIFY_SOCKET=" + dir + "/notify.sock"});
  const unsigned port = PortOf(rec.WaitForLine("listening on "));
  ASSERT_NE(port, 0u) << rec.all_stderr();
  std::string seen = notify.WaitFor("READY=1");
  EXPECT_NE(seen.find("READY=1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("STATUS=listening on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << seen;
  EXPECT_NE(seen.find("MAINPID=" + std::to_string(rec.pid())), std::string::npos) << seen;
  EXPECT_EQ(Fetch(static_cast<uint16_t>(port), "GET", "/x").result_int(), 200u);
  // The status line (every 5 s when stderr is not a terminal) goes to the supervisor too.
  seen = notify.WaitFor("STATUS=", 8000);
  seen = notify.WaitFor("req/s | requests 1 |", 8000);
  EXPECT_NE(seen.find("req/s | requests 1 |"), std::string::npos) << seen;
  rec.Signal(SIGTERM);
  seen = notify.WaitFor("STOPPING=1");
  EXPECT_NE(seen.find("STOPPING=1"), std::string::npos) << seen;
  EXPECT_EQ(rec.Wait(30000), 0) << rec.all_stderr();
  std::filesystem::remove_all(dir);
}

TEST(NotifyTest, WithoutNotifySocketNothingChanges) {
  const std::string dir = MakeTempDir("no-notify");
  TestUpstream primary;
  ChildProcess rec({DoppelBinary(), "--store", dir + "/store", "record", "--listen", "127.0.0.1:0",
                    "--upstream", primary.url(), "--session", "plain"},
                   {"NOTIFY_SOCKET="});
  const unsigned port = PortOf(rec.WaitForLine("listening on "));
  ASSERT_NE(port, 0u) << rec.all_stderr();
  EXPECT_EQ(Fetch(static_cast<uint16_t>(port), "GET", "/x").result_int(), 200u);
  rec.Signal(SIGTERM);
  EXPECT_EQ(rec.Wait(30000), 0) << rec.all_stderr();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace doppel::testing
