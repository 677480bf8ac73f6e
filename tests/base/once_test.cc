#include "base/once.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/base/gate.h"

namespace doppel {
namespace {

TEST(OnceFlagTest, ManyThreadsRunTheFunctionOnceAndAllSeeItsResult) {
  for (int round = 0; round < 50; ++round) {
    OnceFlag flag;
    std::atomic<int> runs{0};
    int value = 0;  // written by the one run, read by every caller after Call returns
    std::atomic<int> seen{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&] {
        flag.Call([&] {
          runs.fetch_add(1);
          value = 42;
        });
        if (value == 42) seen.fetch_add(1);
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(runs.load(), 1);
    EXPECT_EQ(seen.load(), 8);
  }
}

TEST(OnceFlagTest, ACallerArrivingWhileTheFunctionRunsWaitsForIt) {
  OnceFlag flag;
  testing::Gate running, release;
  int value = 0;
  std::thread first([&] {
    flag.Call([&] {
      running.Open();
      release.Wait();
      value = 7;
    });
  });
  running.Wait();
  std::thread second([&] {
    flag.Call([] { ADD_FAILURE() << "ran twice"; });
    EXPECT_EQ(value, 7);  // returned only after the first call finished
  });
  release.Open();
  first.join();
  second.join();
}

TEST(OnceFlagTest, AFunctionThatThrowsLeavesTheFlagUnset) {
  OnceFlag flag;
  EXPECT_THROW(flag.Call([] { throw std::runtime_error("no"); }), std::runtime_error);
  int runs = 0;
  flag.Call([&] { ++runs; });
  flag.Call([&] { ++runs; });
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace doppel
