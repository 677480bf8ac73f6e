// `doppel record --sink redis://...` and `doppel import redis://...` as real processes against
// a real redis-server on loopback: several recorders into one stream, Redis lost and back
// during a recording, and the start-up errors (Redis down, wrong password, bad URL).
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "net/proto_headers.h"
#include "storage/store.h"
#include "stream/envelope_stream.h"
#include "stream/redis_client.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/test_pki.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;

class RedisCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("redis-cli");
    ASSERT_TRUE(redis_.Start()) << redis_.error();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static unsigned Get(TestClient& client, const std::string& path) {
    net::HttpRequest r{http::verb::get, path, 11};
    r.set(http::field::host, "shop.test");
    return client.Send(std::move(r)).result_int();
  }

  // XLEN of `stream`, -1 when Redis does not answer.
  long long StreamLength(const std::string& stream) {
    auto url = stream::ParseRedisUrl(redis_.Url(stream));
    if (!url.ok()) return -1;
    auto client = stream::RedisClient::Connect(*url);
    if (!client.ok()) return -1;
    auto len = (*client)->Command({"XLEN", stream});
    return len.ok() && len->type == stream::RedisReply::Type::kInteger ? len->integer : -1;
  }

  // `doppel --store STORE ARGS...` run to its end.
  int Doppel(const std::string& store, std::vector<std::string> args, std::string* out,
             std::string* err) {
    args.insert(args.begin(), {DoppelBinary(), "--store", store});
    ChildProcess p(args);
    const int code = p.Wait(60000);
    *out = p.all_stdout();
    *err = p.all_stderr();
    return code;
  }

  // `doppel record` with `flags` that should keep it from starting: its exit code, stderr.
  int Record(std::vector<std::string> flags, std::string* err) {
    std::string out;
    flags.insert(flags.begin(),
                 {"record", "--listen", "127.0.0.1:0", "--upstream", upstream_.url()});
    return Doppel(dir_ + "/s", std::move(flags), &out, err);
  }

  // GET /u/N with X-User: USER through `client`: 200 expected.
  static void SendAs(TestClient& client, const std::string& user, int n) {
    net::HttpRequest r{http::verb::get, "/u/" + std::to_string(n), 11};
    r.set(http::field::host, "shop.test");
    r.set("X-User", user);
    ASSERT_EQ(client.Send(std::move(r)).result_int(), 200u);
  }

  // The X-User of every entry of each shard of the sharded `stream`, read through `node`, by
  // shard. A shard that cannot be read (nothing was written to it, or its master is stopped)
  // is left out.
  static std::map<int, std::vector<std::string>> UsersByShard(RedisServer& node,
                                                              const std::string& stream,
                                                              int shards) {
    std::map<int, std::vector<std::string>> out;
    for (int shard = 0; shard < shards; ++shard) {
      auto url = stream::ParseRedisUrl(
          node.Url(stream::ShardStreamName(stream, static_cast<uint32_t>(shard))));
      EXPECT_TRUE(url.ok());
      auto reader = stream::StreamReader::Open(*url);
      if (!reader.ok()) continue;
      for (;;) {
        auto batch = (*reader)->Next();
        EXPECT_TRUE(batch.ok()) << batch.status().ToString();
        if (!batch.ok() || batch->empty()) break;
        for (const stream::StreamEnvelope& e : *batch) {
          const std::string* user = net::FindHeader(e.envelope.request().headers(), "X-User");
          out[shard].push_back(user != nullptr ? *user : "");
        }
      }
    }
    return out;
  }

  std::string dir_;
  RedisServer redis_;
  TestUpstream upstream_;
};

// Two recorders (one writing to its store as well) into one stream; the import holds every
// sampled envelope of both, and says how many came from each recorder.
TEST_F(RedisCliTest, TwoRecordersIntoOneStreamAllLandOnImport) {
  const std::string url = redis_.Url("shop");
  RecordProcess a(dir_ + "/a", upstream_.url(),
                  {"--session", "a", "--sink", "store", "--sink", url, "--recorder-id", "rec-a"});
  RecordProcess b(dir_ + "/b", upstream_.url(), {"--sink", url, "--recorder-id", "rec-b"});
  ASSERT_TRUE(a.started()) << a.child().all_stderr();
  ASSERT_TRUE(b.started()) << b.child().all_stderr();
  {
    TestClient ca(a.port()), cb(b.port());
    for (int i = 0; i < 40; ++i) ASSERT_EQ(Get(ca, "/a/" + std::to_string(i)), 200u);
    for (int i = 0; i < 25; ++i) ASSERT_EQ(Get(cb, "/b/" + std::to_string(i)), 200u);
  }
  a.child().Signal(SIGTERM);
  b.child().Signal(SIGTERM);
  ASSERT_EQ(a.child().Wait(), 0) << a.child().all_stderr();
  ASSERT_EQ(b.child().Wait(), 0) << b.child().all_stderr();
  const std::string sink = "sink redis://127.0.0.1:" + std::to_string(redis_.port()) + "/shop";
  EXPECT_NE(a.child().all_stdout().find("sink store: stored 40, dropped 0"), std::string::npos)
      << a.child().all_stdout();
  EXPECT_NE(a.child().all_stdout().find(sink + ": stored 40, dropped 0"), std::string::npos)
      << a.child().all_stdout();
  EXPECT_NE(b.child().all_stdout().find(sink + ": stored 25, dropped 0"), std::string::npos)
      << b.child().all_stdout();
  EXPECT_EQ(StreamLength("shop"), 65);

  std::string out, err;
  ASSERT_EQ(Doppel(dir_ + "/c", {"import", url, "--as", "both"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("imported 65 envelopes as session 'both'"), std::string::npos) << out;
  EXPECT_NE(out.find("recorder rec-a: 40 envelopes"), std::string::npos) << out;
  EXPECT_NE(out.find("recorder rec-b: 25 envelopes"), std::string::npos) << out;
  ASSERT_EQ(Doppel(dir_ + "/c", {"cat", "both"}, &out, &err), 0) << err;
  for (const char* path : {"/a/0", "/a/39", "/b/0", "/b/24"}) {
    EXPECT_NE(out.find("\"" + std::string(path) + "\""), std::string::npos) << path << "\n" << out;
  }

  // Recorder a kept its store session too; b (Redis only) made none.
  std::unique_ptr<storage::Store> store;
  storage::StoreOptions ro;
  ro.read_only = true;
  ASSERT_TRUE(storage::Store::Open(ro, dir_ + "/a", &store).ok());
  auto info = store->GetSession("a");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->counts().envelopes(), 40u);
  store.reset();
  ASSERT_TRUE(storage::Store::Open(ro, dir_ + "/b", &store).ok());
  auto sessions = store->ListSessions();
  ASSERT_TRUE(sessions.ok());
  EXPECT_TRUE(sessions->empty());
}

// Redis goes away mid-recording: the proxy keeps answering, the sink's drops are counted and
// /status says it is retrying; Redis back on the same port: new envelopes arrive.
TEST_F(RedisCliTest, RedisLostDuringRecordingDropsAndResumes) {
  const std::string url = redis_.Url("live");
  RecordProcess rec(dir_ + "/s", upstream_.url(), {"--sink", url, "--threads", "1"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  const std::string name = "redis://127.0.0.1:" + std::to_string(redis_.port()) + "/live";
  const std::string stored = "doppel_envelopes_stored_total{sink=\"" + name + "\"}";
  const std::string dropped =
      "doppel_envelopes_dropped_total{sink=\"" + name + "\",reason=\"store_error\"}";
  const std::string up = "doppel_sink_up{sink=\"" + name + "\"}";
  TestClient client(rec.port());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Get(client, "/before"), 200u);
  ASSERT_TRUE(Eventually([&] { return rec.Metric(stored) == 10; }, 10000))
      << rec.Metric(stored) << rec.child().all_stderr();
  EXPECT_EQ(rec.Metric(up), 1);

  redis_.Stop();
  ASSERT_TRUE(Eventually(
      [&] {
        EXPECT_EQ(Get(client, "/during"), 200u);
        return rec.Metric(dropped) > 0;
      },
      15000))
      << rec.child().all_stderr();
  EXPECT_EQ(rec.Metric(up), 0);
  EXPECT_NE(rec.Admin("/status").find("\"state\":\"retrying\""), std::string::npos)
      << rec.Admin("/status");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get(client, "/during"), 200u);

  ASSERT_TRUE(redis_.Start()) << redis_.error();
  // The restarted Redis keeps nothing (no persistence): whatever the stream holds now was
  // written after the reconnect.
  ASSERT_TRUE(Eventually(
      [&] {
        EXPECT_EQ(Get(client, "/after"), 200u);
        return StreamLength("live") > 0;
      },
      30000))
      << rec.child().all_stderr();
  EXPECT_TRUE(Eventually([&] { return rec.Metric(up) == 1; }));
  rec.child().Signal(SIGTERM);
  // Captures were lost: exit 2, saying so, as with a full disk.
  EXPECT_EQ(rec.child().Wait(30000), 2) << rec.child().all_stderr();
  const std::string err = rec.child().all_stderr();
  EXPECT_NE(err.find("sink " + name + ": storing envelopes failed"), std::string::npos) << err;
  EXPECT_NE(err.find("reconnected to " + name), std::string::npos) << err;
  EXPECT_NE(err.find("envelopes were not stored"), std::string::npos) << err;
}

TEST_F(RedisCliTest, RedisDownAtStartIsAnErrorUnlessOptional) {
  const std::string url = redis_.Url("down");
  redis_.Stop();
  std::string err;
  EXPECT_EQ(Record({"--sink", url}, &err), 2);
  EXPECT_NE(err.find("--sink redis://127.0.0.1:"), std::string::npos) << err;
  EXPECT_NE(err.find("cannot connect"), std::string::npos) << err;

  RecordProcess rec(dir_ + "/s", upstream_.url(), {"--sink", url, "--sink-optional"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  {
    TestClient client(rec.port());
    EXPECT_EQ(Get(client, "/x"), 200u);
  }
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(30000), 2) << "its capture was dropped";
  const std::string stderr_text = rec.child().all_stderr();
  EXPECT_NE(stderr_text.find("starting anyway (--sink-optional)"), std::string::npos)
      << stderr_text;
}

TEST_F(RedisCliTest, WrongPasswordAndBadUrlsAreUsageErrors) {
  RedisServer locked("sesame");
  ASSERT_TRUE(locked.Start()) << locked.error();
  std::string url = locked.Url("s");
  url.replace(url.find("sesame"), 6, "wrong");
  std::string out, err;
  EXPECT_EQ(Record({"--sink", url}, &err), 2);
  EXPECT_NE(err.find("refused the password"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink", url, "--sink-optional"}, &err), 2)
      << "a wrong password is not a Redis that is down";
  EXPECT_EQ(Doppel(dir_ + "/s", {"import", url}, &out, &err), 2);
  EXPECT_NE(err.find("refused the password"), std::string::npos) << err;

  for (const std::string bad : {"redis://127.0.0.1:6379", "redis://h:0/s", "kafka://h/s"}) {
    EXPECT_EQ(Record({"--sink", bad}, &err), 2) << bad;
    EXPECT_NE(err.find("--sink"), std::string::npos) << err;
    EXPECT_NE(err.find("redis://[:PASSWORD@]HOST[:PORT]/STREAM"), std::string::npos) << err;
  }
  EXPECT_EQ(Doppel(dir_ + "/s", {"import", "redis://127.0.0.1:1"}, &out, &err), 2);
  EXPECT_NE(err.find("no stream name"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink-maxlen", "10"}, &err), 2);
  EXPECT_NE(err.find("apply to redis:// sinks"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink-shards", "4"}, &err), 2);
  EXPECT_NE(err.find("apply to redis:// sinks"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink", redis_.Url("{t}"), "--sink-shards", "4"}, &err), 2);
  EXPECT_NE(err.find("without braces"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink", redis_.Url("t"), "--sink-shards", "5000"}, &err), 2);
  EXPECT_NE(err.find("at most 1024"), std::string::npos) << err;
}

// rediss://: a recorder writes over TLS (client certificate required by the server), the
// stream imports over TLS; a CA that does not vouch for the server is an error at start, also
// with --sink-optional, and says which certificate was refused.
TEST_F(RedisCliTest, RecordsAndImportsOverTls) {
  TestPki pki(dir_);
  const auto server = pki.Issue("redis", "/CN=redis.test");
  const auto client = pki.Issue("client", "/CN=recorder");
  ASSERT_TRUE(pki.error().empty()) << pki.error();
  RedisServer tls;
  tls.UseTls(server.cert, server.key, pki.ca(), /*require_client_cert=*/true);
  ASSERT_TRUE(tls.Start()) << tls.error();
  const std::string url =
      tls.Url("secure") + "?cacert=" + pki.ca() + "&cert=" + client.cert + "&key=" + client.key;
  RecordProcess rec(dir_ + "/s", upstream_.url(), {"--sink", url});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  {
    TestClient c(rec.port());
    for (int i = 0; i < 15; ++i) ASSERT_EQ(Get(c, "/t/" + std::to_string(i)), 200u);
  }
  rec.child().Signal(SIGTERM);
  ASSERT_EQ(rec.child().Wait(), 0) << rec.child().all_stderr();
  EXPECT_NE(rec.child().all_stdout().find("sink rediss://127.0.0.1:" + std::to_string(tls.port()) +
                                          "/secure: stored 15, dropped 0"),
            std::string::npos)
      << rec.child().all_stdout();
  std::string out, err;
  ASSERT_EQ(Doppel(dir_ + "/c", {"import", url, "--as", "secure"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("imported 15 envelopes as session 'secure'"), std::string::npos) << out;

  std::filesystem::create_directories(dir_ + "/other-ca-dir");
  TestPki stranger(dir_ + "/other-ca-dir", "another CA");
  ASSERT_TRUE(stranger.error().empty()) << stranger.error();
  const std::string wrong_ca = tls.Url("secure") + "?cacert=" + stranger.ca() +
                               "&cert=" + client.cert + "&key=" + client.key;
  EXPECT_EQ(Record({"--sink", wrong_ca, "--sink-optional"}, &err), 2);
  EXPECT_NE(err.find("certificate was refused"), std::string::npos) << err;
}

// --sink-shards 6 into a 3-master Redis Cluster (redis-cli --cluster create on loopback),
// by --sample-key: the shards spread over all three masters, each user's requests stay on one
// shard, `doppel import` through another node merges the shards into one session that
// replays; a recorder with another shard count and an untagged single stream are refused.
TEST_F(RedisCliTest, ShardedSessionSpreadsOverAClusterAndReplays) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  const std::string url = cluster.node(0).Url("checkout");
  RecordProcess rec(dir_ + "/s", upstream_.url(),
                    {"--sink", url, "--sink-shards", "6", "--sample-key", "header:X-User",
                     "--recorder-id", "web-1"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  {
    TestClient client(rec.port());
    for (int i = 0; i < 60; ++i) SendAs(client, "user-" + std::to_string(i % 12), i);
  }
  rec.child().Signal(SIGTERM);
  ASSERT_EQ(rec.child().Wait(), 0) << rec.child().all_stderr();
  EXPECT_NE(rec.child().all_stdout().find("sink " + url + ": stored 60, dropped 0"),
            std::string::npos)
      << rec.child().all_stdout();

  // Each master holds keys; each shard, read alone, holds whole users.
  for (size_t i = 0; i < cluster.size(); ++i) {
    ChildProcess dbsize({"redis-cli", "-p", std::to_string(cluster.node(i).port()), "dbsize"});
    ASSERT_EQ(dbsize.Wait(10000), 0);
    EXPECT_GT(std::stoi(dbsize.all_stdout()), 0) << "master " << i << " got no shard";
  }
  std::map<std::string, int> shard_of_user;
  int entries = 0;
  for (const auto& [shard, users] : UsersByShard(cluster.node(1), "checkout", 6)) {
    for (const std::string& user : users) {
      ++entries;
      const auto [it, inserted] = shard_of_user.emplace(user, shard);
      EXPECT_EQ(it->second, shard) << user << " is on two shards";
    }
  }
  EXPECT_EQ(entries, 60);
  EXPECT_EQ(shard_of_user.size(), 12u);

  std::string out, err;
  ASSERT_EQ(
      Doppel(dir_ + "/c", {"import", cluster.node(2).Url("checkout"), "--as", "cart"}, &out, &err),
      0)
      << err;
  EXPECT_NE(out.find("imported 60 envelopes as session 'cart'"), std::string::npos) << out;
  const std::string json = dir_ + "/cart.json";
  ASSERT_EQ(Doppel(dir_ + "/c",
                   {"replay", "--session", "cart", "--target", upstream_.url(), "--max",
                    "--no-progress", "--report-json", json},
                   &out, &err),
            0)
      << out << err;
  const auto report = boost::json::parse(ReadFile(json)).as_object();
  EXPECT_EQ(report.at("targets").as_array()[0].as_object().at("requests").as_int64(), 60)
      << ReadFile(json);

  EXPECT_EQ(Record({"--sink", cluster.node(1).Url("checkout"), "--sink-shards", "4"}, &err), 2);
  EXPECT_NE(err.find("sharded 6 ways already"), std::string::npos) << err;
  EXPECT_EQ(Record({"--sink", cluster.node(1).Url("orders")}, &err), 2);
  EXPECT_NE(err.find("hash tag"), std::string::npos) << err;
}

// One master of the cluster stops while a recorder writes six shards: requests are still
// answered, the shards on the other masters go on storing, and exactly the envelopes of the
// users whose shard was on the stopped master are dropped and counted.
TEST_F(RedisCliTest, AShardWhoseMasterStopsDropsAloneWhileTheOthersStore) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  const std::string url = cluster.node(0).Url("live");
  RecordProcess rec(dir_ + "/s", upstream_.url(),
                    {"--sink", url, "--sink-shards", "6", "--sample-key", "header:X-User"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  TestClient client(rec.port());
  const auto send_all_users = [&] {
    for (int u = 0; u < 12; ++u) SendAs(client, "user-" + std::to_string(u), u);
  };
  send_all_users();
  // Wait until all 12 are in Redis, then stop the master holding neither node 0's nor the
  // URL's keys (node 2), and learn which users' shards live on the others.
  for (int i = 0; i < 200 && rec.StatusStored() < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the writer
  }
  ASSERT_EQ(rec.StatusStored(), 12);
  cluster.node(2).Stop();
  std::set<std::string> alive_users;
  for (const auto& [shard, users] : UsersByShard(cluster.node(0), "live", 6)) {
    alive_users.insert(users.begin(), users.end());
  }
  ASSERT_GT(alive_users.size(), 0u);
  ASSERT_LT(alive_users.size(), 12u) << "node 2 held no user's shard: nothing to test";

  send_all_users();  // proxied all the same
  send_all_users();
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(), 2) << "envelopes were dropped";
  const size_t alive = alive_users.size(), lost = 12 - alive;
  EXPECT_NE(
      rec.child().all_stdout().find("sink " + url + ": stored " + std::to_string(12 + 2 * alive) +
                                    ", dropped " + std::to_string(2 * lost)),
      std::string::npos)
      << "alive users " << alive << "\n"
      << rec.child().all_stdout();
}

// A single stream named with a hash tag on a Redis Cluster: recorded through one node, shared
// by a group of replay workers through another, reported through the third.
TEST_F(RedisCliTest, TaggedStreamOnAClusterReplaysWithAGroup) {
  RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  RecordProcess rec(dir_ + "/s", upstream_.url(), {"--sink", cluster.node(0).Url("{orders}")});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  {
    TestClient client(rec.port());
    for (int i = 0; i < 20; ++i) ASSERT_EQ(Get(client, "/o/" + std::to_string(i)), 200u);
  }
  rec.child().Signal(SIGTERM);
  ASSERT_EQ(rec.child().Wait(), 0) << rec.child().all_stderr();

  std::string out, err;
  ASSERT_EQ(Doppel(dir_ + "/w",
                   {"replay", "--from", cluster.node(1).Url("{orders}"), "--group", "g", "--target",
                    upstream_.url(), "--max", "--no-progress"},
                   &out, &err),
            0)
      << out << err;
  const std::string json = dir_ + "/group.json";
  ASSERT_EQ(Doppel(dir_ + "/w",
                   {"report", "--from", cluster.node(2).Url("{orders}"), "--group", "g",
                    "--report-json", json},
                   &out, &err),
            0)
      << out << err;
  const auto report = boost::json::parse(ReadFile(json)).as_object();
  EXPECT_EQ(report.at("targets").as_array()[0].as_object().at("requests").as_int64(), 20)
      << ReadFile(json);
}

}  // namespace
}  // namespace doppel::testing
