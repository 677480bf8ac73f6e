// WorkerPool: a fixed set of named threads running posted functions, in post order, from one
// bounded queue. Used where work must leave a thread that promised not to do it (the replay
// engine's io thread, a proxy thread): the poster hands a function over and goes on.
//
//   WorkerPool pool("doppel-cmp", 3, 1024);  // threads doppel-cmp-0 .. doppel-cmp-2
//   if (!pool.TryPost(fn)) ...skipped...      // never blocks: false when the queue is full
//   pool.Post(fn);                            // blocks while the queue is full (backpressure)
//   pool.Drain();                             // returns once everything posted so far ran
//
// The queue bound counts functions waiting, not running: with T threads and capacity Q, T
// functions can run while Q more wait. Functions start in post order; with more than one
// thread they may finish in any order. Thread-safe; Post and Drain must not be called from
// one of the pool's own threads (they could wait for themselves).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace doppel {

class WorkerPool {
 public:
  // Starts `threads` threads named "<name>-<i>" (i from 0; NameThread keeps 15 bytes, so
  // keep `name` short) with room for `capacity` waiting functions.
  // REQUIRES: threads >= 1, capacity >= 1.
  WorkerPool(std::string_view name, size_t threads, size_t capacity);
  // Stops taking work, runs what is already queued, joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `fn` if there is room; false (fn dropped) when the queue is full.
  bool TryPost(std::function<void()> fn);
  // Queues `fn`, waiting while the queue is full.
  void Post(std::function<void()> fn);
  // Waits until every function posted before the call has run (and nothing runs).
  void Drain();

  size_t threads() const { return threads_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  void Loop();

  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable work_;  // a function was queued, or stopping
  std::condition_variable room_;  // the queue has room
  std::condition_variable idle_;  // nothing queued and nothing running
  std::deque<std::function<void()>> queue_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace doppel
