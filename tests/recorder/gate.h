// Gate: threads calling Wait() block while it is closed. Tests hold a fake upstream or store
// with one (requests in flight, a store that does not keep up) instead of sleeping.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>

namespace doppel::testing {

class Gate {
 public:
  explicit Gate(bool open) : open_(open) {}
  // Opens: a gate left closed would hang the threads still waiting on it.
  ~Gate() { Open(); }

  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_;
};

}  // namespace doppel::testing
