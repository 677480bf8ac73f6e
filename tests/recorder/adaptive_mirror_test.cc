#include "recorder/adaptive_mirror.h"

#include <gtest/gtest.h>

#include <thread>

namespace doppel::recorder {
namespace {

MirrorBudget Budget(std::string_view text) {
  auto b = ParseMirrorBudget(text);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? b.value() : MirrorBudget{};
}

TEST(MirrorBudgetTest, ParsesAnySubset) {
  MirrorBudget all = Budget("p99=20ms,cpu=80%,errors=5%");
  EXPECT_EQ(all.p99_us, 20000u);
  EXPECT_DOUBLE_EQ(*all.cpu_percent, 80);
  EXPECT_DOUBLE_EQ(*all.errors_percent, 5);
  EXPECT_EQ(all.ToString(), "p99=20ms,cpu=80%,errors=5%");
  MirrorBudget one = Budget("errors=2.5");
  EXPECT_FALSE(one.p99_us);
  EXPECT_DOUBLE_EQ(*one.errors_percent, 2.5);
}

TEST(MirrorBudgetTest, ErrorsSayWhatIsExpected) {
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "give at least one of p99=, cpu=, errors="},
           {"p99", "is not KEY=VALUE"},
           {"p99=fast", "must be a duration of at least 100us"},
           {"cpu=0%", "above 0, up to 100%"},
           {"errors=120%", "above 0, up to 100%"},
           {"latency=20ms", "unknown key 'latency'; known keys: p99, cpu, errors"}}) {
    auto b = ParseMirrorBudget(text);
    ASSERT_FALSE(b.ok()) << text;
    EXPECT_NE(b.status().message().find(says), std::string::npos)
        << text << ": " << b.status().message();
  }
}

TEST(AimdControllerTest, HalvesWhileOverBudgetAndClimbsBackWhileWithin) {
  AimdController c(30, Budget("errors=5%"));
  EXPECT_STREQ(c.state(), "steady");
  AdaptiveSignals bad;
  bad.errors_percent = 80;
  EXPECT_EQ(c.Tick(bad), "mirror failures 80% over budget 5%");
  EXPECT_DOUBLE_EQ(c.effective(), 15);
  EXPECT_STREQ(c.state(), "backing off");
  (void)c.Tick(bad);
  (void)c.Tick(bad);
  EXPECT_DOUBLE_EQ(c.effective(), 3.75);  // under 20 % of 30 after three ticks
  for (int i = 0; i < 4; ++i) (void)c.Tick(bad);
  EXPECT_DOUBLE_EQ(c.effective(), 0);  // below 1 % of the configured one: 0
  EXPECT_EQ(c.Tick(bad), "");          // no change at 0

  AdaptiveSignals good;
  good.errors_percent = 1;
  EXPECT_EQ(c.Tick(good), "within budget");
  EXPECT_DOUBLE_EQ(c.effective(), 3);
  EXPECT_STREQ(c.state(), "recovering");
  int ticks = 1;
  while (c.effective() < 30) {
    (void)c.Tick(good);
    ++ticks;
  }
  EXPECT_EQ(ticks, 10);  // 10 % of the configured percentage a tick
  EXPECT_DOUBLE_EQ(c.effective(), 30);
  EXPECT_STREQ(c.state(), "steady");
  EXPECT_EQ(c.Tick(good), "");  // never above the configured percentage
}

TEST(AimdControllerTest, AnySignalOverItsBudgetBacksOffAndNoDataIsWithin) {
  AimdController c(100, Budget("p99=20ms,cpu=80%,errors=5%"));
  AdaptiveSignals slow;
  slow.primary_p99_us = 50000;
  slow.cpu_percent = 10;
  EXPECT_EQ(c.Tick(slow), "primary p99 50ms over budget 20ms");
  AdaptiveSignals busy;
  busy.cpu_percent = 95;
  EXPECT_EQ(c.Tick(busy), "process CPU 95% over budget 80%");
  EXPECT_DOUBLE_EQ(c.effective(), 25);
  // A window without requests has no p99 and no failure rate: within budget, so a mirror
  // that was cut to 0 is probed again.
  EXPECT_EQ(c.Tick(AdaptiveSignals{}), "within budget");
  EXPECT_DOUBLE_EQ(c.effective(), 35);
  EXPECT_EQ(c.last_reason(), "within budget");
}

TEST(SignalWindowTest, DeltaOverTheLastTicks) {
  SignalWindow w(2);
  EXPECT_TRUE(w.Delta().empty());
  w.Push({10, 1});
  EXPECT_EQ(w.Delta(), (std::vector<uint64_t>{0, 0}));
  w.Push({15, 1});
  w.Push({30, 4});
  EXPECT_EQ(w.Delta(), (std::vector<uint64_t>{20, 3}));  // 30-10, 4-1
  w.Push({31, 9});
  EXPECT_EQ(w.Delta(), (std::vector<uint64_t>{16, 8}));  // 31-15, 9-1
}

TEST(ProcessCpuTest, GrowsWhileThisProcessWorks) {
  const uint64_t before = ProcessCpuUs();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  volatile uint64_t sink = 0;
  while (std::chrono::steady_clock::now() < until) sink = sink + 1;
  EXPECT_GT(ProcessCpuUs(), before);
}

}  // namespace
}  // namespace doppel::recorder
