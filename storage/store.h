// Store: sessions, envelopes and replay runs, persisted in RocksDB.
//
// The public face of storage/. The RocksDB implementation is hidden in store.cc; callers
// only see this interface. Layout on disk: docs/storage-format.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/run.pb.h"
#include "doppel/v1/session.pb.h"

namespace doppel::storage {

// How envelope values are compressed (measured in bench/RESULTS.md; the default won).
enum class Compression {
  // Each value is its own zstd frame, compressed with a dictionary trained on the session's
  // first envelopes; RocksDB block compression off for envelopes.
  kEnvelopeZstdDict,
  // Values are raw protobuf; RocksDB compresses 64 KiB blocks with ZSTD and a dictionary
  // trained per SST file. An envelope larger than a block is its own zstd frame instead.
  kBlockZstdDict,
};

struct StoreOptions {
  bool create_if_missing = true;
  // Opens without taking the write lock (a recorder may be writing); sees a snapshot of the
  // store as of Open. No session is marked interrupted in this mode.
  bool read_only = false;
  // fsync the WAL on every append; default off: a process crash loses nothing appended,
  // a power loss may lose the last batches.
  bool sync = false;
  Compression compression = Compression::kBlockZstdDict;
  int zstd_level = 3;
  // Largest decoded envelope accepted when reading (protects against decompression bombs).
  uint64_t max_decoded_envelope_bytes = 256ull << 20;
  // Where the records' wall times (session created_us and closed_us, run started_us) come
  // from when the caller leaves them zero. Must outlive the store.
  const Clock* clock = &SystemClock::Instance();
};

struct ScanOptions {
  uint64_t from_us = 0;         // inclusive
  uint64_t to_us = UINT64_MAX;  // exclusive
  // When true, a value that fails to decode is skipped and counted (see EnvelopeIterator::
  // skipped()); when false the iterator stops with a Corruption status naming the key.
  bool skip_corrupt = false;
};

// Streams a session's envelopes in time order. Memory stays flat whatever the session size.
// Not thread-safe; use one per thread. REQUIRES: destroyed before the Store that made it.
class EnvelopeIterator {
 public:
  virtual ~EnvelopeIterator() = default;
  // True while positioned on an envelope.
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  // REQUIRES: Valid(). The envelope stays valid until Next().
  virtual const doppel::v1::Envelope& envelope() const = 0;
  // REQUIRES: Valid(). Hands the envelope over without copying its bodies (the iterator
  // swaps it with `*out`, whose old contents it reuses); envelope() is unspecified until
  // Next().
  virtual void TakeEnvelope(doppel::v1::Envelope* out) { *out = envelope(); }
  // OK at a clean end; non-OK when iteration stopped on an error.
  virtual Status status() const = 0;
  // Number of values skipped because they failed to decode (skip_corrupt only).
  virtual uint64_t skipped() const = 0;
};
using EnvelopeIteratorPtr = std::unique_ptr<EnvelopeIterator>;

// REQUIRES: destroyed before the Store that made it.
class RunResultIterator {
 public:
  virtual ~RunResultIterator() = default;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual const doppel::v1::RunResult& result() const = 0;
  virtual Status status() const = 0;
};
using RunResultIteratorPtr = std::unique_ptr<RunResultIterator>;

// What a deletion of recorded traffic removed.
struct DeletedCounts {
  uint64_t envelopes = 0;
  // Replay runs removed with the envelopes: a run's results and report quote the requests
  // and responses it replayed (paths, header values, body excerpts).
  uint64_t runs = 0;
};

// What Store::CompactSession did: the session's bytes on disk (ApproximateSessionBytes).
struct CompactedBytes {
  uint64_t before = 0;
  uint64_t after = 0;
};

// Thread safety: all methods may be called from several threads; appends to one session
// are serialized internally. Intended use is one writer thread per session.
class Store {
 public:
  // Opens (and with create_if_missing, creates with mode 0700) the store at `path`.
  // A store written by a newer, incompatible format version is refused. On open (not
  // read-only), sessions left RECORDING are marked INTERRUPTED and runs left RUNNING are
  // marked INTERRUPTED.
  static Status Open(const StoreOptions& options, const std::string& path,
                     std::unique_ptr<Store>* store);

  virtual ~Store() = default;

  // ---- sessions ----
  // Creates a session named info.name (must not exist) with a fresh id; fills id and
  // created_us if zero. The state is taken from info (RECORDING when unspecified).
  virtual Result<doppel::v1::SessionInfo> CreateSession(doppel::v1::SessionInfo info) = 0;
  virtual Result<doppel::v1::SessionInfo> GetSession(std::string_view name) = 0;
  virtual Result<std::vector<doppel::v1::SessionInfo>> ListSessions() = 0;
  // Deletes the session record, its envelopes, its dictionary and its replay runs (the runs
  // whose settings name the session; not runs of a bundle file) with their results, in one
  // batch. `envelopes` is the session record's count.
  virtual Result<DeletedCounts> DeleteSession(std::string_view name) = 0;
  // Sets the final state (CLOSED unless given) and closed_us; merges recorder-side counts
  // (requests_seen, sampled, dropped, errors, classes) from `recorder_counts`. Then flushes the
  // memtables, so a closed session is in compressed table files rather than only in the
  // uncompressed write-ahead log (an error there still leaves the session closed and its
  // envelopes in the log: the message says so).
  virtual Status CloseSession(
      std::string_view name, const doppel::v1::SessionCounts& recorder_counts,
      doppel::v1::SessionState state = doppel::v1::SESSION_STATE_CLOSED) = 0;
  // Renames a session (used by import to publish a finished import atomically).
  virtual Status RenameSession(std::string_view from, std::string_view to) = 0;

  // ---- envelopes ----
  // Appends envelopes to a session in one atomic WriteBatch. Envelopes need a unique
  // (arrival_us, seq) within the session; the same key twice overwrites. When this returns
  // OK the batch survives a process crash (and a power loss with StoreOptions::sync).
  virtual Status Append(std::string_view session, std::span<const doppel::v1::Envelope> batch) = 0;
  virtual Result<EnvelopeIteratorPtr> Scan(std::string_view session,
                                           const ScanOptions& options = {}) = 0;
  // Deletes the session's envelopes with arrival_us < cutoff_us with one range delete, and
  // the session's runs that replayed any envelope older than the cutoff, in one batch.
  // Envelopes are counted first, so counts in the session record stay true.
  virtual Result<DeletedCounts> DeleteEnvelopesBefore(std::string_view session,
                                                      uint64_t cutoff_us) = 0;

  // Approximate bytes the session's envelopes take on disk (SST files and memtables).
  virtual Result<uint64_t> ApproximateSessionBytes(std::string_view session) = 0;
  // Rewrites a closed session's envelopes into the bottommost level with the settings for
  // settled data (kBlockZstdDict: zstd level 12 over 1 MiB blocks with a 112 KiB dictionary
  // trained on 16 MiB, against ingest's level 3, 64 KiB blocks and 64 KiB dictionary;
  // docs/storage-format.md). Takes seconds per 100 MB of envelopes, on the calling thread;
  // the ingest settings are back in force when it returns. A later compaction that rewrites
  // the same files (a later session's data merged into them) uses the ingest settings again.
  // Refuses a session still RECORDING. Returns the session's bytes on disk before and after.
  virtual Result<CompactedBytes> CompactSession(std::string_view session) = 0;

  // ---- runs ----
  // Allocates an id, stores the run (state RUNNING unless set) and returns it.
  virtual Result<doppel::v1::RunInfo> CreateRun(doppel::v1::RunInfo info) = 0;
  virtual Status UpdateRun(const doppel::v1::RunInfo& info) = 0;
  virtual Result<doppel::v1::RunInfo> GetRun(uint32_t run_id) = 0;
  virtual Result<std::vector<doppel::v1::RunInfo>> ListRuns() = 0;
  virtual Status AppendRunResults(uint32_t run_id,
                                  std::span<const doppel::v1::RunResult> results) = 0;
  virtual Result<RunResultIteratorPtr> ScanRunResults(uint32_t run_id) = 0;
  // Deletes the run and its results; OK when there is no such run.
  virtual Status DeleteRun(uint32_t run_id) = 0;

  // Flushes memtables to SST files (benchmarks and tests; not needed for durability).
  virtual Status Flush() = 0;

  // After a write failed on an I/O error (the disk was full, say), RocksDB refuses every
  // later write until told to go on: this does so. OK when writes are accepted again (or
  // nothing had failed); the error again while its cause persists. Cheap to retry.
  virtual Status Resume() = 0;
};
using StorePtr = std::unique_ptr<Store>;

}  // namespace doppel::storage
