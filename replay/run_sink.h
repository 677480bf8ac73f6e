// RunSink: what the replayer does with every finished request — diff each target's answer
// (and the secondary's) against the recording, feed the aggregator, and persist one
// RunResult per target in the store.
//
// Threads (docs/architecture.md, "Threads"): OnCompleted runs on the engine's io thread and
// only copies the finished request and hands it to the compare pool (doppel-cmp-N); it
// waits only while that pool's queue is full (backpressure: every request is compared,
// none is dropped). A compare thread prepares the recording once (diff::Differ::Prepare:
// its body decoded and parsed once) and diffs every answer against it. The results are
// then taken in OnCompleted order — whatever order the comparisons finish in — to the
// aggregator and into RunResult batches, so the report and the stored results are the
// same for the same completions with one compare thread or many. Full batches are written
// to the store by the results writer thread (doppel-results), so a slow RocksDB write
// delays neither dispatching nor comparing until its queue is full.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/worker_pool.h"
#include "diff/diff.h"
#include "doppel/v1/run.pb.h"
#include "replay/replay.h"
#include "report/aggregate.h"
#include "storage/store.h"

namespace doppel::replay {

struct RunSinkOptions {
  // --compare-threads: 0 compares on the engine's thread inside OnCompleted (no copy, no
  // hand-over); N > 0 copies each finished request onto a pool of N threads.
  size_t compare_threads = 1;
  // Finished requests waiting for a compare thread; OnCompleted blocks past it. 0 = 256 per
  // compare thread.
  size_t compare_queue = 0;
  size_t result_batch = 1000;  // RunResults per store write
  size_t write_queue = 4;      // full batches waiting for the results writer
};

class RunSink final : public ResultSink {
 public:
  // `store` may be null (results are then not persisted). `differ` null = no diffing
  // (--no-diff): results are counted, not compared. REQUIRES: `differ`, `aggregator` and
  // `store` outlive the sink, and the aggregator is used by no one else until Flush returns.
  RunSink(const diff::Differ* differ, report::RunAggregator* aggregator, storage::Store* store,
          uint32_t run_id, RunSinkOptions options = {});
  // Waits for what was handed over (as Flush, without its status).
  ~RunSink() override;

  // Copies the finished request and hands it to a compare thread. Called on one thread (the
  // engine's).
  void OnCompleted(const Completed& c) override { OnCompleted(c, nullptr); }
  // The same, and the request is also counted in `part` (a group worker's aggregator for the
  // shard the request came from, replay/group.h). REQUIRES: `part` outlives the sink and is
  // used by no one else until Flush returns.
  void OnCompleted(const Completed& c, report::RunAggregator* part);
  // Waits until every request handed over is compared, aggregated and written. Returns the
  // first store error seen (results are best-effort: a store error never stops a replay,
  // it is reported at the end). Called on the thread that calls OnCompleted.
  Status Flush();

  // Counts so far; any thread.
  uint64_t mismatches() const { return mismatches_.load(std::memory_order_relaxed); }
  uint64_t compared() const { return compared_.load(std::memory_order_relaxed); }

 private:
  struct Job;       // one finished request, copied
  struct Compared;  // a Job with its diffs

  // Diffs every answer of `job` against its recording (a compare thread).
  std::unique_ptr<Compared> Diff(std::shared_ptr<const Job> job) const;
  // Takes compared requests in OnCompleted order to the aggregator and the batch.
  void Deliver(std::unique_ptr<Compared> compared);
  void Record(const Compared& c);  // REQUIRES: order_mu_ held
  void PostBatch();                // REQUIRES: order_mu_ held
  void Write(const std::vector<doppel::v1::RunResult>& batch);

  const diff::Differ* differ_;
  report::RunAggregator* aggregator_;
  storage::Store* store_;
  const uint32_t run_id_;
  const RunSinkOptions options_;
  uint64_t next_seq_ = 0;  // OnCompleted's thread only

  std::mutex order_mu_;       // guards the aggregator, the members below and batch_
  uint64_t next_record_ = 0;  // the sequence number Record takes next
  std::map<uint64_t, std::unique_ptr<Compared>> ready_;  // compared, waiting for their turn
  std::vector<doppel::v1::RunResult> batch_;

  std::mutex store_mu_;
  Status store_status_;  // the first store error

  std::atomic<uint64_t> mismatches_{0}, compared_{0};

  // Last: destroyed (drained and joined) first, while what their work uses still exists.
  WorkerPool writer_;
  WorkerPool comparers_;
};

}  // namespace doppel::replay
