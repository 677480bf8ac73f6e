// Replaying recorded WebSocket connections (docs/replay.md, "WebSocket"): replay::Run in-process
// against a real WebSocket server (Beast's, tests/net/websocket_echo.h) on loopback. The
// recordings are written as the capture proxy writes them (tests/recorder/
// proxy_websocket_test.cc checks that side).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "replay/run.h"
#include "storage/store.h"
#include "tests/base/temp_dir.h"
#include "tests/net/test_upstream.h"
#include "tests/net/websocket_echo.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::replay {
namespace {

using Echo = testing::WebSocketEchoServer;

struct Recorded {
  bool from_client;
  uint32_t opcode;
  std::string payload;
  uint64_t at_us;
};

// A WebSocket connection as the capture proxy records it: the handshake (its recorded key,
// and an extension the replay must not offer), the 101, and `messages`.
v1::Envelope WebSocketEnvelope(uint32_t seq, const std::string& target,
                               const std::vector<Recorded>& messages) {
  v1::Envelope e;
  e.set_arrival_us(1'000'000 + seq * 1000);
  e.set_seq(seq);
  auto* req = e.mutable_request();
  req->set_method("GET");
  req->set_target(target);
  req->set_version(11);
  auto header = [](auto* list, const std::string& name, const std::string& value) {
    auto* h = list->Add();
    h->set_name(name);
    h->set_value(value);
  };
  header(req->mutable_headers(), "Host", "chat.prod");
  header(req->mutable_headers(), "Connection", "Upgrade");
  header(req->mutable_headers(), "Upgrade", "websocket");
  header(req->mutable_headers(), "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  header(req->mutable_headers(), "Sec-WebSocket-Version", "13");
  header(req->mutable_headers(), "Sec-WebSocket-Extensions", "permessage-deflate");
  auto* res = e.mutable_response();
  res->set_status(101);
  res->set_version(11);
  // The proxy records the 101 without its hop-by-hop headers (Connection, Upgrade).
  header(res->mutable_headers(), "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  auto* ws = e.mutable_websocket();
  for (const Recorded& r : messages) {
    auto* m = ws->add_messages();
    m->set_from_client(r.from_client);
    m->set_opcode(r.opcode);
    m->set_payload(r.payload);
    m->set_payload_size(r.payload.size());
    m->set_at_us(r.at_us);
    if (r.from_client) {
      ws->set_client_messages(ws->client_messages() + 1);
    } else {
      ws->set_server_messages(ws->server_messages() + 1);
    }
  }
  ws->set_ended("client closed");
  return e;
}

const std::string kBinary("\x00\x01\x02\xff", 4);

// A quote request and its answer, a binary message echoed, and the close.
std::vector<Recorded> Conversation() {
  return {{true, 1, R"({"op":"quote","sku":"A-7"})", 1000},
          {false, 1, R"({"op":"quote","sku":"A-7"})", 1500},
          {true, 2, kBinary, 2000},
          {false, 2, kBinary, 2400},
          {true, 8, "\x03\xe8", 3000},
          {false, 8, "\x03\xe8", 3100}};
}

class WebSocketReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = doppel::testing::MakeTempDir(
        std::string("ws_replay-") +
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_path_ = dir_ + "/store";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::vector<v1::Envelope>& envelopes) {
    Status s = storage::testing::WriteSession(store_path_, "ws", envelopes);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  RunOptions Options(const std::string& target) {
    RunOptions o;
    o.store_path = store_path_;
    o.session = "ws";
    o.targets = {target};
    o.max = true;
    o.min_samples = 1;
    o.timeout = "5s";
    return o;
  }
  void RunToEnd(const RunOptions& o, RunOutcome* out) {
    auto run = Run::Create(o, SystemClock::Instance());
    ASSERT_TRUE(run.ok()) << run.status().ToString();
    auto executed = (*run)->Execute();
    ASSERT_TRUE(executed.ok()) << executed.status().ToString();
    *out = std::move(executed.value());
  }
  // The per-request results the run stored, in order.
  std::vector<v1::RunResult> Results(uint32_t run_id) {
    std::unique_ptr<storage::Store> s;
    EXPECT_TRUE(storage::Store::Open(storage::StoreOptions(), store_path_, &s).ok());
    std::vector<v1::RunResult> out;
    auto it = s->ScanRunResults(run_id);
    EXPECT_TRUE(it.ok());
    for (; it.ok() && (*it)->Valid(); (*it)->Next()) out.push_back((*it)->result());
    return out;
  }

  std::string dir_, store_path_;
};

// The recorded messages go to a server that answers as the primary did: every message matches,
// and the handshake the server read was a fresh one.
TEST_F(WebSocketReplayTest, AServerThatAnswersAsRecordedMatches) {
  Echo echo;
  Write({WebSocketEnvelope(1, "/chat?room=1", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(echo.url()), &out));
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.stats.skipped.websocket, 0u);
  ASSERT_EQ(out.stats.lanes.size(), 1u);
  EXPECT_EQ(out.stats.lanes[0].ok, 1u);
  EXPECT_EQ(out.stats.lanes[0].errors, 0u);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 101u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MATCH) << results[0].DebugString();

  const auto handshakes = echo.handshakes();
  ASSERT_EQ(handshakes.size(), 1u);
  const auto& h = handshakes[0];
  EXPECT_EQ(h.target(), "/chat?room=1");
  EXPECT_NE(h["Sec-WebSocket-Key"], "dGhlIHNhbXBsZSBub25jZQ==");  // a key of its own
  EXPECT_EQ(h["Sec-WebSocket-Key"].size(), 24u);
  EXPECT_EQ(h.count("Sec-WebSocket-Extensions"), 0u);  // the messages go uncompressed
}

// An https:// target: the handshake and the conversation go over TLS, the certificate verified.
TEST_F(WebSocketReplayTest, ATargetOverTlsIsReplayedToo) {
  Echo echo(/*tls=*/true);
  Write({WebSocketEnvelope(1, "/chat", Conversation())});
  const std::string ca = dir_ + "/ca.pem";
  std::ofstream(ca) << echo.cert_pem();
  RunOptions o = Options(echo.url());
  o.ca_file = ca;
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(o, &out));
  EXPECT_EQ(out.exit_code, 0);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 101u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MATCH) << results[0].DebugString();
}

// A server whose answer changed: the changed field is named under `websocket`, the run fails;
// a rule on that path makes it pass.
TEST_F(WebSocketReplayTest, AChangedMessageIsNamedByItsPathAndRulesApply) {
  Echo changed(false, [](const Echo::Message& in) {
    Echo::Message out = in;
    if (in.text) out.payload = R"({"op":"quote","sku":"A-7","price":12})";
    return std::vector<Echo::Message>{out};
  });
  Write({WebSocketEnvelope(1, "/chat", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(changed.url()), &out));
  EXPECT_EQ(out.exit_code, 1);
  auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MISMATCH);
  ASSERT_EQ(results[0].diff_paths_size(), 1) << results[0].DebugString();
  EXPECT_EQ(results[0].diff_paths(0), "websocket[0].price");

  const std::string rules = dir_ + "/rules.json";
  std::ofstream(rules) << R"({"rules":[{"path":"websocket[*].price","action":"ignore"}]})";
  RunOptions o = Options(changed.url());
  o.rules = rules;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(o, &out));
  EXPECT_EQ(out.exit_code, 0);
  results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MATCH) << results[0].DebugString();
}

// A server that stops answering: the replayer waits for each missing message its recorded gap
// plus a second, goes on, and reports the messages missing; the run ends.
TEST_F(WebSocketReplayTest, AServerThatDoesNotAnswerIsReportedMissingMessages) {
  Echo silent(false, [](const Echo::Message&) { return std::vector<Echo::Message>{}; });
  Write({WebSocketEnvelope(1, "/chat", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(silent.url()), &out));
  EXPECT_EQ(out.exit_code, 1);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MISMATCH);
  // Two messages recorded, none came: the list's size differs (diff/websocket.h).
  ASSERT_EQ(results[0].diff_paths_size(), 1) << results[0].DebugString();
  EXPECT_EQ(results[0].diff_paths(0), "websocket");
}

// The client's think time is kept as the run's pacing says: the second question was recorded
// 1.5 s after the first answer; --speed 1 keeps the gap, --speed 3 a third of it, --max none.
TEST_F(WebSocketReplayTest, ClientThinkTimeFollowsThePacing) {
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;  // as the server read them
  Echo echo(false, [&](const Echo::Message& in) {
    std::lock_guard<std::mutex> lock(mu);
    arrivals.push_back(std::chrono::steady_clock::now());
    return std::vector<Echo::Message>{in};
  });
  Write({WebSocketEnvelope(1, "/chat",
                           {{true, 1, "first", 1000},
                            {false, 1, "first", 2000},
                            {true, 1, "second", 1'502'000},
                            {false, 1, "second", 1'503'000}})});
  auto gap_ms = [&](double speed) {
    {
      std::lock_guard<std::mutex> lock(mu);
      arrivals.clear();
    }
    RunOptions o = Options(echo.url());
    o.max = speed == 0;
    o.speed = speed;
    RunOutcome out;
    RunToEnd(o, &out);
    EXPECT_EQ(out.exit_code, 0) << "speed " << speed;
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(arrivals.size(), 2u) << "speed " << speed;
    if (arrivals.size() != 2) return int64_t{-1};
    return static_cast<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(arrivals[1] - arrivals[0]).count());
  };
  EXPECT_GE(gap_ms(1), 1500);
  const int64_t third = gap_ms(3);
  EXPECT_GE(third, 500);
  EXPECT_LT(third, 1500);
  EXPECT_LT(gap_ms(0), 500);  // --max: as soon as the answer came
}

// SIGINT ends a conversation in flight at once, however long the recording lasted: here the
// server never answers and the recorded answer came a minute after the question.
TEST_F(WebSocketReplayTest, AnInterruptEndsAConversationInFlight) {
  Echo silent(false, [](const Echo::Message&) { return std::vector<Echo::Message>{}; });
  Write({WebSocketEnvelope(1, "/chat",
                           {{true, 1, "question", 1000}, {false, 1, "answer", 60'000'000}})});
  std::thread interrupt([&] {
    // The handshake reached the server: the replay runs and its signal handler is armed.
    for (int i = 0; i < 500 && silent.handshakes().empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(::getpid(), SIGINT);
  });
  const auto start = std::chrono::steady_clock::now();
  RunOutcome out;
  RunToEnd(Options(silent.url()), &out);
  interrupt.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_TRUE(out.stats.interrupted);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 101u);
}

// SIGINT also ends a conversation that holds a client message for its think time (a minute
// here, under the default real-time pacing).
TEST_F(WebSocketReplayTest, AnInterruptEndsAThinkTime) {
  Echo echo;
  Write({WebSocketEnvelope(
      1, "/chat",
      {{true, 1, "now", 1000}, {false, 1, "now", 2000}, {true, 1, "in a minute", 60'000'000}})});
  std::thread interrupt([&] {
    for (int i = 0; i < 500 && echo.handshakes().empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::kill(::getpid(), SIGINT);
  });
  RunOptions o = Options(echo.url());
  o.max = false;
  const auto start = std::chrono::steady_clock::now();
  RunOutcome out;
  RunToEnd(o, &out);
  interrupt.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_TRUE(out.stats.interrupted);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 101u);
}

// A handshake the target refuses is compared as any answer: 403 against the recorded 101.
TEST_F(WebSocketReplayTest, ARefusedHandshakeIsAStatusDifference) {
  Echo echo;
  Write({WebSocketEnvelope(1, "/refuse", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(echo.url()), &out));
  EXPECT_EQ(out.exit_code, 1);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), 403u);
  ASSERT_GE(results[0].diff_paths_size(), 1);
  EXPECT_EQ(results[0].diff_paths(0), "status");
}

// A 101 whose Sec-WebSocket-Accept does not answer the handshake's key (a middlebox that
// switches protocols on its own) is an error of the target, not a conversation.
TEST_F(WebSocketReplayTest, A101ThatDoesNotAnswerTheKeyIsABadResponse) {
  testing::TestUpstream up;
  up.SetHandler([](const testing::ReceivedRequest&) -> std::optional<net::HttpResponse> {
    net::HttpResponse r;
    r.result(101);
    r.set("Upgrade", "websocket");
    r.set("Connection", "Upgrade");
    r.set("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // the recorded key's
    return r;
  });
  Write({WebSocketEnvelope(1, "/chat", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(up.url()), &out));
  ASSERT_EQ(out.stats.lanes.size(), 1u);
  EXPECT_EQ(out.stats.lanes[0].errors, 1u);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_ERROR);
  EXPECT_NE(results[0].error().find("bad-response: the 101's Sec-WebSocket-Accept"),
            std::string::npos)
      << results[0].error();
}

// A connection whose messages the primary's peers compressed (permessage-deflate, context
// takeover) is replayed decompressed: the target gets the plain messages, and its answers are
// compared with the primary's decompressed ones; the recorded 101's Sec-WebSocket-Extensions
// is negotiation, not a difference.
TEST_F(WebSocketReplayTest, CompressedRecordingIsReplayedDecompressed) {
  std::mutex mu;
  std::vector<std::string> got;
  Echo echo(false, [&](const Echo::Message& in) {
    std::lock_guard<std::mutex> lock(mu);
    got.push_back(in.payload);
    return std::vector<Echo::Message>{in};
  });
  const std::vector<std::string> plain = {R"({"op":"quote","sku":"A-7","qty":1})",
                                          R"({"op":"quote","sku":"A-7","qty":2})"};
  const std::vector<std::string> sent = testing::PerMessageDeflate(plain);  // each way
  std::vector<Recorded> messages;
  for (size_t i = 0; i < plain.size(); ++i) {
    messages.push_back({true, 1, sent[i], 1000 + i * 1000});
    messages.push_back({false, 1, sent[i], 1500 + i * 1000});
  }
  v1::Envelope e = WebSocketEnvelope(1, "/chat", messages);
  for (auto& m : *e.mutable_websocket()->mutable_messages()) m.set_compressed(true);
  auto* extension = e.mutable_response()->add_headers();
  extension->set_name("Sec-WebSocket-Extensions");
  extension->set_value("permessage-deflate");
  Write({e});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(echo.url()), &out));
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.stats.skipped.websocket, 0u);
  const auto results = Results(out.run_id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].verdict(), v1::RunResult::VERDICT_MATCH) << results[0].DebugString();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(got, plain);
}

// Connections that cannot be sent again as recorded are skipped and counted: a client message
// cut at the capture limit, compressed messages that do not decompress (damaged, or one cut
// at the capture limit). Other envelopes of the session go.
TEST_F(WebSocketReplayTest, CutOrUndecodableRecordingsAreSkipped) {
  Echo echo;
  v1::Envelope damaged = WebSocketEnvelope(1, "/chat", Conversation());
  damaged.mutable_websocket()->mutable_messages(1)->set_payload("\xff\xff\xff\xff");
  damaged.mutable_websocket()->mutable_messages(1)->set_compressed(true);
  v1::Envelope cut = WebSocketEnvelope(2, "/chat", Conversation());
  cut.mutable_websocket()->mutable_messages(0)->set_payload_truncated(true);
  v1::Envelope compressed_cut = WebSocketEnvelope(
      3, "/chat",
      {{true, 1, "q", 1000}, {false, 1, testing::PerMessageDeflate({"answer"})[0], 1500}});
  compressed_cut.mutable_websocket()->mutable_messages(1)->set_compressed(true);
  compressed_cut.mutable_websocket()->mutable_messages(1)->set_payload_truncated(true);
  compressed_cut.mutable_websocket()->mutable_messages(1)->set_payload_size(100'000);
  Write({damaged, cut, compressed_cut, WebSocketEnvelope(4, "/chat", Conversation())});
  RunOutcome out;
  ASSERT_NO_FATAL_FAILURE(RunToEnd(Options(echo.url()), &out));
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.stats.skipped.websocket, 3u);
  EXPECT_EQ(out.stats.dispatched, 1u);
  EXPECT_EQ(echo.handshakes().size(), 1u);
}

}  // namespace
}  // namespace doppel::replay
