// OnceFlag: runs a function once however many threads ask, like std::call_once, without a
// system call.
//
//   mutable OnceFlag parsed_once_;
//   parsed_once_.Call([this] { parsed_.emplace(Parse(text_)); });
//
// Why not std::call_once: in glibc, completing a pthread_once flag always issues a futex
// wake system call, waiters or not. A flag made per request (diff::PreparedBody has two)
// paid that on every request: 3.5 % of a diffing replay's CPU in a profile (bench/RESULTS.md,
// "Replay: round-1 end vs now"). Here a completed flag costs one acquire load and the first
// call one uncontended mutex; a caller that finds the function running waits for it, as
// std::call_once's do. If the function throws, the flag stays unset and the next call runs it
// again.
#pragma once

#include <atomic>
#include <mutex>
#include <utility>

namespace doppel {

class OnceFlag {
 public:
  OnceFlag() = default;
  OnceFlag(const OnceFlag&) = delete;
  OnceFlag& operator=(const OnceFlag&) = delete;

  template <typename F>
  void Call(F&& fn) {
    if (done_.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (done_.load(std::memory_order_relaxed)) return;
    std::forward<F>(fn)();
    done_.store(true, std::memory_order_release);
  }

 private:
  std::atomic<bool> done_{false};
  std::mutex mu_;
};

}  // namespace doppel
