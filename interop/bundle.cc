#include "interop/bundle.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "interop/session_import.h"
#include "storage/envelope_codec.h"
#include "storage/key_codec.h"

namespace doppel::interop {
namespace {

constexpr char kMagic[8] = {'D', 'O', 'P', 'P', 'E', 'L', 'B', '\x01'};
constexpr uint8_t kRecSession = 1;
constexpr uint8_t kRecDictionary = 2;
constexpr uint8_t kRecEnvelope = 3;
constexpr uint8_t kRecTrailer = 0xFF;
constexpr size_t kTrainSamples = 2000;
constexpr size_t kDictBytes = 64 << 10;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void Update(const void* p, size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string Final() {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    return std::string(reinterpret_cast<char*>(md), n);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Writes records, hashing everything it writes.
class BundleWriter {
 public:
  explicit BundleWriter(std::FILE* f) : f_(f) {}
  bool Write(const void* p, size_t n) {
    hash_.Update(p, n);
    bytes_ += n;
    return std::fwrite(p, 1, n, f_) == n;
  }
  bool Record(uint8_t type, std::string_view payload) {
    std::string head(1, static_cast<char>(type));
    storage::PutBigEndian32(&head, static_cast<uint32_t>(payload.size()));
    return Write(head.data(), head.size()) && Write(payload.data(), payload.size());
  }
  bool Trailer(uint64_t count) {
    std::string body;
    storage::PutBigEndian64(&body, count);
    std::string head(1, static_cast<char>(kRecTrailer));
    storage::PutBigEndian32(&head, static_cast<uint32_t>(8 + 32));
    if (!Write(head.data(), head.size()) || !Write(body.data(), body.size())) return false;
    std::string digest = hash_.Final();  // covers every byte before the digest itself
    bytes_ += digest.size();
    return std::fwrite(digest.data(), 1, digest.size(), f_) == digest.size();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  std::FILE* f_;
  Sha256 hash_;
  uint64_t bytes_ = 0;
};

}  // namespace

struct BundleReader::Hash : Sha256 {};

Status ExportBundle(storage::Store& store, const std::string& name, const std::string& path,
                    BundleStats* stats) {
  DOPPEL_ASSIGN_OR_RETURN(auto info, store.GetSession(name));

  // Train a dictionary on the session's first envelopes, then compress every envelope with it.
  std::vector<std::string> samples;
  {
    DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(name));
    for (; it->Valid() && samples.size() < kTrainSamples; it->Next())
      samples.push_back(it->envelope().SerializeAsString());
    if (!it->status().ok()) return it->status();
  }
  std::string dict = storage::TrainDictionary(samples, kDictBytes);
  samples.clear();
  storage::EnvelopeCodec codec(9);
  DOPPEL_RETURN_IF_ERROR(codec.AddDictionary(dict, true));

  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Status::IoError("cannot write '" + tmp + "': " + std::strerror(errno));
  // A bundle holds recorded traffic: readable by its owner only, like the store.
  ::fchmod(fileno(f), 0600);
  auto fail = [&](const std::string& why) {
    std::fclose(f);
    std::remove(tmp.c_str());
    return Status::IoError("writing bundle '" + path + "': " + why);
  };

  BundleWriter w(f);
  std::string header(kMagic, sizeof(kMagic));
  storage::PutBigEndian32(&header, kBundleVersion);
  doppel::v1::SessionInfo session = info;
  session.set_dict_id(storage::DictionaryId(dict));
  if (!w.Write(header.data(), header.size()) || !w.Record(kRecSession, session.SerializeAsString()))
    return fail(std::strerror(errno));
  if (!dict.empty() && !w.Record(kRecDictionary, dict)) return fail(std::strerror(errno));

  uint64_t count = 0;
  auto it = store.Scan(name);
  if (!it.ok()) return fail(it.status().message());
  std::string value;
  for (; (*it)->Valid(); (*it)->Next()) {
    Status s = codec.EncodeZstd((*it)->envelope(), &value);
    if (!s.ok()) return fail(s.message());
    if (!w.Record(kRecEnvelope, value)) return fail(std::strerror(errno));
    ++count;
  }
  if (!(*it)->status().ok()) return fail((*it)->status().message());
  if (!w.Trailer(count) || std::fflush(f) != 0 || ::fsync(fileno(f)) != 0)
    return fail(std::strerror(errno));
  std::fclose(f);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return Status::IoError("renaming '" + tmp + "' to '" + path + "': " + ec.message());
  }
  if (stats) *stats = {count, w.bytes()};
  return Status::Ok();
}

BundleReader::~BundleReader() {
  if (file_) std::fclose(file_);
}

void BundleReader::Fail(const std::string& what) {
  if (status_.ok()) {
    status_ =
        Status::Corruption("bundle '" + path_ + "' is damaged at record " +
                           std::to_string(record_no_) + " (byte offset " + std::to_string(offset_) +
                           "): " + what + "; export it again from its source");
  }
  done_ = true;
}

bool BundleReader::ReadExact(void* buf, size_t n) {
  size_t got = std::fread(buf, 1, n, file_);
  if (got != n) return false;
  offset_ += n;
  return true;
}

bool BundleReader::ReadRecord(uint8_t* type, std::string* payload) {
  ++record_no_;
  unsigned char head[5];
  if (!ReadExact(head, sizeof(head))) {
    Fail("file ends before its trailer (truncated)");
    return false;
  }
  *type = head[0];
  uint32_t len = storage::GetBigEndian32(reinterpret_cast<const char*>(head + 1));
  if (len > kMaxBundleRecord) {
    Fail("record length " + std::to_string(len) + " is impossibly large");
    return false;
  }
  if (*type == kRecTrailer) {
    if (len != 40) {
      Fail("bad trailer length");
      return false;
    }
    hash_->Update(head, sizeof(head));
    payload->resize(40);
    if (!ReadExact(payload->data(), 40)) {
      Fail("file ends inside the trailer (truncated)");
      return false;
    }
    hash_->Update(payload->data(), 8);
    return true;
  }
  // Grown as the bytes arrive: a corrupt length in a short file then fails at the file's end
  // instead of first allocating and zeroing up to kMaxBundleRecord (found by fuzzing).
  payload->clear();
  while (payload->size() < len) {
    const size_t at = payload->size();
    const size_t n = std::min<size_t>(len - at, 1u << 20);
    payload->resize(at + n);
    if (std::fread(payload->data() + at, 1, n, file_) != n) {
      Fail("file ends inside a record of " + std::to_string(len) + " bytes (truncated)");
      return false;
    }
  }
  offset_ += len;
  hash_->Update(head, sizeof(head));
  hash_->Update(payload->data(), len);
  return true;
}

Result<std::unique_ptr<BundleReader>> BundleReader::Open(const std::string& path) {
  std::unique_ptr<BundleReader> r(new BundleReader());
  r->path_ = path;
  r->hash_ = std::make_unique<Hash>();
  r->codec_ = std::make_unique<storage::EnvelopeCodec>();
  r->file_ = std::fopen(path.c_str(), "rb");
  if (!r->file_)
    return Status::NotFound("cannot open bundle '" + path + "': " + std::strerror(errno));
  char header[12];
  if (!r->ReadExact(header, sizeof(header)) || std::memcmp(header, kMagic, 7) != 0)
    return Status::InvalidArgument("'" + path + "' is not a doppel bundle (bad magic)");
  uint32_t version = storage::GetBigEndian32(header + 8);
  if (header[7] != kMagic[7] || version > kBundleVersion)
    return Status::Unsupported("bundle '" + path + "' has format version " +
                               std::to_string(version) + "; this doppel reads up to " +
                               std::to_string(kBundleVersion) + " (upgrade doppel)");
  r->hash_->Update(header, sizeof(header));
  uint8_t type = 0;
  if (!r->ReadRecord(&type, &r->payload_)) return r->status_;
  if (type != kRecSession || !r->session_.ParseFromString(r->payload_)) {
    r->Fail("the first record is not a valid session record");
    return r->status_;
  }
  return r;
}

bool BundleReader::Next(doppel::v1::Envelope* envelope) {
  if (done_) return false;
  uint8_t type = 0;
  if (!ReadRecord(&type, &payload_)) return false;
  if (type == kRecDictionary && count_ == 0 && !has_dict_) {
    has_dict_ = true;
    Status s = codec_->AddDictionary(payload_, false);
    if (!s.ok()) {
      Fail("dictionary: " + s.message());
      return false;
    }
    if (!ReadRecord(&type, &payload_)) return false;
  }
  if (type == kRecEnvelope) {
    Status s = codec_->Decode(payload_, envelope);
    if (!s.ok()) {
      Fail("envelope " + std::to_string(count_ + 1) + ": " + s.message());
      return false;
    }
    ++count_;
    return true;
  }
  if (type != kRecTrailer) {
    Fail("unexpected record type " + std::to_string(type));
    return false;
  }
  done_ = true;
  uint64_t count = storage::GetBigEndian64(payload_.data());
  std::string digest = hash_->Final();
  if (count != count_) {
    Fail("trailer says " + std::to_string(count) + " envelopes, file holds " +
         std::to_string(count_));
  } else if (digest != payload_.substr(8)) {
    Fail("checksum mismatch (the file was modified or damaged)");
  } else {
    char extra;
    if (std::fread(&extra, 1, 1, file_) == 1) Fail("bytes after the trailer");
  }
  return false;
}

Result<uint64_t> VerifyBundle(const std::string& path) {
  DOPPEL_ASSIGN_OR_RETURN(auto r, BundleReader::Open(path));
  doppel::v1::Envelope e;
  while (r->Next(&e)) {
  }
  if (!r->status().ok()) return r->status();
  return r->envelopes_read();
}

Result<doppel::v1::SessionInfo> ImportBundle(storage::Store& store, const std::string& path,
                                             const std::string& as_name) {
  DOPPEL_RETURN_IF_ERROR(VerifyBundle(path).status());
  DOPPEL_ASSIGN_OR_RETURN(auto r, BundleReader::Open(path));
  doppel::v1::SessionInfo info = r->session();
  if (!as_name.empty()) info.set_name(as_name);
  info.set_source("import:bundle");
  DOPPEL_ASSIGN_OR_RETURN(auto import, SessionImport::Begin(store, info));
  auto abort = [&](const Status& why) {
    return import->Abort(why.WithContext("importing '" + path + "' (nothing was imported)"));
  };
  doppel::v1::Envelope e;
  while (r->Next(&e)) {
    Status s = import->Add(std::move(e));
    if (!s.ok()) return abort(s);
  }
  if (!r->status().ok()) return abort(r->status());
  auto published = import->Commit(r->session().counts());
  if (!published.ok()) return abort(published.status());
  return published;
}

}  // namespace doppel::interop
