// Redis Streams (stream/): URLs good and bad, and the entry format written and read back
// through a real redis-server, with the failures a sink meets (wrong password, Redis gone and
// back, a key that is not a stream).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "storage/store.h"
#include "stream/envelope_stream.h"
#include "stream/redis_client.h"
#include "stream/stream_import.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/test_pki.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::stream {
namespace {

using doppel::storage::testing::MakeEnvelope;
using doppel::testing::RedisServer;

TEST(RedisUrlTest, ParsesGoodUrls) {
  auto u = ParseRedisUrl("redis://127.0.0.1:6380/capture");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->stream, "capture");
  EXPECT_EQ(u->password, "");
  EXPECT_EQ(u->ToString(), "redis://127.0.0.1:6380/capture");

  u = ParseRedisUrl("REDIS://:s%40cret@cache.internal/orders%7B0%7D");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "cache.internal");
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->password, "s@cret");
  EXPECT_EQ(u->stream, "orders{0}");
  EXPECT_EQ(u->ToString().find("cret"), std::string::npos) << "no password in messages";

  u = ParseRedisUrl("redis://doppel:pw@[::1]:7000/s");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->user, "doppel");
  EXPECT_EQ(u->password, "pw");
  EXPECT_EQ(u->ToString(), "redis://[::1]:7000/s");
}

TEST(RedisUrlTest, RefusesBadUrlsWithTheExpectedForm) {
  for (const char* text :
       {"http://127.0.0.1:6379/s", "redis:/x", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/",
        "redis://h/a/b", "redis://h:0/s", "redis://h:99999/s", "redis://h/s?db=1", "redis://h/s#x",
        "redis:///s", "redis://user@h/s", "redis://h/a%22b", "redis://h/a%20b", "redis://h/a%0Ab",
        "redis", ""}) {
    auto u = ParseRedisUrl(text);
    ASSERT_FALSE(u.ok()) << text;
    EXPECT_EQ(u.status().code(), Status::Code::kInvalidArgument) << text;
    EXPECT_NE(u.status().message().find("redis://[:PASSWORD@]HOST[:PORT]/STREAM"),
              std::string::npos)
        << u.status().message();
  }
  for (const char* text : {"rediss://h/s?cacert", "rediss://h/s?ca=x.pem",
                           "rediss://h/s?cert=c.pem", "redis://h/s?cacert=ca.pem"}) {
    auto u = ParseRedisUrl(text);
    ASSERT_FALSE(u.ok()) << text;
    EXPECT_EQ(u.status().code(), Status::Code::kInvalidArgument) << text;
    EXPECT_NE(u.status().message().find("rediss://[:PASSWORD@]HOST[:PORT]/STREAM[?cacert=FILE"),
              std::string::npos)
        << u.status().message();
  }
  EXPECT_TRUE(IsRedisUrl("Redis://x"));
  EXPECT_FALSE(IsRedisUrl("session.har"));
}

TEST(RedisUrlTest, RedissTakesItsFiles) {
  auto u = ParseRedisUrl(
      "rediss://:pw@cache.internal:6380/s?cacert=/etc/ca%20x.pem&cert=c.pem&key=k.pem");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->ca_file, "/etc/ca x.pem");
  EXPECT_EQ(u->cert_file, "c.pem");
  EXPECT_EQ(u->key_file, "k.pem");
  EXPECT_EQ(u->ToString(), "rediss://cache.internal:6380/s") << "no files or password in messages";
  u = ParseRedisUrl("rediss://h/s");
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(u->tls);
  EXPECT_TRUE(u->ca_file.empty()) << "the system's CAs";
}

TEST(RedisUrlTest, TakesHashTagBracesAsTheyAre) {
  auto u = ParseRedisUrl("redis://127.0.0.1:7000/{checkout}");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->stream, "{checkout}");
}

// The examples of the Redis Cluster specification ("Keys hash tags"), and CRC16-XMODEM's
// check value (0x31C3 for "123456789").
TEST(RedisKeySlotTest, FollowsTheClusterSpecification) {
  EXPECT_EQ(KeySlot("123456789"), 0x31C3);
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));  // an empty tag: the whole key is hashed
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  // What doppel derives from a tagged stream lives beside it; from an untagged one it need not.
  EXPECT_EQ(KeySlot(DictionariesKey("{checkout}")), KeySlot("{checkout}"));
  EXPECT_EQ(KeySlot(DictionariesKey(ShardStreamName("checkout", 3))),
            KeySlot(ShardStreamName("checkout", 3)));
  EXPECT_EQ(KeySlot(ShardsKey("checkout")), KeySlot(ShardStreamName("checkout", 0)));
  EXPECT_NE(KeySlot(DictionariesKey("checkout")), KeySlot("checkout"));
}

class RedisStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.Start()) << redis_.error(); }

  RedisUrl Url(const std::string& stream) {
    auto u = ParseRedisUrl(redis_.Url(stream));
    EXPECT_TRUE(u.ok()) << u.status().ToString();
    return *u;
  }

  std::vector<doppel::v1::Envelope> Envelopes(int n, int first = 0) {
    std::vector<doppel::v1::Envelope> out;
    for (int i = first; i < first + n; ++i) out.push_back(MakeEnvelope(1000 + i, i, i));
    return out;
  }

  Result<RedisReply> Command(std::vector<std::string> argv) {
    auto client = RedisClient::Connect(Url("x"));
    if (!client.ok()) return client.status();
    return (*client)->Command(std::move(argv));
  }

  RedisServer redis_;
};

// 600 envelopes: the first 500 are compressed without a dictionary, the rest with the one the
// writer trained on them and published beside the stream; all read back equal.
TEST_F(RedisStreamTest, EnvelopesRoundTripWithThePublishedDictionary) {
  StreamWriter writer(Url("cap"), {"rec-a", 0, {}, {}, 0});
  ASSERT_TRUE(writer.Connect().ok());
  const auto envelopes = Envelopes(600);
  for (size_t i = 0; i < envelopes.size(); i += 100) {
    Status s = writer.Append(std::span(envelopes).subspan(i, 100));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  auto dicts = Command({"HLEN", DictionariesKey("cap")});
  ASSERT_TRUE(dicts.ok());
  EXPECT_EQ(dicts->integer, 1);

  auto reader = StreamReader::Open(Url("cap"));
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  size_t n = 0;
  for (;;) {
    auto batch = (*reader)->Next(128);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->empty()) break;
    for (const StreamEnvelope& e : *batch) {
      ASSERT_LT(n, envelopes.size());
      EXPECT_EQ(e.recorder_id, "rec-a");
      EXPECT_EQ(e.envelope.SerializeAsString(), envelopes[n].SerializeAsString()) << n;
      ++n;
    }
  }
  EXPECT_EQ(n, envelopes.size());
}

TEST_F(RedisStreamTest, MaxlenTrimsTheStream) {
  StreamWriter writer(Url("trim"), {"rec-a", 100, {}, {}, 0});
  ASSERT_TRUE(writer.Connect().ok());
  const auto envelopes = Envelopes(1000);
  ASSERT_TRUE(writer.Append(envelopes).ok());
  auto len = Command({"XLEN", "trim"});
  ASSERT_TRUE(len.ok());
  EXPECT_GE(len->integer, 100);
  EXPECT_LT(len->integer, 1000);
}

TEST_F(RedisStreamTest, AppendFailsWhileRedisIsGoneAndWorksAfterConnectingAgain) {
  StreamWriter writer(Url("gone"), {"rec-a", 0, {}, {}, 0});
  ASSERT_TRUE(writer.Connect().ok());
  ASSERT_TRUE(writer.Append(Envelopes(5)).ok());
  redis_.Stop();
  Status s = writer.Append(Envelopes(5, 5));
  EXPECT_EQ(s.code(), Status::Code::kUnavailable) << s.ToString();
  EXPECT_FALSE(writer.connected());
  s = writer.Connect();
  EXPECT_EQ(s.code(), Status::Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("cannot connect to redis 127.0.0.1:"), std::string::npos);
  ASSERT_TRUE(redis_.Start()) << redis_.error();
  ASSERT_TRUE(writer.Connect().ok());
  s = writer.Append(Envelopes(5, 10));
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto len = Command({"XLEN", "gone"});
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->integer, 5) << "a restarted Redis without persistence starts empty";
}

// Redis answering something the writer or reader did not expect is an error, not a crash.
TEST_F(RedisStreamTest, AKeyThatIsNotAStreamIsAnError) {
  ASSERT_TRUE(Command({"SET", "plain", "x"}).ok());
  StreamWriter writer(Url("plain"), {"rec-a", 0, {}, {}, 0});
  ASSERT_TRUE(writer.Connect().ok());
  Status s = writer.Append(Envelopes(2));
  EXPECT_EQ(s.code(), Status::Code::kInternal);
  EXPECT_NE(s.message().find("WRONGTYPE"), std::string::npos) << s.ToString();

  auto reader = StreamReader::Open(Url("plain"));
  ASSERT_FALSE(reader.ok());
  EXPECT_NE(reader.status().message().find("is a string, not a stream"), std::string::npos)
      << reader.status().ToString();
  reader = StreamReader::Open(Url("missing"));
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), Status::Code::kNotFound);

  // An entry that doppel did not write.
  ASSERT_TRUE(Command({"XADD", "foreign", "*", "k", "v"}).ok());
  reader = StreamReader::Open(Url("foreign"));
  ASSERT_TRUE(reader.ok());
  auto batch = (*reader)->Next();
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("not written by doppel"), std::string::npos)
      << batch.status().ToString();
}

TEST(RedisAuthTest, WrongOrMissingPasswordIsAClearError) {
  RedisServer redis("right");
  ASSERT_TRUE(redis.Start()) << redis.error();
  auto good = ParseRedisUrl(redis.Url("s"));
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(RedisClient::Connect(*good).ok());

  RedisUrl wrong = *good;
  wrong.password = "wrong";
  auto c = RedisClient::Connect(wrong);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("refused the password"), std::string::npos)
      << c.status().ToString();
  EXPECT_EQ(c.status().message().find("wrong"), std::string::npos) << "password not shown";

  RedisUrl none = *good;
  none.password.clear();
  c = RedisClient::Connect(none);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find("needs a password"), std::string::npos)
      << c.status().ToString();
}

// Two writers (two recorders) into one stream; the import holds every envelope of both, with
// sequence numbers that keep them apart even where arrival times and seqs collide.
TEST_F(RedisStreamTest, ImportTakesEveryEnvelopeOfEveryRecorder) {
  StreamWriter a(Url("shared"), {"rec-a", 0, {}, {}, 0});
  StreamWriter b(Url("shared"), {"rec-b", 0, {}, {}, 0});
  ASSERT_TRUE(a.Connect().ok());
  ASSERT_TRUE(b.Connect().ok());
  const auto envelopes = Envelopes(520);  // a trains a dictionary; b does not
  ASSERT_TRUE(a.Append(envelopes).ok());
  ASSERT_TRUE(b.Append(std::span(envelopes).subspan(0, 30)).ok());  // same (arrival, seq)

  const std::string dir = doppel::testing::MakeTempDir("stream-import");
  std::unique_ptr<storage::Store> store;
  ASSERT_TRUE(storage::Store::Open({}, dir, &store).ok());
  StreamImportStats stats;
  auto info = ImportStream(*store, Url("shared"), "both", &stats);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->name(), "both");
  EXPECT_EQ(info->counts().envelopes(), 550u);
  EXPECT_EQ(stats.by_recorder["rec-a"], 520u);
  EXPECT_EQ(stats.by_recorder["rec-b"], 30u);
  size_t scanned = 0;
  {
    auto it = store->Scan("both", {});
    ASSERT_TRUE(it.ok());
    for (; (*it)->Valid(); (*it)->Next()) ++scanned;
  }
  EXPECT_EQ(scanned, 550u);
  store.reset();
  std::filesystem::remove_all(dir);
}

// A stream sharded three ways (what `--sink-shards 3` writes): a reader given the stream's name
// finds the shards and returns every entry once, in capture time order across them; a writer
// with another shard count is refused.
TEST_F(RedisStreamTest, ShardedStreamIsReadWholeInEntryOrder) {
  std::vector<std::unique_ptr<StreamWriter>> shards;
  for (uint32_t i = 0; i < 3; ++i) {
    StreamWriterOptions o{"rec-a", 0, {}, {}, 0};
    if (i == 0) {
      o.shards_key = ShardsKey("orders");
      o.shard_count = 3;
    }
    shards.push_back(std::make_unique<StreamWriter>(Url(ShardStreamName("orders", i)), o));
    ASSERT_TRUE(shards.back()->Connect().ok());
  }
  const auto envelopes = Envelopes(90);
  for (size_t i = 0; i < envelopes.size(); ++i) {  // shard 0 gets 0, 3, 6, ...
    ASSERT_TRUE(shards[i % 3]->Append(std::span(envelopes).subspan(i, 1)).ok());
  }
  for (uint32_t i = 0; i < 3; ++i) {
    auto len = Command({"XLEN", ShardStreamName("orders", i)});
    ASSERT_TRUE(len.ok());
    EXPECT_EQ(len->integer, 30) << i;
  }
  auto count = ShardCount(Url("orders"));
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, 3u);
  EXPECT_EQ(*ShardCount(Url("plain")), 0u);

  auto reader = StreamReader::Open(Url("orders"));
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->shards(), 3u);
  size_t n = 0;
  for (;;) {
    auto batch = (*reader)->Next(7);
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (batch->empty()) break;
    for (const StreamEnvelope& e : *batch) {
      ASSERT_LT(n, envelopes.size());
      // MakeEnvelope's arrival times grow with i.
      EXPECT_EQ(e.envelope.SerializeAsString(), envelopes[n].SerializeAsString()) << n;
      ++n;
    }
  }
  EXPECT_EQ(n, envelopes.size());

  StreamWriterOptions two{"rec-b", 0, {}, {}, 0};
  two.shards_key = ShardsKey("orders");
  two.shard_count = 2;
  StreamWriter other(Url(ShardStreamName("orders", 0)), two);
  Status st = other.Connect();
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("sharded 3 ways already"), std::string::npos) << st.ToString();

  // A plain stream of the same name beside the shards: which one is meant is not clear.
  ASSERT_TRUE(Command({"XADD", "orders", "*", "e", "x"}).ok());
  auto both = StreamReader::Open(Url("orders"));
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().code(), Status::Code::kInvalidArgument) << both.status().ToString();
}

// A 3-master Redis Cluster (redis-cli --cluster create on loopback): clients given any node
// talk to the master owning their stream's slot, follow a MOVED when the slot changes hands,
// follow an ASK while it is being migrated, and refuse an untagged stream whose dictionaries
// would live on another node.
TEST(RedisClusterTest, ClientsTalkToTheSlotOwnerAndFollowMovedAndAsk) {
  doppel::testing::RedisCluster cluster;
  ASSERT_TRUE(cluster.Start()) << cluster.error();
  const auto url = [&](size_t node, const std::string& stream) {
    auto u = ParseRedisUrl(cluster.node(node).Url(stream));
    EXPECT_TRUE(u.ok());
    return *u;
  };
  // Streams tagged {0} .. {7}, each written through node 0: they land on all three masters.
  std::set<std::string> owners;
  for (int i = 0; i < 8; ++i) {
    const std::string stream = ShardStreamName("c", static_cast<uint32_t>(i));
    StreamWriter writer(url(0, stream), {"rec-a", 0, {}, {}, 0});
    Status st = writer.Connect();
    ASSERT_TRUE(st.ok()) << st.ToString();
    const auto envelopes = std::vector<doppel::v1::Envelope>{MakeEnvelope(1, 1, 1)};
    st = writer.Append(envelopes);
    ASSERT_TRUE(st.ok()) << stream << ": " << st.ToString();
    auto client = RedisClient::Connect(url(2, stream));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    EXPECT_TRUE((*client)->cluster());
    owners.insert((*client)->node());
    auto len = (*client)->Command({"XLEN", stream});
    ASSERT_TRUE(len.ok());
    EXPECT_EQ(len->integer, 1) << stream;
  }
  EXPECT_EQ(owners.size(), 3u);

  // Untagged: "checkout" and "checkout:dicts" hash to different slots.
  StreamWriter untagged(url(1, "checkout"), {"rec-a", 0, {}, {}, 0});
  Status st = untagged.Connect();
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("hash tag"), std::string::npos) << st.ToString();

  // The (empty) slot of {moving} is given to another master, on every node: a client
  // connected to the old owner is answered MOVED and follows.
  auto client = RedisClient::Connect(url(0, "{moving}"));
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  const std::string old_owner = (*client)->node();
  std::string new_owner, new_id;
  for (size_t i = 0; i < cluster.size(); ++i) {
    const std::string node = "127.0.0.1:" + std::to_string(cluster.node(i).port());
    if (node == old_owner) continue;
    new_owner = node;
    // redis-cli, not RedisClient: a RedisClient talks to the owner of its key's slot.
    doppel::testing::ChildProcess myid(
        {"redis-cli", "-p", std::to_string(cluster.node(i).port()), "cluster", "myid"});
    ASSERT_EQ(myid.Wait(10000), 0);
    new_id = myid.all_stdout().substr(0, myid.all_stdout().find('\n'));
    break;
  }
  ASSERT_FALSE(new_id.empty());
  const std::string slot = std::to_string(KeySlot("{moving}"));
  for (size_t i = 0; i < cluster.size(); ++i) {
    doppel::testing::ChildProcess set({"redis-cli", "-p", std::to_string(cluster.node(i).port()),
                                       "cluster", "setslot", slot, "node", new_id});
    ASSERT_EQ(set.Wait(10000), 0);
    EXPECT_NE(set.all_stdout().find("OK"), std::string::npos) << set.all_stdout();
  }
  auto added = (*client)->Command({"XADD", "{moving}", "*", "f", "v"});
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->type, RedisReply::Type::kString) << DescribeReply(*added);
  EXPECT_EQ((*client)->node(), new_owner);

  // The slot of {moving} in migration back to the old owner (IMPORTING there, MIGRATING at
  // the new one, as redis-cli --cluster reshard sets them): a key still at the source is
  // answered there; a key not at the source is answered ASK, and the client sends the command
  // to the target after ASKING, without moving the rest of its traffic.
  const auto redis_cli = [&](const std::string& node, std::vector<std::string> args) {
    args.insert(args.begin(), {"redis-cli", "-p", node.substr(node.rfind(':') + 1)});
    doppel::testing::ChildProcess p(args);
    EXPECT_EQ(p.Wait(10000), 0);
    return p.all_stdout();
  };
  const auto id_of = [&](const std::string& node) {
    const std::string out = redis_cli(node, {"cluster", "myid"});
    return out.substr(0, out.find('\n'));
  };
  EXPECT_NE(
      redis_cli(old_owner, {"cluster", "setslot", slot, "importing", id_of(new_owner)}).find("OK"),
      std::string::npos);
  EXPECT_NE(
      redis_cli(new_owner, {"cluster", "setslot", slot, "migrating", id_of(old_owner)}).find("OK"),
      std::string::npos);
  auto pipeline = (*client)->Pipeline({{"XADD", "{moving}", "*", "f", "v2"},
                                       {"XADD", "{moving}:new", "*", "f", "v"},
                                       {"XLEN", "{moving}"}});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  EXPECT_EQ((*pipeline)[0].type, RedisReply::Type::kString) << DescribeReply((*pipeline)[0]);
  EXPECT_EQ((*pipeline)[1].type, RedisReply::Type::kString) << DescribeReply((*pipeline)[1]);
  EXPECT_EQ((*pipeline)[2].integer, 2) << DescribeReply((*pipeline)[2]);
  EXPECT_EQ((*client)->node(), new_owner);
  // The key created through ASK is at the target: once the slot is the old owner's again on
  // every node, a fresh client finds it there.
  for (size_t i = 0; i < cluster.size(); ++i) {
    doppel::testing::ChildProcess set({"redis-cli", "-p", std::to_string(cluster.node(i).port()),
                                       "cluster", "setslot", slot, "node", id_of(old_owner)});
    ASSERT_EQ(set.Wait(10000), 0);
  }
  auto fresh = RedisClient::Connect(url(2, "{moving}:new"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ((*fresh)->node(), old_owner);
  auto len = (*fresh)->Command({"XLEN", "{moving}:new"});
  ASSERT_TRUE(len.ok());
  EXPECT_EQ(len->integer, 1);
}

// rediss:// against redis-server's tls-port, with client certificates required: envelopes
// written and read back; the server's certificate is verified (a client without the CA is
// refused, saying so), and a client without a certificate or speaking plaintext gets no
// further than the first command.
TEST(RedisTlsTest, RedissVerifiesTheServerAndCarriesTheStream) {
  const std::string dir = doppel::testing::MakeTempDir("redis-tls");
  doppel::testing::TestPki pki(dir);
  const auto server = pki.Issue("redis", "/CN=redis.test");
  const auto client = pki.Issue("client", "/CN=recorder");
  ASSERT_TRUE(pki.error().empty()) << pki.error();
  RedisServer redis;
  redis.UseTls(server.cert, server.key, pki.ca(), /*require_client_cert=*/true);
  ASSERT_TRUE(redis.Start()) << redis.error();
  const std::string base = redis.Url("tls");
  ASSERT_EQ(base.rfind("rediss://", 0), 0u);
  auto url =
      ParseRedisUrl(base + "?cacert=" + pki.ca() + "&cert=" + client.cert + "&key=" + client.key);
  ASSERT_TRUE(url.ok()) << url.status().ToString();

  StreamWriter writer(*url, {"rec-a", 0, {}, {}, 0});
  Status st = writer.Connect();
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::vector<doppel::v1::Envelope> envelopes;
  for (int i = 0; i < 10; ++i) envelopes.push_back(MakeEnvelope(1000 + i, i, i));
  ASSERT_TRUE(writer.Append(envelopes).ok());
  auto reader = StreamReader::Open(*url);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto batch = (*reader)->Next();
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->size(), 10u);
  EXPECT_EQ((*batch)[9].envelope.SerializeAsString(), envelopes[9].SerializeAsString());

  // Without the CA: the system's CAs do not know the test CA.
  auto no_ca = ParseRedisUrl(base + "?cert=" + client.cert + "&key=" + client.key);
  ASSERT_TRUE(no_ca.ok());
  auto refused = RedisClient::Connect(*no_ca);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("certificate was refused"), std::string::npos)
      << refused.status().ToString();
  // Without a client certificate, and in plaintext: no PING answered.
  auto no_cert = ParseRedisUrl(base + "?cacert=" + pki.ca());
  ASSERT_TRUE(no_cert.ok());
  EXPECT_FALSE(RedisClient::Connect(*no_cert).ok());
  auto plain = ParseRedisUrl("redis://127.0.0.1:" + std::to_string(redis.port()) + "/tls");
  ASSERT_TRUE(plain.ok());
  RedisClientOptions quick;
  quick.io_timeout = std::chrono::milliseconds(1000);
  auto plaintext = RedisClient::Connect(*plain, quick);
  ASSERT_FALSE(plaintext.ok());
  EXPECT_EQ(plaintext.status().code(), Status::Code::kUnavailable) << plaintext.status().ToString();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace doppel::stream
