// RocksStore's replay runs: run records and their per-request results (column family `runs`;
// keys in key_codec.h).
#include <rocksdb/iterator.h>

#include "storage/key_codec.h"
#include "storage/rocks_store.h"

namespace doppel::storage::internal {
namespace {

class RocksRunResultIterator final : public RunResultIterator {
 public:
  // Every result of `run_id`: the keys that start with `prefix`.
  RocksRunResultIterator(uint32_t run_id, const std::string& prefix)
      : run_id_(run_id), scan_(prefix, PrefixEnd(prefix)) {}
  // REQUIRES: called once, before anything else.
  void Open(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
    scan_.Open(db, rocksdb::ReadOptions(), cf);
    Settle();
  }
  bool Valid() const override { return valid_; }
  void Next() override {
    scan_->Next();
    Settle();
  }
  const RunResult& result() const override { return result_; }
  Status status() const override { return status_; }

 private:
  void Settle() {
    valid_ = false;
    if (!scan_->Valid()) {
      if (!scan_->status().ok()) status_ = FromRocks(scan_->status(), "reading run results");
      return;
    }
    rocksdb::Slice v = scan_->value();
    if (!result_.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      status_ = Status::Corruption("run " + std::to_string(run_id_) +
                                   ": a result record does not decode");
      return;
    }
    valid_ = true;
  }
  static std::string PrefixEnd(std::string prefix) {
    prefix.back() = static_cast<char>(prefix.back() + 1);
    return prefix;
  }
  uint32_t run_id_;
  KeyRangeScan scan_;
  RunResult result_;
  bool valid_ = false;
  Status status_;
};

}  // namespace

Result<RunInfo> RocksStore::CreateRun(RunInfo info) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard<std::mutex> lock(mu_);
  DOPPEL_ASSIGN_OR_RETURN(auto id, NextId(kMetaNextRunId));
  info.set_id(id);
  if (info.state() == doppel::v1::RUN_STATE_UNSPECIFIED)
    info.set_state(doppel::v1::RUN_STATE_RUNNING);
  if (info.started_us() == 0) info.set_started_us(opts_.clock->WallUs());
  DOPPEL_RETURN_IF_ERROR(
      FromRocks(db_->Put(write_options_, runs(), EncodeRunInfoKey(id), info.SerializeAsString()),
                "writing run"));
  return info;
}

Status RocksStore::UpdateRun(const RunInfo& info) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  return FromRocks(
      db_->Put(write_options_, runs(), EncodeRunInfoKey(info.id()), info.SerializeAsString()),
      "writing run " + std::to_string(info.id()));
}

Result<RunInfo> RocksStore::GetRun(uint32_t run_id) {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), runs(), EncodeRunInfoKey(run_id), &v);
  if (s.IsNotFound())
    return Status::NotFound("no run " + std::to_string(run_id) + " (see `doppel runs list`)");
  if (!s.ok()) return FromRocks(s, "reading run");
  RunInfo info;
  if (!info.ParseFromString(v))
    return Status::Corruption("run " + std::to_string(run_id) + " does not decode");
  return info;
}

Result<std::vector<RunInfo>> RocksStore::ListRuns() {
  std::vector<RunInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), runs()));
  it->SeekToFirst();
  while (it->Valid()) {
    if (it->key().size() != 5) {
      // A result record: jump over the rest of this run's results to the next run.
      it->Seek(EncodeRunInfoKey(GetBigEndian32(it->key().data()) + 1));
      continue;
    }
    RunInfo info;
    if (!info.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      return Status::Corruption("run record does not decode");
    out.push_back(std::move(info));
    it->Next();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing runs");
  return out;
}

Status RocksStore::AppendRunResults(uint32_t run_id, std::span<const RunResult> results) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  rocksdb::WriteBatch wb;
  for (const RunResult& r : results)
    wb.Put(runs(), EncodeRunResultKey(run_id, r.index(), r.target()), r.SerializeAsString());
  return FromRocks(db_->Write(write_options_, &wb), "writing run results");
}

Result<RunResultIteratorPtr> RocksStore::ScanRunResults(uint32_t run_id) {
  auto iter = std::make_unique<RocksRunResultIterator>(run_id, RunResultPrefix(run_id));
  iter->Open(db_, runs());
  return RunResultIteratorPtr(std::move(iter));
}

Status RocksStore::DeleteRun(uint32_t run_id) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  rocksdb::WriteBatch wb;
  DeleteRunIn(&wb, run_id);
  return FromRocks(db_->Write(write_options_, &wb), "deleting run");
}

void RocksStore::DeleteRunIn(rocksdb::WriteBatch* batch, uint32_t run_id) {
  batch->Delete(runs(), EncodeRunInfoKey(run_id));
  batch->DeleteRange(runs(), RunResultPrefix(run_id), EncodeRunInfoKey(run_id + 1));
}

Result<std::vector<uint32_t>> RocksStore::RunsOfSession(std::string_view session,
                                                        uint64_t before_us) {
  DOPPEL_ASSIGN_OR_RETURN(auto runs, ListRuns());
  std::vector<uint32_t> ids;
  for (const RunInfo& run : runs) {
    if (run.settings().from_bundle() || run.settings().session() != session) continue;
    if (before_us == UINT64_MAX) {
      ids.push_back(run.id());
      continue;
    }
    DOPPEL_ASSIGN_OR_RETURN(auto it, ScanRunResults(run.id()));
    for (auto& i = it; i->Valid(); i->Next()) {
      if (i->result().arrival_us() < before_us) {
        ids.push_back(run.id());
        break;
      }
    }
    DOPPEL_RETURN_IF_ERROR(it->status());
  }
  return ids;
}

}  // namespace doppel::storage::internal
