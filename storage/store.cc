// RocksDB implementation of Store. Layout: key_codec.h and docs/storage-format.md.
#include "storage/store.h"

#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_map>

#include "storage/envelope_codec.h"
#include "storage/key_codec.h"
#include "storage/rocks_store.h"

namespace doppel::storage {

using internal::FromRocks;
using internal::RocksStore;

namespace {

using doppel::v1::Envelope;
using doppel::v1::RunInfo;
using doppel::v1::RunResult;
using doppel::v1::SessionCounts;
using doppel::v1::SessionInfo;

// Per-envelope mode: a session's dictionary is trained on its first envelopes, inside the
// Append that reaches the threshold, so the training time is a one-off stall of that Append.
// zstd's trainer costs roughly linear in the sample bytes: 2000 envelopes (~4.8 MB) took
// ~1 s on the bench machine; 500 (~1.2 MB) take ~0.3 s and, on the bench corpus, give a
// slightly *smaller* store (511 vs 519 B/env; bench/RESULTS.md, Storage, "tuning"). The
// thresholds (kDictTrainSamples, kDictTrainMaxBytes, kDictSize) are in envelope_codec.h.

// RocksDB's info log (`<store>/LOG`, warnings and errors only), written with plain
// appends whose failures are ignored. RocksDB's own file logger aborts the process (an
// assertion in its file writer, on in Debian's build) on the first line after a failed
// write, and a full disk is exactly when it logs: the recorder must survive that.
class StoreLogger : public rocksdb::Logger {
 public:
  explicit StoreLogger(const std::string& path)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL),
        fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) {}
  ~StoreLogger() override {
    if (fd_ >= 0) ::close(fd_);
  }
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (fd_ < 0) return;
    char line[1024];
    const int n = std::vsnprintf(line, sizeof line - 1, format, ap);
    if (n < 0) return;
    size_t len = std::min<size_t>(static_cast<size_t>(n), sizeof line - 2);
    if (len == 0 || line[len - 1] != '\n') line[len++] = '\n';
    (void)!::write(fd_, line, len);  // best effort: a full disk must not stop the store
  }

 private:
  int fd_;
};

std::string EncodeU32(uint32_t v) {
  std::string s;
  PutBigEndian32(&s, v);
  return s;
}

class RocksEnvelopeIterator final : public EnvelopeIterator {
 public:
  RocksEnvelopeIterator(std::string session, std::string lower, std::string upper,
                        bool skip_corrupt, std::unique_ptr<EnvelopeCodec> codec)
      : session_(std::move(session)),
        scan_(std::move(lower), std::move(upper)),
        skip_corrupt_(skip_corrupt),
        codec_(std::move(codec)) {}

  // REQUIRES: called once, before anything else.
  void Open(rocksdb::DB* db, const rocksdb::ReadOptions& ro, rocksdb::ColumnFamilyHandle* cf) {
    scan_.Open(db, ro, cf);
    Settle();
  }

  bool Valid() const override { return valid_; }
  void Next() override {
    scan_->Next();
    Settle();
  }
  const Envelope& envelope() const override { return envelope_; }
  void TakeEnvelope(Envelope* out) override { envelope_.Swap(out); }
  Status status() const override { return status_; }
  uint64_t skipped() const override { return skipped_; }

 private:
  // Moves to the first decodable entry at or after the current position.
  void Settle() {
    valid_ = false;
    for (; scan_->Valid(); scan_->Next()) {
      rocksdb::Slice v = scan_->value();
      Status s = codec_->Decode(std::string_view(v.data(), v.size()), &envelope_);
      if (s.ok()) {
        valid_ = true;
        return;
      }
      rocksdb::Slice k = scan_->key();
      if (!skip_corrupt_) {
        status_ = Status::Corruption("session '" + session_ + "', envelope " +
                                     DescribeEnvelopeKey(std::string_view(k.data(), k.size())) +
                                     ": " + s.message() + " (use --skip-corrupt to read past it)");
        return;
      }
      ++skipped_;
    }
    if (!scan_->status().ok())
      status_ = FromRocks(scan_->status(), "reading session '" + session_ + "'");
  }

  std::string session_;
  internal::KeyRangeScan scan_;
  bool skip_corrupt_;
  std::unique_ptr<EnvelopeCodec> codec_;
  Envelope envelope_;
  bool valid_ = false;
  Status status_;
  uint64_t skipped_ = 0;
};

// How kBlockZstdDict compresses the envelopes' table blocks.
struct BlockCompression {
  int zstd_level;
  size_t block_size;
  size_t dict_bytes;
  size_t train_bytes;  // samples the dictionary is trained on, per output file
};

// While recording. Large blocks hold many envelopes, so one zstd frame sees their shared
// structure. The dictionary is trained in every flush and compaction, on that thread; with
// 6.4 MB of samples training took about as long as compressing the whole 64 MB memtable, so
// flushes fell behind and the writer stalled for seconds. 1 MiB of samples keeps the
// dictionary almost as good (+1% bytes/env) at a fraction of the cost.
constexpr size_t kIngestBlockBytes = 64 << 10;
BlockCompression IngestCompression(const StoreOptions& o) {
  return {o.zstd_level, kIngestBlockBytes, kDictSize, 16 * kDictSize};
}

// kBlockZstdDict: a serialized envelope over this size is written as its own zstd frame
// (tag 0x01, no dictionary) instead of raw; see RocksStore::Append.
constexpr size_t kOwnFrameBytes = kIngestBlockBytes;

// For Store::CompactSession, once a session is closed: blocks of 1 MiB give zstd 16 times the
// context, and a dictionary trained on 16 MiB of them (112 KiB, zstd's recommended size)
// covers the start of each. On the bench corpus (100,000 envelopes, 240 MB serialized), a
// forced compaction gave 369 B/envelope against 459 with the ingest settings; 4 MiB blocks
// 353 but about 6 times the compaction time; with 64 KiB blocks, level 19 395 against level
// 12's 425, at 36 times the time (bench/RESULTS.md, Storage).
constexpr BlockCompression kSettledCompression{12, 1 << 20, 112 << 10, 16 << 20};

// The envelopes column family's options that CompactSession switches with DB::SetOptions.
std::unordered_map<std::string, std::string> BlockCompressionOptions(const BlockCompression& c) {
  const std::string zstd =
      "{level=" + std::to_string(c.zstd_level) + ";max_dict_bytes=" + std::to_string(c.dict_bytes) +
      ";zstd_max_train_bytes=" + std::to_string(c.train_bytes) + ";enabled=true}";
  return {{"compression_opts", zstd},
          {"bottommost_compression_opts", zstd},
          {"block_based_table_factory", "{block_size=" + std::to_string(c.block_size) + "}"}};
}

rocksdb::ColumnFamilyOptions EnvelopeCfOptions(const StoreOptions& o) {
  rocksdb::ColumnFamilyOptions cf;
  cf.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(kSessionPrefixSize));
  rocksdb::BlockBasedTableOptions table;
  if (o.compression == Compression::kBlockZstdDict) {
    const BlockCompression c = IngestCompression(o);
    table.block_size = c.block_size;
    cf.compression = rocksdb::kZSTD;
    cf.compression_opts.level = c.zstd_level;
    cf.compression_opts.max_dict_bytes = static_cast<uint32_t>(c.dict_bytes);
    cf.compression_opts.zstd_max_train_bytes = static_cast<uint32_t>(c.train_bytes);
    cf.compression_opts.max_dict_buffer_bytes = 64ull << 20;
    cf.compression_opts.enabled = true;
    cf.bottommost_compression = rocksdb::kZSTD;
    cf.bottommost_compression_opts = cf.compression_opts;
  } else {
    // Values are already zstd frames: never compress twice.
    cf.compression = rocksdb::kNoCompression;
    cf.bottommost_compression = rocksdb::kNoCompression;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = 64 << 20;
  // Up to 4 memtables (256 MB): a burst keeps appending while earlier memtables are still
  // being flushed (compressed), instead of stopping as soon as one flush is in progress.
  cf.max_write_buffer_number = 4;
  return cf;
}

}  // namespace

Status RocksStore::Init() {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool exists = fs::exists(fs::path(path_) / "CURRENT", ec);
  if (!exists && (opts_.read_only || !opts_.create_if_missing)) {
    return Status::NotFound("no doppel store at '" + path_ +
                            "' (record or import a session first, or point --store / "
                            "DOPPEL_STORE at an existing store)");
  }
  if (!exists) {
    fs::create_directories(path_, ec);
    if (ec)
      return Status::IoError("cannot create store directory '" + path_ + "': " + ec.message());
    ::chmod(path_.c_str(), 0700);  // envelopes hold production traffic
  }

  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.max_background_jobs = 2;
  db.keep_log_file_num = 4;
  db.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db.info_log = std::make_shared<StoreLogger>(path_ + "/LOG");

  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName, kCfSessions, kCfEnvelopes,
                                    kCfDicts, kCfRuns};
  if (exists) {
    std::vector<std::string> on_disk;
    if (rocksdb::DB::ListColumnFamilies(db, path_, &on_disk).ok()) {
      for (const auto& n : on_disk)
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) {
    rocksdb::ColumnFamilyOptions cf;
    if (n == kCfEnvelopes) cf = EnvelopeCfOptions(opts_);
    cfs.emplace_back(n, cf);
  }
  rocksdb::Status s = opts_.read_only
                          ? rocksdb::DB::OpenForReadOnly(db, path_, cfs, &handles_, &db_)
                          : rocksdb::DB::Open(db, path_, cfs, &handles_, &db_);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
      return Status::Unavailable("store '" + path_ +
                                 "' is in use by another doppel process (a recorder?); "
                                 "read-only commands still work, or use another --store");
    }
    return FromRocks(s, "opening store '" + path_ + "'");
  }
  write_options_.sync = opts_.sync;

  std::string v;
  s = db_->Get(rocksdb::ReadOptions(), handles_[0], kMetaFormatVersion, &v);
  if (s.ok()) {
    if (v.size() != 4)
      return Status::Corruption("store '" + path_ + "': bad format version record");
    uint32_t version = GetBigEndian32(v.data());
    if (version > kFormatVersion) {
      return Status::Unsupported("store '" + path_ + "' was written by a newer doppel (format " +
                                 std::to_string(version) + "; this doppel reads up to " +
                                 std::to_string(kFormatVersion) +
                                 "); upgrade doppel or use another --store");
    }
  } else if (s.IsNotFound()) {
    if (!opts_.read_only) {
      DOPPEL_RETURN_IF_ERROR(FromRocks(
          db_->Put(write_options_, handles_[0], kMetaFormatVersion, EncodeU32(kFormatVersion)),
          "writing format version"));
    }
  } else {
    return FromRocks(s, "reading format version");
  }
  if (!opts_.read_only) DOPPEL_RETURN_IF_ERROR(MarkInterrupted());
  return Status::Ok();
}

// No other process can have the store open for writing (RocksDB's lock), so a session still
// RECORDING here was left by a writer that died.
Status RocksStore::MarkInterrupted() {
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), sessions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SessionInfo info;
    if (!info.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) continue;
    if (info.state() == doppel::v1::SESSION_STATE_RECORDING) {
      info.set_state(doppel::v1::SESSION_STATE_INTERRUPTED);
      batch.Put(sessions(), it->key(), info.SerializeAsString());
    }
  }
  std::unique_ptr<rocksdb::Iterator> rit(db_->NewIterator(rocksdb::ReadOptions(), runs()));
  for (rit->SeekToFirst(); rit->Valid(); rit->Next()) {
    if (rit->key().size() != 5) continue;  // run results
    RunInfo run;
    if (!run.ParseFromArray(rit->value().data(), static_cast<int>(rit->value().size()))) continue;
    if (run.state() == doppel::v1::RUN_STATE_RUNNING) {
      run.set_state(doppel::v1::RUN_STATE_INTERRUPTED);
      batch.Put(runs(), rit->key(), run.SerializeAsString());
    }
  }
  if (batch.Count() == 0) return Status::Ok();
  return FromRocks(db_->Write(write_options_, &batch), "marking interrupted sessions");
}

Result<uint32_t> RocksStore::NextId(const char* meta_key) {
  std::string v;
  uint32_t id = 1;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[0], meta_key, &v);
  if (s.ok() && v.size() == 4)
    id = GetBigEndian32(v.data());
  else if (!s.ok() && !s.IsNotFound())
    return FromRocks(s, "reading id counter");
  DOPPEL_RETURN_IF_ERROR(FromRocks(
      db_->Put(write_options_, handles_[0], meta_key, EncodeU32(id + 1)), "writing id counter"));
  return id;
}

Result<SessionInfo> RocksStore::ReadSession(std::string_view name) {
  std::string v;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), sessions(), rocksdb::Slice(name.data(), name.size()), &v);
  if (s.IsNotFound())
    return Status::NotFound("no session named '" + std::string(name) +
                            "' (see `doppel sessions list`)");
  if (!s.ok()) return FromRocks(s, "reading session '" + std::string(name) + "'");
  SessionInfo info;
  if (!info.ParseFromString(v))
    return Status::Corruption("session record '" + std::string(name) + "' does not decode");
  return info;
}

Result<SessionInfo> RocksStore::CreateSession(SessionInfo info) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  if (info.name().empty()) return Status::InvalidArgument("a session needs a name");
  std::lock_guard<std::mutex> lock(mu_);
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), sessions(), info.name(), &v);
  if (s.ok())
    return Status::AlreadyExists("session '" + info.name() +
                                 "' exists already; pick another name or remove it with "
                                 "`doppel sessions rm " +
                                 info.name() + "`");
  if (!s.IsNotFound()) return FromRocks(s, "reading sessions");
  DOPPEL_ASSIGN_OR_RETURN(auto id, NextId(kMetaNextSessionId));
  info.set_id(id);
  if (info.created_us() == 0) info.set_created_us(opts_.clock->WallUs());
  if (info.state() == doppel::v1::SESSION_STATE_UNSPECIFIED)
    info.set_state(doppel::v1::SESSION_STATE_RECORDING);
  DOPPEL_RETURN_IF_ERROR(
      FromRocks(db_->Put(write_options_, sessions(), info.name(), info.SerializeAsString()),
                "writing session '" + info.name() + "'"));
  return info;
}

Result<SessionInfo> RocksStore::GetSession(std::string_view name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = writers_.find(name);
    if (it != writers_.end()) {
      std::lock_guard<std::mutex> wl(it->second->mu);
      return it->second->info;
    }
  }
  return ReadSession(name);
}

Result<std::vector<SessionInfo>> RocksStore::ListSessions() {
  std::vector<SessionInfo> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), sessions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SessionInfo info;
    if (!info.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())))
      return Status::Corruption("session record '" + it->key().ToString() + "' does not decode");
    out.push_back(std::move(info));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing sessions");
  return out;
}

Result<DeletedCounts> RocksStore::DeleteSession(std::string_view name) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  DOPPEL_ASSIGN_OR_RETURN(auto info, ReadSession(name));
  DOPPEL_ASSIGN_OR_RETURN(auto runs, RunsOfSession(name, UINT64_MAX));
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = writers_.find(name); it != writers_.end()) writers_.erase(it);
  rocksdb::WriteBatch batch;
  std::string from = SessionPrefix(info.id()), to = SessionPrefix(info.id() + 1);
  batch.DeleteRange(envelopes(), from, to);
  batch.DeleteRange(dicts(), from, to);
  batch.Delete(sessions(), rocksdb::Slice(name.data(), name.size()));
  for (uint32_t id : runs) DeleteRunIn(&batch, id);
  DOPPEL_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch),
                                   "deleting session '" + std::string(name) + "'"));
  return DeletedCounts{info.counts().envelopes(), runs.size()};
}

Status RocksStore::CloseSession(std::string_view name, const SessionCounts& rc,
                                doppel::v1::SessionState state) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  DOPPEL_ASSIGN_OR_RETURN(auto w, Writer(name));
  std::lock_guard<std::mutex> wl(w->mu);
  SessionInfo info = w->info;
  info.set_state(state);
  info.set_closed_us(opts_.clock->WallUs());
  auto* c = info.mutable_counts();
  c->set_requests_seen(rc.requests_seen());
  c->set_sampled(rc.sampled());
  c->set_dropped(rc.dropped());
  c->set_errors(rc.errors());
  *c->mutable_classes() = rc.classes();
  DOPPEL_RETURN_IF_ERROR(
      FromRocks(db_->Put(write_options_, sessions(), info.name(), info.SerializeAsString()),
                "closing session '" + info.name() + "'"));
  w->info = info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writers_.erase(info.name());
  }
  // Without this, a session smaller than a memtable (64 MiB) stays in the log, uncompressed
  // (758 B/envelope on disk for 20,000 recorded envelopes, issue #20), until some later
  // write fills a memtable.
  return Flush().WithContext("session '" + info.name() +
                             "' is closed and its envelopes are in RocksDB's log, but writing "
                             "them to compressed table files failed");
}

Status RocksStore::RenameSession(std::string_view from, std::string_view to) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  std::lock_guard<std::mutex> lock(mu_);
  if (writers_.count(from))
    return Status::Unavailable("session '" + std::string(from) + "' is being written");
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), sessions(), rocksdb::Slice(to.data(), to.size()), &v).ok())
    return Status::AlreadyExists("session '" + std::string(to) + "' exists already");
  DOPPEL_ASSIGN_OR_RETURN(auto info, ReadSession(from));
  info.set_name(std::string(to));
  rocksdb::WriteBatch batch;
  batch.Delete(sessions(), rocksdb::Slice(from.data(), from.size()));
  batch.Put(sessions(), info.name(), info.SerializeAsString());
  return FromRocks(db_->Write(write_options_, &batch), "renaming session");
}

Status RocksStore::LoadDictionaries(uint32_t session_id, EnvelopeCodec* codec,
                                    std::string* encode_dict) {
  std::string lower = SessionPrefix(session_id), upper = SessionPrefix(session_id + 1);
  rocksdb::Slice ub(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &ub;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, dicts()));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    std::string_view d(it->value().data(), it->value().size());
    DOPPEL_RETURN_IF_ERROR(codec->AddDictionary(d, false).WithContext(
        "session id " + std::to_string(session_id) + " dictionary"));
    if (encode_dict) *encode_dict = std::string(d);
  }
  return FromRocks(it->status(), "reading dictionaries");
}

Result<std::shared_ptr<RocksStore::SessionWriter>> RocksStore::Writer(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = writers_.find(name);
  if (it != writers_.end()) return it->second;
  auto info = ReadSession(name);
  if (!info.ok()) return info.status();
  auto w = std::make_shared<SessionWriter>(opts_.zstd_level, opts_.max_decoded_envelope_bytes);
  w->info = *info;
  std::string dict;
  DOPPEL_RETURN_IF_ERROR(LoadDictionaries(info->id(), &w->codec, &dict));
  if (!dict.empty()) {
    DOPPEL_RETURN_IF_ERROR(w->codec.AddDictionary(dict, true));
    w->dict_done = true;
  }
  writers_.emplace(std::string(name), w);
  return w;
}

Status RocksStore::Append(std::string_view session, std::span<const Envelope> batch) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  DOPPEL_ASSIGN_OR_RETURN(auto wr, Writer(session));
  SessionWriter& w = *wr;
  std::lock_guard<std::mutex> wl(w.mu);
  if (w.info.state() == doppel::v1::SESSION_STATE_CLOSED ||
      w.info.state() == doppel::v1::SESSION_STATE_INTERRUPTED) {
    return Status::InvalidArgument("session '" + w.info.name() +
                                   "' is closed; record into a new session");
  }
  const bool per_envelope = opts_.compression == Compression::kEnvelopeZstdDict;
  SessionInfo info = w.info;
  auto* counts = info.mutable_counts();
  rocksdb::WriteBatch& wb = w.batch;
  wb.Clear();
  std::string& key = w.key;
  std::string& value = w.value;
  std::string& serialized = w.serialized;
  uint64_t raw_bytes = 0, stored_bytes = 0;
  for (const Envelope& e : batch) {
    key = EncodeEnvelopeKey({info.id(), e.arrival_us(), e.seq()});
    size_t raw_size;
    if (per_envelope) {
      serialized.clear();
      e.AppendToString(&serialized);
      raw_size = serialized.size();
      if (!w.dict_done) {
        w.samples.push_back(serialized);
        w.sample_bytes += serialized.size();
        if (w.samples.size() >= kDictTrainSamples || w.sample_bytes >= kDictTrainMaxBytes) {
          std::string dict = TrainDictionary(w.samples, kDictSize);
          uint32_t id = DictionaryId(dict);
          if (id != 0) {
            DOPPEL_RETURN_IF_ERROR(w.codec.AddDictionary(dict, true));
            wb.Put(dicts(), EncodeDictKey(info.id(), id), dict);
            info.set_dict_id(id);
          }
          w.dict_done = true;
          w.samples.clear();
          w.samples.shrink_to_fit();
        }
      }
      DOPPEL_RETURN_IF_ERROR(w.codec.EncodeZstdSerialized(serialized, &value));
    } else {
      // Serialize straight after the tag byte: no intermediate copy.
      value.assign(1, static_cast<char>(kCodecRaw));
      e.AppendToString(&value);
      raw_size = value.size() - 1;
      if (raw_size > kOwnFrameBytes) {
        // Larger than a table block, so it fills blocks of its own: block compression would
        // give zstd no neighbouring envelopes to share structure with, and the value would sit
        // raw in the memtable (64 MB, up to 4) and in the flush's dictionary buffer until
        // then. A recorder capturing large bodies kept hundreds of MB resident that way
        // (bench/RESULTS.md, Streaming). It is compressed here, as its own zstd frame.
        serialized.swap(value);
        DOPPEL_RETURN_IF_ERROR(
            w.codec.EncodeZstdSerialized(std::string_view(serialized).substr(1), &value));
      }
    }
    wb.Put(envelopes(), key, value);
    raw_bytes += raw_size;
    stored_bytes += value.size();
    if (counts->first_arrival_us() == 0 || e.arrival_us() < counts->first_arrival_us())
      counts->set_first_arrival_us(e.arrival_us());
    if (e.arrival_us() > counts->last_arrival_us()) counts->set_last_arrival_us(e.arrival_us());
  }
  counts->set_envelopes(counts->envelopes() + batch.size());
  counts->set_raw_bytes(counts->raw_bytes() + raw_bytes);
  counts->set_stored_bytes(counts->stored_bytes() + stored_bytes);
  info.SerializeToString(&w.session_value);
  wb.Put(sessions(), info.name(), w.session_value);
  rocksdb::Status ws = db_->Write(write_options_, &wb);
  // Do not keep a very large buffer around after an unusually large batch.
  if (wb.GetDataSize() > (64u << 20)) wb = rocksdb::WriteBatch();
  DOPPEL_RETURN_IF_ERROR(FromRocks(ws, "appending to session '" + info.name() + "'"));
  w.info = std::move(info);
  return Status::Ok();
}

Result<EnvelopeIteratorPtr> RocksStore::Scan(std::string_view session, const ScanOptions& o) {
  DOPPEL_ASSIGN_OR_RETURN(auto info, GetSession(session));
  auto codec = std::make_unique<EnvelopeCodec>(opts_.zstd_level, opts_.max_decoded_envelope_bytes);
  DOPPEL_RETURN_IF_ERROR(LoadDictionaries(info.id(), codec.get(), nullptr));
  std::string lower = EncodeEnvelopeKey({info.id(), o.from_us, 0});
  std::string upper = o.to_us == UINT64_MAX ? SessionPrefix(info.id() + 1)
                                            : EncodeEnvelopeKey({info.id(), o.to_us, 0});
  auto iter = std::make_unique<RocksEnvelopeIterator>(std::string(session), lower, upper,
                                                      o.skip_corrupt, std::move(codec));
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  ro.readahead_size = 2 << 20;
  ro.fill_cache = false;  // a scan reads each block once
  iter->Open(db_, ro, envelopes());
  return EnvelopeIteratorPtr(std::move(iter));
}

Result<DeletedCounts> RocksStore::DeleteEnvelopesBefore(std::string_view session,
                                                        uint64_t cutoff_us) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  DOPPEL_ASSIGN_OR_RETURN(auto runs, RunsOfSession(session, cutoff_us));
  DOPPEL_ASSIGN_OR_RETURN(auto wr, Writer(session));
  SessionWriter& w = *wr;
  std::lock_guard<std::mutex> wl(w.mu);
  const uint32_t sid = w.info.id();
  std::string lower = SessionPrefix(sid), upper = EncodeEnvelopeKey({sid, cutoff_us, 0});
  rocksdb::Slice ub(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &ub;
  ro.total_order_seek = true;
  ro.fill_cache = false;
  uint64_t n = 0, raw = 0, stored = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, envelopes()));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    ++n;
    stored += it->value().size();
    raw += DecodedSize(std::string_view(it->value().data(), it->value().size()));
  }
  DOPPEL_RETURN_IF_ERROR(FromRocks(it->status(), "counting old envelopes"));
  it.reset();
  SessionInfo info = w.info;
  auto* c = info.mutable_counts();
  c->set_envelopes(c->envelopes() - std::min(n, c->envelopes()));
  c->set_raw_bytes(c->raw_bytes() - std::min(raw, c->raw_bytes()));
  c->set_stored_bytes(c->stored_bytes() - std::min(stored, c->stored_bytes()));
  if (n > 0 && c->first_arrival_us() < cutoff_us) c->set_first_arrival_us(cutoff_us);
  if (n > 0) c->clear_classes();  // they counted the deleted envelopes' requests too
  rocksdb::WriteBatch wb;
  wb.DeleteRange(envelopes(), lower, upper);
  wb.Put(sessions(), info.name(), info.SerializeAsString());
  for (uint32_t id : runs) DeleteRunIn(&wb, id);
  DOPPEL_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &wb), "deleting old envelopes"));
  w.info = std::move(info);
  // A closed session is not kept in the writer cache.
  if (w.info.state() != doppel::v1::SESSION_STATE_RECORDING) {
    std::lock_guard<std::mutex> lock(mu_);
    writers_.erase(w.info.name());
  }
  return DeletedCounts{n, runs.size()};
}

Result<uint64_t> RocksStore::ApproximateSessionBytes(std::string_view session) {
  DOPPEL_ASSIGN_OR_RETURN(auto info, GetSession(session));
  std::string a = SessionPrefix(info.id()), b = SessionPrefix(info.id() + 1);
  rocksdb::Range r(a, b);
  uint64_t size = 0;
  rocksdb::SizeApproximationOptions so;
  so.include_memtables = true;
  so.include_files = true;
  DOPPEL_RETURN_IF_ERROR(
      FromRocks(db_->GetApproximateSizes(so, envelopes(), &r, 1, &size), "sizing session"));
  return size;
}

Result<CompactedBytes> RocksStore::CompactSession(std::string_view session) {
  DOPPEL_RETURN_IF_ERROR(CheckWritable());
  DOPPEL_ASSIGN_OR_RETURN(auto info, GetSession(session));
  if (info.state() == doppel::v1::SESSION_STATE_RECORDING) {
    return Status::InvalidArgument("session '" + info.name() +
                                   "' is still being recorded: compact it once the recorder "
                                   "has stopped");
  }
  CompactedBytes out;
  DOPPEL_ASSIGN_OR_RETURN(out.before, ApproximateSessionBytes(session));
  std::string a = SessionPrefix(info.id()), b = SessionPrefix(info.id() + 1);
  rocksdb::Slice begin(a), end(b);
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  const bool settle = opts_.compression == Compression::kBlockZstdDict;
  if (settle) {
    DOPPEL_RETURN_IF_ERROR(
        FromRocks(db_->SetOptions(envelopes(), BlockCompressionOptions(kSettledCompression)),
                  "setting the compaction's compression"));
  }
  Status compacted = FromRocks(db_->CompactRange(compact, envelopes(), &begin, &end),
                               "compacting session '" + info.name() + "'");
  if (settle) {
    // Back to the ingest settings whatever happened (the next Open sets them anyway).
    Status restored =
        FromRocks(db_->SetOptions(envelopes(), BlockCompressionOptions(IngestCompression(opts_))),
                  "restoring the ingest compression");
    if (compacted.ok()) compacted = restored;
  }
  DOPPEL_RETURN_IF_ERROR(compacted);
  DOPPEL_ASSIGN_OR_RETURN(out.after, ApproximateSessionBytes(session));
  return out;
}

Status RocksStore::Resume() {
  if (opts_.read_only) return Status::Ok();
  return FromRocks(db_->Resume(), "resuming writes");
}

Status RocksStore::Flush() {
  if (opts_.read_only) return Status::Ok();
  rocksdb::FlushOptions fo;
  return FromRocks(db_->Flush(fo, handles_), "flushing");
}

namespace internal {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  std::string m = what + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(m);
  if (s.IsCorruption()) return Status::Corruption(m);
  if (s.IsNoSpace()) return Status::ResourceExhausted(m + " (the disk is full; free space)");
  if (s.IsIOError()) return Status::IoError(m);
  if (s.IsNotSupported()) return Status::Unsupported(m);
  return Status::Internal(m);
}

}  // namespace internal

Status Store::Open(const StoreOptions& options, const std::string& path,
                   std::unique_ptr<Store>* store) {
  auto s = std::make_unique<RocksStore>(options, path);
  DOPPEL_RETURN_IF_ERROR(s->Init());
  *store = std::move(s);
  return Status::Ok();
}

}  // namespace doppel::storage
