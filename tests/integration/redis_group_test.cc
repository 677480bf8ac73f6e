// A group of replay workers sharing a Redis stream (replay/group.h, docs/distributed.md), as
// real processes: a real redis-server, doppel-echo v2 as the target, `doppel replay --from
// redis://... --group` workers, `doppel report --from redis://... --group`. A worker is
// killed (SIGKILL) or paused (SIGSTOP) mid-run, and every entry is still counted exactly once
// in the merged report, which agrees with a single-process replay of the same session.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "doppel/v1/group.pb.h"
#include "replay/group.h"
#include "stream/redis_client.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/redis_server.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

constexpr int kEntries = 300;

// `doppel --store STORE ARGS...` run to its end.
int Doppel(const std::string& store, std::vector<std::string> args, std::string* out,
           std::string* err) {
  args.insert(args.begin(), {DoppelBinary(), "--store", store});
  ChildProcess p(args);
  const int code = p.Wait(120000);
  *out = p.all_stdout();
  *err = p.all_stderr();
  return code;
}

json::object ReadJson(const std::string& path) {
  std::ifstream f(path);
  return json::parse(std::string(std::istreambuf_iterator<char>(f), {})).as_object();
}

class RedisGroupTest : public ::testing::Test {
 protected:
  // Records the session once: GETs of products, users and /healthz through `doppel record`
  // in front of doppel-echo v1, so a v2 target differs on some fields and not on others.
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("redis-group"));
    Record(*dir_ + "/src", {"--session", "shop"});
  }

  // Records the session through `doppel record --store STORE FLAGS...` in front of a fresh
  // doppel-echo v1: kEntries GETs, each from one of 10 users (X-User).
  static void Record(const std::string& store, const std::vector<std::string>& flags) {
    ChildProcess v1({EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1"});
    const unsigned port = PortOf(v1.WaitForLine("listening on "));
    ASSERT_NE(port, 0u) << v1.all_stderr();
    RecordProcess rec(store, "http://127.0.0.1:" + std::to_string(port), flags);
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    {
      TestClient client(rec.port());
      for (int i = 0; i < kEntries; ++i) {
        const std::string path = i % 3 == 0   ? "/api/v1/products/" + std::to_string(1 + i % 20)
                                 : i % 3 == 1 ? "/api/v1/users/" + std::to_string(1 + i % 10)
                                              : "/healthz";
        net::HttpRequest r{http::verb::get, path, 11};
        r.set(http::field::host, "shop.test");
        r.set("X-User", "user-" + std::to_string(i % 10));
        ASSERT_EQ(client.Send(std::move(r)).result_int(), 200u) << path;
      }
    }
    rec.child().Signal(SIGINT);
    ASSERT_EQ(rec.child().Wait(), 0) << rec.child().all_stderr();
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    ASSERT_TRUE(redis_.Start()) << redis_.error();
    target_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        EchoBinary(), "--listen", "127.0.0.1:0", "--threads", "1", "--variant", "v2"});
    const unsigned port = PortOf(target_->WaitForLine("listening on "));
    ASSERT_NE(port, 0u) << target_->all_stderr();
    target_url_ = "http://127.0.0.1:" + std::to_string(port);
    url_ = redis_.Url("shop");
    std::string out, err;
    ASSERT_EQ(Doppel(Store(), {"export", "shop", url_}, &out, &err), 0) << err;
    ASSERT_NE(out.find("exported 300 envelopes"), std::string::npos) << out;
  }

  static std::string Store() { return *dir_ + "/src"; }

  // A worker of group "g": 150 requests/s for the group, entries claimed after 3 s idle.
  std::unique_ptr<ChildProcess> Worker(const std::string& name, const std::string& target = "",
                                       const std::string& extra = "--no-progress",
                                       const std::string& from = "") const {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{DoppelBinary(),     "--store",
                                 *dir_ + "/" + name, "replay",
                                 "--from",           from.empty() ? url_ : from,
                                 "--group",          "g",
                                 "--consumer",       name,
                                 "--target",         target.empty() ? target_url_ : target,
                                 "--rate",           "150",
                                 "--timeout",        "1s",
                                 "--claim-idle",     "3s",
                                 "--no-progress",    extra});
  }

  // The streams the group reads: the session's, or each shard of it (shards_ > 0).
  std::vector<std::string> Streams() const {
    if (shards_ == 0) return {"shop"};
    std::vector<std::string> out;
    for (uint32_t i = 0; i < shards_; ++i) out.push_back(stream::ShardStreamName("shop", i));
    return out;
  }

  // A client for `stream` (on a cluster, connected to the node that owns it).
  stream::RedisClientPtr Client(const std::string& stream = "shop") const {
    auto url = stream::ParseRedisUrl(url_);
    EXPECT_TRUE(url.ok());
    url->stream = stream;
    auto client = stream::RedisClient::Connect(*url);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // The workers' states in Redis, by consumer; a worker's states on several shards added up
  // (finished when it is on each).
  std::map<std::string, doppel::v1::WorkerState> States() const {
    std::map<std::string, doppel::v1::WorkerState> out;
    for (const std::string& s : Streams()) {
      auto client = Client(s);
      if (!client) return out;
      auto all = client->Command({"HGETALL", replay::GroupResultsKey(s, "g")});
      if (!all.ok()) return out;
      for (size_t i = 0; i + 1 < all->elements.size(); i += 2) {
        doppel::v1::WorkerState w;
        EXPECT_TRUE(w.ParseFromString(all->elements[i + 1].str));
        auto [it, first] = out.emplace(all->elements[i].str, w);
        if (first) continue;
        it->second.set_replayed(it->second.replayed() + w.replayed());
        it->second.set_claimed(it->second.claimed() + w.claimed());
        it->second.set_finished(it->second.finished() && w.finished());
      }
    }
    return out;
  }

  bool HasCommitted(const std::string& consumer) const { return States().count(consumer) > 0; }

  // Entries read by a worker and not acknowledged, over every stream.
  long long Pending() const {
    long long pending = 0;
    for (const std::string& s : Streams()) {
      auto client = Client(s);
      if (!client) return -1;
      auto r = client->Command({"XPENDING", s, "g"});
      if (!r.ok() || r->elements.empty()) return -1;
      pending += r->elements[0].integer;
    }
    return pending;
  }

  // Checks the states: every entry replayed once over all workers.
  void ExpectEachEntryOnce(uint64_t* claimed = nullptr) const {
    uint64_t replayed = 0, claims = 0;
    for (const auto& [name, w] : States()) {
      replayed += w.replayed();
      claims += w.claimed();
    }
    EXPECT_EQ(replayed, static_cast<uint64_t>(kEntries));
    EXPECT_EQ(Pending(), 0);
    if (claimed) *claimed = claims;
  }

  // `doppel report --from URL --group g`, its JSON report checked against a single-process
  // replay of the same session (in `store`) to the same target: the same counts and verdicts.
  void ExpectMergedReportEqualsSingleReplay(const std::string& store = Store()) {
    const std::string merged = *dir_ + "/merged.json", single = *dir_ + "/single.json";
    std::string out, err;
    ASSERT_EQ(Doppel(Store(), {"report", "--from", url_, "--group", "g", "--report-json", merged},
                     &out, &err),
              1)
        << out << err;
    ASSERT_EQ(Doppel(store,
                     {"replay", "--session", "shop", "--target", target_url_, "--max",
                      "--no-progress", "--report-json", single},
                     &out, &err),
              1)
        << out << err;
    const json::object m = ReadJson(merged), s = ReadJson(single);
    EXPECT_EQ(m.at("verdict"), s.at("verdict"));
    const json::object& mt = m.at("targets").as_array()[0].as_object();
    const json::object& st = s.at("targets").as_array()[0].as_object();
    EXPECT_EQ(mt.at("requests").as_int64(), kEntries);
    for (const char* key : {"requests", "errors", "compared", "matched", "mismatched", "status",
                            "regressions", "failed_endpoints", "timeline"}) {
      EXPECT_EQ(mt.at(key), st.at(key)) << key;
    }
    const json::array& me = mt.at("endpoints").as_array();
    const json::array& se = st.at("endpoints").as_array();
    ASSERT_EQ(me.size(), se.size());
    for (size_t i = 0; i < me.size(); ++i) {
      const json::object& a = me[i].as_object();
      const json::object& b = se[i].as_object();
      EXPECT_EQ(a.at("name"), b.at("name"));
      EXPECT_EQ(a.at("requests"), b.at("requests")) << a.at("name");
      const json::array& af = a.at("fields").as_array();
      const json::array& bf = b.at("fields").as_array();
      ASSERT_EQ(af.size(), bf.size()) << a.at("name");
      for (size_t j = 0; j < af.size(); ++j) {
        for (const char* key : {"path", "verdict", "mismatches", "compared", "p_value"})
          EXPECT_EQ(af[j].as_object().at(key), bf[j].as_object().at(key)) << a.at("name") << key;
      }
    }
  }

  static std::string* dir_;
  RedisServer redis_;
  std::unique_ptr<ChildProcess> target_;
  std::string target_url_, url_;
  uint32_t shards_ = 0;  // the group reads a stream sharded this many ways
};

std::string* RedisGroupTest::dir_ = nullptr;

// Three workers, one killed (SIGKILL) after its first commit while it holds entries: the
// others claim them after --claim-idle, and the merged report counts every entry once.
TEST_F(RedisGroupTest, ThreeWorkersOneKilledCountEachEntryOnce) {
  auto w1 = Worker("w1"), w2 = Worker("w2"), w3 = Worker("w3");
  ASSERT_TRUE(Eventually([&] { return HasCommitted("w2"); }, 30000)) << w2->all_stderr();
  w2->Signal(SIGKILL);
  w2->Wait();
  // Each survivor's share has regressions (v2 changed prices and emails): exit 1.
  EXPECT_EQ(w1->Wait(120000), 1) << w1->all_stdout() << w1->all_stderr();
  EXPECT_EQ(w3->Wait(120000), 1) << w3->all_stdout() << w3->all_stderr();
  EXPECT_NE(w1->all_stdout().find("worker 'w1': replayed "), std::string::npos) << w1->all_stdout();
  uint64_t claimed = 0;
  ExpectEachEntryOnce(&claimed);
  EXPECT_GT(claimed, 0u) << "the killed worker held entries; the others should have claimed them";
  const auto states = States();
  ASSERT_EQ(states.size(), 3u);
  EXPECT_FALSE(states.at("w2").finished());
  EXPECT_TRUE(states.at("w1").finished());
  EXPECT_TRUE(states.at("w3").finished());
  ExpectMergedReportEqualsSingleReplay();
}

// A worker paused (SIGSTOP) longer than --claim-idle: its entries go to the other worker.
// When it wakes, its next commit finds them gone: it writes nothing more and exits 2, and the
// merged report still counts every entry once.
TEST_F(RedisGroupTest, PausedWorkerWhoseEntriesWereClaimedStopsWithoutCountingThem) {
  auto w1 = Worker("w1"), w2 = Worker("w2");
  ASSERT_TRUE(Eventually([&] { return HasCommitted("w2"); }, 30000)) << w2->all_stderr();
  w2->Signal(SIGSTOP);
  // w1 claims w2's entries once they have been idle 3 s; it cannot finish before.
  ASSERT_TRUE(Eventually([&] { return States()["w1"].claimed() > 0; }, 30000));
  w2->Signal(SIGCONT);
  EXPECT_EQ(w2->Wait(60000), 2) << w2->all_stdout() << w2->all_stderr();
  EXPECT_NE(w2->all_stderr().find("claimed by another worker"), std::string::npos)
      << w2->all_stderr();
  EXPECT_EQ(w1->Wait(120000), 1) << w1->all_stdout() << w1->all_stderr();
  ExpectEachEntryOnce();
  ExpectMergedReportEqualsSingleReplay();
}

// A group's report before its work is done is an error (exit 2) unless --partial; a worker
// restarted under the killed one's name replays what that one held, and the group completes.
TEST_F(RedisGroupTest, UnfinishedGroupAndARestartedWorker) {
  std::string out, err;
  // No such group yet.
  EXPECT_EQ(Doppel(Store(), {"report", "--from", url_, "--group", "g"}, &out, &err), 2);
  EXPECT_NE(err.find("no group 'g'"), std::string::npos) << err;

  auto w1 = Worker("w1");
  ASSERT_TRUE(Eventually([&] { return HasCommitted("w1"); }, 30000)) << w1->all_stderr();
  w1->Signal(SIGKILL);
  w1->Wait();
  // Its name is taken until --claim-idle (3 s) after its last sign of life: two workers of
  // one name would share their pending entries.
  auto twin = Worker("w1");
  EXPECT_EQ(twin->Wait(60000), 2);
  EXPECT_NE(twin->all_stderr().find("give each worker its own --consumer"), std::string::npos)
      << twin->all_stderr();
  EXPECT_EQ(Doppel(Store(), {"report", "--from", url_, "--group", "g"}, &out, &err), 2);
  EXPECT_NE(err.find("has not finished"), std::string::npos) << err;
  EXPECT_NE(err.find("--partial"), std::string::npos) << err;
  const int partial =
      Doppel(Store(), {"report", "--from", url_, "--group", "g", "--partial"}, &out, &err);
  EXPECT_TRUE(partial == 0 || partial == 1) << partial << err;
  EXPECT_NE(out.find("PARTIAL"), std::string::npos) << out;
  EXPECT_NE(out.find("(not finished)"), std::string::npos) << out;

  // A worker with another --target cannot join the group (not probed: it would fail first).
  auto other = Worker("w9", "http://127.0.0.1:1", "--no-probe");
  EXPECT_EQ(other->Wait(60000), 2);
  EXPECT_NE(other->all_stderr().find("replays with other flags"), std::string::npos)
      << other->all_stderr();

  // Restarted under its name once --claim-idle has passed: it reads back the entries it held,
  // goes on counting from its last commit, and the group completes with every entry once,
  // none claimed.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  auto again = Worker("w1");
  EXPECT_EQ(again->Wait(120000), 1) << again->all_stdout() << again->all_stderr();
  uint64_t claimed = 0;
  ExpectEachEntryOnce(&claimed);
  EXPECT_EQ(claimed, 0u);
  ExpectMergedReportEqualsSingleReplay();
}

// Redis cannot always tell a group's lag: after an entry past the group's position was deleted
// (XDEL), XINFO GROUPS answers nil. The report then counts the unread entries itself instead of
// taking nil for none: the group has not finished.
TEST_F(RedisGroupTest, UnreadEntriesAreCountedWhenRedisCannotTellTheLag) {
  auto w1 = Worker("w1");
  EXPECT_EQ(w1->Wait(120000), 1) << w1->all_stderr();
  ExpectEachEntryOnce();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  std::vector<std::string> added;
  for (int i = 0; i < 5; ++i) {
    auto id = client->Command({"XADD", "shop", "*", "late", std::to_string(i)});
    ASSERT_TRUE(id.ok() && id->type == stream::RedisReply::Type::kString);
    added.push_back(id->str);
  }
  auto deleted = client->Command({"XDEL", "shop", added[2]});
  ASSERT_TRUE(deleted.ok() && deleted->integer == 1);
  // The precondition: Redis answers no lag for the group now.
  auto groups = client->Command({"XINFO", "GROUPS", "shop"});
  ASSERT_TRUE(groups.ok() && groups->elements.size() == 1);
  const auto& g = groups->elements[0].elements;
  bool lag_is_nil = false;
  for (size_t i = 0; i + 1 < g.size(); i += 2) {
    if (g[i].str == "lag") lag_is_nil = g[i + 1].type == stream::RedisReply::Type::kNil;
  }
  ASSERT_TRUE(lag_is_nil) << "this Redis computes the lag here; the test needs another set-up";

  std::string out, err;
  EXPECT_EQ(Doppel(Store(), {"report", "--from", url_, "--group", "g"}, &out, &err), 2);
  EXPECT_NE(err.find("has not finished: 4 entries not read yet"), std::string::npos) << err;
}

// A worker sending slower than --claim-idle per request keeps its entries: it refreshes them
// about once a second whatever it sends (here one request every 5 s), so their idle time
// never comes near --claim-idle and no other worker can claim them.
TEST_F(RedisGroupTest, SlowWorkerKeepsItsEntriesFresh) {
  ChildProcess slow({DoppelBinary(), "--store", *dir_ + "/slow", "replay", "--from",    url_,
                     "--group",      "g",       "--consumer",    "slow",   "--target",  target_url_,
                     "--rate",       "0.2",     "--limit",       "2",      "--timeout", "1s",
                     "--claim-idle", "3s",      "--no-progress"});
  ASSERT_TRUE(Eventually([&] { return HasCommitted("slow"); }, 30000)) << slow.all_stderr();
  long long most_idle = -1;
  for (int i = 0; i < 20; ++i) {  // 4 s, while the second request waits for its time
    auto client = Client();
    ASSERT_TRUE(client);
    auto r = client->Command({"XPENDING", "shop", "g", "-", "+", "100", "slow"});
    ASSERT_TRUE(r.ok());
    for (const auto& entry : r->elements)
      if (entry.elements.size() >= 3) most_idle = std::max(most_idle, entry.elements[2].integer);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GE(most_idle, 0) << "the worker held no entry while it waited";
  EXPECT_LT(most_idle, 2500) << "held entries went unrefreshed for most of --claim-idle";
  EXPECT_EQ(slow.Wait(60000), 0) << slow.all_stdout() << slow.all_stderr();
  EXPECT_EQ(States()["slow"].replayed(), 2u);
}

// A session sharded four ways over a 3-master Redis Cluster (doppel record --sink-shards 4,
// by user): three workers, each given another node, one killed after its first commit. Each
// worker reads every shard on the shard's master and commits there; every entry of every
// shard is counted once, and `doppel report` merges the shards' states into the report of a
// single-process replay of the same session.
TEST_F(RedisGroupTest, ShardedStreamOnAClusterOneWorkerKilled) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  url_ = cluster.node(0).Url("shop");
  shards_ = 4;
  Record(*dir_ + "/sharded-rec",
         {"--sink", url_, "--sink-shards", "4", "--sample-key", "header:X-User"});
  const std::string store = *dir_ + "/sharded";
  std::string out, err;
  ASSERT_EQ(Doppel(store, {"import", url_, "--as", "shop"}, &out, &err), 0) << err;
  ASSERT_NE(out.find("imported 300 envelopes"), std::string::npos) << out;

  auto w1 = Worker("w1", "", "--no-progress", cluster.node(0).Url("shop"));
  auto w2 = Worker("w2", "", "--no-progress", cluster.node(1).Url("shop"));
  auto w3 = Worker("w3", "", "--no-progress", cluster.node(2).Url("shop"));
  ASSERT_TRUE(Eventually([&] { return HasCommitted("w2"); }, 30000)) << w2->all_stderr();
  w2->Signal(SIGKILL);
  w2->Wait();
  EXPECT_EQ(w1->Wait(120000), 1) << w1->all_stdout() << w1->all_stderr();
  EXPECT_EQ(w3->Wait(120000), 1) << w3->all_stdout() << w3->all_stderr();
  uint64_t claimed = 0;
  ExpectEachEntryOnce(&claimed);
  EXPECT_GT(claimed, 0u) << "the killed worker held entries; the others should have claimed them";
  // Every shard was read by the group and holds results.
  for (const std::string& s : Streams()) {
    auto client = Client(s);
    ASSERT_TRUE(client);
    auto n = client->Command({"HLEN", replay::GroupResultsKey(s, "g")});
    ASSERT_TRUE(n.ok());
    EXPECT_GT(n->integer, 0) << s;
  }
  const auto states = States();
  ASSERT_EQ(states.size(), 3u);
  EXPECT_FALSE(states.at("w2").finished());
  EXPECT_TRUE(states.at("w1").finished());
  ExpectMergedReportEqualsSingleReplay(store);
  ASSERT_EQ(
      Doppel(store, {"report", "--from", cluster.node(2).Url("shop"), "--group", "g"}, &out, &err),
      1)
      << err;
  EXPECT_NE(out.find("group 'g': 3 workers, 300 entries in the stream\n"), std::string::npos)
      << out;
}

// Start-up errors name what is wrong and exit 2.
TEST_F(RedisGroupTest, BadGroupUsageIsAClearError) {
  std::string out, err;
  EXPECT_EQ(Doppel(*dir_ + "/e", {"replay", "--from", url_, "--target", target_url_}, &out, &err),
            2);
  EXPECT_NE(err.find("add --group NAME"), std::string::npos) << err;
  EXPECT_EQ(
      Doppel(*dir_ + "/e", {"replay", "--session", "shop", "--group", "g", "--target", target_url_},
             &out, &err),
      2);
  EXPECT_NE(err.find("go with --from redis://"), std::string::npos) << err;
  EXPECT_EQ(
      Doppel(*dir_ + "/e",
             {"replay", "--from", redis_.Url("nothing"), "--group", "g", "--target", target_url_},
             &out, &err),
      2);
  EXPECT_NE(err.find("there is no stream"), std::string::npos) << err;
  EXPECT_EQ(Doppel(*dir_ + "/e",
                   {"replay", "--from", url_, "--group", "g", "--loop", "--target", target_url_},
                   &out, &err),
            2);
  EXPECT_NE(err.find("--loop is not available with --group"), std::string::npos) << err;
  EXPECT_EQ(Doppel(*dir_ + "/e",
                   {"replay", "--from", url_, "--group", "g", "--claim-idle", "5s", "--timeout",
                    "10s", "--target", target_url_},
                   &out, &err),
            2);
  EXPECT_NE(err.find("--claim-idle must be longer than --timeout"), std::string::npos) << err;
  // Export refuses a stream that exists: it would mix sessions.
  EXPECT_EQ(Doppel(Store(), {"export", "shop", url_}, &out, &err), 2);
  EXPECT_NE(err.find("the key exists already"), std::string::npos) << err;
}

}  // namespace
}  // namespace doppel::testing
