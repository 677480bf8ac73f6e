// `doppel record --sink redis://...` and `doppel import redis://...` as real processes against
// a real redis-server on loopback: several recorders into one stream, Redis lost and back
// during a recording, and the start-up errors (Redis down, wrong password, bad URL).
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/beast/http.hpp>
#include <filesystem>

#include "storage/store.h"
#include "stream/redis_client.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/redis_server.h"

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
}

}  // namespace
}  // namespace doppel::testing
