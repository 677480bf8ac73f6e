// Clock: where time comes from, injected so tests control it instead of sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace doppel {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds (arbitrary epoch); never goes backwards.
  virtual uint64_t NowUs() const = 0;
  // Wall-clock microseconds since the Unix epoch.
  virtual uint64_t WallUs() const = 0;
};

class SystemClock final : public Clock {
 public:
  uint64_t NowUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  uint64_t WallUs() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const SystemClock& Instance() {
    static const SystemClock clock;
    return clock;
  }
};

// A clock tests move by hand. Thread-safe: a test may move it while the threads of the code
// under test (a recorder's proxy threads, say) read it.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t now_us = 0) : now_(now_us) {}
  uint64_t NowUs() const override { return now_.load(std::memory_order_relaxed); }
  uint64_t WallUs() const override { return now_.load(std::memory_order_relaxed); }
  void Advance(uint64_t us) { now_.fetch_add(us, std::memory_order_relaxed); }
  void Set(uint64_t us) { now_.store(us, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> now_;
};

}  // namespace doppel
