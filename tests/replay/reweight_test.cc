#include "replay/reweight.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "base/stable_hash.h"
#include "tests/replay/vector_source.h"

namespace doppel::replay {
namespace {

using doppel::v1::Envelope;

Envelope Make(const std::string& cls, double p, uint64_t at) {
  Envelope e;
  e.set_arrival_us(at);
  e.set_sample_class(cls);
  e.set_inclusion_probability(p);
  e.mutable_request()->set_target("/" + cls + "/" + std::to_string(at));
  return e;
}

void Count(doppel::v1::SessionInfo* info, const std::string& cls, uint64_t requests) {
  auto* k = info->mutable_counts()->add_classes();
  k->set_label(cls);
  k->set_id(StableHash64(cls));
  k->set_requests(requests);
}

// Envelopes sent per class, and per target, by the reweighted source.
struct Sent {
  std::map<std::string, uint64_t> by_class;
  std::map<std::string, uint64_t> by_target;
  uint64_t total = 0;
};

Sent Drain(EnvelopeSource& src) {
  Sent s;
  Envelope e;
  while (src.Next(&e)) {
    ++s.by_class[e.sample_class()];
    ++s.by_target[e.request().target()];
    ++s.total;
  }
  EXPECT_TRUE(src.status().ok());
  return s;
}

EnvelopeSourcePtr Reweighted(std::vector<Envelope> envelopes, doppel::v1::SessionInfo info,
                             ReweightOptions options = {}) {
  auto r = ReweightSource(std::make_unique<VectorSource>(std::move(envelopes), std::move(info)),
                          options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(*r);
}

// A coverage sample: the hot class kept 20 at p = 1 (its minimum), then 30 at p = 0.01; the
// rare class kept whole. The recorder counted 5000 and 3.
std::vector<Envelope> CoverageSample() {
  std::vector<Envelope> out;
  uint64_t at = 1;
  for (int i = 0; i < 20; ++i) out.push_back(Make("GET /hot 200 json:1", 1, at++));
  out.push_back(Make("GET /rare 500 json:2", 1, at++));
  for (int i = 0; i < 30; ++i) out.push_back(Make("GET /hot 200 json:1", 0.01, at++));
  out.push_back(Make("GET /rare 500 json:2", 1, at++));
  out.push_back(Make("GET /rare 500 json:2", 1, at++));
  return out;
}

TEST(ReweightTest, EachClassIsSentAsManyTimesAsTheRecorderCountedIt) {
  doppel::v1::SessionInfo info;
  Count(&info, "GET /hot 200 json:1", 5000);
  Count(&info, "GET /rare 500 json:2", 3);
  auto src = Reweighted(CoverageSample(), info);
  const Sent s = Drain(*src);
  // Exactly: the totals are whole numbers, and a class's copies add up to floor(T + u).
  EXPECT_EQ(s.by_class.at("GET /hot 200 json:1"), 5000u);
  EXPECT_EQ(s.by_class.at("GET /rare 500 json:2"), 3u);
  // Within the class, by 1/p: the 20 kept at p = 1 weigh 1 each, the 30 at p = 0.01 weigh 100
  // each, scaled together to 5000 (4980 / 3000 of the 1/p sum: about 1.66 and 166 copies).
  for (int at = 1; at <= 20; ++at) {
    const uint64_t n = s.by_target.at("/GET /hot 200 json:1/" + std::to_string(at));
    EXPECT_TRUE(n == 1 || n == 2) << at << ": " << n;
  }
  uint64_t thinned = 0;
  for (int at = 22; at <= 51; ++at) {
    thinned += s.by_target.at("/GET /hot 200 json:1/" + std::to_string(at));
  }
  EXPECT_NEAR(static_cast<double>(thinned), 5000.0 * 3000 / 3020, 2);
}

TEST(ReweightTest, WithoutTheRecordersCountsAClassWeighsTheSumOfItsInverseProbabilities) {
  auto src = Reweighted(CoverageSample(), {});
  const Sent s = Drain(*src);
  EXPECT_EQ(s.by_class.at("GET /hot 200 json:1"), 20u + 3000u);
  EXPECT_EQ(s.by_class.at("GET /rare 500 json:2"), 3u);
}

TEST(ReweightTest, ACountBelowTheClasssEnvelopesIsNotTrusted) {
  doppel::v1::SessionInfo info;
  Count(&info, "GET /hot 200 json:1", 7);  // evicted and re-entered: not the whole class
  auto src = Reweighted(CoverageSample(), info);
  EXPECT_EQ(Drain(*src).by_class.at("GET /hot 200 json:1"), 3020u);
}

TEST(ReweightTest, ScaleSendsThatShareOfTheTrafficAndRewindRepeatsTheSameCopies) {
  doppel::v1::SessionInfo info;
  Count(&info, "GET /hot 200 json:1", 5000);
  Count(&info, "GET /rare 500 json:2", 3);
  auto src = Reweighted(CoverageSample(), info, {.scale = 0.1, .seed = 7});
  const Sent first = Drain(*src);
  EXPECT_EQ(first.by_class.at("GET /hot 200 json:1"), 500u);
  // 0.3 of a request: 0 or 1, by the class's offset.
  const auto rare = first.by_class.find("GET /rare 500 json:2");
  EXPECT_LE(rare == first.by_class.end() ? 0u : rare->second, 1u);
  ASSERT_TRUE(src->Rewind().ok());
  const Sent again = Drain(*src);
  EXPECT_EQ(again.by_target, first.by_target);
}

TEST(ReweightTest, EnvelopesWithoutAClassOrProbabilityReplayAsRecordedAtScaleOne) {
  std::vector<Envelope> uniform;
  for (uint64_t at = 1; at <= 50; ++at) uniform.push_back(Make("", 0, at));
  auto src = Reweighted(uniform, {});
  const Sent s = Drain(*src);
  EXPECT_EQ(s.total, 50u);
  for (const auto& [target, n] : s.by_target) EXPECT_EQ(n, 1u) << target;
}

TEST(ReweightTest, ACorruptProbabilityCannotMakeAFlood) {
  std::vector<Envelope> one{Make("", 1e-300, 1)};
  auto src = Reweighted(one, {});
  EXPECT_EQ(Drain(*src).total, 1'000'000u);
}

}  // namespace
}  // namespace doppel::replay
