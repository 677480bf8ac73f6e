// Coverage sampling (issue #19) with real processes: `doppel record --sample-mode coverage`
// in front of a scripted upstream serving a skewed mix (one hot endpoint, a rare 500, a rare
// response shape), then `sessions classes`, `sessions minimize` and `replay --reweight` on
// what it kept.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "net/proto_headers.h"
#include "storage/store.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr int kRequests = 3000;

// /api/items/{id}: 200 {"id","name","price"}; every 600th id answers 500 with an error
// object, every 600th (offset 300) 200 with an extra nested "promo" object: 5 of each in 3000.
std::optional<net::HttpResponse> Shop(const ReceivedRequest& r) {
  const std::string prefix = "/api/items/";
  if (r.target.rfind(prefix, 0) != 0) return std::nullopt;
  const int id = std::atoi(r.target.c_str() + prefix.size());
  net::HttpResponse res{http::status::ok, 11};
  res.set(http::field::content_type, "application/json");
  if (id % 600 == 599) {
    res.result(http::status::internal_server_error);
    res.body() = R"({"error":{"code":"internal","message":"boom"}})";
  } else if (id % 600 == 299) {
    res.body() = R"({"id":)" + std::to_string(id) +
                 R"(,"name":"item","price":9.5,"promo":{"code":"X","until":"soon"}})";
  } else {
    res.body() = R"({"id":)" + std::to_string(id) + R"(,"name":"item","price":9.5})";
  }
  return res;
}

class CoverageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = std::filesystem::temp_directory_path() / "doppel-coverage-XXXXXX";
    dir_ = mkdtemp(t.data());
    store_ = dir_ + "/store";
    upstream_.SetHandler(Shop);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  int Doppel(std::vector<std::string> args, std::string* out = nullptr,
             std::string* err = nullptr) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    ChildProcess child(cmd);
    const int code = child.Wait(60000);
    if (out) *out = child.all_stdout();
    if (err) *err = child.all_stderr();
    return code;
  }

  // Records the skewed mix at a 2 % budget into session "cov"; returns /status's "coverage".
  json::object RecordSkewedMix(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--session",     "cov",      "--threads",       "1",
                                      "--sample-mode", "coverage", "--sample-budget", "2%"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    RecordProcess rec(store_, upstream_.url(), flags);
    EXPECT_TRUE(rec.started());
    {
      TestClient c(rec.port());
      for (int i = 0; i < kRequests; ++i) {
        net::HttpRequest r{http::verb::get, "/api/items/" + std::to_string(i), 11};
        r.set(http::field::host, "shop.test");
        EXPECT_NE(c.Send(std::move(r)).result_int(), 0u) << i;
      }
    }
    json::object coverage;
    boost::system::error_code ec;
    json::value status = json::parse(rec.Admin("/status"), ec);
    if (!ec && status.is_object() && status.as_object().contains("coverage")) {
      coverage = status.as_object().at("coverage").as_object();
    }
    metrics_ = rec.Admin("/metrics");
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(), 0) << rec.child().all_stderr();
    summary_ = rec.child().all_stdout();
    return coverage;
  }

  std::unique_ptr<storage::Store> OpenStore() {
    storage::StoreOptions o;
    o.read_only = true;
    o.create_if_missing = false;
    std::unique_ptr<storage::Store> store;
    const Status opened = storage::Store::Open(o, store_, &store);
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    return store;
  }

  std::string dir_, store_, metrics_, summary_;
  TestUpstream upstream_;
};

TEST_F(CoverageCliTest, RareErrorAndRareShapeSurviveATwoPercentBudget) {
  const json::object cov = RecordSkewedMix();
  ASSERT_FALSE(cov.empty()) << "no coverage in /status";
  EXPECT_EQ(cov.at("classes_seen").to_number<int64_t>(), 3);
  EXPECT_EQ(cov.at("classes_covered").to_number<int64_t>(), 3);
  EXPECT_EQ(cov.at("budget").as_string(), "2%");
  EXPECT_EQ(MetricIn(metrics_, "doppel_sample_classes_seen"), 3);
  EXPECT_EQ(MetricIn(metrics_, "doppel_sample_classes_covered"), 3);
  EXPECT_NE(summary_.find("classes: seen 3, covered 3"), std::string::npos) << summary_;

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto it = store->Scan("cov");
  ASSERT_TRUE(it.ok());
  std::map<std::string, int> by_class;
  int stored = 0;
  for (auto& i = it.value(); i->Valid(); i->Next()) {
    const auto& e = i->envelope();
    ++stored;
    ++by_class[e.sample_class()];
    EXPECT_GT(e.inclusion_probability(), 0);
    EXPECT_LE(e.inclusion_probability(), 1);
    // A kept candidate gets the header fields it waited with (net::FlatFields), in order.
    ASSERT_GE(e.request().headers_size(), 1) << e.DebugString();
    EXPECT_EQ(e.request().headers(0).name(), "Host");
    EXPECT_EQ(e.request().headers(0).value(), "shop.test");
    const std::string* type = net::FindHeader(e.response().headers(), "content-type");
    ASSERT_NE(type, nullptr) << e.DebugString();
    EXPECT_EQ(*type, "application/json");
  }
  ASSERT_TRUE(it.value()->status().ok());
  // The budget is a hard cap: 2 % of the requests plus the bucket's burst (1000 x 2 %).
  EXPECT_LE(stored, kRequests * 2 / 100 + 20);
  ASSERT_EQ(by_class.size(), 3u);
  int errors = 0, promos = 0;
  for (const auto& [label, n] : by_class) {
    EXPECT_EQ(label.rfind("GET /api/items/{id} ", 0), 0u) << label;
    if (label.find(" 500 json:") != std::string::npos) errors = n;
    if (label.find(" 200 json:") != std::string::npos && n <= 5) promos = n;
  }
  // Every rare request was kept: 5 of each.
  EXPECT_EQ(errors, 5);
  EXPECT_EQ(promos, 5);
}

TEST_F(CoverageCliTest, ClassesMinimizeAndReweight) {
  RecordSkewedMix();
  std::string out, err;
  ASSERT_EQ(Doppel({"sessions", "classes", "cov"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("3 classes"), std::string::npos) << out;
  EXPECT_NE(out.find("GET /api/items/{id} 500 json:"), std::string::npos) << out;
  EXPECT_NE(out.find("(GET /api/items/599)"), std::string::npos) << out;

  ASSERT_EQ(Doppel({"sessions", "minimize", "cov", "--out", "ci", "--per-class", "2"}, &out, &err),
            0)
      << err;
  EXPECT_NE(out.find("session 'ci': kept 6 of "), std::string::npos) << out;
  EXPECT_NE(out.find("3 classes (up to 2 each)"), std::string::npos) << out;
  ASSERT_EQ(Doppel({"sessions", "classes", "ci"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("3 classes, 6 envelopes"), std::string::npos) << out;
  // An existing name is refused; so is --per-class 0 (a usage error).
  EXPECT_EQ(Doppel({"sessions", "minimize", "cov", "--out", "ci"}, &out, &err), 2);
  EXPECT_EQ(Doppel({"sessions", "minimize", "cov", "--out", "x", "--per-class", "0"}, &out, &err),
            2);
  EXPECT_NE(err.find("--per-class"), std::string::npos) << err;

  // Replayed as stored, the rare classes are 10 of the ~60 requests. Reweighted, each class is
  // sent as many times as the recorder counted it: the traffic's 3000 requests, 10 of them
  // rare, exactly; at --reweight-scale 0.02, 60 (59 or 60 of the hot class, 0 or 1 of each
  // rare one).
  auto rare_count = [&](std::vector<std::string> extra, int* sent,
                        const std::string& session = "cov") {
    TestUpstream target;
    target.SetHandler(Shop);
    std::vector<std::string> args = {"replay",     "--session", session,     "--target",
                                     target.url(), "--max",     "--no-diff", "--no-progress"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(Doppel(args, &out, &err), 0) << err;
    int rare = 0;
    const auto got = target.requests();
    for (const auto& r : got) {
      const int id = std::atoi(r.target.c_str() + std::string("/api/items/").size());
      rare += id % 600 == 599 || id % 600 == 299;
    }
    *sent = static_cast<int>(got.size());
    return rare;
  };
  int plain_sent = 0, reweighted_sent = 0, scaled_sent = 0;
  const int plain = rare_count({}, &plain_sent);
  EXPECT_GT(plain, plain_sent / 10);
  EXPECT_EQ(rare_count({"--reweight"}, &reweighted_sent), 10);
  EXPECT_EQ(reweighted_sent, kRequests);
  EXPECT_LE(rare_count({"--reweight", "--reweight-scale", "0.02"}, &scaled_sent), 2);
  EXPECT_GE(scaled_sent, 59);
  EXPECT_LE(scaled_sent, 62);
  // The minimized copy (6 envelopes) carries the counts: reweighted, it is the traffic again.
  int minimized_sent = 0;
  EXPECT_EQ(rare_count({"--reweight"}, &minimized_sent, "ci"), 10);
  EXPECT_EQ(minimized_sent, kRequests);
  // Deterministic: the same requests again.
  int again = 0;
  const int rare_again = rare_count({"--reweight", "--reweight-scale", "0.02"}, &again);
  EXPECT_EQ(again, scaled_sent);
  EXPECT_LE(rare_again, 2);
  // The scale needs --reweight, and a number above 0.
  EXPECT_EQ(Doppel({"replay", "--session", "cov", "--target", "http://127.0.0.1:9",
                    "--reweight-scale", "2"},
                   &out, &err),
            2);
  EXPECT_NE(err.find("--reweight"), std::string::npos) << err;
  EXPECT_EQ(Doppel({"replay", "--session", "cov", "--target", "http://127.0.0.1:9", "--reweight",
                    "--reweight-scale", "0"},
                   &out, &err),
            2);
}

// --class-rules: a diff rules file's endpoint patterns name the classes' endpoints; the session
// record keeps what the recorder counted of each class.
TEST_F(CoverageCliTest, ClassRulesNameTheEndpointsAndTheRecordKeepsTheCounts) {
  WriteFile(dir_ + "/rules.json", R"({"endpoints": [{"pattern": "GET /api/items/{item}"}]})");
  RecordSkewedMix({"--class-rules", dir_ + "/rules.json"});
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto info = store->GetSession("cov");
  ASSERT_TRUE(info.ok());
  uint64_t counted = 0;
  for (const auto& k : info->counts().classes()) {
    EXPECT_EQ(k.label().rfind("GET /api/items/{item} ", 0), 0u) << k.label();
    counted += k.requests();
  }
  EXPECT_EQ(info->counts().classes_size(), 3);
  EXPECT_EQ(counted, static_cast<uint64_t>(kRequests));
  std::string out, err;
  ASSERT_EQ(Doppel({"sessions", "classes", "cov"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("GET /api/items/{item} 500 json:"), std::string::npos) << out;
  // The rare classes' MIX is their share of the traffic (5 of 3000: 0.17 %), not of the sample.
  EXPECT_NE(out.find("  0.17%"), std::string::npos) << out;
}

TEST_F(CoverageCliTest, BadFlagsAreUsageErrors) {
  const std::string up = upstream_.url();
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--sample-mode", "coverage"}, "--sample-budget"},
      {{"--sample-mode", "coverage", "--sample-budget", "5"}, "200/s"},
      {{"--sample-mode", "coverage", "--sample-budget", "0%"}, "above 0%"},
      {{"--sample-mode", "coverage", "--sample-budget", "10/fortnight"}, "not a duration"},
      {{"--sample-mode", "coverage", "--sample-budget", "5%", "--sample", "50"}, "--sample"},
      {{"--sample-mode", "coverage", "--sample-budget", "5%", "--per-class-min", "-1"},
       "--per-class-min"},
      {{"--sample-mode", "fancy"}, "uniform"},
      {{"--sample-budget", "5%"}, "--sample-mode coverage"},
      {{"--class-rules", dir_ + "/none.json"}, "needs --sample-mode coverage"},
      {{"--sample-mode", "coverage", "--sample-budget", "5%", "--class-rules", dir_ + "/none.json"},
       "none.json"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"record", "--listen", "127.0.0.1:0", "--upstream", up};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    std::string out, err;
    EXPECT_EQ(Doppel(args, &out, &err), 2) << c.flags.back();
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace doppel::testing
