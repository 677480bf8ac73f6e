// RunSink: what the replayer does with every finished request — diff each target's answer
// (and the secondary's) against the recording, feed the aggregator, and persist one
// RunResult per target in the store.
#pragma once

#include <cstdint>
#include <vector>

#include "doppel/v1/run.pb.h"
#include "diff/diff.h"
#include "replay/replay.h"
#include "report/aggregate.h"
#include "storage/store.h"

namespace doppel::replay {

class RunSink final : public ResultSink {
 public:
  // `store` may be null (results are then not persisted). `differ` null = no diffing
  // (--no-diff): results are counted, not compared.
  RunSink(const diff::Differ* differ, report::RunAggregator* aggregator, storage::Store* store,
          uint32_t run_id)
      : differ_(differ), aggregator_(aggregator), store_(store), run_id_(run_id) {}

  void OnCompleted(const Completed& c) override;
  // Writes buffered results. Returns the first store error seen (results are best-effort:
  // a store error never stops a replay, it is reported at the end).
  Status Flush();

  uint64_t mismatches() const { return mismatches_; }
  uint64_t compared() const { return compared_; }

 private:
  const diff::Differ* differ_;
  report::RunAggregator* aggregator_;
  storage::Store* store_;
  uint32_t run_id_;
  std::vector<doppel::v1::RunResult> pending_;
  Status store_status_;
  uint64_t mismatches_ = 0, compared_ = 0;
};

}  // namespace doppel::replay
