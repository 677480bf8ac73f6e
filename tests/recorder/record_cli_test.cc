// `doppel record` as a real process: flags, the "listening on" line, SIGTERM, and the store
// read back afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "storage/store.h"
#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"

namespace doppel {
namespace {

namespace http = boost::beast::http;
using testing::ChildProcess;
using testing::DoppelBinary;
using testing::PortOf;

const std::string kDoppel = DoppelBinary();
using Child = ChildProcess;

class RecordCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = std::filesystem::temp_directory_path() / "doppel-record-XXXXXX";
    dir_ = mkdtemp(t.data());
    store_ = dir_ + "/store";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Args(std::vector<std::string> extra) {
    std::vector<std::string> a = {
        kDoppel,       "--store",    store_,          "record",    "--listen",
        "127.0.0.1:0", "--upstream", upstream_.url(), "--threads", "2"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // The store the recorder left, opened read-only as `doppel cat` would (null on failure,
  // with the reason as a test failure).
  std::unique_ptr<storage::Store> OpenStore() {
    storage::StoreOptions o;
    o.read_only = true;
    o.create_if_missing = false;
    std::unique_ptr<storage::Store> store;
    const Status opened = storage::Store::Open(o, store_, &store);
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    return store;
  }

  std::string dir_, store_;
  testing::TestUpstream upstream_;
};

TEST_F(RecordCliTest, RecordsRedactsAndClosesTheSessionOnSigterm) {
  Child child(Args({"--session", "s1", "--admin", "127.0.0.1:0"}));
  const std::string listen = child.WaitForLine("listening on ");
  ASSERT_FALSE(listen.empty()) << child.all_stdout();
  const std::string admin = child.WaitForLine("admin on ");
  ASSERT_FALSE(admin.empty());
  const uint16_t port = PortOf(listen);
  const int n = 200;
  {
    testing::TestClient c(port);
    for (int i = 0; i < n; ++i) {
      net::HttpRequest r{http::verb::post, "/item/" + std::to_string(i), 11};
      r.set(http::field::host, "shop.test");
      r.set(http::field::authorization, "Bearer topsecret-" + std::to_string(i % 3));
      r.body() = "body-" + std::to_string(i);
      r.prepare_payload();
      ASSERT_EQ(c.Send(std::move(r)).result_int(), 200u) << i;
    }
  }
  auto health = testing::Fetch(PortOf(admin), "GET", "/healthz");
  EXPECT_EQ(health.result_int(), 200u);
  child.Signal(SIGTERM);
  ASSERT_EQ(child.Wait(), 0) << child.all_stderr();
  EXPECT_NE(child.all_stdout().find("session s1: requests 200, sampled 200, stored 200, dropped 0"),
            std::string::npos)
      << child.all_stdout();
  // The session was flushed to table files on close, and the summary says how big they are.
  EXPECT_NE(child.all_stdout().find(", on disk "), std::string::npos) << child.all_stdout();
  bool has_table_file = false;
  for (const auto& e : std::filesystem::directory_iterator(store_))
    has_table_file |= e.path().extension() == ".sst";
  EXPECT_TRUE(has_table_file);

  struct stat st;
  ASSERT_EQ(::stat((store_ + "/redaction.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  std::unique_ptr<storage::Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto info = store->GetSession("s1");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(info->counts().requests_seen(), static_cast<uint64_t>(n));
  EXPECT_EQ(info->counts().sampled(), static_cast<uint64_t>(n));
  auto it = store->Scan("s1");
  ASSERT_TRUE(it.ok());
  int count = 0;
  std::set<std::string> hashes;
  for (auto& i = it.value(); i->Valid(); i->Next()) {
    const auto& e = i->envelope();
    for (const auto& h : e.request().headers()) {
      if (boost::beast::iequals(h.name(), "Authorization")) hashes.insert(h.value());
    }
    EXPECT_EQ(e.SerializeAsString().find("topsecret"), std::string::npos);
    ++count;
  }
  EXPECT_TRUE(it.value()->status().ok());
  EXPECT_EQ(count, n);
  EXPECT_EQ(hashes.size(), 3u);  // equal values stay equal
  for (const auto& h : hashes) EXPECT_EQ(h.rfind("hmac:", 0), 0u);
  // The secret is nowhere in the store's files either (WAL, SSTs, logs).
  for (const auto& f : std::filesystem::recursive_directory_iterator(store_)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str().find("topsecret"), std::string::npos) << f.path();
  }
}

// Query parameters and JSON body fields are redacted through the real proxy: the upstream
// (which echoes the body) and the client see the clear values, the store only hashes, equal
// values hashing equally in the request and in the echoed response.
TEST_F(RecordCliTest, RedactsQueryParametersAndJsonPaths) {
  Child child(
      Args({"--session", "s3", "--redact-query", "token", "--redact-json-path", "body.password"}));
  const uint16_t port = PortOf(child.WaitForLine("listening on "));
  ASSERT_NE(port, 0) << child.all_stderr();
  const std::string body = R"({"user":"ann","password":"pw-s3cr3t"})";
  auto resp = testing::Fetch(port, "POST", "/login?token=tk-s3cr3t&lang=en", body,
                             {{"Content-Type", "application/json"}});
  ASSERT_EQ(resp.result_int(), 200u);
  EXPECT_EQ(resp.body(), body);  // the client gets what the upstream said
  ASSERT_EQ(upstream_.requests().size(), 1u);
  EXPECT_EQ(upstream_.requests()[0].target, "/login?token=tk-s3cr3t&lang=en");
  child.Signal(SIGTERM);
  ASSERT_EQ(child.Wait(), 0) << child.all_stderr();

  std::unique_ptr<storage::Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto it = store->Scan("s3");
  ASSERT_TRUE(it.ok());
  ASSERT_TRUE(it.value()->Valid());
  const v1::Envelope e = it.value()->envelope();
  EXPECT_EQ(e.SerializeAsString().find("s3cr3t"), std::string::npos);
  const std::string target = e.request().target();
  EXPECT_EQ(target.rfind("/login?token=hmac:", 0), 0u) << target;
  EXPECT_NE(target.find("&lang=en"), std::string::npos) << target;
  const std::string hash = target.substr(13, 69);
  EXPECT_NE(e.request().body().find(R"("user":"ann","password":"hmac:)"), std::string::npos)
      << e.request().body();
  EXPECT_EQ(e.request().body(), e.response().body());           // same value, same hash
  EXPECT_EQ(e.request().body().find(hash), std::string::npos);  // different values differ
  it.value()->Next();
  EXPECT_FALSE(it.value()->Valid());
}

TEST_F(RecordCliTest, SigintWithSamplingAndRules) {
  Child child(Args({"--session", "s2", "--sample", "100", "--match", "name=api,uri^=/api/"}));
  const uint16_t port = PortOf(child.WaitForLine("listening on "));
  ASSERT_NE(port, 0);
  for (const char* t : {"/api/a", "/web", "/api/b"}) {
    ASSERT_EQ(testing::Fetch(port, "GET", t).result_int(), 200u);
  }
  child.Signal(SIGINT);
  ASSERT_EQ(child.Wait(), 0) << child.all_stderr();
  std::unique_ptr<storage::Store> store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto it = store->Scan("s2");
  ASSERT_TRUE(it.ok());
  int count = 0;
  for (auto& i = it.value(); i->Valid(); i->Next()) {
    EXPECT_EQ(i->envelope().matched_rule(), "api");
    ++count;
  }
  EXPECT_EQ(count, 2);
}

// RFC 9110 9.1: extension methods (one Beast has no verb for included) are recorded as sent
// and `doppel replay` sends them with the same method.
TEST_F(RecordCliTest, ExtensionMethodsAreRecordedAndReplayedWithTheirMethod) {
  const std::multiset<std::string> methods = {"M-SEARCH", "PROPFIND", "X-ZAP_1!"};
  {
    Child child(Args({"--session", "ext"}));
    const uint16_t port = PortOf(child.WaitForLine("listening on "));
    ASSERT_NE(port, 0);
    for (const auto& m : methods) ASSERT_EQ(testing::Fetch(port, m, "/dav").result_int(), 200u);
    child.Signal(SIGTERM);
    ASSERT_EQ(child.Wait(), 0) << child.all_stderr();
  }
  testing::TestUpstream target;
  Child replay({kDoppel, "--store", store_, "replay", "--session", "ext", "--target", target.url(),
                "--no-progress", "--no-diff"});
  ASSERT_EQ(replay.Wait(), 0) << replay.all_stderr();
  std::multiset<std::string> replayed;
  for (const auto& r : target.requests()) replayed.insert(r.method);
  EXPECT_EQ(replayed, methods);
}

TEST_F(RecordCliTest, BadRulesFileIsRefusedWithTheLine) {
  const std::string rules = dir_ + "/rules.json";
  std::ofstream(rules)
      << "{\"rules\": [\n  {\"uri\": {\"prefix\": \"/a\"}},\n  {\"urii\": \"/b\"}\n]}\n";
  Child child(Args({"--rules", rules}));
  EXPECT_EQ(child.Wait(), 2);
  EXPECT_NE(child.all_stderr().find("line 3"), std::string::npos) << child.all_stderr();
  EXPECT_NE(child.all_stderr().find("urii"), std::string::npos) << child.all_stderr();
}

TEST_F(RecordCliTest, BadYamlRulesFileIsRefusedWithTheLine) {
  const std::string rules = dir_ + "/rules.yaml";
  std::ofstream(rules) << "rules:\n  - uri: {prefix: /a}\n  - name: b\n    method: [GET]\n";
  Child child(Args({"--rules", rules}));
  EXPECT_EQ(child.Wait(), 2);
  EXPECT_NE(child.all_stderr().find("line 4"), std::string::npos) << child.all_stderr();
  EXPECT_NE(child.all_stderr().find("rules[1].method"), std::string::npos) << child.all_stderr();
}

TEST_F(RecordCliTest, UsageErrorsExit2) {
  {
    Child child({kDoppel, "--store", store_, "record", "--upstream", "ftp://x"});
    EXPECT_EQ(child.Wait(), 2);
    EXPECT_NE(child.all_stderr().find("--upstream"), std::string::npos) << child.all_stderr();
  }
  {
    Child child(Args({"--sample", "150"}));
    EXPECT_EQ(child.Wait(), 2);
  }
  {
    Child child(Args({"--sample-key", "cookie:x"}));
    EXPECT_EQ(child.Wait(), 2);
  }
}

TEST_F(RecordCliTest, ExistingSessionNameIsRefused) {
  {
    Child first(Args({"--session", "dup"}));
    ASSERT_FALSE(first.WaitForLine("listening on ").empty());
    first.Signal(SIGTERM);
    ASSERT_EQ(first.Wait(), 0);
  }
  Child second(Args({"--session", "dup"}));
  EXPECT_EQ(second.Wait(), 2);
  EXPECT_NE(second.all_stderr().find("dup"), std::string::npos) << second.all_stderr();
}

}  // namespace
}  // namespace doppel
