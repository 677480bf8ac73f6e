#include "recorder/coverage_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "recorder/sampler.h"

namespace doppel::recorder {
namespace {

CoverageOptions Fraction(double f, uint32_t per_class_min = 20) {
  CoverageOptions o;
  o.budget.kind = SampleBudget::Kind::kFraction;
  o.budget.fraction = f;
  o.per_class_min = per_class_min;
  return o;
}

struct Tally {
  uint64_t seen = 0;
  uint64_t kept = 0;
  double weighted = 0;  // sum of 1/p over kept: estimates `seen` (Horvitz-Thompson)
};

// Feeds `mix` (class name -> requests per round) for `rounds` rounds, interleaved, with
// `step_us` of the clock per request.
std::map<std::string, Tally> Feed(CoverageSampler& s, ManualClock& clock,
                                  const std::map<std::string, int>& mix, int rounds,
                                  uint64_t step_us = 1000, uint64_t seed = 7) {
  std::map<std::string, Tally> out;
  SplitMix64 rng(seed);
  for (int r = 0; r < rounds; ++r) {
    for (const auto& [name, n] : mix) {
      for (int i = 0; i < n; ++i) {
        clock.Advance(step_us);
        const auto d = s.Decide(Sampler::HashKey(name), name, rng.Next());
        Tally& t = out[name];
        ++t.seen;
        if (d.keep) {
          ++t.kept;
          EXPECT_GT(d.probability, 0);
          EXPECT_LE(d.probability, 1);
          t.weighted += 1 / d.probability;
        }
      }
    }
  }
  return out;
}

TEST(SampleBudgetTest, ParsesRatesAndShares) {
  auto r = ParseSampleBudget("200/s");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kind, SampleBudget::Kind::kRate);
  EXPECT_DOUBLE_EQ(r->per_second, 200);
  auto m = ParseSampleBudget("60/1m");
  ASSERT_TRUE(m.ok());
  EXPECT_DOUBLE_EQ(m->per_second, 1);
  auto ms = ParseSampleBudget("5/500ms");
  ASSERT_TRUE(ms.ok());
  EXPECT_DOUBLE_EQ(ms->per_second, 10);
  auto f = ParseSampleBudget("2.5%");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->kind, SampleBudget::Kind::kFraction);
  EXPECT_DOUBLE_EQ(f->fraction, 0.025);
  for (const char* bad : {"", "abc", "5", "0%", "101%", "-3/s", "0/s", "5/x", "5/", "5%%"}) {
    auto b = ParseSampleBudget(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("--sample-budget"), std::string::npos);
    EXPECT_NE(b.status().message().find("200/s"), std::string::npos);
  }
}

// A skewed mix at a 5 % budget: every class gets envelopes, the rare ones all of theirs up to
// the minimum, the budget holds, and 1/p weights give back each class's count.
TEST(CoverageSamplerTest, SkewedMixCoversEveryClassWithinBudget) {
  ManualClock clock(1'000'000);
  CoverageSampler s(Fraction(0.05), clock);
  // Per round: 950 requests over 32 classes, and one request of one of 20 rare classes.
  std::map<std::string, int> common{{"GET /hot 200 json:1", 600}, {"GET /warm 200 json:2", 200}};
  for (int i = 0; i < 30; ++i) common["GET /mid" + std::to_string(i) + " 200 json:3"] = 5;
  std::map<std::string, Tally> total;
  SplitMix64 rng(11);
  uint64_t requests = 0;
  for (int round = 0; round < 100; ++round) {
    auto t = Feed(s, clock, common, 1, 1000, 1000 + round);
    for (auto& [k, v] : t) {
      total[k].seen += v.seen;
      total[k].kept += v.kept;
      total[k].weighted += v.weighted;
      requests += v.seen;
    }
    // One rare request a round: each rare class's five are spread over the rounds.
    const std::string name = "GET /rare" + std::to_string(round % 20) + " 500 json:4";
    const auto d = s.Decide(Sampler::HashKey(name), name, rng.Next());
    ++total[name].seen;
    ++requests;
    if (d.keep) ++total[name].kept;
  }
  uint64_t kept = 0;
  for (const auto& [name, t] : total) {
    kept += t.kept;
    EXPECT_GT(t.kept, 0u) << name;
    if (name.find("/rare") != std::string::npos) {
      EXPECT_EQ(t.kept, t.seen) << name;
    }
  }
  const double cap = 0.05 * static_cast<double>(requests) + 1000 * 0.05;
  EXPECT_LE(static_cast<double>(kept), cap);
  EXPECT_GE(static_cast<double>(kept), 0.5 * 0.05 * static_cast<double>(requests));
  // The hot class is thinned the most, and its weights add up to its count.
  const Tally& hot = total["GET /hot 200 json:1"];
  EXPECT_LT(hot.kept, hot.seen / 20);
  EXPECT_NEAR(hot.weighted, static_cast<double>(hot.seen), 0.15 * static_cast<double>(hot.seen));
  const CoverageSnapshot snap = s.Snapshot();
  EXPECT_EQ(snap.classes.size(), total.size());
  EXPECT_EQ(*snap.classes.front().label, "GET /hot 200 json:1");  // most frequent first
  EXPECT_EQ(snap.kept, kept);
}

// More classes than the budget can give their minimum: the budget holds, and the rare
// classes keep their requests while the hot ones give way.
TEST(CoverageSamplerTest, BudgetIsAHardCapAndRareClassesComeFirst) {
  ManualClock clock;
  CoverageSampler s(Fraction(0.01), clock);
  std::map<std::string, int> hot;
  for (int i = 0; i < 200; ++i) hot["GET /h" + std::to_string(i) + " 200 empty"] = 10;
  SplitMix64 rng(3);
  uint64_t requests = 0, kept = 0, rare_seen = 0, rare_kept = 0;
  for (int round = 0; round < 50; ++round) {
    auto t = Feed(s, clock, hot, 1, 100, round);
    for (auto& [k, v] : t) {
      requests += v.seen;
      kept += v.kept;
    }
    const std::string rare = "DELETE /r" + std::to_string(round % 5) + " 409 empty";
    const auto d = s.Decide(Sampler::HashKey(rare), rare, rng.Next());
    ++requests;
    ++rare_seen;
    if (d.keep) {
      ++kept;
      ++rare_kept;
      // Under the minimum: kept at p = 1, times the share the bucket let through (a covered
      // class leaves the last token to a class not covered yet, so once in a while it waits).
      EXPECT_GT(d.probability, 0.9);
    }
  }
  // 200 classes x 20 minimum = 4000 envelopes wanted; the budget is 1 % of ~100 000 + burst.
  EXPECT_LE(static_cast<double>(kept), 0.01 * static_cast<double>(requests) + 10);
  // Every rare request found a token once the hot classes were known to be hot, but for at
  // most one each: while the 200 hot classes are first seen, their first envelopes (coverage)
  // come before a covered rare class's next one.
  EXPECT_GE(rare_kept, rare_seen - 5);
}

// Many classes at a small budget (the regime of bench/coverage.sh): 300 endpoints with
// Zipf-distributed frequencies and 100 rare classes (an error status or an odd shape) seen
// one to five times each, in random order, at a 5 % budget. Every class seen gets an envelope
// but for a handful, and the budget holds.
TEST(CoverageSamplerTest, ManyClassesAtASmallBudgetAreNearlyAllCovered) {
  ManualClock clock(1'000'000);
  CoverageSampler s(Fraction(0.05), clock);
  std::vector<std::string> names;
  std::vector<double> cumulative;
  double total = 0;
  for (int i = 1; i <= 300; ++i) {
    names.push_back("GET /e" + std::to_string(i) + " 200 json:1");
    total += 1 / std::pow(i, 1.1);
    cumulative.push_back(total);
  }
  constexpr int kRequests = 20'000;
  SplitMix64 rng(5);
  // Rare requests: class r (0..99) r % 5 + 1 times, at random positions.
  std::map<int, std::string> rare_at;
  for (int r = 0; r < 100; ++r) {
    for (int k = 0; k <= r % 5; ++k) {
      rare_at[static_cast<int>(rng.Next() % kRequests)] =
          "POST /r" + std::to_string(r) +
          (r % 2 ? " 500 json:9" : " 200 json:" + std::to_string(r));
    }
  }
  std::map<std::string, uint64_t> seen, kept;
  uint64_t kept_total = 0;
  for (int i = 0; i < kRequests; ++i) {
    clock.Advance(500);
    std::string name;
    if (auto it = rare_at.find(i); it != rare_at.end()) {
      name = it->second;
    } else {
      const double u = static_cast<double>(rng.Next() >> 11) / 9007199254740992.0 * total;
      name = names[std::lower_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin()];
    }
    ++seen[name];
    if (s.Decide(Sampler::HashKey(name), name, rng.Next()).keep) {
      ++kept[name];
      ++kept_total;
    }
  }
  size_t covered = 0;
  std::string missed;
  for (const auto& [name, n] : seen) {
    if (kept[name] > 0) {
      ++covered;
    } else {
      missed += " " + name + " (" + std::to_string(n) + ")";
    }
  }
  std::cout << "[ coverage ] " << covered << " of " << seen.size() << " classes covered, "
            << kept_total << " envelopes kept of " << kRequests << "\n";
  EXPECT_GE(static_cast<double>(covered), 0.99 * static_cast<double>(seen.size())) << missed;
  EXPECT_LE(static_cast<double>(kept_total), 0.05 * kRequests + 1000 * 0.05);
}

TEST(CoverageSamplerTest, RateBudgetFollowsTheClock) {
  ManualClock clock;
  CoverageOptions o;
  o.budget.kind = SampleBudget::Kind::kRate;
  o.budget.per_second = 50;
  o.per_class_min = 5;
  CoverageSampler s(o, clock);
  // 1000 requests a second for 20 seconds over three classes.
  auto t = Feed(s, clock, {{"a", 8}, {"b", 1}, {"c", 1}}, 2000, 1000);
  uint64_t kept = 0;
  for (const auto& [k, v] : t) {
    kept += v.kept;
    EXPECT_GT(v.kept, 0u) << k;
  }
  EXPECT_LE(kept, 50u * 20 + 50);  // rate x time + burst
  EXPECT_GE(kept, 50u * 20 / 2);
  EXPECT_NEAR(t["a"].weighted, 16000, 16000 * 0.15);
}

// With a key's hash as the draw, a key's requests are kept or dropped together.
TEST(CoverageSamplerTest, KeyedDrawsKeepAKeysRequestsTogether) {
  ManualClock clock;
  CoverageSampler s(Fraction(0.2, /*per_class_min=*/0), clock);
  std::map<int, std::pair<int, int>> by_key;  // key -> kept, seen
  for (int round = 0; round < 300; ++round) {
    for (int key = 0; key < 20; ++key) {
      clock.Advance(1000);
      const auto d =
          s.Decide(1, "GET /x 200 empty", Sampler::HashKey("user" + std::to_string(key)));
      if (round < 100) continue;  // the level settles first
      by_key[key].first += d.keep;
      ++by_key[key].second;
    }
  }
  int all = 0, none = 0;
  for (const auto& [key, c] : by_key) {
    if (c.first == c.second) ++all;
    if (c.first == 0) ++none;
  }
  EXPECT_EQ(all + none, 20);
  EXPECT_GT(all, 0);
  EXPECT_GT(none, 0);
}

// History: a class known to be hot is thinned from its first request on; a class known to
// be rare keeps everything.
TEST(CoverageSamplerTest, SeededHistoryKnowsTheHotClassFromTheStart) {
  ManualClock clock;
  CoverageSampler s(Fraction(0.05, /*per_class_min=*/0), clock);
  s.Seed(Sampler::HashKey("hot"), "hot", 1'000'000);
  s.Seed(Sampler::HashKey("rare"), "rare", 10);
  auto t = Feed(s, clock, {{"hot", 50}, {"rare", 1}}, 20);
  EXPECT_LE(t["hot"].kept, 1000u * 5 / 100 + 50);
  EXPECT_EQ(t["rare"].kept, t["rare"].seen);
  // Without history the first requests of both are kept until the level is known.
  ManualClock clock2;
  CoverageSampler fresh(Fraction(0.05, 0), clock2);
  auto u = Feed(fresh, clock2, {{"hot", 50}, {"rare", 1}}, 1);
  EXPECT_GT(u["hot"].kept, t["hot"].kept / 20);
}

// Space-saving: the table never outgrows max_classes, and a class with a large share of the
// traffic is tracked however many rare ones pass through.
TEST(CoverageSamplerTest, MemoryIsBoundedAndTheHeavyClassStaysTracked) {
  ManualClock clock;
  CoverageOptions o = Fraction(0.05, 1);
  o.max_classes = 8;
  CoverageSampler s(o, clock);
  SplitMix64 rng(5);
  for (int i = 0; i < 5000; ++i) {
    clock.Advance(100);
    (void)s.Decide(Sampler::HashKey("heavy"), "heavy", rng.Next());  // half the traffic
    const std::string one_off = "rare-" + std::to_string(i);
    (void)s.Decide(Sampler::HashKey(one_off), one_off, rng.Next());
  }
  const CoverageSnapshot snap = s.Snapshot();
  ASSERT_EQ(snap.classes.size(), 8u);
  EXPECT_EQ(*snap.classes.front().label, "heavy");
  EXPECT_NEAR(snap.classes.front().share, 0.5, 1.0 / 8 + 0.01);
  EXPECT_LE(snap.classes.front().error, 1.0 / 8 + 1e-9);
}

TEST(CoverageSamplerTest, PublishedSnapshotsMergeAcrossThreads) {
  ManualClock clock;
  CoverageSampler a(Fraction(0.5, 1), clock), b(Fraction(0.5, 1), clock);
  SplitMix64 rng(9);
  for (int i = 0; i < 100; ++i) (void)a.Decide(1, "x", rng.Next());
  for (int i = 0; i < 100; ++i) (void)b.Decide(2, "y", rng.Next());
  (void)b.Decide(1, "x", rng.Next());
  a.Publish();
  b.Publish();
  const CoverageSnapshot m = MergeSnapshots({a.Published(), b.Published()});
  ASSERT_EQ(m.classes.size(), 2u);
  EXPECT_EQ(m.decisions, 201u);
  uint64_t seen_x = 0;
  double shares = 0;
  for (const ClassStat& c : m.classes) {
    if (*c.label == "x") seen_x = c.seen;
    shares += c.share;
    EXPECT_GT(c.kept, 0u);
  }
  EXPECT_EQ(seen_x, 101u);
  EXPECT_NEAR(shares, 1, 1e-9);
  // A new class is published at once, without waiting for the clock.
  (void)a.Decide(3, "z", rng.Next());
  EXPECT_EQ(a.Published()->classes.size(), 2u);
}

}  // namespace
}  // namespace doppel::recorder
