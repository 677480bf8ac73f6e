// Gate: a door test code waits at until the test opens it — to hold a worker (a comparison,
// a store write, a fake upstream) at a known point and prove what goes on meanwhile, without
// sleeping. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace doppel::testing {

class Gate {
 public:
  explicit Gate(bool open = false) : open_(open) {}
  // Opens: a gate left closed would hang the threads still waiting at it.
  ~Gate() { Open(); }

  // Blocks until Open().
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
    --waiting_;
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  bool is_open() {
    std::lock_guard<std::mutex> lock(mu_);
    return open_;
  }
  // Waits until `n` callers are blocked in Wait (false if that took longer than `limit`:
  // a bound so a broken build fails instead of hanging).
  bool AwaitWaiting(int n, std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, limit, [&] { return waiting_ >= n; });
  }
  int waiting() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiting_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int waiting_ = 0;
  bool open_;
};

}  // namespace doppel::testing
