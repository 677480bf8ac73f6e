// Service life (issue #18, docs/operations.md): `doppel record` under a systemd-style
// $NOTIFY_SOCKET tells its supervisor READY=1 once it listens, its status line as STATUS=,
// and STOPPING=1 when SIGTERM starts the drain. The test is the supervisor: a Unix datagram
// socket in a temp directory, as systemd's notify socket is.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <string>

#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/unix_datagram.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

using NotifySocket = UnixDatagramSocket;

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
