#include "audit/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/base/temp_dir.h"

namespace doppel::audit {
namespace {

namespace json = boost::json;

using doppel::testing::ReadFile;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("audit");
    path_ = dir_ + "/audit.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Appends `n` lines "event":"e<i>" through one AuditLog.
  void AppendLines(int n) {
    auto log = AuditLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (int i = 0; i < n; ++i) {
      Status s = (*log)->Append({{"command", "test"}, {"event", "e" + std::to_string(i)}});
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    EXPECT_EQ((*log)->failed_writes(), 0u);
  }

  std::string dir_, path_;
};

TEST_F(AuditLogTest, LinesCarryWhoWhenWhereAndChainFromANonce) {
  AppendLines(3);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::vector<std::string> lines = Lines(ReadFile(path_));
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const json::object o = json::parse(lines[i]).as_object();
    // RFC 3339 UTC with milliseconds: 2026-12-04T14:10:00.123Z.
    const std::string time(o.at("time").as_string());
    ASSERT_EQ(time.size(), 24u) << time;
    EXPECT_EQ(time[10], 'T');
    EXPECT_EQ(time.back(), 'Z');
    EXPECT_EQ(o.at("user").at("uid").to_number<int64_t>(), static_cast<int64_t>(::getuid()));
    EXPECT_TRUE(o.at("user").at("name").is_string());
    EXPECT_FALSE(o.at("host").as_string().empty());
    EXPECT_EQ(o.at("pid").to_number<int64_t>(), ::getpid());
    EXPECT_EQ(o.at("command").as_string(), "test");
    EXPECT_EQ(o.at("event").as_string(), "e" + std::to_string(i));
    EXPECT_EQ(o.at("seq").to_number<uint64_t>(), i + 1);
    const std::string prev(o.at("prev").as_string());
    ASSERT_EQ(prev.size(), 64u);
    if (i == 0) {
      EXPECT_EQ(o.at("chain").as_string(), "start");
    } else {
      EXPECT_FALSE(o.contains("chain"));
      EXPECT_EQ(prev, Sha256Hex(lines[i - 1]));
    }
  }
  auto v = VerifyAuditFile(path_);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->intact) << v->problem;
  EXPECT_EQ(v->lines, 3u);
  EXPECT_EQ(v->last_hash, Sha256Hex(lines[2]));

  // Another process's (here: another open's) lines continue the chain of the file.
  AppendLines(2);
  v = VerifyAuditFile(path_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->problem;
  EXPECT_EQ(v->lines, 5u);
}

TEST_F(AuditLogTest, TwoFilesStartDifferentChains) {
  AppendLines(1);
  const std::string first = Lines(ReadFile(path_))[0];
  path_ = dir_ + "/other.log";
  AppendLines(1);
  const std::string other = Lines(ReadFile(path_))[0];
  EXPECT_NE(json::parse(first).at("prev"), json::parse(other).at("prev"));
}

TEST_F(AuditLogTest, VerifyNamesTheFirstBadLine) {
  AppendLines(5);
  const std::vector<std::string> lines = Lines(ReadFile(path_));
  struct Case {
    std::string what;
    std::vector<std::string> lines;
    std::string text;  // when set, instead of lines
    uint64_t bad_line;
    std::string problem;
  };
  std::vector<Case> cases;
  {
    std::vector<std::string> changed = lines;
    const size_t at = changed[2].find("\"e2\"");
    ASSERT_NE(at, std::string::npos);
    changed[2].replace(at, 4, "\"e9\"");
    cases.push_back({"line 3 changed", changed, "", 3, "line 3 was changed"});
  }
  {
    std::vector<std::string> removed = lines;
    removed.erase(removed.begin() + 1);
    cases.push_back({"line 2 removed", removed, "", 2, "removed"});
  }
  {
    std::vector<std::string> removed = lines;
    removed.erase(removed.begin());
    cases.push_back({"line 1 removed", removed, "", 1, "the lines before it were removed"});
  }
  {
    std::vector<std::string> reordered = lines;
    std::swap(reordered[1], reordered[3]);
    cases.push_back({"lines 2 and 4 swapped", reordered, "", 2, "reordered"});
  }
  {
    std::vector<std::string> moved = lines;
    std::swap(moved[3], moved[4]);
    cases.push_back({"lines 4 and 5 swapped", moved, "", 4, "reordered"});
  }
  {
    const std::string all = Join(lines);
    cases.push_back({"cut inside the last line",
                     {},
                     all.substr(0, all.size() - 10),
                     5,
                     "line 5 has no newline"});
    const size_t third = all.find('\n', all.find('\n') + 1) + 1;  // start of line 3
    cases.push_back({"cut inside line 3, then a newline",
                     {},
                     all.substr(0, third + 20) + "\n" + all.substr(third + 20),
                     3,
                     "line 3 is not a JSON object"});
  }
  {
    std::vector<std::string> forged = lines;
    forged[1] = "{\"command\":\"test\",\"seq\":2}";
    cases.push_back({"line 2 without prev", forged, "", 2, "no \"prev\""});
  }
  for (const Case& c : cases) {
    WriteFile(path_, c.text.empty() ? Join(c.lines) : c.text);
    auto v = VerifyAuditFile(path_);
    ASSERT_TRUE(v.ok()) << c.what;
    EXPECT_FALSE(v->intact) << c.what;
    EXPECT_EQ(v->bad_line, c.bad_line) << c.what << ": " << v->problem;
    EXPECT_NE(v->problem.find(c.problem), std::string::npos) << c.what << ": " << v->problem;
  }
}

TEST_F(AuditLogTest, AnAppendAfterACutLineStartsItsOwnLineAndTheCutStaysVisible) {
  AppendLines(2);
  std::string text = ReadFile(path_);
  text.resize(text.size() - 15);  // the second line cut short, as by a full disk
  WriteFile(path_, text);
  AppendLines(1);
  const std::vector<std::string> lines = Lines(ReadFile(path_));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(json::parse(lines[2]).at("prev").as_string(), Sha256Hex(lines[1]));
  auto v = VerifyAuditFile(path_);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->intact);
  EXPECT_EQ(v->bad_line, 2u) << v->problem;
}

TEST_F(AuditLogTest, AppendersInSeveralProcessesKeepOneChain) {
  constexpr int kProcesses = 6;
  constexpr int kLinesEach = 40;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int failed = 0;
      auto log = AuditLog::Open(path_);
      if (!log.ok()) ::_exit(3);
      for (int i = 0; i < kLinesEach; ++i) {
        json::object entry{{"command", "test"},
                           {"process", p},
                           {"i", i},
                           {"padding", std::string(static_cast<size_t>(100 * p), 'x')}};
        if (!(*log)->Append(entry).ok()) ++failed;
      }
      ::_exit(failed == 0 ? 0 : 4);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto v = VerifyAuditFile(path_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->intact) << v->problem;
  EXPECT_EQ(v->lines, static_cast<uint64_t>(kProcesses * kLinesEach));
  // Every process's lines are all there, each in its own order.
  std::vector<int> next(kProcesses, 0);
  for (const std::string& line : Lines(ReadFile(path_))) {
    const json::object o = json::parse(line).as_object();
    const int p = static_cast<int>(o.at("process").to_number<int64_t>());
    EXPECT_EQ(o.at("i").to_number<int64_t>(), next[p]++);
  }
  for (int p = 0; p < kProcesses; ++p) EXPECT_EQ(next[p], kLinesEach) << p;
}

TEST_F(AuditLogTest, AFailedWriteIsCountedAndReturnedNotThrown) {
  // /dev/full: every write fails with ENOSPC, as on a full disk.
  auto log = AuditLog::Open("/dev/full");
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  Status s = (*log)->Append({{"command", "test"}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_FALSE((*log)->Append({{"command", "test"}}).ok());
  EXPECT_EQ((*log)->failed_writes(), 2u);
}

TEST_F(AuditLogTest, OpenAndVerifyNameTheFileThatCannotBeUsed) {
  auto log = AuditLog::Open(dir_ + "/no/such/dir/audit.log");
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("no/such/dir/audit.log"), std::string::npos);
  EXPECT_NE(log.status().message().find("No such file"), std::string::npos);
  auto v = VerifyAuditFile(dir_ + "/missing.log");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("missing.log"), std::string::npos);
  auto d = VerifyAuditFile(dir_);  // a directory
  EXPECT_FALSE(d.ok());
  // An empty file is an intact log of no lines.
  WriteFile(path_, "");
  auto empty = VerifyAuditFile(path_);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->intact);
  EXPECT_EQ(empty->lines, 0u);
}

TEST(MaskArgumentsTest, MasksUrlPasswordsAndHeaderValues) {
  const std::vector<std::string> in = {
      "--store",
      "/data",
      "record",
      "--sink",
      "redis://:s3cret@cache:6379/doppel",
      "--sink=redis://ops:hunter2@cache/other",
      "--upstream",
      "https://user:pa:ss@primary:8443/base",
      "--mirror",
      "https://shadow:9443,set-header=Authorization:Bearer tok123,name=s,cert=c.pem,key=k.pem",
      "--mirror-set-header",
      "X-Api-Key=abc987",
      "--set-header=Authorization=Basic Zm9v",
      "--set-header",
      "Cookie=sid=zzz",
      "--session",
      "keep-me",
      "--target",
      "http://plain:8080/x?q=1",
  };
  const std::vector<std::string> out = MaskArguments(in);
  ASSERT_EQ(out.size(), in.size());
  std::string all;
  for (const auto& a : out) all += a + " ";
  for (const char* secret : {"s3cret", "hunter2", "pa:ss", "tok123", "abc987", "Zm9v", "zzz"}) {
    EXPECT_EQ(all.find(secret), std::string::npos) << secret << " in " << all;
  }
  EXPECT_EQ(out[4], "redis://:***@cache:6379/doppel");
  EXPECT_EQ(out[5], "--sink=redis://ops:***@cache/other");
  EXPECT_EQ(out[7], "https://user:***@primary:8443/base");
  EXPECT_EQ(out[9], "https://shadow:9443,set-header=Authorization:***,name=s,cert=c.pem,key=k.pem");
  EXPECT_EQ(out[11], "X-Api-Key=***");
  EXPECT_EQ(out[12], "--set-header=Authorization=***");
  EXPECT_EQ(out[14], "Cookie=***");
  EXPECT_EQ(out[16], "keep-me");
  EXPECT_EQ(out[18], "http://plain:8080/x?q=1");
}

}  // namespace
}  // namespace doppel::audit
