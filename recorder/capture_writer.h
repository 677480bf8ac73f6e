// The capture path: proxy threads push envelopes into a bounded queue without waiting; one
// writer thread redacts them and appends them to a sink (the store) in batches. A full queue
// drops the envelope and counts it, so the primary's latency never depends on storage.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "net/metrics.h"
#include "redact/redactor.h"

namespace doppel::storage {
class Store;
}

namespace doppel::recorder {

// Where captured envelopes go. Called from the writer thread only.
class CaptureSink {
 public:
  virtual ~CaptureSink() = default;
  virtual Status Append(std::span<const doppel::v1::Envelope> batch) = 0;
  // Called before retrying after a failed Append (at most once a second): lets a sink that
  // stops writing after an error (RocksDB after a full disk) go on. OK when it may.
  virtual Status Recover() { return Status::Ok(); }
  // True for a sink that can store a part of a batch (a sharded sink, whose shards fail one
  // by one): it retries what failed itself, so the writer appends every batch to it even
  // while it fails, instead of once a second.
  virtual bool StoresInParts() const { return false; }
  // After a failed Append: how many envelopes of its batch were stored all the same.
  virtual size_t StoredOfFailedAppend() const { return 0; }
};
using CaptureSinkPtr = std::unique_ptr<CaptureSink>;

// Appends to one session of a Store. `store` must outlive the sink.
CaptureSinkPtr MakeStoreSink(storage::Store* store, std::string session);

struct CaptureWriterOptions {
  size_t queue_size = 10000;             // envelopes queued or being written, at most
  uint64_t max_queue_bytes = 256 << 20;  // approximate body bytes queued, at most
  size_t max_batch = 512;                // envelopes per Append
  // Names the sink in log lines ("" for the store: "storing envelopes failed: ...").
  std::string sink_name;
};

struct CaptureCounters {
  net::Counter* stored = nullptr;
  net::Counter* dropped_queue_full = nullptr;
  net::Counter* dropped_store_error = nullptr;
};

class CaptureWriter {
 public:
  // `redactor` may be null (--no-redact). `sink`, `redactor` and the counters must outlive
  // the writer.
  CaptureWriter(CaptureSink* sink, const redact::Redactor* redactor, CaptureWriterOptions options,
                CaptureCounters counters);
  ~CaptureWriter();  // Stop()s

  void Start();
  // Thread-safe, never blocks on storage. Returns false (and counts) when the envelope was
  // dropped because the queue is full or the writer stopped.
  bool Push(doppel::v1::Envelope&& envelope);
  // Writes everything queued, then stops the writer thread. Idempotent.
  void Stop();

  size_t depth() const;  // envelopes queued or being written
  uint64_t stored() const { return counters_.stored->value(); }
  uint64_t dropped() const {
    return counters_.dropped_queue_full->value() + counters_.dropped_store_error->value();
  }
  // First store error seen, OK if none. After a store error the writer keeps draining the
  // queue: batches are dropped (counted as store_error) until the sink works again, tried
  // at most once a second, and then stored again.
  Status first_error() const;
  // True from a failed Append until one succeeds again (the sink is being retried).
  bool failing() const { return failing_.load(std::memory_order_relaxed); }

 private:
  void Run();
  std::string LogPrefix() const;  // "sink NAME: ", or "" for the store
  std::string SinkName() const;   // NAME, or "store"

  CaptureSink* sink_;
  const redact::Redactor* redactor_;
  CaptureWriterOptions options_;
  CaptureCounters counters_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<doppel::v1::Envelope> pending_;  // guarded by mu_
  size_t in_writer_ = 0;                       // guarded by mu_
  uint64_t queued_bytes_ = 0;                  // guarded by mu_
  bool writer_waiting_ = false;                // guarded by mu_
  bool stopping_ = false;                      // guarded by mu_
  Status first_error_;                         // guarded by mu_
  // Set while the sink fails (written by the writer thread only); when it was last retried.
  std::atomic<bool> failing_{false};
  std::chrono::steady_clock::time_point last_retry_;
  uint64_t dropped_while_failing_ = 0;
  std::thread thread_;
};

}  // namespace doppel::recorder
