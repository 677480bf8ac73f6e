// Runs the shell commands of README.md as a new user would, so the README stays true.
//
// Every ```sh block in the README must be preceded by a marker line
//   <!-- readme-test: NAME -->
// naming a case below (or `skip: why`). Each command of a block (continuation lines joined,
// comments dropped) runs through bash in a scratch directory with `doppel` and
// `doppel-echo` on PATH; the example addresses are mapped to real local processes:
//   127.0.0.1:9000, http://prod:9000      -> doppel-echo v1 (the primary, "prod")
//   127.0.0.1:9100, https://preprod.internal, http://staging:9000 -> doppel-echo v2
//   http://ml-shadow:8080                 -> doppel-echo v1 (a second, distinct mirror)
//   127.0.0.1:8080, 127.0.0.1:9901        -> free ports for the proxy and its admin endpoint
//   127.0.0.1:6379                        -> a redis-server on a free port (the redis case)
//   127.0.0.1:50051, 127.0.0.1:50052      -> doppel-grpc-demo v1 and v2 (the grpc case)
// and long durations are shortened. `doppel record` runs in the background, gets some
// traffic, and is stopped with SIGINT like a user's Ctrl-C. Each command's exit code is
// checked against the case's expectation.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "replay/jwt_resign.h"
#include "tests/integration/child_process.h"
#include "tests/integration/redis_server.h"

namespace doppel::testing {
namespace {

namespace fs = std::filesystem;

struct Block {
  std::string marker;  // NAME after "readme-test:"
  size_t line = 0;     // of the opening fence, 1-based
  std::vector<std::string> commands;
};

std::vector<Block> ReadmeBlocks(std::string* error) {
  std::ifstream in(std::string(DOPPEL_SOURCE_DIR) + "/README.md");
  std::vector<Block> blocks;
  std::string line, last_marker, pending;
  size_t n = 0;
  bool in_sh = false, in_other = false;
  while (std::getline(in, line)) {
    ++n;
    if (in_sh || in_other) {
      if (line.rfind("```", 0) == 0) {
        in_sh = in_other = false;
        continue;
      }
      if (!in_sh) continue;
      std::string l = line;
      // Drop comments (a '#' at the start or after a space), keep the command.
      const size_t hash = l.find(" #");
      if (l.find_first_not_of(' ') != std::string::npos && l[l.find_first_not_of(' ')] == '#') {
        l.clear();
      } else if (hash != std::string::npos) {
        l.resize(hash);
      }
      while (!l.empty() && l.back() == ' ') l.pop_back();
      if (!l.empty() && l.back() == '\\') {
        l.pop_back();
        pending += l;
        continue;
      }
      pending += l;
      if (pending.find_first_not_of(' ') != std::string::npos) {
        blocks.back().commands.push_back(pending.substr(pending.find_first_not_of(' ')));
      }
      pending.clear();
      continue;
    }
    std::smatch m;
    static const std::regex marker(R"(<!--\s*readme-test:\s*(.*?)\s*-->)");
    if (std::regex_search(line, m, marker)) {
      last_marker = m[1];
      continue;
    }
    if (line == "```sh" || line == "```bash" || line == "```shell") {
      if (last_marker.empty()) {
        *error += "README.md line " + std::to_string(n) +
                  ": a shell block without a <!-- readme-test: NAME --> marker on the line "
                  "before it (add one and a case in tests/integration/readme_test.cc)\n";
      }
      blocks.push_back(Block{last_marker, n, {}});
      in_sh = true;
      last_marker.clear();
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      in_other = true;
      continue;
    }
    if (!line.empty()) last_marker.clear();  // a marker applies to the very next block only
  }
  return blocks;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

class ReadmeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;  // a README.md that does not parse fails ReadmeBlocksTest
    blocks_ = ReadmeBlocks(&error);
    dir_ = MakeTempDir("readme");
    bin_ = dir_ + "/bin";
    work_ = dir_ + "/work";
    fs::create_directories(bin_);
    fs::create_directories(work_);
    fs::create_symlink(DoppelBinary(), bin_ + "/doppel");
    fs::create_symlink(EchoBinary(), bin_ + "/doppel-echo");
    v1_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1"});
    v2_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--variant", "v2"});
    const unsigned p1 = PortOf(v1_->WaitForLine("listening on "));
    const unsigned p2 = PortOf(v2_->WaitForLine("listening on "));
    ASSERT_NE(p1, 0u);
    ASSERT_NE(p2, 0u);
    proxy_port_ = FreePort();
    const std::string v1 = "127.0.0.1:" + std::to_string(p1);
    const std::string v2 = "127.0.0.1:" + std::to_string(p2);
    subst_ = {
        {"127.0.0.1:9000", v1},
        {"http://prod:9000", "http://" + v1},
        {"127.0.0.1:9100", v2},
        {"https://preprod.internal", "http://" + v2},
        {"http://staging:9000", "http://" + v2},
        {"http://ml-shadow:8080", "http://" + v1},
        {"127.0.0.1:8080", "127.0.0.1:" + std::to_string(proxy_port_)},
        {"127.0.0.1:9901", "127.0.0.1:" + std::to_string(FreePort())},
        {"--duration 10m", "--duration 2s"},
        {"100:2000:60s", "100:400:1s"},
    };
  }
  void TearDown() override {
    v1_.reset();
    v2_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Rewrite(std::string cmd) const {
    for (const auto& [from, to] : subst_) cmd = ReplaceAll(cmd, from, to);
    return cmd;
  }
  std::vector<std::string> Env() const {
    return {"PATH=" + bin_ + ":" + (getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin"),
            "DOPPEL_STORE="};
  }

  // Runs one foreground command; returns its exit code and keeps its output for messages.
  int Run(const std::string& cmd, std::string* output) {
    ChildProcess p({"/bin/bash", "-c", "cd '" + work_ + "' && " + cmd}, Env());
    const int rc = p.Wait(120000);
    *output = p.all_stdout() + p.all_stderr();
    return rc;
  }

  // `doppel record ...`: in the background until it listens, some traffic, then Ctrl-C.
  void RunRecorder(const std::string& cmd, int requests) {
    ChildProcess rec({"/bin/bash", "-c", "cd '" + work_ + "' && exec " + cmd}, Env());
    ASSERT_FALSE(rec.WaitForLine("listening on ").empty()) << cmd << "\n" << rec.all_stderr();
    std::string out;
    const std::string base = "http://127.0.0.1:" + std::to_string(proxy_port_);
    const std::string traffic = !traffic_.empty()
                                    ? ReplaceAll(traffic_, "$BASE", base)
                                    : "for i in $(seq " + std::to_string(requests) +
                                          "); do "
                                          "curl -sf -o /dev/null " +
                                          base +
                                          "/api/v1/products/$i && "
                                          "curl -sf -o /dev/null " +
                                          base +
                                          "/api/v1/users/$i && "
                                          "curl -s -o /dev/null '" +
                                          base + "/api/v1/search?q=lamp' || exit 1; done";
    ASSERT_EQ(Run(traffic, &out), 0) << "traffic through the recorder failed: " << out;
    rec.Signal(SIGINT);
    EXPECT_EQ(rec.Wait(30000), 0) << cmd << "\n" << rec.all_stderr();
    record_output_ = rec.all_stdout() + rec.all_stderr();
  }

  // The README.md block marked `name`; nullptr, failing the test, when there is none.
  const Block* FindBlock(const std::string& name) const {
    for (const Block& b : blocks_) {
      if (b.marker == name) return &b;
    }
    ADD_FAILURE() << "README.md has no <!-- readme-test: " << name << " --> block";
    return nullptr;
  }

  // Records session "checkout" with the first command of README.md's record-replay block and
  // `requests` requests per endpoint, for the blocks that start from a recording.
  void RecordCheckout(int requests) {
    const Block* rec = FindBlock("record-replay");
    ASSERT_NE(rec, nullptr);
    RunRecorder(Rewrite(rec->commands.front()), requests);
  }

  void RunBlock(const Block& b, const std::map<std::string, int>& expected_exit) {
    ASSERT_FALSE(b.commands.empty()) << "README.md line " << b.line << ": empty block";
    for (const std::string& original : b.commands) {
      const std::string cmd = Rewrite(original);
      SCOPED_TRACE("README.md block at line " + std::to_string(b.line) + ": " + original);
      if (cmd.rfind("doppel record", 0) == 0) {
        // 35 per endpoint: above the significance test's default --min-samples (30).
        RunRecorder(cmd, 35);
        continue;
      }
      int want = 0;
      for (const auto& [prefix, code] : expected_exit) {
        if (original.rfind(prefix, 0) == 0) want = code;
      }
      std::string out;
      EXPECT_EQ(Run(cmd, &out), want) << cmd << "\n" << out;
    }
  }

  std::string dir_, bin_, work_;
  std::unique_ptr<ChildProcess> v1_, v2_;
  unsigned proxy_port_ = 0;
  std::vector<std::pair<std::string, std::string>> subst_;
  std::string record_output_;
  std::string traffic_;        // bash run through the recorder ($BASE: its URL); "" = the shop's
  std::vector<Block> blocks_;  // README.md's
};

TEST(ReadmeBlocksTest, EveryShellBlockHasACase) {
  std::string error;
  const std::vector<Block> blocks = ReadmeBlocks(&error);
  EXPECT_TRUE(error.empty()) << error;
  static const std::set<std::string> kKnown = {
      "record-replay", "ci",          "load-test",      "interop",   "mirror",
      "redis",         "redis-group", "redis-cluster",  "streaming", "stateful",
      "compare",       "http2",       "stateful-rules", "grpc",      "mtls",
      "audit",         "coverage",    "chaos",          "install",   "config",
      "store",         "websocket"};
  size_t run = 0;
  for (const Block& b : blocks) {
    if (b.marker.rfind("skip:", 0) == 0) continue;
    EXPECT_TRUE(kKnown.count(b.marker))
        << "README.md line " << b.line << ": unknown case '" << b.marker << "'";
    ++run;
  }
  std::cout << "README: " << blocks.size() << " shell blocks, " << run << " run by ReadmeTest\n";
}

// Record in front of the primary, list, replay against the candidate with the primary as
// secondary: v2's three changes are regressions, so the replay exits 1 and writes the HTML.
TEST_F(ReadmeTest, RecordReplayWorkflow) {
  const Block* b = FindBlock("record-replay");
  ASSERT_NE(b, nullptr);
  RunBlock(*b, {{"doppel replay", 1}});
  EXPECT_NE(record_output_.find("session checkout: requests 105"), std::string::npos)
      << record_output_;
  EXPECT_TRUE(fs::exists(work_ + "/report.html"));
}

// The CI job: export a bundle, replay it from a second store with JUnit and JSON output.
TEST_F(ReadmeTest, CiWorkflow) {
  const Block* ci = FindBlock("ci");
  ASSERT_NE(ci, nullptr);
  // 12 per endpoint: below the default --min-samples (30), above the block's 10, so exit 1
  // also checks that the flag takes effect.
  ASSERT_NO_FATAL_FAILURE(RecordCheckout(12));
  RunBlock(*ci, {{"doppel --store ./ci-store replay", 1}});
  EXPECT_TRUE(fs::exists(work_ + "/checkout.dpl"));
  std::ifstream junit(work_ + "/junit.xml");
  std::stringstream ss;
  ss << junit.rdbuf();
  EXPECT_NE(ss.str().find("<testsuite"), std::string::npos) << ss.str();
  EXPECT_TRUE(fs::exists(work_ + "/report.json"));
}

// Comparing runs: a baseline against the primary's own build (exit 0), the candidate (exit 1,
// with the charts), then --compare in text, JSON and HTML (exit 1: the candidate's regressions
// are new in B).
TEST_F(ReadmeTest, CompareWorkflow) {
  const Block* b = FindBlock("compare");
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(RecordCheckout(35));
  RunBlock(*b, {{"doppel replay --session checkout --target http://127.0.0.1:9100", 1},
                {"doppel report --compare", 1}});
  std::ifstream report(work_ + "/report.html"), compare(work_ + "/compare.html");
  std::stringstream r, c;
  r << report.rdbuf();
  c << compare.rdbuf();
  EXPECT_NE(r.str().find("<svg class=\"chart latency\""), std::string::npos);
  EXPECT_NE(r.str().find("<svg class=\"chart timeline\""), std::string::npos);
  EXPECT_NE(c.str().find("New in B"), std::string::npos);
}

// The load test: ramp and loop for a (shortened) duration without diffing; exits 0.
TEST_F(ReadmeTest, LoadTestWorkflow) {
  const Block* load = FindBlock("load-test");
  ASSERT_NE(load, nullptr);
  ASSERT_NO_FATAL_FAILURE(RecordCheckout(5));
  RunBlock(*load, {});
}

// Interop: HAR and GoReplay imports from the committed fixtures, HAR export, curl export of
// a real envelope id.
TEST_F(ReadmeTest, InteropWorkflow) {
  const Block* b = FindBlock("interop");
  ASSERT_NE(b, nullptr);
  const std::string data = std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/interop";
  std::string har, gor;
  for (const auto& e : fs::directory_iterator(data)) {
    const std::string name = e.path().filename().string();
    if (har.empty() && name.size() > 4 && name.substr(name.size() - 4) == ".har") {
      har = e.path().string();
    }
    if (gor.empty() && name.size() > 7 && name.substr(name.size() - 7) == ".gor.gz") {
      gor = e.path().string();
    }
  }
  ASSERT_FALSE(har.empty()) << "no .har fixture in " << data;
  ASSERT_FALSE(gor.empty()) << "no .gor.gz fixture in " << data;
  fs::copy_file(har, work_ + "/capture.har");
  fs::copy_file(gor, work_ + "/requests.gor.gz");
  ASSERT_NO_FATAL_FAILURE(RecordCheckout(3));
  std::string out;
  ASSERT_EQ(Run("doppel cat checkout | head -1", &out), 0) << out;
  std::smatch arrival, seq;
  ASSERT_TRUE(std::regex_search(out, arrival, std::regex(R"("arrival_us"\s*:\s*([0-9]+))"))) << out;
  ASSERT_TRUE(std::regex_search(out, seq, std::regex(R"("seq"\s*:\s*([0-9]+))"))) << out;
  subst_.emplace_back("1714558830123456.0", arrival[1].str() + "." + seq[1].str());
  RunBlock(*b, {});
  EXPECT_TRUE(fs::exists(work_ + "/checkout.har"));
}

// Keeping the store small: compact a recorded session (it reads back whole), then retention.
TEST_F(ReadmeTest, StoreWorkflow) {
  const Block* b = FindBlock("store");
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(RecordCheckout(20));
  std::string before, after, out;
  ASSERT_EQ(Run("doppel cat checkout", &before), 0) << before;
  RunBlock(*b, {});
  ASSERT_EQ(Run("doppel sessions compact checkout", &out), 0) << out;
  EXPECT_NE(out.find("compacted session 'checkout' (60 envelopes): on disk "), std::string::npos)
      << out;
  ASSERT_EQ(Run("doppel cat checkout", &after), 0) << after;
  EXPECT_EQ(after, before);
}

// Live mirroring: the record command with mirrors runs, mirrors get copies, Ctrl-C prints
// one summary line per mirror.
TEST_F(ReadmeTest, MirrorWorkflow) {
  const Block* b = FindBlock("mirror");
  ASSERT_NE(b, nullptr);
  RunBlock(*b, {});
  EXPECT_NE(record_output_.find("\nmirror "), std::string::npos) << record_output_;
}

// Chaos: the record command with faults and an adaptive mirror runs; a request within the
// fault rule asking for an abort by header gets it, the others are answered (some drawn faults are
// expected among them), and the summary counts the injected faults apart.
TEST_F(ReadmeTest, ChaosWorkflow) {
  const Block* b = FindBlock("chaos");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 1u);
  traffic_ = R"sh(for i in $(seq 20); do
    curl -s -o /dev/null $BASE/api/v1/products/$i && curl -s -o /dev/null "$BASE/api/v1/search?q=$i" || exit 1
  done
  test "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-doppel-fault-abort: 503' "$BASE/api/v1/search?q=x")" = 503)sh";
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[0]), 0));
  EXPECT_NE(record_output_.find("WARNING: injecting faults into the proxied traffic"),
            std::string::npos)
      << record_output_;
  EXPECT_NE(record_output_.find("adaptive within p99=50ms,errors=5%"), std::string::npos)
      << record_output_;
  EXPECT_NE(record_output_.find("faults injected: "), std::string::npos) << record_output_;
  EXPECT_NE(record_output_.find("abort "), std::string::npos) << record_output_;
}

// One configuration file: --print-config writes it, --config runs it, POST /config changes
// the mirror of the running recorder (its answer says applied, the log says what changed).
TEST_F(ReadmeTest, ConfigWorkflow) {
  const Block* b = FindBlock("config");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 3u);
  std::string out;
  ASSERT_EQ(Run(Rewrite(b->commands[0]), &out), 0) << out;
  const std::string config = ReadFile(work_ + "/record.json");
  EXPECT_NE(config.find(",percent=10\""), std::string::npos) << config;
  traffic_ =
      "for i in $(seq 5); do curl -sf -o /dev/null $BASE/api/v1/products/$i || exit 1; done\n"
      "reply=$(" +
      Rewrite(b->commands[2]) +
      ") || exit 1\n"
      "echo \"$reply\"; case $reply in *'\"applied\":true'*) ;; *) exit 1 ;; esac\n"
      "curl -sf -o /dev/null $BASE/api/v1/products/9";
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[1]), 0));
  EXPECT_NE(record_output_.find("POST /config: configuration 2 applied (mirroring.mirrors: "),
            std::string::npos)
      << record_output_;
  EXPECT_NE(record_output_.find("percent=50"), std::string::npos) << record_output_;
}

// Installing: cmake --install of this build into a prefix under the test's directory puts the
// binaries, the man page and the docs there.
TEST_F(ReadmeTest, InstallWorkflow) {
  const Block* b = FindBlock("install");
  ASSERT_NE(b, nullptr);
  const std::string prefix = dir_ + "/prefix";
  subst_.emplace_back("cmake --install build", std::string("cmake --install ") + DOPPEL_BINARY_DIR);
  subst_.emplace_back("--prefix /usr/local", "--prefix " + prefix);
  RunBlock(*b, {});
  EXPECT_TRUE(fs::exists(prefix + "/bin/doppel"));
  EXPECT_TRUE(fs::exists(prefix + "/share/man/man1/doppel.1"));
  EXPECT_TRUE(fs::exists(prefix + "/share/doc/doppel/operations.md"));
}

// Coverage sampling: record by class within a 5 % budget (and a mirror by class within 2 %),
// the class table, a minimized copy, reweighted replays of the session and of the copy.
TEST_F(ReadmeTest, CoverageWorkflow) {
  const Block* b = FindBlock("coverage");
  ASSERT_NE(b, nullptr);
  RunBlock(*b, {});
  EXPECT_NE(record_output_.find("sampling by coverage, budget 5%"), std::string::npos)
      << record_output_;
  EXPECT_NE(record_output_.find("classes: seen "), std::string::npos) << record_output_;
  EXPECT_NE(record_output_.find("mirroring by class within 2%"), std::string::npos)
      << record_output_;
  std::string out;
  ASSERT_EQ(Run("doppel sessions classes sampled-ci", &out), 0) << out;
  EXPECT_NE(out.find("GET /api/v1/products/{id} 200 json:"), std::string::npos) << out;
}

// Redis Streams: record into the store and a stream (a real redis-server on a free port for
// the README's 127.0.0.1:6379), import the stream, replay it.
TEST_F(ReadmeTest, RedisWorkflow) {
  const Block* b = FindBlock("redis");
  ASSERT_NE(b, nullptr);
  RedisServer redis;
  ASSERT_TRUE(redis.Start()) << redis.error();
  subst_.emplace_back("127.0.0.1:6379", "127.0.0.1:" + std::to_string(redis.port()));
  RunBlock(*b, {});
  EXPECT_NE(record_output_.find("/checkout: stored 105, dropped 0"), std::string::npos)
      << record_output_;
  // The recorders' stream replayed by a group (of one worker here) against v2, whose changes
  // are regressions: the worker and the merged report exit 1; the report counts every entry.
  const Block* group = FindBlock("redis-group");
  ASSERT_NE(group, nullptr);
  RunBlock(*group, {{"doppel replay", 1}, {"doppel report", 1}});
  std::string out;
  ASSERT_EQ(Run("tr -d ' \\n' < group.json | grep -o '\"requests\":[0-9]*' | head -1", &out), 0);
  EXPECT_EQ(out, "\"requests\":105\n");
}

// Redis Cluster: the README's sharded recording into a 3-master cluster (free ports for its
// 127.0.0.1:7000 and :7001), imported whole through another node, and replayed by a group
// (of one worker here) against v2 through one node, reported through another: every entry
// of the six shards counted once.
TEST_F(ReadmeTest, RedisClusterWorkflow) {
  const Block* b = FindBlock("redis-cluster");
  ASSERT_NE(b, nullptr);
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  subst_.emplace_back("127.0.0.1:7000", "127.0.0.1:" + std::to_string(cluster.node(0).port()));
  subst_.emplace_back("127.0.0.1:7001", "127.0.0.1:" + std::to_string(cluster.node(1).port()));
  ASSERT_EQ(b->commands.size(), 4u);
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[0]), 35));
  EXPECT_NE(record_output_.find("/checkout: stored 105, dropped 0"), std::string::npos)
      << record_output_;
  std::string out;
  ASSERT_EQ(Run(Rewrite(b->commands[1]), &out), 0) << out;
  EXPECT_NE(out.find("imported 105 envelopes as session 'checkout-sharded'"), std::string::npos)
      << out;
  // v2's changes are regressions: the worker and the merged report exit 1.
  ASSERT_EQ(Run(Rewrite(b->commands[2]), &out), 1) << out;
  ASSERT_EQ(Run(Rewrite(b->commands[3]), &out), 1) << out;
  EXPECT_NE(out.find("group 'load-1': 1 workers, 105 entries in the stream\n"), std::string::npos)
      << out;
  ASSERT_EQ(Run("tr -d ' \\n' < sharded.json | grep -o '\"requests\":[0-9]*' | head -1", &out), 0);
  EXPECT_EQ(out, "\"requests\":105\n");
}

// Streaming: the record command with the streaming flags runs, relays and records traffic.
TEST_F(ReadmeTest, StreamingWorkflow) {
  const Block* b = FindBlock("streaming");
  ASSERT_NE(b, nullptr);
  RunBlock(*b, {});
  EXPECT_NE(record_output_.find("session live: requests "), std::string::npos) << record_output_;
}

// WebSocket: the README's client says two messages through the recorder to doppel-echo's
// WebSocket echo and prints the answers; `doppel cat` shows the messages each way; the replay
// against the other doppel-echo (whose WebSocket echo did not change) sends them again and
// finds every answer the same.
TEST_F(ReadmeTest, WebSocketWorkflow) {
  const Block* b = FindBlock("websocket");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 4u);
  // Debian's python3, which has python3-websockets (tools/deps.sh), whatever else is on PATH.
  subst_.emplace_back("python3 docs/examples/",
                      "/usr/bin/python3 " + std::string(DOPPEL_SOURCE_DIR) + "/docs/examples/");
  traffic_ = Rewrite(b->commands[1]) + " > chat.out";
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[0]), 0));
  std::string out;
  ASSERT_EQ(Run("cat chat.out", &out), 0);
  EXPECT_EQ(out, "hello\nworld\n");
  ASSERT_EQ(Run(Rewrite(b->commands[2]), &out), 0) << out;
  EXPECT_NE(out.find(R"("status":101)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"from":"client","opcode":1,"payload":"hello")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"from":"primary","opcode":1,"payload":"world")"), std::string::npos)
      << out;
  EXPECT_NE(out.find(R"("client_messages":3)"), std::string::npos) << out;  // and the close
  ASSERT_EQ(Run(Rewrite(b->commands[3]) + " --report-json ws.json", &out), 0) << out;
  std::ifstream f(work_ + "/ws.json");
  const std::string report((std::istreambuf_iterator<char>(f)), {});
  // The handshake and the two answers compared: one exchange, matched.
  EXPECT_NE(report.find(R"("name": "GET /chat")"), std::string::npos) << report;
  EXPECT_NE(report.find(R"("compared": 1,
          "matched": 1,)"),
            std::string::npos)
      << report;
}

// Stateful replay: three users' login -> order -> account flows recorded against one
// doppel-echo --stateful (keyed by X-User, each curl its own connection), replayed against two
// fresh ones with --correlate auto: every bearer token and order id is substituted, and
// --shift-time moves each account request's `since`.
TEST_F(ReadmeTest, StatefulWorkflow) {
  const Block* b = FindBlock("stateful");
  ASSERT_NE(b, nullptr);
  std::vector<std::unique_ptr<ChildProcess>> echoes;
  for (const char* addr : {"127.0.0.1:9300", "127.0.0.1:9400", "127.0.0.1:9500"}) {
    echoes.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
        EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--stateful"}));
    const unsigned port = PortOf(echoes.back()->WaitForLine("listening on "));
    ASSERT_NE(port, 0u);
    subst_.emplace_back(addr, "127.0.0.1:" + std::to_string(port));
  }
  // Each curl is its own connection: the recorder's --sample-key keys the clients.
  traffic_ = R"sh(f() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }
  for u in ada grace linus; do
    c="curl -sf -H X-User:$u"
    t=$($c -d "{\"user\":\"$u\"}" $BASE/login | f token) &&
    id=$($c -H "Authorization: Bearer $t" -d '{}' $BASE/orders | f id) &&
    $c -o /dev/null -H "Authorization: Bearer $t" $BASE/orders/$id &&
    $c -o /dev/null -H "Authorization: Bearer $t" "$BASE/account?since=$(date -u +%FT%TZ)" ||
      exit 1
  done)sh";
  ASSERT_EQ(b->commands.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[0]), 0));
  std::string out;
  ASSERT_EQ(Run(Rewrite(b->commands[1]), &out), 0) << out;
  EXPECT_NE(out.find("4 correlations learned"), std::string::npos) << out;
  EXPECT_NE(out.find("12 substituted, 0 sent unchanged"), std::string::npos) << out;
  EXPECT_NE(out.find("3 timestamps moved by --shift-time"), std::string::npos) << out;
}

// Explicit correlation rules and --jwt-resign: three users log in, get a ticket in a text body
// and check it, and call GET /jwt/me with a JWT of production's issuer, recorded against one
// doppel-echo --stateful; replayed against two fresh ones that trust the README's test key,
// with docs/examples/correlation-rules.yaml: the ticket is carried by the rule, the login
// token by learning, and the JWTs are signed again.
TEST_F(ReadmeTest, StatefulRulesWorkflow) {
  const Block* b = FindBlock("stateful-rules");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 3u);
  std::string out;
  ASSERT_EQ(Run(b->commands[0], &out), 0) << out;  // writes the test key
  fs::create_directory_symlink(std::string(DOPPEL_SOURCE_DIR) + "/docs", work_ + "/docs");
  const std::string production_key = "production issuer";
  std::ofstream(work_ + "/production.key") << production_key;
  std::vector<std::unique_ptr<ChildProcess>> echoes;
  for (const char* addr : {"127.0.0.1:9300", "127.0.0.1:9400", "127.0.0.1:9500"}) {
    const std::string key =
        addr == std::string("127.0.0.1:9300") ? "/production.key" : "/test-issuer.key";
    echoes.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1",
                                 "--stateful", "--jwt-key", work_ + key}));
    const unsigned port = PortOf(echoes.back()->WaitForLine("listening on "));
    ASSERT_NE(port, 0u) << echoes.back()->all_stderr();
    subst_.emplace_back(addr, "127.0.0.1:" + std::to_string(port));
  }
  // A JWT of production's issuer, valid for an hour.
  const std::string input =
      replay::Base64UrlEncode(R"({"alg":"HS256"})") + "." +
      replay::Base64UrlEncode(R"({"sub":"readme","iat":)" + std::to_string(time(nullptr)) +
                              R"(,"exp":)" + std::to_string(time(nullptr) + 3600) + "}");
  auto key = replay::JwtKey::FromBytes(production_key, std::nullopt);
  ASSERT_TRUE(key.ok());
  const std::string jwt = input + "." + replay::Base64UrlEncode(*key->Sign(input));
  traffic_ = R"sh(for u in ada grace linus; do
    c="curl -sf -H X-User:$u"
    t=$($c -d "{\"user\":\"$u\"}" $BASE/login | sed -E 's/.*"token":"([^"]+)".*/\1/') &&
    k=$($c -H "Authorization: Bearer $t" -d '' $BASE/tickets | sed 's/ticket //') &&
    $c -o /dev/null -H "Authorization: Bearer $t" "$BASE/tickets/check?code=$k" &&
    $c -o /dev/null -H "Authorization: Bearer JWT" $BASE/jwt/me || exit 1
  done)sh";
  traffic_ = ReplaceAll(traffic_, "JWT", jwt);
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[1]), 0));
  ASSERT_EQ(Run(Rewrite(b->commands[2]), &out), 0) << out;
  EXPECT_NE(out.find("1 explicit rules, 2 correlations learned"), std::string::npos) << out;
  EXPECT_NE(out.find("9 substituted, 0 sent unchanged"), std::string::npos) << out;
  EXPECT_NE(out.find("3 JWTs re-signed by --jwt-resign"), std::string::npos) << out;
}

// HTTP/2 and TLS: the certificate is made, the recorder starts with it and answers curl over
// HTTP/2 (ALPN h2) and HTTP/1.1 over TLS; a second recorder in front of it speaks h2 over TLS
// (h2://) to it; every request is in the sessions' counts.
TEST_F(ReadmeTest, Http2Workflow) {
  const Block* b = FindBlock("http2");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 3u);
  std::string out;
  ASSERT_EQ(Run(Rewrite(b->commands[0]), &out), 0) << out;
  const std::string cmd = Rewrite(b->commands[1]);
  ChildProcess rec({"/bin/bash", "-c", "cd '" + work_ + "' && exec " + cmd}, Env());
  ASSERT_FALSE(rec.WaitForLine("listening on ").empty()) << cmd << "\n" << rec.all_stderr();
  const std::string url = "https://127.0.0.1:" + std::to_string(proxy_port_) + "/api/v1/products/1";
  EXPECT_EQ(Run("curl -sfk --http2 -o /dev/null -w '%{http_version}' " + url, &out), 0) << out;
  EXPECT_EQ(out, "2");
  EXPECT_EQ(Run("curl -sfk --http1.1 -o /dev/null -w '%{http_version}' " + url, &out), 0) << out;
  EXPECT_EQ(out, "1.1");
  // The second recorder speaks h2 over TLS to the first, verifying its certificate with the
  // README's cert.pem (made for CN=localhost).
  const unsigned edge_port = FreePort();
  subst_.emplace_back("127.0.0.1:8081", "127.0.0.1:" + std::to_string(edge_port));
  subst_.emplace_back("localhost:8080", "localhost:" + std::to_string(proxy_port_));
  const std::string edge_cmd = Rewrite(b->commands[2]);
  ChildProcess edge({"/bin/bash", "-c", "cd '" + work_ + "' && exec " + edge_cmd}, Env());
  ASSERT_FALSE(edge.WaitForLine("listening on ").empty()) << edge_cmd << "\n" << edge.all_stderr();
  EXPECT_EQ(
      Run("curl -sf http://127.0.0.1:" + std::to_string(edge_port) + "/api/v1/products/1", &out), 0)
      << out << edge.all_stderr();
  EXPECT_NE(out.find("\"id\""), std::string::npos) << out;
  edge.Signal(SIGINT);
  EXPECT_EQ(edge.Wait(30000), 0) << edge_cmd << "\n" << edge.all_stderr();
  EXPECT_NE(edge.all_stdout().find("session edge: requests 1, sampled 1, stored 1, dropped 0, "
                                   "errors 0"),
            std::string::npos)
      << edge.all_stdout();
  rec.Signal(SIGINT);
  EXPECT_EQ(rec.Wait(30000), 0) << cmd << "\n" << rec.all_stderr();
  EXPECT_NE(rec.all_stdout().find("session secure: requests 3,"), std::string::npos)
      << rec.all_stdout();
  // The first recorder saw the edge's request arrive over h2.
  ASSERT_EQ(Run("doppel cat secure --limit 3 | grep -c '\"client_protocol\":\"h2\"'", &out), 0)
      << out;
  EXPECT_EQ(out, "2\n");
}

// mTLS: the CA, the server and the client certificate are made as the README makes them; the
// recorder requires client certificates, serves the billing client and refuses a client
// without one, and records the verified subject.
TEST_F(ReadmeTest, MtlsWorkflow) {
  const Block* b = FindBlock("mtls");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 5u);
  std::string out;
  for (size_t i = 0; i + 1 < b->commands.size(); ++i) {
    ASSERT_EQ(Run(Rewrite(b->commands[i]), &out), 0) << b->commands[i] << "\n" << out;
  }
  const std::string cmd = Rewrite(b->commands.back());
  ChildProcess rec({"/bin/bash", "-c", "cd '" + work_ + "' && exec " + cmd}, Env());
  ASSERT_FALSE(rec.WaitForLine("listening on ").empty()) << cmd << "\n" << rec.all_stderr();
  const std::string url = "https://127.0.0.1:" + std::to_string(proxy_port_) + "/api/v1/products/1";
  EXPECT_EQ(Run("curl -sfk --cert billing.pem --key billing.key -o /dev/null " + url, &out), 0)
      << out;
  EXPECT_NE(Run("curl -sfk -o /dev/null " + url, &out), 0) << out;
  rec.Signal(SIGINT);
  EXPECT_EQ(rec.Wait(30000), 0) << cmd << "\n" << rec.all_stderr();
  ASSERT_EQ(Run("doppel cat billing", &out), 0) << out;
  EXPECT_NE(out.find("\"client_cert_subject\":\"CN=billing,O=Example\""), std::string::npos) << out;
}

// The audit log: a recording and its removal write five lines that verify.
TEST_F(ReadmeTest, AuditWorkflow) {
  const Block* b = FindBlock("audit");
  ASSERT_NE(b, nullptr);
  RunBlock(*b, {});
  std::ifstream in(work_ + "/audit.log");
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_NE(lines[1].find("\"event\":\"listening\""), std::string::npos) << lines[1];
  EXPECT_NE(lines[4].find("\"command\":\"sessions rm\""), std::string::npos) << lines[4];
  std::string out;
  ASSERT_EQ(Run("doppel audit verify audit.log", &out), 0) << out;
  EXPECT_NE(out.find("intact, 5 lines"), std::string::npos) << out;
}

// gRPC: doppel-grpc-demo v1 and v2 for the README's 127.0.0.1:50051 and :50052; unary,
// server-streaming and bidirectional calls through the recorder; the descriptor set made with
// protoc from the repository's shop.proto; the replay against v2 names the changed fields (exit 1).
TEST_F(ReadmeTest, GrpcWorkflow) {
  const Block* b = FindBlock("grpc");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->commands.size(), 4u);
  fs::create_symlink(DOPPEL_GRPC_DEMO_BINARY, bin_ + "/doppel-grpc-demo");
  std::vector<std::unique_ptr<ChildProcess>> demos;
  for (const char* version : {"v1", "v2"}) {
    demos.push_back(std::make_unique<ChildProcess>(std::vector<std::string>{
        DOPPEL_GRPC_DEMO_BINARY, "serve", "--port", "0", "--version", version}));
    const unsigned port = PortOf(demos.back()->WaitForLine("listening on "));
    ASSERT_NE(port, 0u) << demos.back()->all_stderr();
    subst_.emplace_back(version == std::string("v1") ? "127.0.0.1:50051" : "127.0.0.1:50052",
                        "127.0.0.1:" + std::to_string(port));
  }
  subst_.emplace_back("-I tools/grpc_demo",
                      "-I " + std::string(DOPPEL_SOURCE_DIR) + "/tools/grpc_demo");
  traffic_ = R"sh(a=$BASE; a=${a#http://}
  doppel-grpc-demo call --addr $a --method GetItem --json '{"id":3}' --repeat 3 &&
  doppel-grpc-demo call --addr $a --method ListItems --json '{"tag":"kitchen"}' &&
  doppel-grpc-demo call --addr $a --method CreateOrder --json '{"item_id":2,"quantity":1}' &&
  doppel-grpc-demo call --addr $a --method QuoteItems --json '{"id":1}' --json '{"id":3}')sh";
  ASSERT_NO_FATAL_FAILURE(RunRecorder(Rewrite(b->commands[0]), 0));
  EXPECT_NE(record_output_.find("session grpc: requests 6,"), std::string::npos) << record_output_;
  std::string out;
  ASSERT_EQ(Run(Rewrite(b->commands[1]), &out), 0) << out;
  ASSERT_EQ(Run(Rewrite(b->commands[2]), &out), 1) << out;
  EXPECT_NE(out.find("body.price_cents"), std::string::npos) << out;
  EXPECT_NE(out.find("body.status"), std::string::npos) << out;
  EXPECT_NE(out.find(".tags"), std::string::npos) << out;
  EXPECT_NE(out.find("QuoteItems"), std::string::npos) << out;  // the bidirectional call
  ASSERT_EQ(Run(Rewrite(b->commands[3]), &out), 0) << out;
  EXPECT_NE(out.find(R"("grpc_messages":{"id")"), std::string::npos) << out;
}

}  // namespace
}  // namespace doppel::testing
