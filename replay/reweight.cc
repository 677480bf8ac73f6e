#include "replay/reweight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "base/stable_hash.h"

namespace doppel::replay {
namespace {

double InverseProbability(const doppel::v1::Envelope& e) {
  const double p = e.inclusion_probability();
  return p > 0 && p <= 1 ? 1 / p : 1;
}

class ReweightingSource : public EnvelopeSource {
 public:
  ReweightingSource(EnvelopeSourcePtr inner, double scale, uint64_t seed)
      : inner_(std::move(inner)), scale_(scale), seed_(seed) {}

  bool Next(doppel::v1::Envelope* e) override {
    if (pending_ > 0) {
      --pending_;
      *e = current_;
      return true;
    }
    while (inner_->Next(&current_)) {
      const uint32_t copies = ReweightCopies(current_, scale_, seed_);
      if (copies == 0) continue;
      pending_ = copies - 1;
      *e = current_;
      return true;
    }
    return false;
  }
  Status status() const override { return inner_->status(); }
  Status Rewind() override {
    pending_ = 0;
    return inner_->Rewind();
  }
  const doppel::v1::SessionInfo& session() const override { return inner_->session(); }

 private:
  EnvelopeSourcePtr inner_;
  const double scale_;
  const uint64_t seed_;
  doppel::v1::Envelope current_;
  uint32_t pending_ = 0;
};

}  // namespace

uint32_t ReweightCopies(const doppel::v1::Envelope& e, double scale, uint64_t seed) {
  std::string id(20, '\0');
  const uint64_t at = e.arrival_us();
  const uint32_t seq = e.seq();
  std::memcpy(id.data(), &at, 8);
  std::memcpy(id.data() + 8, &seq, 4);
  std::memcpy(id.data() + 12, &seed, 8);
  const double u = static_cast<double>(StableHash64(id) >> 11) * 0x1.0p-53;
  const double w = InverseProbability(e) * scale;
  // Bounded: a corrupt probability must not make one envelope a flood.
  return static_cast<uint32_t>(std::min(1e6, std::floor(w + u)));
}

Result<EnvelopeSourcePtr> ReweightSource(EnvelopeSourcePtr inner, uint64_t seed) {
  uint64_t count = 0;
  double weight = 0;
  doppel::v1::Envelope e;
  while (inner->Next(&e)) {
    ++count;
    weight += InverseProbability(e);
  }
  DOPPEL_RETURN_IF_ERROR(inner->status());
  DOPPEL_RETURN_IF_ERROR(inner->Rewind());
  const double scale = weight > 0 ? static_cast<double>(count) / weight : 1;
  return EnvelopeSourcePtr(std::make_unique<ReweightingSource>(std::move(inner), scale, seed));
}

}  // namespace doppel::replay
