// The RocksDB Store (store.h) as seen by its own source files: store.cc (open, sessions,
// envelopes) and store_runs.cc (replay runs and their results). Not for use outside storage/.
// Layout: key_codec.h and docs/storage-format.md.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/envelope_codec.h"
#include "storage/store.h"

namespace doppel::storage::internal {

using doppel::v1::Envelope;
using doppel::v1::RunInfo;
using doppel::v1::RunResult;
using doppel::v1::SessionCounts;
using doppel::v1::SessionInfo;

// Bumped when a change makes old binaries misread the store. Readers refuse newer versions.
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kMetaFormatVersion[] = "meta/format_version";
inline constexpr char kMetaNextSessionId[] = "meta/next_session_id";
inline constexpr char kMetaNextRunId[] = "meta/next_run_id";

inline constexpr char kCfSessions[] = "sessions";
inline constexpr char kCfEnvelopes[] = "envelopes";
inline constexpr char kCfDicts[] = "dicts";
inline constexpr char kCfRuns[] = "runs";

// A RocksDB status as a doppel Status: "WHAT: rocksdb's message", with a hint for a full disk.
Status FromRocks(const rocksdb::Status& s, const std::string& what);

// A forward scan over the keys in [lower, upper) of one column family. It owns the upper bound
// that the read options point at, so the bound lives as long as the RocksDB iterator.
class KeyRangeScan {
 public:
  KeyRangeScan(std::string lower, std::string upper)
      : lower_(std::move(lower)), upper_(std::move(upper)), upper_slice_(upper_) {}
  KeyRangeScan(const KeyRangeScan&) = delete;
  KeyRangeScan& operator=(const KeyRangeScan&) = delete;

  // Opens the iterator with `ro` (its upper bound set to this range's) and seeks to lower.
  void Open(rocksdb::DB* db, rocksdb::ReadOptions ro, rocksdb::ColumnFamilyHandle* cf) {
    ro.iterate_upper_bound = &upper_slice_;
    it_.reset(db->NewIterator(ro, cf));
    it_->Seek(lower_);
  }
  rocksdb::Iterator* operator->() const { return it_.get(); }

 private:
  std::string lower_, upper_;
  rocksdb::Slice upper_slice_;  // points into upper_; must outlive it_
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksStore final : public Store {
 public:
  RocksStore(StoreOptions options, std::string path) : opts_(options), path_(std::move(path)) {}

  ~RocksStore() override {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    delete db_;
  }

  Status Init();

  Result<SessionInfo> CreateSession(SessionInfo info) override;
  Result<SessionInfo> GetSession(std::string_view name) override;
  Result<std::vector<SessionInfo>> ListSessions() override;
  Result<DeletedCounts> DeleteSession(std::string_view name) override;
  Status CloseSession(std::string_view name, const SessionCounts& recorder_counts,
                      doppel::v1::SessionState state) override;
  Status RenameSession(std::string_view from, std::string_view to) override;
  Status Append(std::string_view session, std::span<const Envelope> batch) override;
  Result<EnvelopeIteratorPtr> Scan(std::string_view session, const ScanOptions& options) override;
  Result<DeletedCounts> DeleteEnvelopesBefore(std::string_view session,
                                              uint64_t cutoff_us) override;
  Result<uint64_t> ApproximateSessionBytes(std::string_view session) override;
  Result<CompactedBytes> CompactSession(std::string_view session) override;
  Result<RunInfo> CreateRun(RunInfo info) override;
  Status UpdateRun(const RunInfo& info) override;
  Result<RunInfo> GetRun(uint32_t run_id) override;
  Result<std::vector<RunInfo>> ListRuns() override;
  Status AppendRunResults(uint32_t run_id, std::span<const RunResult> results) override;
  Result<RunResultIteratorPtr> ScanRunResults(uint32_t run_id) override;
  Status DeleteRun(uint32_t run_id) override;
  Status Flush() override;
  Status Resume() override;

 private:
  // Write-side state of one session, cached while it is being appended to.
  struct SessionWriter {
    std::mutex mu;
    SessionInfo info;
    EnvelopeCodec codec;
    std::vector<std::string> samples;  // per-envelope mode, until the dictionary is trained
    size_t sample_bytes = 0;
    bool dict_done = false;
    // Reused by every Append (under mu): keeps its capacity, so a batch does not regrow
    // (and page-fault in) a fresh multi-MB buffer each time.
    rocksdb::WriteBatch batch;
    std::string key, value, serialized, session_value;
    SessionWriter(int level, uint64_t max_decoded) : codec(level, max_decoded) {}
  };

  rocksdb::ColumnFamilyHandle* sessions() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* envelopes() { return handles_[2]; }
  rocksdb::ColumnFamilyHandle* dicts() { return handles_[3]; }
  rocksdb::ColumnFamilyHandle* runs() { return handles_[4]; }

  Status CheckWritable() const {
    if (opts_.read_only) return Status::Unsupported("the store was opened read-only");
    return Status::Ok();
  }
  Result<SessionInfo> ReadSession(std::string_view name);
  Result<uint32_t> NextId(const char* meta_key);  // REQUIRES: mu_ held
  Status LoadDictionaries(uint32_t session_id, EnvelopeCodec* codec, std::string* encode_dict);
  Result<std::shared_ptr<SessionWriter>> Writer(std::string_view name);
  Status MarkInterrupted();
  // Ids of the replay runs of `session` (by name; runs of a bundle file are not its) that
  // replayed an envelope with arrival_us < before_us; every run of it for UINT64_MAX.
  Result<std::vector<uint32_t>> RunsOfSession(std::string_view session, uint64_t before_us);
  // Adds the deletion of a run and its results to `batch`.
  void DeleteRunIn(rocksdb::WriteBatch* batch, uint32_t run_id);

  StoreOptions opts_;
  std::string path_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::WriteOptions write_options_;
  std::mutex mu_;  // guards writers_ and id allocation
  std::map<std::string, std::shared_ptr<SessionWriter>, std::less<>> writers_;
};

}  // namespace doppel::storage::internal
