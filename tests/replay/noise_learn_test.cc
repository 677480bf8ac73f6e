#include "replay/noise_learn.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "diff/diff.h"
#include "diff/rules.h"
#include "replay/source.h"
#include "storage/store.h"

namespace doppel::replay {
namespace {

using doppel::v1::Envelope;

constexpr uint64_t kT0 = 1'795'737'600'000'000ull;

Envelope MakeEnvelope(uint32_t seq, const std::string& method, const std::string& target,
                      const std::string& request_body, uint32_t status,
                      const std::string& response_body, const std::string& x_cache = "") {
  Envelope e;
  e.set_arrival_us(kT0 + seq * 1000ull);
  e.set_seq(seq);
  e.set_scheme("http");
  auto* req = e.mutable_request();
  req->set_method(method);
  req->set_target(target);
  req->set_version(11);
  req->set_body(request_body);
  req->set_body_size(request_body.size());
  auto* resp = e.mutable_response();
  resp->set_status(status);
  resp->set_version(11);
  auto* h = resp->add_headers();
  h->set_name("Content-Type");
  h->set_value("application/json");
  if (!x_cache.empty()) {
    h = resp->add_headers();
    h->set_name("X-Cache");
    h->set_value(x_cache);
  }
  resp->set_body(response_body);
  resp->set_body_size(response_body.size());
  return e;
}

// A product answer: `nonce` and `stock` vary per response (noise), `generated_at` is a
// timestamp (normalized by the diff engine), name and price never vary.
std::string Product(int id, int repeat, const std::string& price = "9.99") {
  return "{\"id\":" + std::to_string(id) + ",\"name\":\"Widget " + std::to_string(id) +
         "\",\"price\":" + price +
         ",\"generated_at\":\"2026-11-27T00:00:" + (repeat < 10 ? "0" : "") +
         std::to_string(repeat) + "Z\",\"nonce\":\"n" +
         std::to_string(id * 7919 + repeat * 104729) +
         "\",\"items\":[{\"sku\":\"a\",\"stock\":" + std::to_string(10 + repeat) +
         "},{\"sku\":\"b\",\"stock\":" + std::to_string(3 * repeat) + "}]}";
}

class NoiseLearnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() /
            ("doppel_noise_learn_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(storage::Store::Open(storage::StoreOptions(), dir_, &store_).ok());
    doppel::v1::SessionInfo info;
    info.set_name("prod");
    ASSERT_TRUE(store_->CreateSession(info).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Three products fetched 10 times each (27 pairs); a user fetched 4 times whose `rare`
  // field differs in 2 pairs only; orders posted with different bodies (never identical);
  // one product repeat answered 503 (an outage, not noise); three users' carts (9 pairs).
  void RecordSession() {
    std::vector<Envelope> batch;
    uint32_t seq = 0;
    for (int repeat = 0; repeat < 10; ++repeat) {
      for (int id = 1; id <= 3; ++id) {
        batch.push_back(MakeEnvelope(seq++, "GET", "/api/v1/products/" + std::to_string(id), "",
                                     200, Product(id, repeat), repeat % 2 ? "HIT" : "MISS"));
      }
    }
    for (int repeat = 0; repeat < 4; ++repeat) {
      std::string rare = repeat == 1 || repeat == 3 ? "x" : "a";
      batch.push_back(MakeEnvelope(seq++, "GET", "/api/v1/users/42?fields=all", "", 200,
                                   "{\"id\":42,\"rare\":\"" + rare + "\"}"));
    }
    for (int i = 0; i < 5; ++i) {
      batch.push_back(MakeEnvelope(seq++, "POST", "/api/v1/orders",
                                   "{\"sku\":\"a\",\"qty\":" + std::to_string(i) + "}", 201,
                                   "{\"order\":" + std::to_string(1000 + i) + "}"));
    }
    batch.push_back(
        MakeEnvelope(seq++, "GET", "/api/v1/products/1", "", 503, "{\"error\":\"unavailable\"}"));
    // Three users each fetch their own cart 4 times: same target, different Authorization.
    for (int repeat = 0; repeat < 4; ++repeat) {
      for (int user = 1; user <= 3; ++user) {
        Envelope e = MakeEnvelope(seq++, "GET", "/api/v1/cart", "", 200,
                                  "{\"user\":" + std::to_string(user) + "}");
        auto* h = e.mutable_request()->add_headers();
        h->set_name("Authorization");
        h->set_value("hmac:" + std::string(64, static_cast<char>('0' + user)));
        batch.push_back(std::move(e));
      }
    }
    ASSERT_TRUE(store_->Append("prod", batch).ok());
  }

  Result<NoiseLearnResult> Learn(const NoiseLearnOptions& options = {}) {
    auto source = OpenStoreSource(store_.get(), "prod");
    if (!source.ok()) return source.status();
    return LearnNoise(**source, options);
  }

  std::string dir_;
  std::unique_ptr<storage::Store> store_;
};

const LearnedField* Find(const NoiseLearnResult& r, const std::string& endpoint,
                         const std::string& path) {
  for (const LearnedField& f : r.fields)
    if (f.endpoint == endpoint && f.path == path) return &f;
  return nullptr;
}

TEST_F(NoiseLearnTest, LearnsVaryingFieldsNotTimestampsNorStableFields) {
  RecordSession();
  auto r = Learn();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envelopes, 30u + 4u + 5u + 1u + 12u);
  EXPECT_EQ(r->keys, 3u + 1u + 5u + 3u);
  EXPECT_EQ(r->pairs, 27u + 3u + 9u);
  EXPECT_EQ(r->status_changed, 1u);
  EXPECT_FALSE(r->key_cap_reached);

  const std::string products = "GET /api/v1/products/{id}";
  const LearnedField* nonce = Find(*r, products, "body.nonce");
  ASSERT_NE(nonce, nullptr);
  EXPECT_EQ(nonce->varied, 27u);
  EXPECT_EQ(nonce->pairs, 27u);
  // Array elements aggregate to one generalized field, counted once per pair.
  const LearnedField* stock = Find(*r, products, "body.items[*].stock");
  ASSERT_NE(stock, nullptr);
  EXPECT_EQ(stock->varied, 27u);
  // X-Cache alternates HIT/MISS: the first (MISS) differs from the 5 HIT repeats of each.
  const LearnedField* cache = Find(*r, products, "headers.x-cache");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->varied, 15u);

  EXPECT_EQ(Find(*r, products, "body.generated_at"), nullptr);  // normalized timestamp
  EXPECT_EQ(Find(*r, products, "body.price"), nullptr);
  EXPECT_EQ(Find(*r, products, "body.name"), nullptr);
  EXPECT_EQ(Find(*r, products, "status"), nullptr);
  // `rare` varied in 2 of 3 pairs: below the default --min-pairs 3.
  EXPECT_EQ(Find(*r, "GET /api/v1/users/{id}", "body.rare"), nullptr);
  EXPECT_EQ(r->below_min_pairs, 1u);
  for (const LearnedField& f : r->fields) EXPECT_NE(f.endpoint, "POST /api/v1/orders");
  // Each user's cart never changed: another user's cart is not noise.
  EXPECT_EQ(Find(*r, "GET /api/v1/cart", "body.user"), nullptr);
  EXPECT_EQ(r->fields.size(), 3u);

  NoiseLearnOptions anyone;
  anyone.key_headers.clear();
  auto r1 = Learn(anyone);
  ASSERT_TRUE(r1.ok());
  EXPECT_NE(Find(*r1, "GET /api/v1/cart", "body.user"), nullptr);

  NoiseLearnOptions two;
  two.min_pairs = 2;
  auto r2 = Learn(two);
  ASSERT_TRUE(r2.ok());
  const LearnedField* rare = Find(*r2, "GET /api/v1/users/{id}", "body.rare");
  ASSERT_NE(rare, nullptr);
  EXPECT_EQ(rare->varied, 2u);
  EXPECT_EQ(rare->pairs, 3u);
}

// What the proxy refused never reached the primary: counted apart, never compared. Upstream
// failures have no primary response and count as incomplete.
TEST_F(NoiseLearnTest, WhatTheProxyRefusedIsCountedAndNotLearnedFrom) {
  std::vector<Envelope> batch;
  uint32_t seq = 0;
  for (int repeat = 0; repeat < 4; ++repeat)
    batch.push_back(MakeEnvelope(seq++, "GET", "/api/v1/products/1", "", 200, Product(1, 0)));
  Envelope lone_newline;  // no method, no target
  lone_newline.set_arrival_us(kT0 + seq * 1000ull);
  lone_newline.set_seq(seq++);
  lone_newline.set_error(doppel::v1::PROXY_ERROR_BAD_REQUEST);
  batch.push_back(lone_newline);
  // Refused, yet carrying a differing response (an edited import): must not become noise.
  for (int i = 0; i < 3; ++i) {
    Envelope e = MakeEnvelope(seq++, "GET", "/api/v1/products/1", "", 200, Product(1, 1 + i));
    e.set_error(doppel::v1::PROXY_ERROR_BODY_TOO_LARGE);
    batch.push_back(e);
  }
  Envelope timed_out = MakeEnvelope(seq++, "GET", "/api/v1/products/1", "", 200, "");
  timed_out.clear_response();
  timed_out.set_error(doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  batch.push_back(timed_out);
  ASSERT_TRUE(store_->Append("prod", batch).ok());

  auto r = Learn();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->envelopes, 9u);
  EXPECT_EQ(r->refused, 4u);
  EXPECT_EQ(r->incomplete, 1u);
  EXPECT_EQ(r->pairs, 3u);
  EXPECT_TRUE(r->fields.empty());
}

TEST_F(NoiseLearnTest, WrittenRulesLoadAndSilenceTheLearnedFields) {
  RecordSession();
  auto r = Learn();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string text = NoiseRulesJson(*r, "session \"prod\"");
  EXPECT_NE(text.find("// varied in 27 of 27 identical requests\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\"endpoint\": \"GET /api/v1/products/{id}\", \"path\": \"body.nonce\""),
            std::string::npos)
      << text;

  std::string path = dir_ + "/learned.json";
  {
    std::ofstream f(path);
    f << text;
  }
  auto rules = diff::LoadRulesFile(path);
  ASSERT_TRUE(rules.ok()) << rules.status().ToString() << "\n" << text;
  ASSERT_EQ(rules->rules_size(), 2);
  EXPECT_EQ(rules->rules(0).path(), "body.items[*].stock");
  EXPECT_EQ(rules->rules(0).endpoint(), "GET /api/v1/products/{id}");
  EXPECT_EQ(rules->rules(0).action(), "ignore");
  EXPECT_EQ(rules->rules(1).path(), "body.nonce");
  ASSERT_EQ(rules->headers().ignore_size(), 1);
  EXPECT_EQ(rules->headers().ignore(0), "x-cache");

  Envelope a = MakeEnvelope(0, "GET", "/api/v1/products/9", "", 200, Product(9, 1), "MISS");
  Envelope b = MakeEnvelope(1, "GET", "/api/v1/products/9", "", 200, Product(9, 2), "HIT");
  Envelope price = MakeEnvelope(2, "GET", "/api/v1/products/9", "", 200, Product(9, 2, "12.5"));

  auto plain = diff::Differ::Create(diff::DiffConfig());
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->Compare("GET", "/api/v1/products/9", a.response(), b.response()).match);

  diff::DiffConfig config;
  config.rules = *rules;
  auto learned = diff::Differ::Create(config);
  ASSERT_TRUE(learned.ok()) << learned.status().ToString();
  diff::DiffResult same =
      (*learned)->Compare("GET", "/api/v1/products/9", a.response(), b.response());
  EXPECT_TRUE(same.match) << (same.diffs.empty() ? "" : same.diffs[0].path);
  EXPECT_NE(std::find(same.ignored.begin(), same.ignored.end(), "body.nonce"), same.ignored.end());
  // A real change on a field that never varied is still reported.
  diff::DiffResult changed =
      (*learned)->Compare("GET", "/api/v1/products/9", b.response(), price.response());
  ASSERT_FALSE(changed.match);
  std::string paths;
  for (const diff::FieldDiff& d : changed.diffs) paths += d.path + " ";
  ASSERT_EQ(changed.diffs.size(), 1u) << paths;
  EXPECT_EQ(changed.diffs[0].path, "body.price");
}

TEST_F(NoiseLearnTest, KeyCapStopsKeepingNewRequests) {
  RecordSession();
  NoiseLearnOptions options;
  options.max_keys = 1;  // only /api/v1/products/1 is kept
  auto r = Learn(options);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->key_cap_reached);
  EXPECT_EQ(r->keys, 1u);
  EXPECT_EQ(r->pairs, 9u);
  EXPECT_EQ(r->not_kept, 52u - 10u - 1u);  // everything but product 1 and its 503
  const LearnedField* nonce = Find(*r, "GET /api/v1/products/{id}", "body.nonce");
  ASSERT_NE(nonce, nullptr);
  EXPECT_EQ(nonce->pairs, 9u);
}

TEST_F(NoiseLearnTest, NothingRepeatedWritesAnEmptyValidFile) {
  std::vector<Envelope> batch;
  for (uint32_t i = 0; i < 5; ++i)
    batch.push_back(MakeEnvelope(i, "GET", "/p/" + std::to_string(i), "", 200, "{}"));
  ASSERT_TRUE(store_->Append("prod", batch).ok());
  auto r = Learn();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->pairs, 0u);
  EXPECT_TRUE(r->fields.empty());
  auto rules = diff::ParseRulesJson(NoiseRulesJson(*r, "session \"prod\""));
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  EXPECT_EQ(rules->rules_size(), 0);
}

TEST_F(NoiseLearnTest, InvalidBaseRulesAreAnError) {
  RecordSession();
  NoiseLearnOptions options;
  auto* rule = options.rules.add_rules();
  rule->set_path("nobody.x");
  rule->set_action("ignore");
  EXPECT_FALSE(Learn(options).ok());
}

}  // namespace
}  // namespace doppel::replay
