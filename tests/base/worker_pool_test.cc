#include "base/worker_pool.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "tests/base/gate.h"

namespace doppel {
namespace {

using testing::Gate;

TEST(WorkerPoolTest, RunsEverythingPostedAndDrainWaitsForIt) {
  WorkerPool pool("doppel-t", 3, 4);
  std::atomic<int> ran{0};
  for (int i = 0; i < 200; ++i) pool.Post([&ran] { ran.fetch_add(1); });
  pool.Drain();
  EXPECT_EQ(ran.load(), 200);
  EXPECT_EQ(pool.threads(), 3u);
  EXPECT_EQ(pool.capacity(), 4u);
}

TEST(WorkerPoolTest, OneThreadRunsInPostOrder) {
  WorkerPool pool("doppel-t", 1, 8);
  std::vector<int> order;  // touched by the pool's one thread only until Drain
  for (int i = 0; i < 50; ++i) pool.Post([&order, i] { order.push_back(i); });
  pool.Drain();
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[i], i);
}

// The capacity bounds waiting functions: with the one thread busy, `capacity` more are
// queued and the next TryPost is refused at once.
TEST(WorkerPoolTest, TryPostRefusesWhenTheQueueIsFull) {
  WorkerPool pool("doppel-t", 1, 2);
  Gate gate;
  std::atomic<int> ran{0};
  ASSERT_TRUE(pool.TryPost([&] {
    gate.Wait();
    ran.fetch_add(1);
  }));
  EXPECT_TRUE(gate.AwaitWaiting(1));  // the thread is busy: what follows waits in the queue
  EXPECT_TRUE(pool.TryPost([&] { ran.fetch_add(1); }));
  EXPECT_TRUE(pool.TryPost([&] { ran.fetch_add(1); }));
  EXPECT_FALSE(pool.TryPost([&] { ran.fetch_add(100); }));
  gate.Open();
  pool.Drain();
  EXPECT_EQ(ran.load(), 3);  // the refused one never ran
}

// Post on a full queue returns only once a thread took a function off it: here only after
// the busy thread was let go.
TEST(WorkerPoolTest, PostWaitsWhileTheQueueIsFull) {
  WorkerPool pool("doppel-t", 1, 1);
  Gate gate;
  std::atomic<int> ran{0};
  pool.Post([&] {
    gate.Wait();
    ran.fetch_add(1);
  });
  EXPECT_TRUE(gate.AwaitWaiting(1));
  pool.Post([&] { ran.fetch_add(1); });  // fills the queue
  std::atomic<bool> open_when_post_returned{false};
  std::thread poster([&] {
    pool.Post([&] { ran.fetch_add(1); });
    open_when_post_returned = gate.is_open();
  });
  gate.Open();
  poster.join();
  EXPECT_TRUE(open_when_post_returned.load());
  pool.Drain();
  EXPECT_EQ(ran.load(), 3);
}

TEST(WorkerPoolTest, ThreadsAreNamed) {
  WorkerPool pool("doppel-t", 2, 2);
  std::latch both(2);
  std::mutex mu;
  std::set<std::string> names;
  for (int i = 0; i < 2; ++i) {
    pool.Post([&] {
      both.arrive_and_wait();  // so the two run on different threads
      char name[32] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      std::lock_guard<std::mutex> lock(mu);
      names.insert(name);
    });
  }
  pool.Drain();
  EXPECT_EQ(names, (std::set<std::string>{"doppel-t-0", "doppel-t-1"}));
}

// Drain also waits for functions that are running, not only for queued ones.
TEST(WorkerPoolTest, DrainWaitsForRunningFunctions) {
  WorkerPool pool("doppel-t", 2, 2);
  Gate gate;
  std::atomic<int> done{0};
  for (int i = 0; i < 2; ++i)
    pool.Post([&] {
      gate.Wait();
      done.fetch_add(1);
    });
  EXPECT_TRUE(gate.AwaitWaiting(2));
  std::thread opener([&] { gate.Open(); });
  pool.Drain();
  EXPECT_EQ(done.load(), 2);
  opener.join();
}

// The destructor runs what was queued before it joins: nothing posted is lost.
TEST(WorkerPoolTest, DestructorRunsQueuedWorkAndJoins) {
  std::atomic<int> ran{0};
  Gate gate;
  {
    WorkerPool pool("doppel-t", 1, 8);
    pool.Post([&] {
      gate.Wait();
      ran.fetch_add(1);
    });
    for (int i = 0; i < 5; ++i) pool.Post([&] { ran.fetch_add(1); });
    EXPECT_TRUE(gate.AwaitWaiting(1));
    gate.Open();
  }
  EXPECT_EQ(ran.load(), 6);
}

}  // namespace
}  // namespace doppel
