// Logs that machines read (issue #18, docs/operations.md "Logs"): `--log-format json` makes
// every diagnostic line on stderr a JSON object (time, level, component, message, fields),
// record's status line carrying its counts as numbers; `--log-level` leaves out the lines
// below it; bad values are usage errors. Real doppel and doppel-echo processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/time_format.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

// Every line of `err` as a JSON object with the four fixed keys; a test failure for any line
// that is not one.
std::vector<json::object> JsonLines(const std::string& err) {
  std::vector<json::object> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);) {
    json::error_code ec;
    json::value v = json::parse(line, ec);
    EXPECT_FALSE(ec) << "not JSON: " << line;
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    const json::object& o = v.as_object();
    for (const char* key : {"time", "level", "component", "message"}) {
      EXPECT_TRUE(o.contains(key) && o.at(key).is_string()) << key << " missing in " << line;
    }
    if (o.contains("time") && o.at("time").is_string()) {
      const std::string time(o.at("time").as_string());
      const auto parsed = ParseDateTime(time);
      EXPECT_TRUE(parsed && parsed->zone == DateTime::Zone::kZulu && parsed->fraction_digits == 3)
          << time;
    }
    if (o.contains("level") && o.at("level").is_string()) {
      const std::string level(o.at("level").as_string());
      EXPECT_TRUE(level == "debug" || level == "info" || level == "warn" || level == "error")
          << line;
    }
    out.push_back(o);
  }
  return out;
}

// The first line whose message contains `text`, or null.
const json::object* Find(const std::vector<json::object>& lines, const std::string& text) {
  for (const json::object& o : lines) {
    if (std::string(o.at("message").as_string()).find(text) != std::string::npos) return &o;
  }
  return nullptr;
}

class LogCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("log-cli");
    echo_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1"});
    echo_port_ = PortOf(echo_->WaitForLine("listening on "));
    ASSERT_NE(echo_port_, 0u) << echo_->all_stderr();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string EchoUrl() const { return "http://127.0.0.1:" + std::to_string(echo_port_); }

  // `doppel GLOBAL... --store STORE record ... --session NAME EXTRA...` in front of doppel-echo,
  // `requests` GETs through it, then (after a status line when `wait_status`) SIGTERM; the
  // child, exited.
  std::unique_ptr<ChildProcess> Record(const std::vector<std::string>& global,
                                       const std::string& session, int requests, bool wait_status,
                                       std::vector<std::string> extra = {}) {
    std::vector<std::string> cmd = {DoppelBinary()};
    cmd.insert(cmd.end(), global.begin(), global.end());
    for (const std::string& a :
         {std::string("--store"), dir_ + "/store", std::string("record"), std::string("--listen"),
          std::string("127.0.0.1:0"), std::string("--upstream"), EchoUrl(),
          std::string("--session"), session}) {
      cmd.push_back(a);
    }
    cmd.insert(cmd.end(), extra.begin(), extra.end());
    auto rec = std::make_unique<ChildProcess>(cmd);
    const unsigned port = PortOf(rec->WaitForLine("listening on "));
    EXPECT_NE(port, 0u) << rec->all_stderr();
    if (port == 0) return rec;
    for (int i = 0; i < requests; ++i) {
      EXPECT_EQ(
          Fetch(static_cast<uint16_t>(port), "GET", "/api/v1/products/" + std::to_string(i + 1))
              .result_int(),
          200u);
    }
    // Off a terminal the status line comes every 5 s.
    if (wait_status) std::this_thread::sleep_for(std::chrono::milliseconds(6500));
    rec->Signal(SIGTERM);
    EXPECT_EQ(rec->Wait(30000), 0) << rec->all_stderr();
    return rec;
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> echo_;
  unsigned echo_port_ = 0;
};

TEST_F(LogCliTest, RecordInJsonWritesOnlyJsonLinesWithTheCountsAsNumbers) {
  auto rec = Record({"--log-format", "json"}, "json", 3, true, {"--fault", "delay:1ms:1%"});
  const std::string err = rec->all_stderr();
  const std::vector<json::object> lines = JsonLines(err);
  ASSERT_GE(lines.size(), 4u) << err;
  for (const json::object& o : lines) {
    EXPECT_EQ(o.at("component").as_string(), "record") << json::serialize(o);
  }

  const json::object* banner = Find(lines, "session 'json' -> ");
  ASSERT_NE(banner, nullptr) << err;
  EXPECT_EQ(banner->at("level").as_string(), "info");
  EXPECT_EQ(banner->at("session").as_string(), "json");
  EXPECT_EQ(banner->at("upstream").as_string(), EchoUrl());

  const json::object* warning = Find(lines, "WARNING: injecting faults");
  ASSERT_NE(warning, nullptr) << err;
  EXPECT_EQ(warning->at("level").as_string(), "warn");
  EXPECT_EQ(warning->at("faults").as_string(), "delay:1ms:1%");

  const json::object* status = Find(lines, "req/s | requests 3 |");
  ASSERT_NE(status, nullptr) << err;
  EXPECT_EQ(status->at("level").as_string(), "info");
  EXPECT_EQ(status->at("requests").as_int64(), 3);
  EXPECT_EQ(status->at("sampled").as_int64(), 3);
  for (const char* key : {"rate", "stored", "dropped", "errors", "queue"}) {
    EXPECT_TRUE(status->contains(key) && status->at(key).is_number()) << key << ": " << err;
  }
  EXPECT_EQ(status->at("errors").as_int64(), 0);

  const json::object* stop = Find(lines, "terminated, finishing in-flight requests");
  ASSERT_NE(stop, nullptr) << err;
  EXPECT_EQ(stop->at("signal").as_string(), "SIGTERM");
  // The command's result stays text on stdout.
  EXPECT_NE(rec->all_stdout().find("session json: requests 3, sampled 3"), std::string::npos)
      << rec->all_stdout();
}

TEST_F(LogCliTest, WarnLevelDropsInfoLinesAndKeepsWarnings) {
  auto rec = Record({"--log-level", "warn"}, "quiet", 1, true, {"--fault", "delay:1ms:1%"});
  EXPECT_EQ(rec->all_stderr(),
            "doppel record: WARNING: injecting faults into the proxied traffic (delay:1ms:1%): "
            "clients will see delays and errors the primary did not cause\n");
  // In JSON the same: only the warning.
  rec = Record({"--log-format=json", "--log-level=warn"}, "quiet-json", 1, false,
               {"--fault", "delay:1ms:1%"});
  const std::vector<json::object> lines = JsonLines(rec->all_stderr());
  ASSERT_EQ(lines.size(), 1u) << rec->all_stderr();
  EXPECT_EQ(lines[0].at("level").as_string(), "warn");
}

TEST_F(LogCliTest, TextStaysAsItWas) {
  auto rec = Record({}, "plain", 1, false);
  EXPECT_EQ(rec->all_stderr(), "doppel record: session 'plain' -> " + EchoUrl() +
                                   ", sampling 100%\n"
                                   "doppel record: terminated, finishing in-flight requests and "
                                   "flushing\n");
}

TEST_F(LogCliTest, AnErrorThatEndsACommandIsAnErrorLine) {
  // A store under a regular file cannot be opened: record stops before it listens.
  std::ofstream(dir_ + "/file") << "not a directory";
  const std::string store = dir_ + "/file/store";
  ChildProcess rec({DoppelBinary(), "--log-format", "json", "--store", store, "record", "--listen",
                    "127.0.0.1:0", "--upstream", EchoUrl()});
  EXPECT_EQ(rec.Wait(30000), 2);
  const std::vector<json::object> lines = JsonLines(rec.all_stderr());
  ASSERT_EQ(lines.size(), 1u) << rec.all_stderr();
  EXPECT_EQ(lines[0].at("level").as_string(), "error");
  EXPECT_EQ(lines[0].at("component").as_string(), "record");
  // --log-level error keeps it; nothing is above error.
  ChildProcess quiet({DoppelBinary(), "--log-level", "error", "--store", store, "record",
                      "--listen", "127.0.0.1:0", "--upstream", EchoUrl()});
  EXPECT_EQ(quiet.Wait(30000), 2);
  EXPECT_EQ(quiet.all_stderr().rfind("doppel record: ", 0), 0u) << quiet.all_stderr();
}

TEST_F(LogCliTest, BadValuesAreUsageErrorsThatSayWhatToUse) {
  ChildProcess format({DoppelBinary(), "--log-format", "xml", "sessions", "ls"});
  EXPECT_EQ(format.Wait(30000), 2);
  EXPECT_NE(format.all_stderr().find("--log-format"), std::string::npos) << format.all_stderr();
  EXPECT_NE(format.all_stderr().find("'xml' is not a log format; use text or json"),
            std::string::npos)
      << format.all_stderr();
  ChildProcess level({DoppelBinary(), "sessions", "ls", "--log-level", "verbose"});
  EXPECT_EQ(level.Wait(30000), 2);
  EXPECT_NE(level.all_stderr().find("'verbose' is not a log level; use debug, info, warn or error"),
            std::string::npos)
      << level.all_stderr();
}

TEST_F(LogCliTest, ReplayInJsonWritesOnlyJsonLines) {
  Record({}, "to-replay", 4, false);
  ChildProcess replay({DoppelBinary(), "--store", dir_ + "/store", "--log-format", "json", "replay",
                       "--session", "to-replay", "--target", EchoUrl()});
  const int code = replay.Wait(60000);
  EXPECT_TRUE(code == 0 || code == 1) << code << replay.all_stderr();
  const std::vector<json::object> lines = JsonLines(replay.all_stderr());
  const json::object* start = Find(lines, "replaying 4 of 4 envelopes of 'to-replay'");
  ASSERT_NE(start, nullptr) << replay.all_stderr();
  EXPECT_EQ(start->at("component").as_string(), "replay");
  EXPECT_EQ(start->at("level").as_string(), "info");
  EXPECT_EQ(start->at("envelopes").as_int64(), 4);
  EXPECT_EQ(start->at("session").as_string(), "to-replay");
  // The report is the command's result: text on stdout.
  EXPECT_NE(replay.all_stdout().find("TARGET"), std::string::npos) << replay.all_stdout();
  // A replay that fails is an error line too.
  ChildProcess missing({DoppelBinary(), "--store", dir_ + "/store", "--log-format", "json",
                        "replay", "--session", "nope", "--target", EchoUrl()});
  EXPECT_EQ(missing.Wait(60000), 2);
  const std::vector<json::object> err = JsonLines(missing.all_stderr());
  ASSERT_EQ(err.size(), 1u) << missing.all_stderr();
  EXPECT_EQ(err[0].at("level").as_string(), "error");
  EXPECT_EQ(err[0].at("component").as_string(), "replay");
}

}  // namespace
}  // namespace doppel::testing
