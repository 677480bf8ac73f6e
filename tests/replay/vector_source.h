// An EnvelopeSource over envelopes in memory, for tests of what reads a source.
#pragma once

#include <utility>
#include <vector>

#include "replay/source.h"

namespace doppel::replay {

class VectorSource : public EnvelopeSource {
 public:
  explicit VectorSource(std::vector<doppel::v1::Envelope> envelopes,
                        doppel::v1::SessionInfo info = {})
      : envelopes_(std::move(envelopes)), info_(std::move(info)) {}
  bool Next(doppel::v1::Envelope* e) override {
    if (next_ == envelopes_.size()) return false;
    *e = envelopes_[next_++];
    return true;
  }
  Status status() const override { return Status::Ok(); }
  Status Rewind() override {
    next_ = 0;
    return Status::Ok();
  }
  const doppel::v1::SessionInfo& session() const override { return info_; }

 private:
  std::vector<doppel::v1::Envelope> envelopes_;
  size_t next_ = 0;
  doppel::v1::SessionInfo info_;
};

}  // namespace doppel::replay
