// The audit log with the real doppel binary (--audit-log, $DOPPEL_AUDIT_LOG, `audit verify`):
// record, replay and sessions rm write their lines with secrets masked; the chain holds with
// several doppel processes on one file and verify finds a changed or removed line; a log that
// cannot be written never stops a command. `--audit-log syslog:SOCKET` sends the lines as
// syslog(3) would, to the test's own socket in place of /dev/log.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/store_dir_test.h"
#include "tests/integration/unix_datagram.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

std::vector<json::object> ReadLines(const std::string& path) {
  std::vector<json::object> out;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line).as_object());
  return out;
}

class AuditCliTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    log_ = dir_ + "/audit.log";
  }
  // `doppel --store STORE ARGS...` with `env`; the exit code.
  int Doppel(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd, env);
    return child_->Wait(60000);
  }
  void WriteSession(const std::string& name) {
    std::vector<v1::Envelope> batch(3);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].set_arrival_us(1'000'000 + i);
      batch[i].set_seq(static_cast<uint32_t>(i));
      batch[i].mutable_request()->set_method("GET");
      batch[i].mutable_request()->set_target("/a/" + std::to_string(i));
      batch[i].mutable_request()->set_version(11);
      batch[i].mutable_response()->set_status(200);
    }
    Status s = storage::testing::WriteSession(store_, name, batch);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::string log_;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(AuditCliTest, RecordReplayAndSessionsRmWriteMaskedLinesThatVerify) {
  TestUpstream up;
  {
    RecordProcess rec(store_, up.url(),
                      {"--session", "audited", "--audit-log", log_, "--mirror",
                       up.url() + ",name=shadow,set-header=Authorization:Bearer MIRRORSECRET",
                       "--mirror-set-header", "X-Shadow-Key=HEADERSECRET"});
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    EXPECT_EQ(Fetch(rec.port(), "GET", "/hello").result_int(), 200);
    ASSERT_TRUE(Eventually([&] { return rec.StatusStored() >= 1; }, 20000));
    rec.child().Signal(SIGTERM);
    ASSERT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  }
  ASSERT_EQ(
      Doppel({"replay", "--session", "audited", "--target", up.url(), "--max", "--no-progress",
              "--set-header", "Authorization=Bearer REPLAYSECRET", "--audit-log", log_}),
      0)
      << child_->all_stderr();
  // A Redis password in a URL; the import fails (nothing listens there) and says so.
  EXPECT_EQ(Doppel({"--audit-log", log_, "import",
                    "redis://:REDISPASSWORD@127.0.0.1:" + std::to_string(DeadPort()) + "/s"}),
            2);
  // $DOPPEL_AUDIT_LOG does what --audit-log does.
  ASSERT_EQ(Doppel({"sessions", "rm", "audited"}, {"DOPPEL_AUDIT_LOG=" + log_}), 0)
      << child_->all_stderr();

  const std::string text = ReadFile(log_);
  for (const char* secret :
       {"MIRRORSECRET", "HEADERSECRET", "REDISPASSWORD", "REPLAYSECRET", "Bearer"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " in\n" << text;
  }
  const std::vector<json::object> lines = ReadLines(log_);
  ASSERT_EQ(lines.size(), 9u) << text;
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"record", "start"}, {"record", "listening"},  {"record", "end"},
      {"replay", "start"}, {"replay", "end"},        {"import", "start"},
      {"import", "end"},   {"sessions rm", "start"}, {"sessions rm", "end"}};
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].at("command").as_string(), expected[i].first) << i;
    EXPECT_EQ(lines[i].at("event").as_string(), expected[i].second) << i;
    EXPECT_EQ(lines[i].at("user").at("uid").to_number<int64_t>(), static_cast<int64_t>(::getuid()));
    EXPECT_FALSE(lines[i].at("host").as_string().empty());
    EXPECT_EQ(lines[i].at("seq").to_number<uint64_t>(), i + 1);
  }
  // Each process writes its own pid.
  EXPECT_EQ(lines[0].at("pid"), lines[2].at("pid"));
  EXPECT_NE(lines[2].at("pid"), lines[3].at("pid"));
  // The record lines: masked arguments, then the settings as started, then the counts.
  const std::string record_args = json::serialize(lines[0].at("args"));
  EXPECT_NE(record_args.find("set-header=Authorization:***"), std::string::npos) << record_args;
  EXPECT_NE(record_args.find("X-Shadow-Key=***"), std::string::npos) << record_args;
  const json::object& listening = lines[1];
  EXPECT_EQ(listening.at("session").as_string(), "audited");
  EXPECT_EQ(listening.at("upstream").as_string(), up.url());
  EXPECT_EQ(listening.at("sample_percent").to_number<double>(), 100);
  ASSERT_EQ(listening.at("mirrors").as_array().size(), 1u);
  EXPECT_EQ(listening.at("mirrors").as_array()[0].at("name").as_string(), "shadow");
  EXPECT_EQ(listening.at("sinks").as_array().size(), 1u);
  EXPECT_EQ(lines[2].at("result").as_string(), "ok");
  EXPECT_EQ(lines[2].at("session").as_string(), "audited");
  EXPECT_GE(lines[2].at("stored").to_number<uint64_t>(), 1u);
  // The replay lines: targets and outcome.
  EXPECT_NE(json::serialize(lines[3].at("args")).find("Authorization=***"), std::string::npos);
  EXPECT_EQ(lines[4].at("verdict").as_string(), "pass");
  EXPECT_EQ(lines[4].at("targets").as_array()[0].as_string(), up.url());
  EXPECT_GE(lines[4].at("run").to_number<int64_t>(), 1);
  // The failed import: masked URL, result error.
  EXPECT_NE(json::serialize(lines[5].at("args")).find("redis://:***@127.0.0.1"), std::string::npos);
  EXPECT_EQ(lines[6].at("result").as_string(), "error");
  EXPECT_EQ(lines[6].at("exit_code").to_number<int64_t>(), 2);
  EXPECT_EQ(lines[8].at("result").as_string(), "ok");
  EXPECT_EQ(lines[8].at("exit_code").to_number<int64_t>(), 0);

  ASSERT_EQ(Doppel({"audit", "verify", log_}), 0) << child_->all_stdout();
  EXPECT_NE(child_->all_stdout().find("intact, 9 lines"), std::string::npos)
      << child_->all_stdout();

  // A changed line (the replay's verdict), then a removed one: exit 1 naming the line.
  std::string changed = text;
  const size_t verdict = changed.find("\"verdict\":\"pass\"");
  ASSERT_NE(verdict, std::string::npos);
  changed.replace(verdict, 16, "\"verdict\":\"fail\"");
  std::ofstream(log_, std::ios::trunc) << changed;
  EXPECT_EQ(Doppel({"audit", "verify", log_}), 1);
  EXPECT_NE(child_->all_stdout().find("line 5 was changed"), std::string::npos)
      << child_->all_stdout();
  std::string removed = text;
  const size_t third = removed.find('\n', removed.find('\n') + 1) + 1;
  removed.erase(third, removed.find('\n', third) + 1 - third);
  std::ofstream(log_, std::ios::trunc) << removed;
  EXPECT_EQ(Doppel({"audit", "verify", log_}), 1);
  EXPECT_NE(child_->all_stdout().find("line 3 is entry 4"), std::string::npos)
      << child_->all_stdout();
  // A file that cannot be read: 2.
  EXPECT_EQ(Doppel({"audit", "verify", dir_ + "/nothing.log"}), 2);
  EXPECT_NE(child_->all_stderr().find("nothing.log"), std::string::npos);
}

TEST_F(AuditCliTest, SeveralDoppelProcessesAppendToOneChain) {
  WriteSession("shared");
  constexpr int kProcesses = 5;
  std::vector<std::unique_ptr<ChildProcess>> children;
  for (int i = 0; i < kProcesses; ++i) {
    children.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
        DoppelBinary(), "--store", store_, "--audit-log", log_, "sessions", "show", "shared"}));
  }
  for (auto& c : children) EXPECT_EQ(c->Wait(60000), 0) << c->all_stderr();
  ASSERT_EQ(Doppel({"audit", "verify", log_}), 0) << child_->all_stdout();
  EXPECT_NE(child_->all_stdout().find("intact, 10 lines"), std::string::npos)
      << child_->all_stdout();
}

// The store commands that read out or remove recorded data are audited like record and replay:
// export, sessions retain, runs rm and report, each with its result.
TEST_F(AuditCliTest, StoreCommandsWriteTheirLines) {
  WriteSession("kept");
  const std::string bundle = dir_ + "/kept.dpl";
  ASSERT_EQ(Doppel({"--audit-log", log_, "export", "kept", bundle}), 0) << child_->all_stderr();
  ASSERT_EQ(Doppel({"--audit-log", log_, "sessions", "retain", "kept", "--older-than", "1h"}), 0)
      << child_->all_stderr();
  EXPECT_EQ(Doppel({"--audit-log", log_, "runs", "rm", "77"}), 2);  // no such run
  EXPECT_EQ(Doppel({"--audit-log", log_, "report", "--run", "77"}), 2);
  const std::vector<json::object> lines = ReadLines(log_);
  ASSERT_EQ(lines.size(), 8u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"export", "ok"}, {"sessions retain", "ok"}, {"runs rm", "error"}, {"report", "error"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const json::object& start = lines[2 * i];
    const json::object& end = lines[2 * i + 1];
    EXPECT_EQ(start.at("command").as_string(), expected[i].first);
    EXPECT_EQ(start.at("event").as_string(), "start");
    EXPECT_EQ(end.at("command").as_string(), expected[i].first);
    EXPECT_EQ(end.at("result").as_string(), expected[i].second) << expected[i].first;
  }
  EXPECT_EQ(json::serialize(lines[0].at("args")), "[\"--store\",\"" + store_ +
                                                      "\",\"--audit-log\",\"" + log_ +
                                                      "\",\"export\",\"kept\",\"" + bundle + "\"]");
  ASSERT_EQ(Doppel({"audit", "verify", log_}), 0) << child_->all_stdout();
}

TEST_F(AuditCliTest, ALogThatCannotBeWrittenNeverStopsTheProxy) {
  TestUpstream up;
  // /dev/full: every write fails with ENOSPC, as on a full disk.
  RecordProcess rec(store_, up.url(), {"--session", "full", "--audit-log", "/dev/full"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  EXPECT_EQ(Fetch(rec.port(), "GET", "/still-served").result_int(), 200);
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  const std::string err = rec.child().all_stderr();
  EXPECT_NE(err.find("audit line not written"), std::string::npos) << err;
  EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
  EXPECT_NE(err.find("3 audit line(s) could not be written to /dev/full"), std::string::npos)
      << err;
}

TEST_F(AuditCliTest, ALogThatCannotBeOpenedIsAUsageErrorBeforeAnythingRuns) {
  WriteSession("kept");
  const std::string bad = dir_ + "/no-such-dir/audit.log";
  EXPECT_EQ(Doppel({"--audit-log", bad, "sessions", "rm", "kept"}), 2);
  EXPECT_NE(child_->all_stderr().find(bad), std::string::npos) << child_->all_stderr();
  EXPECT_NE(child_->all_stderr().find("or syslog"), std::string::npos) << child_->all_stderr();
  // Nothing was removed.
  ASSERT_EQ(Doppel({"sessions", "show", "kept"}), 0) << child_->all_stderr();
}

// The syslog path: each audit line is one datagram to the socket, "<85>" (authpriv.notice),
// a timestamp, "doppel-audit[PID]: " and the JSON line; the lines of one process chain, so
// extracted to a file they verify.
TEST_F(AuditCliTest, SyslogGetsEachLineAsADatagram) {
  WriteSession("gone");
  UnixDatagramSocket syslog(dir_ + "/log.sock");
  ASSERT_TRUE(syslog.bound());
  ASSERT_EQ(Doppel({"--audit-log", "syslog:" + dir_ + "/log.sock", "sessions", "rm", "gone"}), 0)
      << child_->all_stderr();
  const int pid = child_->pid();
  syslog.WaitFor("\"event\":\"end\"", 5000);
  ASSERT_EQ(syslog.received().size(), 2u) << child_->all_stderr();
  std::string extracted;
  std::vector<json::object> lines;
  for (const std::string& message : syslog.received()) {
    EXPECT_EQ(message.rfind("<85>", 0), 0u) << message;
    const std::string tag = " doppel-audit[" + std::to_string(pid) + "]: ";
    const size_t at = message.find(tag);
    ASSERT_NE(at, std::string::npos) << message;
    const std::string line = message.substr(at + tag.size());
    extracted += line + "\n";
    lines.push_back(json::parse(line).as_object());
  }
  EXPECT_EQ(lines[0].at("command").as_string(), "sessions rm");
  EXPECT_EQ(lines[0].at("event").as_string(), "start");
  EXPECT_EQ(lines[0].at("chain").as_string(), "start");
  EXPECT_EQ(lines[1].at("event").as_string(), "end");
  EXPECT_EQ(lines[1].at("result").as_string(), "ok");
  EXPECT_EQ(lines[1].at("seq").as_int64(), 2);
  const std::string file = dir_ + "/from-syslog.log";
  std::ofstream(file) << extracted;
  EXPECT_EQ(Doppel({"audit", "verify", file}), 0) << child_->all_stdout();
}

// No daemon on the socket: the command does its work and says the lines were lost.
TEST_F(AuditCliTest, SyslogWithoutADaemonIsReportedNotFatal) {
  WriteSession("gone");
  const std::string sock = dir_ + "/nobody-listens.sock";
  ASSERT_EQ(Doppel({"--audit-log", "syslog:" + sock, "sessions", "rm", "gone"}), 0)
      << child_->all_stderr();
  const std::string err = child_->all_stderr();
  EXPECT_NE(err.find("syslog socket " + sock), std::string::npos) << err;
  EXPECT_NE(err.find("2 audit line(s) could not be written to syslog:" + sock), std::string::npos)
      << err;
  EXPECT_NE(Doppel({"sessions", "show", "gone"}), 0);  // removed all the same
}

}  // namespace
}  // namespace doppel::testing
