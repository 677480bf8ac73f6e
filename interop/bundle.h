// Portable bundle: one self-contained file holding one session, for moving a recording
// between machines and for CI (`doppel replay --from FILE`).
//
// Format, version 1 (also in docs/storage-format.md). All integers big-endian.
//   header   : magic "DOPPELB\x01" (8 bytes) | format version u32
//   records  : type u8 | length u32 | payload (length bytes)
//      type 1  session   : doppel.v1.SessionInfo (exactly one, first)
//      type 2  dictionary: zstd dictionary (zero or one, before any envelope)
//      type 3  envelope  : one envelope value (envelope_codec.h format, zstd + dictionary)
//      type 0xFF trailer : count u64 | SHA-256 (32 bytes) of every byte before this record
//   the trailer is the last record; nothing may follow it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/session.pb.h"
#include "storage/store.h"

namespace doppel::storage {
class EnvelopeCodec;
}  // namespace doppel::storage

namespace doppel::interop {

inline constexpr uint32_t kBundleVersion = 1;
// Records larger than this are refused when reading (a corrupt length must not allocate GBs).
inline constexpr uint32_t kMaxBundleRecord = 512u << 20;

struct BundleStats {
  uint64_t envelopes = 0;
  uint64_t bytes = 0;
};

// Writes session `name` of `store` to `path` (via `path.tmp` and a rename, so a failed
// export never leaves a half-written file under the final name).
Status ExportBundle(storage::Store& store, const std::string& name, const std::string& path,
                    BundleStats* stats);

// Streams a bundle. Open() reads the header, session record and dictionary; Next() yields
// envelopes in file order; at the end it checks the trailer's count and checksum.
// Errors name the record number and byte offset where the file broke.
class BundleReader {
 public:
  static Result<std::unique_ptr<BundleReader>> Open(const std::string& path);
  ~BundleReader();

  const doppel::v1::SessionInfo& session() const { return session_; }
  // Returns true with *envelope filled, or false at the end or on error (see status()).
  bool Next(doppel::v1::Envelope* envelope);
  // OK after a clean, verified end. Non-OK as soon as anything is wrong.
  const Status& status() const { return status_; }
  uint64_t envelopes_read() const { return count_; }

 private:
  BundleReader() = default;
  bool ReadRecord(uint8_t* type, std::string* payload);
  bool ReadExact(void* buf, size_t n);
  // Records the first damage found in status_ (later ones would only repeat it) and stops.
  void Fail(const std::string& what);

  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
  uint64_t record_no_ = 0;
  uint64_t count_ = 0;
  bool done_ = false;
  bool has_dict_ = false;
  struct Hash;
  std::unique_ptr<Hash> hash_;
  std::unique_ptr<storage::EnvelopeCodec> codec_;
  doppel::v1::SessionInfo session_;
  Status status_;
  std::string payload_;
};

// Checks a whole bundle (structure, every envelope decodes, count and checksum), without
// importing. Returns the number of envelopes.
Result<uint64_t> VerifyBundle(const std::string& path);

// Imports a bundle into `store` as session `as_name` (empty = the bundle's own name).
// Verifies first; imports under a temporary name and renames at the end, so a failure
// leaves nothing behind.
Result<doppel::v1::SessionInfo> ImportBundle(storage::Store& store, const std::string& path,
                                             const std::string& as_name);

}  // namespace doppel::interop
