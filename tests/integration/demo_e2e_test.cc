// The demo flow end to end, on ephemeral ports: doppel-echo v1 as the primary, doppel record
// in front of it, wrk driving the demo traffic script through the proxy, then doppel replay
// against v2 (three documented changes) with v1 as the secondary. The JSON report must name
// exactly the three changes, report no noise, and exit 1; against v1 it must exit 0.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/integration/child_process.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

class DemoE2eTest : public ::testing::Test {
 protected:
  // Records the demo session once for the suite. A failure is not ASSERTed here: GoogleTest
  // would report the suite's tests as skipped, and ctest counts a skip as a pass. SetUp fails
  // each test with it instead.
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("demo"));
    store_ = new std::string(*dir_ + "/store");
    setup_error_ = new std::string(RecordDemoSession());
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_->empty()) << "recording the demo session failed: " << *setup_error_;
  }
  // Records session "demo" into store_; "" on success, else what went wrong.
  static std::string RecordDemoSession() {
    ChildProcess primary({EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--noise"});
    unsigned pport = PortOf(primary.WaitForLine("listening on "));
    if (pport == 0) return "doppel-echo did not start: " + primary.all_stderr();
    ChildProcess recorder({DoppelBinary(), "--store", *store_, "record", "--listen", "127.0.0.1:0",
                           "--upstream", "http://127.0.0.1:" + std::to_string(pport), "--session",
                           "demo"});
    unsigned rport = PortOf(recorder.WaitForLine("listening on "));
    if (rport == 0) return "doppel record did not start: " + recorder.all_stderr();
    ChildProcess wrk({"wrk", "-t1", "-c4", "-d4s", "-s",
                      std::string(DOPPEL_SOURCE_DIR) + "/tools/demo/traffic.lua",
                      "http://127.0.0.1:" + std::to_string(rport)},
                     {"DOPPEL_REQUESTS=1200"});
    if (int code = wrk.Wait(30000); code != 0)
      return "wrk exited with " + std::to_string(code) +
             " (wrk is needed; tools/test.sh installs it): " + wrk.all_stderr();
    recorder.Signal(SIGINT);
    if (int code = recorder.Wait(30000); code != 0)
      return "doppel record exited with " + std::to_string(code) + ": " + recorder.all_stderr();
    return "";
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete store_;
    delete setup_error_;
  }

  // Replays the demo session against a candidate of `variant`, v1 as secondary.
  int Replay(const std::string& variant, const std::string& report) {
    ChildProcess cand({EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--noise",
                       "--variant", variant});
    ChildProcess sec({EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--noise"});
    unsigned c = PortOf(cand.WaitForLine("listening on "));
    unsigned s = PortOf(sec.WaitForLine("listening on "));
    ChildProcess replay({DoppelBinary(), "--store", *store_, "replay", "--session", "demo",
                         "--target", "http://127.0.0.1:" + std::to_string(c), "--secondary",
                         "http://127.0.0.1:" + std::to_string(s), "--max", "--concurrency", "8",
                         "--allow-unsafe-methods", "--no-progress", "--report-json", report});
    int code = replay.Wait(120000);
    stdout_ = replay.all_stdout();
    stderr_ = replay.all_stderr();
    return code;
  }
  static json::object Read(const std::string& path) {
    std::ifstream f(path);
    return json::parse(std::string((std::istreambuf_iterator<char>(f)), {})).as_object();
  }
  // "ENDPOINT field" for every field whose verdict is regression.
  static std::set<std::string> Regressions(const json::object& report) {
    std::set<std::string> out;
    for (const auto& t : report.at("targets").as_array())
      for (const auto& e : t.at("endpoints").as_array())
        for (const auto& f : e.at("fields").as_array())
          if (f.at("verdict").as_string() == "regression")
            out.insert(std::string(e.at("name").as_string()) + " " +
                       std::string(f.at("path").as_string()));
    return out;
  }

  static std::string* dir_;
  static std::string* store_;
  static std::string* setup_error_;
  std::string stdout_, stderr_;
};
std::string* DemoE2eTest::dir_ = nullptr;
std::string* DemoE2eTest::store_ = nullptr;
std::string* DemoE2eTest::setup_error_ = nullptr;

TEST_F(DemoE2eTest, CandidateV2ShowsExactlyTheDocumentedChanges) {
  const std::string path = *dir_ + "/v2.json";
  ASSERT_EQ(Replay("v2", path), 1) << stderr_ << stdout_;
  auto report = Read(path);
  auto regs = Regressions(report);
  // The three documented v2 changes (docs/doppel-echo.md).
  EXPECT_TRUE(regs.count("GET /api/v1/products/{id} body.price")) << stdout_;
  EXPECT_TRUE(regs.count("GET /api/v1/users/{id} body.email")) << stdout_;
  EXPECT_TRUE(regs.count("GET /api/v1/search status")) << stdout_;
  // Nothing on the unchanged endpoints, and no noise field anywhere.
  for (const auto& r : regs) {
    EXPECT_TRUE(r.rfind("GET /api/v1/products/{id} ", 0) == 0 ||
                r.rfind("GET /api/v1/users/{id} ", 0) == 0 ||
                r.rfind("GET /api/v1/search ", 0) == 0)
        << "unexpected regression: " << r;
    for (const char* noisy :
         {"nonce", "generated_at", "request_id", "headers.date", "headers.x-request-id"})
      EXPECT_EQ(r.find(noisy), std::string::npos) << "noise reported as regression: " << r;
  }
  EXPECT_EQ(report.at("verdict").at("exit_code").as_int64(), 1);
}

TEST_F(DemoE2eTest, CandidateV1HasNoRegressions) {
  const std::string path = *dir_ + "/v1.json";
  ASSERT_EQ(Replay("v1", path), 0) << stderr_ << stdout_;
  auto report = Read(path);
  EXPECT_TRUE(Regressions(report).empty());
  EXPECT_EQ(report.at("verdict").at("regressions").as_int64(), 0);
}

}  // namespace
}  // namespace doppel::testing
