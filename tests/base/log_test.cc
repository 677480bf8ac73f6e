#include "base/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdio>
#include <string>

namespace doppel::log {
namespace {

namespace json = boost::json;

constexpr Component kTest{"test", "doppel test"};
constexpr int64_t kTime = 1767323045123456;  // 2026-01-02T03:04:05.123456Z

json::object ParseLine(const std::string& line) {
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line: " << line;
  json::error_code ec;
  json::value v = json::parse(line, ec);
  EXPECT_FALSE(ec) << ec.message() << ": " << line;
  return v.is_object() ? v.as_object() : json::object();
}

TEST(LogTest, TextIsThePrefixAndTheMessageAlone) {
  EXPECT_EQ(FormatLine(Format::kText, kTime, Level::kInfo, kTest, "ready", {{"n", 3}}),
            "doppel test: ready\n");
  EXPECT_EQ(FormatLine(Format::kText, kTime, Level::kError, {"store", ""}, "exported 3", {}),
            "exported 3\n");
}

TEST(LogTest, JsonHasTimeLevelComponentMessageThenTheFieldsInOrder) {
  const std::string line =
      FormatLine(Format::kJson, kTime, Level::kWarn, kTest, "queue is long",
                 {{"queue", 120}, {"rate", 12.5}, {"sink", "redis"}, {"failing", true}});
  EXPECT_EQ(line,
            "{\"time\":\"2026-01-02T03:04:05.123Z\",\"level\":\"warn\",\"component\":\"test\","
            "\"message\":\"queue is long\",\"queue\":120,\"rate\":12.5,\"sink\":\"redis\","
            "\"failing\":true}\n");
  const json::object o = ParseLine(line);
  EXPECT_EQ(o.at("queue").as_int64(), 120);
  EXPECT_EQ(o.at("rate").as_double(), 12.5);
}

TEST(LogTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string message = "say \"hi\"\\ then\nnew line\r\t\x01\x1b[31m end";
  const std::string line =
      FormatLine(Format::kJson, kTime, Level::kInfo, kTest, message, {{"path", "/a\"b\n"}});
  // Nothing raw that would end the line or drive a terminal.
  for (char c : line.substr(0, line.size() - 1)) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20) << line;
  }
  EXPECT_NE(line.find("\\\"hi\\\"\\\\ then\\nnew line\\r\\t\\u0001\\u001b[31m"), std::string::npos)
      << line;
  const json::object o = ParseLine(line);
  EXPECT_EQ(o.at("message").as_string(), message);
  EXPECT_EQ(o.at("path").as_string(), "/a\"b\n");
}

TEST(LogTest, JsonLinesAreValidUtf8AndNumbersStayNumbers) {
  const std::string line =
      FormatLine(Format::kJson, kTime, Level::kInfo, kTest, "caf\xc3\xa9 \xff\xfe bad",
                 {{"nan", std::nan("")}, {"big", uint64_t{18446744073709551615u}}, {"neg", -3}});
  const json::object o = ParseLine(line);  // Boost.JSON refuses invalid UTF-8
  EXPECT_EQ(o.at("message").as_string(), "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd bad");
  EXPECT_TRUE(o.at("nan").is_null());
  EXPECT_EQ(o.at("big").as_uint64(), 18446744073709551615u);
  EXPECT_EQ(o.at("neg").as_int64(), -3);
}

TEST(LogTest, AFieldNamedLikeAFixedKeyDoesNotReplaceIt) {
  const json::object o = ParseLine(
      FormatLine(Format::kJson, kTime, Level::kInfo, kTest, "m", {{"message", "x"}, {"level", 1}}));
  EXPECT_EQ(o.at("message").as_string(), "m");
  EXPECT_EQ(o.at("level").as_string(), "info");
  EXPECT_EQ(o.at("_message").as_string(), "x");
  EXPECT_EQ(o.at("_level").as_int64(), 1);
}

TEST(LogTest, NamesParseAndOthersDoNot) {
  EXPECT_EQ(ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(ParseLevel("info"), Level::kInfo);
  EXPECT_EQ(ParseLevel("warn"), Level::kWarn);
  EXPECT_EQ(ParseLevel("error"), Level::kError);
  EXPECT_EQ(ParseLevel("WARN"), std::nullopt);
  EXPECT_EQ(ParseLevel("warning"), std::nullopt);
  EXPECT_EQ(ParseFormat("json"), Format::kJson);
  EXPECT_EQ(ParseFormat("text"), Format::kText);
  EXPECT_EQ(ParseFormat("logfmt"), std::nullopt);
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    EXPECT_EQ(ParseLevel(LevelName(l)), l);
  }
}

// Write and WriteStatus through a pipe in place of stderr: the level drops lines below it,
// and a status line off a terminal is a plain line.
class LogWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(fds_), 0);
    saved_ = ::dup(STDERR_FILENO);
    ASSERT_GE(::dup2(fds_[1], STDERR_FILENO), 0);
  }
  void TearDown() override {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(fds_[0]);
    ::close(fds_[1]);
    Configure(Format::kText, Level::kInfo);
  }
  std::string Drain() {
    ::close(fds_[1]);
    ::dup2(saved_, STDERR_FILENO);
    fds_[1] = ::dup(saved_);
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds_[0], buf, sizeof buf)) > 0;) out.append(buf, n);
    return out;
  }
  int fds_[2] = {-1, -1};
  int saved_ = -1;
};

TEST_F(LogWriteTest, LinesBelowTheLevelAreNotWritten) {
  Configure(Format::kText, Level::kWarn);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
  Debug(kTest, "debug line");
  Info(kTest, "info line");
  WriteStatus(Level::kInfo, kTest, "status line");
  Warn(kTest, "warn line");
  Error(kTest, "error line");
  EXPECT_EQ(Drain(), "doppel test: warn line\ndoppel test: error line\n");
}

TEST_F(LogWriteTest, DebugShowsEverythingAndJsonStatusLinesAreLines) {
  Configure(Format::kJson, Level::kDebug);
  EXPECT_FALSE(StatusRewrites());
  Debug(kTest, "d");
  WriteStatus(Level::kInfo, kTest, "1 req/s", {{"requests", 1}});
  ClearStatus();  // nothing to clear: no rewritten line
  const std::string out = Drain();
  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos) << out;
  EXPECT_EQ(ParseLine(out.substr(0, nl + 1)).at("level").as_string(), "debug");
  const json::object status = ParseLine(out.substr(nl + 1));
  EXPECT_EQ(status.at("message").as_string(), "1 req/s");
  EXPECT_EQ(status.at("requests").as_int64(), 1);
}

}  // namespace
}  // namespace doppel::log
