#include "report/aggregate.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "tests/report/test_util.h"

namespace doppel::report {
namespace {

using testing::Exchange;
using testing::Feeder;
using testing::FindEndpoint;
using testing::FindField;
using testing::OneTarget;
using testing::Response;

std::string User(int id, std::string name, std::string created = "2024-01-01T00:00:00Z") {
  return R"({"id":)" + std::to_string(id) + R"(,"name":")" + name + R"(","created_at":")" +
         created + R"("})";
}

// A GET of `path`: recorded as `recorded`, answered by the target with `actual` and, when given,
// by the secondary with `secondary`.
Exchange Answered(std::string path, doppel::v1::HttpResponse recorded,
                  doppel::v1::HttpResponse actual,
                  std::optional<doppel::v1::HttpResponse> secondary = std::nullopt) {
  Exchange x;
  x.path = std::move(path);
  x.recorded = std::move(recorded);
  x.actual = std::move(actual);
  x.secondary = std::move(secondary);
  return x;
}

TEST(RunAggregatorTest, CountsPerTargetAndEndpoint) {
  AggregatorOptions options = OneTarget();
  options.targets.push_back("http://other:9000");
  Feeder feed(options);
  for (int i = 1; i <= 10; ++i) {
    Exchange x;
    x.path = "/users/" + std::to_string(i);
    x.recorded = Response(200, User(i, "ann"), 800, {{"Date", "Mon"}});
    // Different timestamp everywhere (normalized), different Date (ignored), a changed name
    // on 3 requests.
    x.actual = Response(200, User(i, i <= 3 ? "bob" : "ann", "2025-05-05T10:00:00Z"), 900,
                        {{"Date", "Tue"}});
    x.latency_us = 1200;
    feed.Add(x);
  }
  for (const char* reason : {"timeout", "timeout", "connect"}) {
    Exchange x;
    x.path = "/users/99";
    x.recorded = Response(200, User(99, "ann"));
    x.error = reason;
    feed.Add(x);
  }
  Exchange post;
  post.method = "POST";
  post.path = "/orders";
  post.recorded = Response(201, R"({"ok":true})");
  post.actual = Response(500, R"({"ok":false})");
  feed.Add(post);
  Exchange redirect = post;
  redirect.target = 1;
  redirect.actual = Response(302, "", 1000, {}, "");
  feed.Add(redirect);

  Report r = feed.Finish();
  ASSERT_EQ(r.targets().size(), 2);
  const TargetReport& t = r.targets()[0];
  EXPECT_EQ(t.name(), "http://candidate:8080");
  EXPECT_EQ(t.requests(), 14u);
  EXPECT_EQ(t.errors(), 3u);
  EXPECT_EQ(t.compared(), 11u);
  EXPECT_EQ(t.matched(), 7u);
  EXPECT_EQ(t.mismatched(), 4u);
  EXPECT_EQ(t.status().s2xx(), 10u);
  EXPECT_EQ(t.status().s5xx(), 1u);
  using Reasons = std::vector<std::pair<std::string, uint64_t>>;
  EXPECT_EQ(SortedReasons(t.errors_by_reason()), (Reasons{{"connect", 1}, {"timeout", 2}}));
  ASSERT_EQ(t.endpoints().size(), 2);
  EXPECT_EQ(t.endpoints()[0].name(), "GET /users/{id}");  // sorted by name
  EXPECT_EQ(t.endpoints()[1].name(), "POST /orders");

  const EndpointReport* users = FindEndpoint(r, "GET /users/{id}");
  ASSERT_NE(users, nullptr);
  EXPECT_EQ(users->requests(), 13u);
  EXPECT_EQ(users->errors(), 3u);
  EXPECT_EQ(users->compared(), 10u);
  EXPECT_EQ(users->matched(), 7u);
  EXPECT_EQ(users->mismatched(), 3u);
  EXPECT_EQ(users->noise_compared(), 0u);
  const FieldReport* name = FindField(users, "body.name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->mismatches(), 3u);
  EXPECT_EQ(name->compared(), 10u);
  ASSERT_EQ(name->kinds_size(), 1);
  EXPECT_EQ(name->kinds(0), "value");
  EXPECT_EQ(name->severity(), "medium");
  ASSERT_EQ(name->exemplars().size(), 3);
  EXPECT_EQ(name->exemplars()[0].expected(), "\"ann\"");
  EXPECT_EQ(name->exemplars()[0].actual(), "\"bob\"");
  EXPECT_EQ(name->exemplars()[0].method(), "GET");
  EXPECT_EQ(name->exemplars()[0].expected_status(), 200u);
  EXPECT_EQ(name->exemplars()[0].actual_status(), 200u);
  EXPECT_NE(name->exemplars()[0].expected_body().find("\n  \"name\": \"ann\""), std::string::npos)
      << name->exemplars()[0].expected_body();
  ASSERT_EQ(users->normalized_size(), 1);
  EXPECT_EQ(users->normalized(0).path(), "body.created_at");
  EXPECT_EQ(users->normalized(0).count(), 10u);
  ASSERT_EQ(users->ignored_size(), 1);
  EXPECT_EQ(users->ignored(0).path(), "headers.date");
  EXPECT_EQ(users->ignored(0).count(), 10u);
  EXPECT_EQ(users->recorded_latency().count(), 10u);
  EXPECT_EQ(users->recorded_latency().p50_us(), 800u);
  EXPECT_EQ(users->latency().p50_us(), 1200u);
  // Too few samples (10 < min_samples 30) to call anything a regression, but the errors fail
  // the endpoint at the default 0 % threshold.
  EXPECT_EQ(name->verdict(), "ok");
  EXPECT_TRUE(users->error_rate_exceeded());
  EXPECT_TRUE(users->failed());

  const EndpointReport* orders = FindEndpoint(r, "POST /orders");
  ASSERT_NE(orders, nullptr);
  const FieldReport* status = FindField(orders, "status");
  ASSERT_NE(status, nullptr);
  EXPECT_EQ(status->mismatches(), 1u);
  EXPECT_EQ(status->exemplars()[0].expected(), "201");
  EXPECT_EQ(status->exemplars()[0].actual(), "500");

  const TargetReport& other = r.targets()[1];
  EXPECT_EQ(other.requests(), 1u);
  EXPECT_EQ(other.status().s3xx(), 1u);
  EXPECT_EQ(r.verdict().regressions(), 1u);  // the error rate of GET /users/{id}
  EXPECT_EQ(r.verdict().failed_endpoints(), 1u);
  EXPECT_EQ(r.verdict().exit_code(), 1);
}

TEST(RunAggregatorTest, ArrayIndexesAggregateUnderWildcardOncePerRequest) {
  Feeder feed(OneTarget());
  for (int i = 0; i < 40; ++i) {
    feed.Add(Answered("/cart", Response(200, R"({"items":[{"price":1},{"price":2},{"price":3}]})"),
                      Response(200, R"({"items":[{"price":1},{"price":5},{"price":6}]})")));
  }
  Report r = feed.Finish();
  const FieldReport* price = FindField(FindEndpoint(r, "GET /cart"), "body.items[*].price");
  ASSERT_NE(price, nullptr);
  EXPECT_EQ(price->mismatches(), 40u);  // two elements differ, the request counts once
  EXPECT_EQ(price->compared(), 40u);
  ASSERT_FALSE(price->exemplars().empty());
  EXPECT_EQ(price->exemplars()[0].path(), "body.items[1].price");  // the concrete path
  EXPECT_EQ(price->verdict(), "regression");
  EXPECT_EQ(r.verdict().exit_code(), 1);
}

TEST(RunAggregatorTest, ReservoirKeepsABoundedDeterministicSample) {
  auto run = [] {
    AggregatorOptions options = OneTarget();
    options.exemplars_per_field = 3;
    Feeder feed(options);
    for (int i = 0; i < 200; ++i) {
      feed.Add(Answered("/p/" + std::to_string(i), Response(200, R"({"v":0})"),
                        Response(200, R"({"v":)" + std::to_string(i + 1) + "}")));
    }
    return feed.Finish();
  };
  Report a = run(), b = run();
  const FieldReport* v = FindField(FindEndpoint(a, "GET /p/{id}"), "body.v");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->mismatches(), 200u);
  ASSERT_EQ(v->exemplars().size(), 3);
  // The fixed seed makes the sample reproducible.
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a, b));
  // Reservoir sampling over 200 draws replaces at least one of the first three.
  bool replaced = false;
  for (const Exemplar& e : v->exemplars()) {
    if (e.actual() != "1" && e.actual() != "2" && e.actual() != "3") replaced = true;
  }
  EXPECT_TRUE(replaced);
}

// The secondary and the candidate both differ on the same field of the same request: masked.
TEST(RunAggregatorTest, FieldDifferingOnSecondaryIsMaskedForThatRequest) {
  Feeder feed(OneTarget("http://secondary"));
  Exchange x;
  x.path = "/r";
  x.recorded = Response(200, R"({"rnd":1,"a":1})");
  x.actual = Response(200, R"({"rnd":2,"a":1})");
  x.secondary = Response(200, R"({"rnd":3,"a":1})");
  feed.Add(x);
  // Another request where only the candidate differs on rnd: not masked.
  x.path = "/r";
  x.secondary = Response(200, R"({"rnd":1,"a":1})");
  feed.Add(x);
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /r");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->compared(), 2u);
  EXPECT_EQ(e->matched(), 1u);  // the first request differs only where noise masked it
  EXPECT_EQ(e->mismatched(), 1u);
  EXPECT_EQ(e->noise_compared(), 2u);
  const FieldReport* rnd = FindField(e, "body.rnd");
  ASSERT_NE(rnd, nullptr);
  EXPECT_EQ(rnd->mismatches(), 1u);
  EXPECT_EQ(rnd->masked(), 1u);
  EXPECT_EQ(rnd->compared(), 1u);  // the masked request is left out
  EXPECT_EQ(rnd->noise_mismatches(), 1u);
  EXPECT_EQ(rnd->noise_compared(), 2u);
  ASSERT_EQ(rnd->noise_exemplars().size(), 1);
  EXPECT_EQ(rnd->noise_exemplars()[0].expected(), "1");
  EXPECT_EQ(rnd->noise_exemplars()[0].actual(), "3");
  EXPECT_EQ(rnd->noise_exemplars()[0].actual_status(), 200u);
  EXPECT_NE(rnd->noise_exemplars()[0].actual_body().find("\"rnd\": 3"), std::string::npos);
  ASSERT_EQ(rnd->exemplars().size(), 1);
  EXPECT_EQ(rnd->exemplars()[0].actual(), "2");
}

// A field both builds randomize independently at the same rate is pure noise.
TEST(RunAggregatorTest, PureNoiseIsNotFlagged) {
  Feeder feed(OneTarget("http://secondary"));
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    auto value = [&] { return rng() % 100 < 40 ? std::to_string(rng()) : std::string("0"); };
    const std::string actual = value();  // drawn first, then the secondary's
    const std::string secondary = value();
    feed.Add(Answered("/noisy", Response(200, R"({"rnd":0,"stable":1})"),
                      Response(200, R"({"rnd":)" + actual + R"(,"stable":1})"),
                      Response(200, R"({"rnd":)" + secondary + R"(,"stable":1})")));
  }
  Report r = feed.Finish();
  const FieldReport* rnd = FindField(FindEndpoint(r, "GET /noisy"), "body.rnd");
  ASSERT_NE(rnd, nullptr);
  EXPECT_GT(rnd->mismatches(), 200u);  // there is plenty of candidate difference...
  EXPECT_GT(rnd->masked(), 100u);
  EXPECT_GT(rnd->noise_mismatches(), 300u);
  EXPECT_EQ(rnd->verdict(), "ok");  // ...but no more than the noise
  EXPECT_GT(rnd->p_value(), 0.01);
  EXPECT_EQ(r.verdict().regressions(), 0u);
  EXPECT_EQ(r.verdict().exit_code(), 0);
}

// Without the secondary, the same candidate differences are a regression: this is what the
// noise data buys.
TEST(RunAggregatorTest, SameTrafficWithoutSecondaryIsFlagged) {
  Feeder feed(OneTarget());
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    feed.Add(Answered(
        "/noisy", Response(200, R"({"rnd":0})"),
        Response(200, R"({"rnd":)" + (rng() % 100 < 40 ? std::to_string(rng() | 1) : "0") + "}")));
  }
  Report r = feed.Finish();
  const FieldReport* rnd = FindField(FindEndpoint(r, "GET /noisy"), "body.rnd");
  ASSERT_NE(rnd, nullptr);
  EXPECT_EQ(rnd->noise_compared(), 0u);
  EXPECT_EQ(rnd->verdict(), "regression");
  EXPECT_EQ(r.verdict().exit_code(), 1);
}

// A real regression on a field that is also noisy: the candidate differs far more often than
// the secondary does, so it is caught even though some of its differences are masked.
TEST(RunAggregatorTest, RegressionOnNoisyFieldIsCaught) {
  Feeder feed(OneTarget("http://secondary"));
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    bool noisy = rng() % 100 < 20;    // the secondary differs on 20 % of requests
    bool changed = rng() % 100 < 60;  // the candidate on 60 %
    feed.Add(Answered("/price", Response(200, R"({"price":10})"),
                      Response(200, changed ? R"({"price":11})" : R"({"price":10})"),
                      Response(200, noisy ? R"({"price":12})" : R"({"price":10})")));
  }
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /price");
  const FieldReport* price = FindField(e, "body.price");
  ASSERT_NE(price, nullptr);
  EXPECT_GT(price->masked(), 0u);
  EXPECT_GT(price->noise_mismatches(), 0u);
  EXPECT_LT(price->compared(), 300u);
  EXPECT_EQ(price->verdict(), "regression");
  EXPECT_LT(price->p_value(), 0.01);
  EXPECT_TRUE(e->failed());
  EXPECT_EQ(r.verdict().regressions(), 1u);
  EXPECT_EQ(r.verdict().exit_code(), 1);
}

// 100 requests, `changed` of them with a changed value: the field's rate is changed %.
Report ValueRegression(int changed, double threshold, diff::Severity fail_on,
                       const char* expected = R"({"a":1})", const char* actual = R"({"a":2})") {
  AggregatorOptions options = OneTarget();
  options.fail_threshold_pct = threshold;
  options.fail_on = fail_on;
  Feeder feed(options);
  for (int i = 0; i < 100; ++i) {
    feed.Add(
        Answered("/v", Response(200, expected), Response(200, i < changed ? actual : expected)));
  }
  return feed.Finish();
}

TEST(RunAggregatorTest, FailThresholdToleratesRatesAtOrBelowIt) {
  using diff::Severity;
  Report over = ValueRegression(10, 5, Severity::kLow);
  EXPECT_EQ(FindField(FindEndpoint(over, "GET /v"), "body.a")->verdict(), "regression");
  EXPECT_EQ(over.verdict().exit_code(), 1);
  EXPECT_EQ(over.settings().fail_threshold_pct(), 5);

  Report at = ValueRegression(10, 10, Severity::kLow);
  const EndpointReport* e = FindEndpoint(at, "GET /v");
  EXPECT_EQ(FindField(e, "body.a")->verdict(), "tolerated");
  EXPECT_FALSE(e->failed());
  EXPECT_EQ(at.verdict().regressions(), 0u);
  EXPECT_EQ(at.verdict().exit_code(), 0);

  Report one = ValueRegression(1, 0, Severity::kLow);  // default: any significant mismatch
  EXPECT_EQ(FindField(FindEndpoint(one, "GET /v"), "body.a")->verdict(), "regression");
  EXPECT_EQ(one.verdict().exit_code(), 1);

  Report none = ValueRegression(0, 0, Severity::kLow);
  EXPECT_EQ(FindField(FindEndpoint(none, "GET /v"), "body.a"), nullptr);
  EXPECT_EQ(FindEndpoint(none, "GET /v")->matched(), 100u);
  EXPECT_EQ(none.verdict().exit_code(), 0);
}

TEST(RunAggregatorTest, FailOnSeverity) {
  using diff::Severity;
  // An added field is low severity.
  const char* plain = R"({"a":1})";
  const char* added = R"({"a":1,"b":2})";
  Report low = ValueRegression(50, 0, Severity::kLow, plain, added);
  const FieldReport* b = FindField(FindEndpoint(low, "GET /v"), "body.b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->severity(), "low");
  ASSERT_EQ(b->kinds_size(), 1);
  EXPECT_EQ(b->kinds(0), "extra");
  EXPECT_EQ(b->verdict(), "regression");
  EXPECT_EQ(low.verdict().exit_code(), 1);

  Report high = ValueRegression(50, 0, Severity::kHigh, plain, added);
  EXPECT_EQ(FindField(FindEndpoint(high, "GET /v"), "body.b")->verdict(), "tolerated");
  EXPECT_EQ(high.verdict().exit_code(), 0);
  EXPECT_EQ(high.settings().fail_on(), "high");

  // A removed field is high severity: fails even with --fail-on high.
  Report removed = ValueRegression(50, 0, Severity::kHigh, added, plain);
  const FieldReport* gone = FindField(FindEndpoint(removed, "GET /v"), "body.b");
  ASSERT_NE(gone, nullptr);
  EXPECT_EQ(gone->severity(), "high");
  EXPECT_EQ(gone->verdict(), "regression");
  EXPECT_EQ(removed.verdict().exit_code(), 1);

  // A changed value is medium.
  Report medium = ValueRegression(50, 0, Severity::kMedium);
  EXPECT_EQ(FindField(FindEndpoint(medium, "GET /v"), "body.a")->verdict(), "regression");
  Report medium_high = ValueRegression(50, 0, Severity::kHigh);
  EXPECT_EQ(medium_high.verdict().exit_code(), 0);
}

TEST(RunAggregatorTest, StatusChangeIsARegression) {
  Feeder feed(OneTarget());
  for (int i = 0; i < 40; ++i) {
    feed.Add(Answered("/boom", Response(200, R"({"a":1})"),
                      Response(i % 2 == 0 ? 500 : 200, R"({"a":1})")));
  }
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /boom");
  const FieldReport* status = FindField(e, "status");
  ASSERT_NE(status, nullptr);
  EXPECT_EQ(status->mismatches(), 20u);
  EXPECT_EQ(status->verdict(), "regression");
  EXPECT_EQ(e->status().s5xx(), 20u);
  EXPECT_EQ(e->status().s2xx(), 20u);
  EXPECT_EQ(r.verdict().exit_code(), 1);
}

TEST(RunAggregatorTest, ErrorRateAgainstThreshold) {
  auto run = [](double threshold) {
    AggregatorOptions options = OneTarget();
    options.fail_threshold_pct = threshold;
    Feeder feed(options);
    for (int i = 0; i < 100; ++i) {
      Exchange x;
      x.path = "/e";
      x.recorded = Response(200, "{}");
      if (i >= 3) x.actual = Response(200, "{}");
      x.error = "connect";
      feed.Add(x);
    }
    return feed.Finish();
  };
  Report strict = run(0);
  const EndpointReport* e = FindEndpoint(strict, "GET /e");
  EXPECT_EQ(e->errors(), 3u);
  EXPECT_TRUE(e->error_rate_exceeded());
  EXPECT_EQ(e->regressions(), 0u);
  EXPECT_TRUE(e->failed());
  EXPECT_EQ(strict.verdict().regressions(), 1u);
  EXPECT_EQ(strict.verdict().exit_code(), 1);
  Report lenient = run(5);
  EXPECT_FALSE(FindEndpoint(lenient, "GET /e")->failed());
  EXPECT_EQ(lenient.verdict().exit_code(), 0);
}

// replay --fault: exchanges with injected faults are counted apart and never fail the run,
// even when every one of them failed or differed; organic errors still do.
TEST(RunAggregatorTest, InjectedFaultsAreCountedApartAndNeverRegressions) {
  Feeder feed(OneTarget());
  for (int i = 0; i < 60; ++i) {
    Exchange x = Answered("/f", Response(200, R"({"a":1})"), Response(200, R"({"a":1})"));
    if (i % 3 == 0) {  // 20 aborted: no answer
      x.actual.reset();
      x.error = "abort";
      x.fault = "abort";
    } else if (i % 3 == 1 && i < 30) {  // 10 delayed and answered differently
      x.actual = Response(503, R"({"a":2})");
      x.fault = "delay";
    }
    x.arrival_us = 1'000'000;
    feed.Add(x);
  }
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /f");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->requests(), 60u);
  EXPECT_EQ(e->errors(), 0u);  // organic only
  EXPECT_TRUE(e->errors_by_reason().empty());
  EXPECT_EQ(e->compared(), 30u);
  EXPECT_EQ(e->matched(), 30u);
  EXPECT_EQ(e->status().s5xx(), 0u);
  EXPECT_EQ(FindField(e, "status"), nullptr);
  ASSERT_TRUE(e->has_faults());
  EXPECT_EQ(e->faults().injected(), 30u);
  EXPECT_EQ(e->faults().by_kind().at("abort"), 20u);
  EXPECT_EQ(e->faults().by_kind().at("delay"), 10u);
  EXPECT_EQ(e->faults().errors(), 20u);
  EXPECT_EQ(e->faults().errors_by_reason().at("abort"), 20u);
  EXPECT_EQ(e->faults().answered(), 10u);
  EXPECT_EQ(e->faults().mismatched(), 10u);
  EXPECT_FALSE(e->failed());
  EXPECT_EQ(r.verdict().exit_code(), 0);
  const TargetReport& t = r.targets(0);
  EXPECT_EQ(t.errors(), 0u);
  ASSERT_TRUE(t.has_faults());
  EXPECT_EQ(t.faults().injected(), 30u);
  EXPECT_EQ(t.timeline().errors(0), 0u);
  EXPECT_EQ(t.timeline().mismatches(0), 0u);
  EXPECT_EQ(t.timeline().requests(0), 60u);
  EXPECT_EQ(FaultsLine(e->faults()),
            "30 injected (abort 20, delay 10): 20 not answered (abort 20), 10 answered, 10 of "
            "them differed");

  // An endpoint without faults has no `faults`; one organic error still fails at threshold 0,
  // its rate taken over the exchanges without faults.
  Feeder organic(OneTarget());
  for (int i = 0; i < 10; ++i) {
    Exchange x = Answered("/o", Response(200, "{}"), Response(200, "{}"));
    if (i == 0) x.actual.reset();
    organic.Add(x);
  }
  Report o = organic.Finish();
  EXPECT_FALSE(FindEndpoint(o, "GET /o")->has_faults());
  EXPECT_FALSE(o.targets(0).has_faults());
  EXPECT_EQ(o.verdict().exit_code(), 1);
}

TEST(RunAggregatorTest, OrganicErrorRateLeavesInjectedFaultsOut) {
  AggregatorOptions options = OneTarget();
  options.fail_threshold_pct = 10;
  Feeder feed(options);
  // 2 organic errors in 40 exchanges, plus 60 aborted: 2/40 = 5% (under 10%), although
  // 62 of 100 got no answer.
  for (int i = 0; i < 100; ++i) {
    Exchange x = Answered("/r", Response(200, "{}"), Response(200, "{}"));
    if (i < 60) {
      x.actual.reset();
      x.error = "abort";
      x.fault = "abort";
    } else if (i < 62) {
      x.actual.reset();
      x.error = "reset";
    }
    feed.Add(x);
  }
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /r");
  EXPECT_EQ(e->errors(), 2u);
  EXPECT_EQ(e->faults().errors(), 60u);
  EXPECT_FALSE(e->error_rate_exceeded());
  EXPECT_EQ(r.verdict().exit_code(), 0);
}

TEST(RunAggregatorTest, LatencyPercentilesPerEndpointAndTarget) {
  Feeder feed(OneTarget());
  for (int i = 1; i <= 1000; ++i) {
    Exchange x;
    x.path = i % 2 == 0 ? "/even" : "/odd";
    x.recorded = Response(200, "{}", static_cast<uint64_t>(i) * 100);  // 0.1 .. 100 ms
    x.actual = Response(200, "{}");
    x.latency_us = static_cast<uint64_t>(i) * 1000;  // 1 .. 1000 ms
    feed.Add(x);
  }
  Report r = feed.Finish();
  const TargetReport& t = r.targets()[0];
  auto within = [](uint64_t got, uint64_t want) { return got >= want && got <= want + want / 100; };
  EXPECT_EQ(t.latency().count(), 1000u);
  EXPECT_TRUE(within(t.latency().p50_us(), 500'000)) << t.latency().p50_us();
  EXPECT_TRUE(within(t.latency().p90_us(), 900'000)) << t.latency().p90_us();
  EXPECT_TRUE(within(t.latency().p99_us(), 990'000)) << t.latency().p99_us();
  EXPECT_EQ(t.latency().max_us(), 1'000'000u);
  EXPECT_TRUE(within(t.recorded_latency().p50_us(), 50'000)) << t.recorded_latency().p50_us();
  EXPECT_EQ(t.recorded_latency().max_us(), 100'000u);
  const EndpointReport* even = FindEndpoint(r, "GET /even");
  ASSERT_NE(even, nullptr);
  EXPECT_EQ(even->latency().count(), 500u);
  EXPECT_TRUE(within(even->latency().p50_us(), 500'000)) << even->latency().p50_us();
  EXPECT_EQ(even->latency().max_us(), 1'000'000u);
  EXPECT_EQ(FindEndpoint(r, "GET /odd")->latency().max_us(), 999'000u);
}

// The exported distribution: coarse buckets (8 per power of two) summing to the count, each at
// most 1/8 of its values wide, plus p99.9 — what a percentile plot of the target needs.
TEST(RunAggregatorTest, LatencyDistributionForPlots) {
  Feeder feed(OneTarget());
  for (int i = 1; i <= 1000; ++i) {
    Exchange x;
    x.path = i % 2 == 0 ? "/even" : "/odd";
    x.recorded = Response(200, "{}", static_cast<uint64_t>(i));  // 1 .. 1000 us
    x.actual = Response(200, "{}");
    x.latency_us = static_cast<uint64_t>(i) * 1000;  // 1 .. 1000 ms
    feed.Add(x);
  }
  Report r = feed.Finish();
  const v1::Latency& l = r.targets()[0].latency();
  ASSERT_EQ(l.bucket_le_us_size(), l.bucket_counts_size());
  // 1 ms .. 1 s spans ~10 powers of two: ~80 buckets, not 1000.
  EXPECT_GT(l.bucket_le_us_size(), 60);
  EXPECT_LT(l.bucket_le_us_size(), 90);
  uint64_t sum = 0, previous = 0;
  for (int i = 0; i < l.bucket_le_us_size(); ++i) {
    const uint64_t le = l.bucket_le_us(i);
    EXPECT_GT(le, previous) << i;  // ascending
    EXPECT_GT(l.bucket_counts(i), 0u) << i;
    // Bucket bounds are 8 per power of two: le + 1 is a multiple of an eighth of its octave
    // (the last bucket is capped at max_us instead).
    if (i + 1 < l.bucket_le_us_size()) {
      const int shift = std::bit_width(le) - 1 - 3;
      EXPECT_EQ((le + 1) % (uint64_t{1} << shift), 0u) << le;
    }
    previous = le;
    sum += l.bucket_counts(i);
  }
  // Each value lies in a bucket at most 1/8 of it wide.
  for (uint64_t v = 1000; v <= 1'000'000; v += 1000) {
    auto it = std::lower_bound(l.bucket_le_us().begin(), l.bucket_le_us().end(), v);
    ASSERT_NE(it, l.bucket_le_us().end()) << v;
    EXPECT_LE(*it - v, v / 8) << v;
  }
  EXPECT_EQ(sum, 1000u);
  EXPECT_EQ(l.bucket_le_us(l.bucket_le_us_size() - 1), 1'000'000u);  // capped at max
  EXPECT_GE(l.p999_us(), 999'000u);
  EXPECT_LE(l.p999_us(), 1'000'000u);
  // Small values are exact: 1 .. 15 us are a bucket each.
  const v1::Latency& rec = r.targets()[0].recorded_latency();
  ASSERT_GT(rec.bucket_le_us_size(), 15);
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(rec.bucket_le_us(i), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(rec.bucket_counts(i), 1u);
  }
  const EndpointReport* even = FindEndpoint(r, "GET /even");
  ASSERT_NE(even, nullptr);
  uint64_t even_sum = 0;
  for (uint64_t c : even->latency().bucket_counts()) even_sum += c;
  EXPECT_EQ(even_sum, 500u);
  // No responses: no distribution.
  Feeder errors(OneTarget());
  Exchange failed;
  errors.Add(failed);
  EXPECT_EQ(errors.Finish().targets()[0].latency().bucket_le_us_size(), 0);
}

TEST(RunAggregatorTest, TimelineCountsPerSecondOfTheRecording) {
  Feeder feed(OneTarget());
  const uint64_t t0 = 1'700'000'000'000'000;  // a Unix time in microseconds, whole second
  // Second 0: two matches; second 1: nothing; second 2: a mismatch, an error and a match,
  // fed out of order.
  auto add = [&](uint64_t at_us, int what) {
    Exchange x;
    x.arrival_us = at_us;
    x.recorded = Response(200, R"({"a":1})");
    if (what == 1) x.actual = Response(200, R"({"a":2})");
    if (what == 0) x.actual = x.recorded;
    feed.Add(x);
  };
  add(t0 + 2'500'000, 1);
  add(t0 + 100, 0);
  add(t0 + 999'999, 0);
  add(t0 + 2'000'000, 2);
  add(t0 + 2'999'999, 0);
  const Report r = feed.Finish();
  const v1::Timeline& tl = r.targets()[0].timeline();
  EXPECT_EQ(tl.start_us(), t0);
  EXPECT_EQ(tl.bucket_seconds(), 1u);
  EXPECT_EQ(std::vector<uint64_t>(tl.requests().begin(), tl.requests().end()),
            (std::vector<uint64_t>{2, 0, 3}));
  EXPECT_EQ(std::vector<uint64_t>(tl.mismatches().begin(), tl.mismatches().end()),
            (std::vector<uint64_t>{0, 0, 1}));
  EXPECT_EQ(std::vector<uint64_t>(tl.errors().begin(), tl.errors().end()),
            (std::vector<uint64_t>{0, 0, 1}));
}

TEST(RunAggregatorTest, LongTimelinesGetCoarserBuckets) {
  Feeder feed(OneTarget());
  // An hour, a request every second: 3600 seconds become buckets of 8 s (450 of them).
  for (uint64_t s = 0; s < 3600; ++s) {
    Exchange x;
    x.arrival_us = s * 1'000'000 + 17;
    x.recorded = Response(200, "{}");
    x.actual = x.recorded;
    feed.Add(x);
  }
  const Report r = feed.Finish();
  const v1::Timeline& tl = r.targets()[0].timeline();
  EXPECT_EQ(tl.bucket_seconds(), 8u);
  EXPECT_LE(tl.requests_size(), static_cast<int>(kMaxTimelineBuckets));
  EXPECT_EQ(tl.requests_size(), 450);
  EXPECT_EQ(tl.mismatches_size(), tl.requests_size());
  EXPECT_EQ(tl.errors_size(), tl.requests_size());
  uint64_t sum = 0;
  for (uint64_t n : tl.requests()) {
    EXPECT_EQ(n, 8u);
    sum += n;
  }
  EXPECT_EQ(sum, 3600u);
}

TEST(RunAggregatorTest, RejectsBadObservations) {
  RunAggregator agg(OneTarget());
  doppel::v1::Envelope envelope;
  Observation obs;
  obs.target = 1;
  obs.envelope = &envelope;
  EXPECT_EQ(agg.Add(obs).code(), Status::Code::kInvalidArgument);
  obs.target = 0;
  obs.envelope = nullptr;
  EXPECT_EQ(agg.Add(obs).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(agg.Finish().targets()[0].requests(), 0u);
}

TEST(RunAggregatorTest, BoundsFieldsAndEndpoints) {
  AggregatorOptions options = OneTarget();
  options.max_fields_per_endpoint = 2;
  options.max_endpoints = 1;
  Feeder feed(options);
  Exchange x;
  x.path = "/a";
  x.recorded = Response(200, R"({"a":1,"b":1,"c":1,"d":1})");
  x.actual = Response(200, R"({"a":2,"b":2,"c":2,"d":2})");
  feed.Add(x);
  x.path = "/b";
  feed.Add(x);
  Report r = feed.Finish();
  ASSERT_EQ(r.targets()[0].endpoints().size(), 2);
  const EndpointReport* a = FindEndpoint(r, "GET /a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->fields().size(), 2);
  EXPECT_EQ(a->untracked_fields(), 2u);
  EXPECT_EQ(a->mismatched(), 1u);
  EXPECT_NE(FindEndpoint(r, kOtherEndpoints), nullptr);
}

TEST(RunAggregatorTest, ExemplarBodiesStopAtTheBudget) {
  AggregatorOptions options = OneTarget();
  options.max_exemplar_body_bytes = 1;  // the first exemplar gets bodies, later ones do not
  Feeder feed(options);
  feed.Add(Answered("/b", Response(200, R"({"a":1,"b":1})"), Response(200, R"({"a":2,"b":2})")));
  Report r = feed.Finish();
  const EndpointReport* e = FindEndpoint(r, "GET /b");
  const FieldReport* a = FindField(e, "body.a");
  const FieldReport* b = FindField(e, "body.b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(a->exemplars()[0].expected_body().empty());
  EXPECT_TRUE(b->exemplars()[0].expected_body().empty());
  EXPECT_EQ(b->exemplars()[0].expected(), "1");  // the rendering is always kept
}

TEST(ParseSeverityTest, NamesAndErrors) {
  EXPECT_EQ(ParseSeverity("low").value(), diff::Severity::kLow);
  EXPECT_EQ(ParseSeverity("MEDIUM").value(), diff::Severity::kMedium);
  EXPECT_EQ(ParseSeverity("high").value(), diff::Severity::kHigh);
  Result<diff::Severity> bad = ParseSeverity("critical");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("low, medium or high"), std::string::npos);
}

}  // namespace
}  // namespace doppel::report
