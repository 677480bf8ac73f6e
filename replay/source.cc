#include "replay/source.h"

#include "interop/bundle.h"

namespace doppel::replay {
namespace {

class StoreSource final : public EnvelopeSource {
 public:
  StoreSource(storage::Store* store, doppel::v1::SessionInfo info)
      : store_(store), info_(std::move(info)) {}
  Status Rewind() override {
    it_.reset();
    DOPPEL_ASSIGN_OR_RETURN(auto it, store_->Scan(info_.name()));
    it_ = std::move(it);
    first_ = true;
    return Status::Ok();
  }
  bool Next(doppel::v1::Envelope* e) override {
    if (!it_) return false;
    if (!first_) it_->Next();
    first_ = false;
    if (!it_->Valid()) return false;
    it_->TakeEnvelope(e);  // no copy of the recorded bodies
    return true;
  }
  Status status() const override { return it_ ? it_->status() : Status::Ok(); }
  const doppel::v1::SessionInfo& session() const override { return info_; }

 private:
  storage::Store* store_;
  doppel::v1::SessionInfo info_;
  storage::EnvelopeIteratorPtr it_;
  bool first_ = true;
};

class BundleSource final : public EnvelopeSource {
 public:
  explicit BundleSource(std::string path) : path_(std::move(path)) {}
  Status Rewind() override {
    DOPPEL_ASSIGN_OR_RETURN(auto r, interop::BundleReader::Open(path_));
    reader_ = std::move(r);
    return Status::Ok();
  }
  bool Next(doppel::v1::Envelope* e) override { return reader_->Next(e); }
  Status status() const override { return reader_->status(); }
  const doppel::v1::SessionInfo& session() const override { return reader_->session(); }

 private:
  std::string path_;
  std::unique_ptr<interop::BundleReader> reader_;
};

}  // namespace

Result<EnvelopeSourcePtr> OpenStoreSource(storage::Store* store, const std::string& session) {
  DOPPEL_ASSIGN_OR_RETURN(auto info, store->GetSession(session));
  auto src = std::make_unique<StoreSource>(store, info);
  DOPPEL_RETURN_IF_ERROR(src->Rewind());
  return EnvelopeSourcePtr(std::move(src));
}

Result<EnvelopeSourcePtr> OpenBundleSource(const std::string& path) {
  // Verify the whole file first (structure and checksum): a replay must not act on a
  // damaged recording and find out at the end.
  DOPPEL_RETURN_IF_ERROR(interop::VerifyBundle(path).status());
  auto src = std::make_unique<BundleSource>(path);
  DOPPEL_RETURN_IF_ERROR(src->Rewind());
  return EnvelopeSourcePtr(std::move(src));
}

}  // namespace doppel::replay
