#include "base/worker_pool.h"

#include <utility>

#include "base/thread.h"

namespace doppel {

WorkerPool::WorkerPool(std::string_view name, size_t threads, size_t capacity)
    : capacity_(capacity < 1 ? 1 : capacity) {
  if (threads < 1) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { Loop(); });
    NameThread(threads_.back(), std::string(name) + "-" + std::to_string(i));
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_.notify_all();
  for (std::thread& t : threads_) t.join();
}

bool WorkerPool::TryPost(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= capacity_) return false;
    queue_.push_back(std::move(fn));
  }
  work_.notify_one();
  return true;
}

void WorkerPool::Post(std::function<void()> fn) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [this] { return queue_.size() < capacity_; });
    queue_.push_back(std::move(fn));
  }
  work_.notify_one();
}

void WorkerPool::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this] { return queue_.empty() && running_ == 0; });
}

void WorkerPool::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued ran
    std::function<void()> fn = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    room_.notify_one();
    fn();
    fn = nullptr;  // whatever it captured goes before the pool reports idle
    lock.lock();
    --running_;
    if (queue_.empty() && running_ == 0) idle_.notify_all();
  }
}

}  // namespace doppel
