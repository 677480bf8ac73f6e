#include "replay/reweight.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>

#include "base/stable_hash.h"
#include "diff/request_class.h"

namespace doppel::replay {
namespace {

constexpr double kMaxCopies = 1e6;

// Uniform in [0, 1) from a hash of `a`, `b` and the seed.
double Offset(uint64_t a, uint64_t b, uint64_t seed) {
  char id[24];
  std::memcpy(id, &a, 8);
  std::memcpy(id + 8, &b, 8);
  std::memcpy(id + 16, &seed, 8);
  return static_cast<double>(StableHash64(std::string_view(id, sizeof id)) >> 11) * 0x1.0p-53;
}

uint32_t Copies(double upto, double before) {
  return static_cast<uint32_t>(std::clamp(std::floor(upto) - std::floor(before), 0.0, kMaxCopies));
}

// One class's share of the replay.
struct ClassWeights {
  uint64_t envelopes = 0;
  double inverse_sum = 0;  // sum of the envelopes' 1/p
  double factor = 0;       // w_i = factor / p_i
  double offset = 0;       // u_c
  double running = 0;      // W so far (reset by Rewind)
};

class ReweightingSource : public EnvelopeSource {
 public:
  ReweightingSource(EnvelopeSourcePtr inner, std::unordered_map<uint64_t, ClassWeights> classes,
                    const ReweightOptions& options)
      : inner_(std::move(inner)), classes_(std::move(classes)), options_(options) {}

  bool Next(doppel::v1::Envelope* e) override {
    if (pending_ > 0) {
      --pending_;
      *e = current_;
      return true;
    }
    while (inner_->Next(&current_)) {
      const uint32_t copies = CopiesOf(current_);
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
    for (auto& [id, c] : classes_) c.running = 0;
    return inner_->Rewind();
  }
  const doppel::v1::SessionInfo& session() const override { return inner_->session(); }

 private:
  uint32_t CopiesOf(const doppel::v1::Envelope& e) {
    if (!e.sample_class().empty()) {
      auto it = classes_.find(StableHash64(e.sample_class()));
      if (it != classes_.end()) {
        ClassWeights& c = it->second;
        const double before = c.running + c.offset;
        c.running += c.factor * diff::InverseProbability(e);
        return Copies(c.running + c.offset, before);
      }
    }
    const double u = Offset(e.arrival_us(), e.seq(), options_.seed);
    return Copies(options_.scale * diff::InverseProbability(e) + u, 0);
  }

  EnvelopeSourcePtr inner_;
  std::unordered_map<uint64_t, ClassWeights> classes_;
  const ReweightOptions options_;
  doppel::v1::Envelope current_;
  uint32_t pending_ = 0;
};

}  // namespace

Result<EnvelopeSourcePtr> ReweightSource(EnvelopeSourcePtr inner, const ReweightOptions& options) {
  std::unordered_map<uint64_t, ClassWeights> classes;
  doppel::v1::Envelope e;
  while (inner->Next(&e)) {
    if (e.sample_class().empty()) continue;
    ClassWeights& c = classes[StableHash64(e.sample_class())];
    ++c.envelopes;
    c.inverse_sum += diff::InverseProbability(e);
  }
  DOPPEL_RETURN_IF_ERROR(inner->status());
  DOPPEL_RETURN_IF_ERROR(inner->Rewind());
  std::unordered_map<uint64_t, uint64_t> counted;
  for (const doppel::v1::ClassCount& k : inner->session().counts().classes()) {
    counted[k.id()] += k.requests();
  }
  for (auto& [id, c] : classes) {
    auto it = counted.find(id);
    const double total = diff::ClassRequests(
        c.envelopes, c.inverse_sum,
        it == counted.end() ? std::nullopt : std::optional<uint64_t>(it->second));
    c.factor = options.scale * total / c.inverse_sum;
    c.offset = Offset(id, 0, options.seed);
  }
  return EnvelopeSourcePtr(
      std::make_unique<ReweightingSource>(std::move(inner), std::move(classes), options));
}

}  // namespace doppel::replay
