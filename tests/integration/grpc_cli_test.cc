// gRPC end to end (issue #15), real processes on 127.0.0.1: doppel-grpc-demo v1 as the h2c
// primary of `doppel record --upstream h2c://`, its own gRPC client calling through the proxy
// (unary, server-streaming, an error status); the session replayed against v1 (no regression)
// and against v2 with --proto-set (the changed fields named: body.price_cents, a streamed
// item's tags, body.status, trailers.grpc-status) and without (messages compared as bytes);
// the same comparison live, with v2 as a mirror of `doppel record --mirror-proto-set`; a
// bidirectional call that waits for each answer passes through and replays.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

constexpr char kDemo[] = DOPPEL_GRPC_DEMO_BINARY;
constexpr char kProtoset[] = DOPPEL_GRPC_DEMO_PROTOSET;

struct CallOutput {
  int code = -1;
  std::string out;
};

CallOutput Call(unsigned port, const std::string& method, const std::string& request,
                int repeat = 1) {
  ChildProcess p({kDemo, "call", "--addr", "127.0.0.1:" + std::to_string(port), "--method", method,
                  "--json", request, "--repeat", std::to_string(repeat)});
  CallOutput r;
  r.code = p.Wait(30000);
  r.out = p.all_stdout() + p.all_stderr();
  return r;
}

// The calls recorded: each one also made straight to the primary, and the answers must be
// the same through the proxy (messages, status and trailers relayed).
const std::vector<std::pair<std::string, std::string>> kCalls = {
    {"GetItem", R"({"id":3})"},
    {"GetItem", R"({"id":7})"},
    {"GetItem", R"({"id":99})"},
    {"ListItems", R"({"tag":"kitchen"})"},
    {"CreateOrder", R"({"item_id":2,"quantity":3})"},
};

class GrpcCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("grpc-cli"));
    store_ = new std::string(*dir_ + "/store");
    ChildProcess primary({kDemo, "serve", "--port", "0", "--version", "v1"});
    const unsigned pport = PortOf(primary.WaitForLine("listening on "));
    ASSERT_NE(pport, 0u) << primary.all_stderr();
    ChildProcess recorder({DoppelBinary(), "--store", *store_, "record", "--listen", "127.0.0.1:0",
                           "--upstream", "h2c://127.0.0.1:" + std::to_string(pport), "--session",
                           "grpc"});
    const unsigned rport = PortOf(recorder.WaitForLine("listening on "));
    ASSERT_NE(rport, 0u) << recorder.all_stderr();
    for (const auto& [method, request] : kCalls) {
      const CallOutput direct = Call(pport, method, request, 2);
      const CallOutput proxied = Call(rport, method, request, 2);
      EXPECT_EQ(proxied.code, direct.code) << method << " " << request << "\n" << proxied.out;
      EXPECT_EQ(proxied.out, direct.out) << method << " " << request;
    }
    recorder.Signal(SIGINT);
    ASSERT_EQ(recorder.Wait(30000), 0) << recorder.all_stderr();
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete store_;
  }

  // Replays "grpc" against a fresh demo server of `version`; the report as JSON.
  int Replay(const std::string& version, bool proto_set, json::object* report) {
    ChildProcess target({kDemo, "serve", "--port", "0", "--version", version});
    const unsigned port = PortOf(target.WaitForLine("listening on "));
    if (port == 0) return -2;
    const std::string path = *dir_ + "/" + version + (proto_set ? "-typed" : "-bytes") + ".json";
    std::vector<std::string> args = {DoppelBinary(),
                                     "--store",
                                     *store_,
                                     "replay",
                                     "--session",
                                     "grpc",
                                     "--target",
                                     "h2c://127.0.0.1:" + std::to_string(port),
                                     "--max",
                                     "--allow-unsafe-methods",
                                     "--min-samples",
                                     "1",
                                     "--no-progress",
                                     "--report-json",
                                     path};
    if (proto_set) {
      args.push_back("--proto-set");
      args.push_back(kProtoset);
    }
    ChildProcess replay(args);
    const int code = replay.Wait(120000);
    output_ = replay.all_stdout() + replay.all_stderr();
    std::ifstream f(path);
    *report = json::parse(std::string((std::istreambuf_iterator<char>(f)), {})).as_object();
    return code;
  }

  // endpoint -> the paths of its fields with a regression verdict
  static std::map<std::string, std::set<std::string>> Regressions(const json::object& report) {
    std::map<std::string, std::set<std::string>> out;
    const auto& target = report.at("targets").as_array().at(0).as_object();
    for (const auto& e : target.at("endpoints").as_array()) {
      for (const auto& f : e.at("fields").as_array()) {
        if (f.at("verdict").as_string() == "regression") {
          out[std::string(e.at("name").as_string())].insert(std::string(f.at("path").as_string()));
        }
      }
    }
    return out;
  }

  static std::string* dir_;
  static std::string* store_;
  std::string output_;
};
std::string* GrpcCliTest::dir_ = nullptr;
std::string* GrpcCliTest::store_ = nullptr;

TEST_F(GrpcCliTest, SameBuildHasNoRegression) {
  json::object report;
  EXPECT_EQ(Replay("v1", true, &report), 0) << output_;
  EXPECT_EQ(report.at("verdict").at("regressions").as_int64(), 0) << output_;
  const auto& target = report.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(target.at("requests").as_int64(), 2 * static_cast<int64_t>(kCalls.size()));
  EXPECT_EQ(target.at("errors").as_int64(), 0) << output_;
}

TEST_F(GrpcCliTest, ChangedFieldsAreNamedWithTheDescriptorSet) {
  json::object report;
  EXPECT_EQ(Replay("v2", true, &report), 1) << output_;
  auto regressions = Regressions(report);
  EXPECT_EQ(regressions["POST /doppel.demo.v1.Shop/GetItem"],
            // item 3's price; item 7 turned into UNAVAILABLE without a message
            (std::set<std::string>{"body", "body.price_cents", "trailers.grpc-status",
                                   "trailers.grpc-message"}))
      << output_;
  EXPECT_EQ(regressions["POST /doppel.demo.v1.Shop/CreateOrder"],
            (std::set<std::string>{"body.status"}))
      << output_;
  // ListItems streams several messages: an array, item 5's tags changed.
  ASSERT_EQ(regressions["POST /doppel.demo.v1.Shop/ListItems"].size(), 1u) << output_;
  EXPECT_TRUE(regressions["POST /doppel.demo.v1.Shop/ListItems"].begin()->ends_with("].tags"))
      << *regressions["POST /doppel.demo.v1.Shop/ListItems"].begin();
}

// `doppel cat --proto-set`: each gRPC call's messages also as JSON ("grpc_messages": an object
// for a unary call, an array for a stream); without the set, the bodies only.
TEST_F(GrpcCliTest, CatDecodesMessagesWithTheDescriptorSet) {
  auto cat = [](std::vector<std::string> extra) {
    std::vector<std::string> args = {DoppelBinary(), "--store", *store_, "cat", "grpc"};
    args.insert(args.end(), extra.begin(), extra.end());
    ChildProcess p(args);
    EXPECT_EQ(p.Wait(30000), 0) << p.all_stderr();
    std::vector<json::object> lines;
    std::istringstream in(p.all_stdout());
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line).as_object());
    return lines;
  };
  int unary = 0, streamed = 0;
  for (const json::object& e : cat({"--proto-set", kProtoset})) {
    const json::object& req = e.at("request").as_object();
    const std::string target(req.at("target").as_string());
    if (target == "/doppel.demo.v1.Shop/GetItem") {
      ASSERT_TRUE(req.contains("grpc_messages")) << json::serialize(e);
      const std::string id = json::serialize(req.at("grpc_messages").as_object().at("id"));
      EXPECT_TRUE(id == "3" || id == "7" || id == "99" || id == "\"3\"" || id == "\"7\"" ||
                  id == "\"99\"")
          << id;
      ++unary;
    } else if (target == "/doppel.demo.v1.Shop/ListItems") {
      const json::object& res = e.at("response").as_object();
      ASSERT_TRUE(res.contains("grpc_messages")) << json::serialize(e);
      EXPECT_TRUE(res.at("grpc_messages").is_array()) << json::serialize(e);
      EXPECT_GT(res.at("grpc_messages").as_array().size(), 0u);
      ++streamed;
    }
  }
  EXPECT_EQ(unary, 6);  // 3 requests, each sent twice
  EXPECT_EQ(streamed, 2);
  for (const json::object& e : cat({})) {
    EXPECT_FALSE(e.at("request").as_object().contains("grpc_messages")) << json::serialize(e);
  }
  ChildProcess bad(
      {DoppelBinary(), "--store", *store_, "cat", "grpc", "--proto-set", *dir_ + "/missing.pb"});
  EXPECT_EQ(bad.Wait(30000), 2);
  EXPECT_NE(bad.all_stderr().find("missing.pb"), std::string::npos) << bad.all_stderr();
}

// Without --allow-unsafe-methods, the descriptor set's read-only methods (idempotency_level =
// NO_SIDE_EFFECTS: GetItem, ListItems) are sent and CreateOrder is not; without the set, no
// gRPC call is (they are POSTs), so there is nothing to replay (exit 2).
TEST_F(GrpcCliTest, ReadOnlyMethodsReplayWithoutAllowUnsafe) {
  ChildProcess target({kDemo, "serve", "--port", "0", "--version", "v1"});
  const unsigned port = PortOf(target.WaitForLine("listening on "));
  ASSERT_NE(port, 0u);
  auto replay = [&](bool proto_set, int want_exit) {
    std::vector<std::string> args = {
        DoppelBinary(), "--store",       *store_,    "replay",
        "--session",    "grpc",          "--target", "h2c://127.0.0.1:" + std::to_string(port),
        "--max",        "--min-samples", "1",        "--no-progress"};
    if (proto_set) {
      args.push_back("--proto-set");
      args.push_back(kProtoset);
    }
    ChildProcess p(args);
    EXPECT_EQ(p.Wait(120000), want_exit) << p.all_stdout() << p.all_stderr();
    return p.all_stdout() + p.all_stderr();
  };
  const std::string typed = replay(true, 0);
  EXPECT_NE(typed.find("skipping 2 POST/PUT/PATCH/DELETE requests"), std::string::npos) << typed;
  const std::string plain = replay(false, 2);
  EXPECT_NE(plain.find("skipping 10 POST/PUT/PATCH/DELETE requests"), std::string::npos) << plain;
  EXPECT_NE(plain.find("nothing to replay"), std::string::npos) << plain;
  EXPECT_NE(typed.find("replaying 8 of 10 envelopes"), std::string::npos) << typed;
}

TEST_F(GrpcCliTest, WithoutDescriptorSetMessagesAreComparedAsBytes) {
  json::object report;
  EXPECT_EQ(Replay("v2", false, &report), 1) << output_;
  auto regressions = Regressions(report);
  EXPECT_TRUE(regressions["POST /doppel.demo.v1.Shop/GetItem"].count("body")) << output_;
  EXPECT_TRUE(regressions["POST /doppel.demo.v1.Shop/CreateOrder"].count("body")) << output_;
}

// A descriptor set that cannot be read or is not one: exit 2 naming the file and what to do.
// --fault on HTTP/2 (issue #17): a gRPC abort is a trailers-only answer the gRPC client reads
// as the status asked for, scoped to one method; other methods pass untouched.
// `doppel record --mirror h2c://v2 --mirror-proto-set FILE`: each call also goes to the v2
// mirror, and the live comparison names the changed message field; without the set the
// messages are compared as bytes, and the whole body is what differs.
TEST(GrpcMirrorTest, MirrorDiffNamesChangedFieldsWithTheDescriptorSet) {
  ChildProcess primary({kDemo, "serve", "--port", "0", "--version", "v1"});
  const unsigned pport = PortOf(primary.WaitForLine("listening on "));
  ASSERT_NE(pport, 0u) << primary.all_stderr();
  ChildProcess candidate({kDemo, "serve", "--port", "0", "--version", "v2"});
  const unsigned cport = PortOf(candidate.WaitForLine("listening on "));
  ASSERT_NE(cport, 0u) << candidate.all_stderr();
  const std::string dir = MakeTempDir("grpc-mirror");
  for (const bool typed : {true, false}) {
    std::vector<std::string> flags = {"--session",
                                      typed ? "typed" : "bytes",
                                      "--sample",
                                      "0",
                                      "--mirror-diff",
                                      "--mirror",
                                      "h2c://127.0.0.1:" + std::to_string(cport) + ",name=v2"};
    if (typed) flags.insert(flags.end(), {"--mirror-proto-set", kProtoset});
    RecordProcess rec(dir + "/store", "h2c://127.0.0.1:" + std::to_string(pport), flags);
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    const CallOutput call = Call(rec.port(), "GetItem", R"({"id":3})", 2);
    EXPECT_EQ(call.code, 0) << call.out;
    json::object mirror;
    ASSERT_TRUE(Eventually(
        [&] {
          const json::object s = rec.Status();
          if (!s.contains("mirrors")) return false;
          mirror = s.at("mirrors").as_array().at(0).as_object();
          return mirror.at("diff").as_object().at("mismatch").to_number<int>() == 2;
        },
        10000))
        << json::serialize(rec.Status());
    const json::array& top = mirror.at("diff").as_object().at("top_paths").as_array();
    std::set<std::string> paths;
    for (const auto& t : top) {
      EXPECT_EQ(t.as_object().at("endpoint").as_string(), "POST /doppel.demo.v1.Shop/GetItem");
      paths.insert(std::string(t.as_object().at("path").as_string()));
    }
    EXPECT_EQ(paths,
              (typed ? std::set<std::string>{"body.price_cents"} : std::set<std::string>{"body"}))
        << json::serialize(top);
  }
  std::filesystem::remove_all(dir);
}

TEST(GrpcFaultTest, AbortAnswersTheGrpcStatusForOneMethod) {
  const std::string dir = MakeTempDir("grpc-fault");
  ChildProcess primary({kDemo, "serve", "--port", "0", "--version", "v1"});
  const unsigned pport = PortOf(primary.WaitForLine("listening on "));
  ASSERT_NE(pport, 0u) << primary.all_stderr();
  ChildProcess recorder({DoppelBinary(), "--store", dir + "/store", "record", "--listen",
                         "127.0.0.1:0", "--upstream", "h2c://127.0.0.1:" + std::to_string(pport),
                         "--fault", "abort:grpc=14:100%", "--fault-rule",
                         "uri=/doppel.demo.v1.Shop/GetItem"});
  const unsigned rport = PortOf(recorder.WaitForLine("listening on "));
  ASSERT_NE(rport, 0u) << recorder.all_stderr();
  const CallOutput aborted = Call(rport, "GetItem", R"({"id":3})");
  EXPECT_EQ(aborted.code, 3) << aborted.out;
  EXPECT_NE(aborted.out.find("status: UNAVAILABLE fault injected by doppel"), std::string::npos)
      << aborted.out;
  const CallOutput direct = Call(pport, "ListItems", R"({"tag":"kitchen"})");
  const CallOutput listed = Call(rport, "ListItems", R"({"tag":"kitchen"})");
  EXPECT_EQ(listed.code, 0) << listed.out;
  EXPECT_EQ(listed.out, direct.out);
  recorder.Signal(SIGINT);
  EXPECT_EQ(recorder.Wait(30000), 0) << recorder.all_stderr();
  EXPECT_NE(recorder.all_stdout().find("faults injected: abort 1"), std::string::npos)
      << recorder.all_stdout();
  std::filesystem::remove_all(dir);
}

// A bidirectional call whose client waits for each answer before it sends its next message:
// the proxy passes each message on as it comes (a body buffered until its end would hold the
// call until its deadline), the call is recorded with all its messages both ways, and its
// replay against v2 names the changed field of the streamed answer.
TEST(GrpcBidiTest, PingPongCallPassesThroughAndReplays) {
  const std::string dir = MakeTempDir("grpc-bidi");
  ChildProcess primary({kDemo, "serve", "--port", "0", "--version", "v1"});
  const unsigned pport = PortOf(primary.WaitForLine("listening on "));
  ASSERT_NE(pport, 0u) << primary.all_stderr();
  RecordProcess recorder(dir + "/store", "h2c://127.0.0.1:" + std::to_string(pport),
                         {"--session", "bidi"});
  ASSERT_TRUE(recorder.started()) << recorder.child().all_stderr();
  const unsigned rport = recorder.port();
  auto quote = [](unsigned port, const std::vector<int>& ids) {
    std::vector<std::string> args = {
        kDemo,      "call",       "--addr",        "127.0.0.1:" + std::to_string(port),
        "--method", "QuoteItems", "--deadline-ms", "5000"};
    for (int id : ids) args.insert(args.end(), {"--json", R"({"id":)" + std::to_string(id) + "}"});
    ChildProcess p(args);
    CallOutput r;
    r.code = p.Wait(30000);
    r.out = p.all_stdout() + p.all_stderr();
    return r;
  };
  const CallOutput direct = quote(pport, {1, 3, 5});
  ASSERT_EQ(direct.code, 0) << direct.out;
  const CallOutput proxied = quote(rport, {1, 3, 5});
  EXPECT_EQ(proxied.code, 0) << proxied.out;
  EXPECT_EQ(proxied.out, direct.out);
  // The service ends the call at an unknown id while the client's side is still open: the
  // proxy's upstream stream is reset, and the client gets the same answer as directly.
  const CallOutput direct_nf = quote(pport, {1, 99, 3});
  ASSERT_EQ(direct_nf.code, 3) << direct_nf.out;
  const CallOutput proxied_nf = quote(rport, {1, 99, 3});
  EXPECT_EQ(proxied_nf.code, 3) << proxied_nf.out;
  EXPECT_EQ(proxied_nf.out, direct_nf.out);
  recorder.child().Signal(SIGINT);
  ASSERT_EQ(recorder.child().Wait(30000), 0) << recorder.child().all_stderr();

  ChildProcess cat(
      {DoppelBinary(), "--store", dir + "/store", "cat", "bidi", "--proto-set", kProtoset});
  ASSERT_EQ(cat.Wait(30000), 0) << cat.all_stderr();
  std::vector<json::object> calls;
  std::istringstream lines(cat.all_stdout());
  for (std::string line; std::getline(lines, line);) calls.push_back(json::parse(line).as_object());
  ASSERT_EQ(calls.size(), 2u) << cat.all_stdout();
  // "grpc_messages": an array of several messages, one message as an object.
  auto messages = [](const json::object& call, const char* side) -> size_t {
    const json::value& m = call.at(side).at("grpc_messages");
    return m.is_array() ? m.as_array().size() : 1;
  };
  EXPECT_EQ(messages(calls[0], "request"), 3u) << cat.all_stdout();
  EXPECT_EQ(messages(calls[0], "response"), 3u) << cat.all_stdout();
  EXPECT_EQ(messages(calls[1], "request"), 2u) << cat.all_stdout();  // 1 and 99
  EXPECT_EQ(messages(calls[1], "response"), 1u) << cat.all_stdout();

  ChildProcess v2({kDemo, "serve", "--port", "0", "--version", "v2"});
  const unsigned v2port = PortOf(v2.WaitForLine("listening on "));
  ASSERT_NE(v2port, 0u);
  const std::string report = dir + "/report.json";
  ChildProcess replay({DoppelBinary(), "--store", dir + "/store", "replay", "--session", "bidi",
                       "--target", "h2c://127.0.0.1:" + std::to_string(v2port), "--max",
                       "--min-samples", "1", "--no-progress", "--proto-set", kProtoset,
                       "--report-json", report});
  EXPECT_EQ(replay.Wait(60000), 1) << replay.all_stdout() << replay.all_stderr();
  std::ifstream f(report);
  const json::object r =
      json::parse(std::string((std::istreambuf_iterator<char>(f)), {})).as_object();
  std::set<std::string> paths, exemplars;
  const auto& target = r.at("targets").as_array().at(0).as_object();
  for (const auto& endpoint : target.at("endpoints").as_array()) {
    EXPECT_EQ(endpoint.at("name").as_string(), "POST /doppel.demo.v1.Shop/QuoteItems");
    for (const auto& field : endpoint.at("fields").as_array()) {
      if (field.at("verdict").as_string() != "regression") continue;
      paths.insert(std::string(field.at("path").as_string()));
      for (const auto& x : field.at("exemplars").as_array()) {
        exemplars.insert(std::string(x.at("path").as_string()));
      }
    }
  }
  // v2 changed item 3's price: the second message of the streamed answer.
  EXPECT_EQ(paths, (std::set<std::string>{"body[*].price_cents"})) << json::serialize(r);
  EXPECT_EQ(exemplars, (std::set<std::string>{"body[1].price_cents"})) << json::serialize(r);
  std::filesystem::remove_all(dir);
}

TEST(GrpcUsageTest, BadProtoSetIsExitTwo) {
  const std::string dir = MakeTempDir("grpc-usage");
  std::ofstream(dir + "/not-a-set.pb") << "this is text";
  for (const std::string& set : {dir + "/missing.pb", dir + "/not-a-set.pb"}) {
    ChildProcess replay({DoppelBinary(), "--store", dir + "/store", "replay", "--session", "s",
                         "--target", "h2c://127.0.0.1:9", "--proto-set", set});
    EXPECT_EQ(replay.Wait(30000), 2) << replay.all_stderr();
    EXPECT_NE(replay.all_stderr().find(set), std::string::npos) << replay.all_stderr();
  }
  ChildProcess bad({DoppelBinary(), "--store", dir + "/store", "replay", "--session", "s",
                    "--target", "h2c://127.0.0.1:9", "--proto-set", dir + "/not-a-set.pb"});
  bad.Wait(30000);
  EXPECT_NE(bad.all_stderr().find("--descriptor_set_out"), std::string::npos) << bad.all_stderr();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace doppel::testing
