// doppel-grpc-demo (tools/grpc_demo, issue #15) as real processes on 127.0.0.1: `serve
// --version v1` and `serve --version v2` on ephemeral ports, `call` against each, every line of
// its output checked against what tools/grpc_demo/catalogue.h documents (the catalogue, the
// errors, the four v2 changes and nothing else). And shop.protoset, made by the build, is a
// FileDescriptorSet that describes doppel.demo.v1.Shop.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/child_process.h"

namespace doppel::testing {
namespace {

constexpr char kBinary[] = DOPPEL_GRPC_DEMO_BINARY;
constexpr char kProtoset[] = DOPPEL_GRPC_DEMO_PROTOSET;

constexpr char kItem3V1[] =
    R"({"id":"3","name":"Wireless Headphones","price_cents":"8999","tags":["electronics","audio"],)"
    R"("stock":{"count":7,"warehouse":"HAM-2"}})";
constexpr char kItem3V2[] =
    R"({"id":"3","name":"Wireless Headphones","price_cents":"9499","tags":["electronics","audio"],)"
    R"("stock":{"count":7,"warehouse":"HAM-2"}})";
constexpr char kItem7[] =
    R"({"id":"7","name":"Smart Speaker","price_cents":"5999","tags":["electronics","audio"],)"
    R"("stock":{"count":23,"warehouse":"MUC-3"}})";
// Item 5's stock count is 0, a default value: the JSON mapping leaves it out.
constexpr char kItem5V1[] =
    R"({"id":"5","name":"Ceramic Teapot","price_cents":"2450","tags":["kitchen","tea"],)"
    R"("stock":{"warehouse":"MUC-3"}})";
constexpr char kItem5V2List[] =
    R"({"id":"5","name":"Ceramic Teapot","price_cents":"2450","tags":["kitchen","tea","sale"],)"
    R"("stock":{"warehouse":"MUC-3"}})";

struct Output {
  int exit_code = -1;
  std::vector<std::string> lines;  // stdout
  std::string err;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Output RunDemo(std::vector<std::string> args) {
  args.insert(args.begin(), kBinary);
  ChildProcess p(args);
  Output out;
  out.exit_code = p.Wait(30000);
  out.lines = Lines(p.all_stdout());
  out.err = p.all_stderr();
  return out;
}

Output Call(unsigned port, const std::string& method, const std::string& json,
            std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      "call", "--addr", "127.0.0.1:" + std::to_string(port), "--method", method, "--json", json};
  args.insert(args.end(), extra.begin(), extra.end());
  return RunDemo(args);
}

// The item ids of ListItems' output lines (all but the status line), in order.
std::vector<int> Ids(const Output& out) {
  std::vector<int> ids;
  for (const std::string& line : out.lines) {
    if (line.rfind(R"({"id":")", 0) != 0) continue;
    ids.push_back(std::stoi(line.substr(7)));
  }
  return ids;
}

class GrpcDemoTest : public ::testing::Test {
 protected:
  // No ASSERT here: a failed start fails every test in SetUp instead of skipping them.
  static void SetUpTestSuite() {
    v1_ = new ChildProcess({kBinary, "serve", "--port", "0", "--version", "v1"});
    v1_listen_ = v1_->WaitForLine("listening on ");
    v2_ = new ChildProcess({kBinary, "serve", "--port", "0", "--version", "v2"});
    v2_listen_ = v2_->WaitForLine("listening on ");
  }
  static void TearDownTestSuite() {
    delete v1_;
    delete v2_;
    v1_ = v2_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(v1_listen_.rfind("127.0.0.1:", 0), 0u) << v1_->all_stderr();
    ASSERT_EQ(v2_listen_.rfind("127.0.0.1:", 0), 0u) << v2_->all_stderr();
    v1 = PortOf(v1_listen_);
    v2 = PortOf(v2_listen_);
    ASSERT_NE(v1, 0u);
    ASSERT_NE(v2, 0u);
  }

  unsigned v1 = 0, v2 = 0;

 private:
  static inline ChildProcess* v1_ = nullptr;
  static inline ChildProcess* v2_ = nullptr;
  static inline std::string v1_listen_, v2_listen_;
};

TEST_F(GrpcDemoTest, GetItem3PriceDiffersBetweenV1AndV2) {
  Output a = Call(v1, "GetItem", R"({"id":3})");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.lines, (std::vector<std::string>{kItem3V1, "status: OK"}));
  Output b = Call(v2, "GetItem", R"({"id":"3"})");  // int64 may be a JSON string too
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.lines, (std::vector<std::string>{kItem3V2, "status: OK"}));
}

TEST_F(GrpcDemoTest, GetItemOfTheOtherItemsIsTheSameInV1AndV2) {
  for (int id : {1, 2, 4, 5, 6, 8, 9, 10}) {
    SCOPED_TRACE("item " + std::to_string(id));
    const std::string json = R"({"id":)" + std::to_string(id) + "}";
    Output a = Call(v1, "GetItem", json);
    Output b = Call(v2, "GetItem", json);
    EXPECT_EQ(a.exit_code, 0) << a.err;
    EXPECT_EQ(b.exit_code, 0) << b.err;
    ASSERT_EQ(a.lines.size(), 2u);
    EXPECT_EQ(Ids(a), std::vector<int>{id});
    EXPECT_EQ(a.lines[1], "status: OK");
    EXPECT_EQ(a.lines, b.lines);
  }
  Output five = Call(v2, "GetItem", R"({"id":5})");
  EXPECT_EQ(five.lines, (std::vector<std::string>{kItem5V1, "status: OK"})) << "no sale tag";
}

TEST_F(GrpcDemoTest, GetItem7IsUnavailableInV2Only) {
  Output a = Call(v1, "GetItem", R"({"id":7})");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.lines, (std::vector<std::string>{kItem7, "status: OK"}));
  Output b = Call(v2, "GetItem", R"({"id":7})");
  EXPECT_EQ(b.exit_code, 3) << b.err;
  EXPECT_EQ(b.lines, std::vector<std::string>{"status: UNAVAILABLE maintenance"});
}

TEST_F(GrpcDemoTest, GetItemOfAnUnknownIdIsNotFound) {
  for (unsigned port : {v1, v2}) {
    for (const char* id : {"99", "0", "-1"}) {
      Output out = Call(port, "GetItem", std::string(R"({"id":)") + id + "}");
      EXPECT_EQ(out.exit_code, 3) << out.err;
      EXPECT_EQ(out.lines,
                std::vector<std::string>{std::string("status: NOT_FOUND no item ") + id});
    }
  }
}

TEST_F(GrpcDemoTest, ListItemsStreamsTheCatalogueInIdOrder) {
  Output a = Call(v1, "ListItems", "{}");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(a.lines.size(), 11u);
  EXPECT_EQ(Ids(a), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(a.lines[2], kItem3V1);
  EXPECT_EQ(a.lines[4], kItem5V1);
  EXPECT_EQ(a.lines[6], kItem7);
  EXPECT_EQ(a.lines[10], "status: OK");

  // v2: item 3's price and item 5's "sale" tag differ, every other line is the same.
  Output b = Call(v2, "ListItems", "{}");
  EXPECT_EQ(b.exit_code, 0) << b.err;
  ASSERT_EQ(b.lines.size(), 11u);
  for (size_t i = 0; i < 11; ++i) {
    if (i == 2 || i == 4) continue;
    EXPECT_EQ(a.lines[i], b.lines[i]) << "line " << i;
  }
  EXPECT_EQ(b.lines[2], kItem3V2);
  EXPECT_EQ(b.lines[4], kItem5V2List);
  EXPECT_EQ(b.lines[6], kItem7) << "ListItems still streams item 7 in v2";
}

TEST_F(GrpcDemoTest, ListItemsFiltersByTagAndLimits) {
  struct Case {
    unsigned port;
    const char* json;
    std::vector<int> ids;
  };
  const Case cases[] = {
      {v1, R"({"limit":3})", {1, 2, 3}},
      {v1, R"({"limit":10})", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
      {v1, R"({"limit":50})", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
      {v1, R"({"tag":"kitchen"})", {2, 4, 5}},
      {v1, R"({"tag":"kitchen","limit":2})", {2, 4}},
      {v1, R"({"tag":"home"})", {1, 9, 10}},
      {v1, R"({"tag":"sale"})", {}},
      {v1, R"({"tag":"nothing"})", {}},
      {v2, R"({"tag":"sale"})", {5}},
      {v2, R"({"tag":"audio","limit":1})", {3}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.port == v1 ? "v1 " : "v2 ") + c.json);
    Output out = Call(c.port, "ListItems", c.json);
    EXPECT_EQ(out.exit_code, 0) << out.err;
    EXPECT_EQ(Ids(out), c.ids);
    ASSERT_EQ(out.lines.size(), c.ids.size() + 1);
    EXPECT_EQ(out.lines.back(), "status: OK");
  }
  Output bad = Call(v1, "ListItems", R"({"limit":-1})");
  EXPECT_EQ(bad.exit_code, 3) << bad.err;
  EXPECT_EQ(bad.lines,
            std::vector<std::string>{"status: INVALID_ARGUMENT limit must be >= 0, not -1"});
}

TEST_F(GrpcDemoTest, CreateOrderStatusDiffersBetweenV1AndV2) {
  Output a = Call(v1, "CreateOrder", R"({"item_id":2,"quantity":3})");
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.lines, (std::vector<std::string>{
                         R"({"order_id":"ord-2-3","total_cents":"8997","status":"CONFIRMED"})",
                         "status: OK"}));
  Output b = Call(v2, "CreateOrder", R"({"item_id":2,"quantity":3})");
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.lines, (std::vector<std::string>{
                         R"({"order_id":"ord-2-3","total_cents":"8997","status":"PENDING"})",
                         "status: OK"}));
  // Item 3's v2 price shows in the total.
  EXPECT_EQ(Call(v1, "CreateOrder", R"({"item_id":3,"quantity":2})").lines[0],
            R"({"order_id":"ord-3-2","total_cents":"17998","status":"CONFIRMED"})");
  EXPECT_EQ(Call(v2, "CreateOrder", R"({"item_id":3,"quantity":2})").lines[0],
            R"({"order_id":"ord-3-2","total_cents":"18998","status":"PENDING"})");
}

TEST_F(GrpcDemoTest, CreateOrderRejectsBadQuantitiesAndUnknownItems) {
  for (unsigned port : {v1, v2}) {
    Output zero = Call(port, "CreateOrder", R"({"item_id":2,"quantity":0})");
    EXPECT_EQ(zero.exit_code, 3) << zero.err;
    EXPECT_EQ(zero.lines,
              std::vector<std::string>{"status: INVALID_ARGUMENT quantity must be > 0, not 0"});
    Output negative = Call(port, "CreateOrder", R"({"item_id":2,"quantity":-4})");
    EXPECT_EQ(negative.exit_code, 3) << negative.err;
    EXPECT_EQ(negative.lines,
              std::vector<std::string>{"status: INVALID_ARGUMENT quantity must be > 0, not -4"});
    Output unknown = Call(port, "CreateOrder", R"({"item_id":99,"quantity":1})");
    EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
    EXPECT_EQ(unknown.lines, std::vector<std::string>{"status: NOT_FOUND no item 99"});
  }
}

TEST_F(GrpcDemoTest, RepeatMakesTheCallsOneAfterTheOther) {
  Output get = Call(v1, "GetItem", R"({"id":3})", {"--repeat", "3"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.lines, (std::vector<std::string>{kItem3V1, "status: OK", kItem3V1, "status: OK",
                                                 kItem3V1, "status: OK"}));
  Output list = Call(v2, "ListItems", R"({"limit":2})", {"--repeat", "2"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(Ids(list), (std::vector<int>{1, 2, 1, 2}));
  ASSERT_EQ(list.lines.size(), 6u);
  EXPECT_EQ(list.lines[2], "status: OK");
  EXPECT_EQ(list.lines[5], "status: OK");
  Output failing = Call(v2, "GetItem", R"({"id":7})", {"--repeat", "2", "--deadline-ms", "2000"});
  EXPECT_EQ(failing.exit_code, 3) << failing.err;
  EXPECT_EQ(failing.lines, (std::vector<std::string>{"status: UNAVAILABLE maintenance",
                                                     "status: UNAVAILABLE maintenance"}));
}

// QuoteItems answers each message as GetItem does, one answer per request (the client sends
// the next only after it read the last), and ends with the first unknown id.
TEST_F(GrpcDemoTest, QuoteItemsAnswersEachMessageInTurn) {
  Output a = Call(v1, "QuoteItems", R"({"id":3})", {"--json", R"({"id":5})"});
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.lines, (std::vector<std::string>{kItem3V1, kItem5V1, "status: OK"}));
  Output b = Call(v2, "QuoteItems", R"({"id":3})", {"--json", R"({"id":99})", "--json", "{}"});
  EXPECT_EQ(b.exit_code, 3) << b.err;
  EXPECT_EQ(b.lines, (std::vector<std::string>{kItem3V2, "status: NOT_FOUND no item 99"}));
  Output two = Call(v1, "GetItem", R"({"id":3})", {"--json", R"({"id":5})"});
  EXPECT_EQ(two.exit_code, 2);
  EXPECT_NE(two.err.find("only QuoteItems takes several"), std::string::npos) << two.err;
  Output bad = Call(v1, "QuoteItems", R"({"id":3})", {"--json", R"({"id":)"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.lines.empty()) << "no call is made";
}

TEST_F(GrpcDemoTest, BadUsageExits2WithAMessage) {
  Output truncated = Call(v1, "GetItem", R"({"id":)");
  EXPECT_EQ(truncated.exit_code, 2);
  EXPECT_TRUE(truncated.lines.empty()) << "no call is made";
  EXPECT_NE(truncated.err.find("--json is not a valid doppel.demo.v1.GetItemRequest for GetItem"),
            std::string::npos)
      << truncated.err;

  Output unknown_field = Call(v1, "CreateOrder", R"({"item":2,"quantity":1})");
  EXPECT_EQ(unknown_field.exit_code, 2);
  EXPECT_NE(unknown_field.err.find("doppel.demo.v1.CreateOrderRequest"), std::string::npos)
      << unknown_field.err;
  EXPECT_NE(unknown_field.err.find("item"), std::string::npos) << unknown_field.err;

  Output wrong_type = Call(v1, "GetItem", R"({"id":"three"})");
  EXPECT_EQ(wrong_type.exit_code, 2);
  EXPECT_NE(wrong_type.err.find("three"), std::string::npos) << wrong_type.err;

  Output method = Call(v1, "DeleteItem", "{}");
  EXPECT_EQ(method.exit_code, 2);
  EXPECT_NE(method.err.find("DeleteItem"), std::string::npos) << method.err;

  Output repeat = Call(v1, "GetItem", R"({"id":1})", {"--repeat", "0"});
  EXPECT_EQ(repeat.exit_code, 2);
  EXPECT_NE(repeat.err.find("--repeat"), std::string::npos) << repeat.err;

  Output no_command = RunDemo({});
  EXPECT_EQ(no_command.exit_code, 2);
  EXPECT_FALSE(no_command.err.empty());

  Output version = RunDemo({"serve", "--port", "0", "--version", "v3"});
  EXPECT_EQ(version.exit_code, 2);
  EXPECT_NE(version.err.find("v3"), std::string::npos) << version.err;
}

TEST_F(GrpcDemoTest, AnUnreachableServerIsUnavailable) {
  const unsigned port = FreePort();
  ASSERT_NE(port, 0u);
  Output out = Call(port, "GetItem", R"({"id":1})", {"--deadline-ms", "3000"});
  EXPECT_EQ(out.exit_code, 3) << out.err;
  ASSERT_EQ(out.lines.size(), 1u);
  EXPECT_EQ(out.lines[0].rfind("status: UNAVAILABLE ", 0), 0u) << out.lines[0];
}

TEST_F(GrpcDemoTest, ServeFailsOnABusyPort) {
  Output out = RunDemo({"serve", "--port", std::to_string(v1), "--version", "v2"});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_TRUE(out.lines.empty());
  EXPECT_NE(out.err.find("cannot listen on 127.0.0.1:" + std::to_string(v1)), std::string::npos)
      << out.err;
  // The v1 server still answers on it.
  EXPECT_EQ(Call(v1, "GetItem", R"({"id":3})").lines[0], kItem3V1);
}

TEST(GrpcDemoServe, StopsWithExitCode0OnSigintAndSigterm) {
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(sig == SIGINT ? "SIGINT" : "SIGTERM");
    ChildProcess server({kBinary, "serve", "--port", "0"});
    const std::string listen = server.WaitForLine("listening on ");
    ASSERT_EQ(listen.rfind("127.0.0.1:", 0), 0u) << server.all_stderr();
    const unsigned port = PortOf(listen);
    // A call first, so the stop has a served connection to close.
    Output out = Call(port, "ListItems", R"({"limit":1})");
    EXPECT_EQ(out.exit_code, 0) << out.err;
    server.Signal(sig);
    EXPECT_EQ(server.Wait(10000), 0) << server.all_stderr();
  }
}

TEST(GrpcDemoProtoset, IsAFileDescriptorSetWithTheShopService) {
  std::ifstream in(kProtoset, std::ios::binary);
  ASSERT_TRUE(in) << "missing: " << kProtoset;
  std::stringstream bytes;
  bytes << in.rdbuf();
  google::protobuf::FileDescriptorSet set;
  ASSERT_TRUE(set.ParseFromString(bytes.str()));
  ASSERT_EQ(set.file_size(), 1) << "shop.proto imports nothing";
  EXPECT_EQ(set.file(0).name(), "shop.proto");
  EXPECT_EQ(set.file(0).package(), "doppel.demo.v1");

  google::protobuf::DescriptorPool pool;
  for (const auto& file : set.file()) ASSERT_NE(pool.BuildFile(file), nullptr) << file.name();
  const auto* shop = pool.FindServiceByName("doppel.demo.v1.Shop");
  ASSERT_NE(shop, nullptr);
  ASSERT_EQ(shop->method_count(), 4);
  const auto* get = shop->FindMethodByName("GetItem");
  const auto* list = shop->FindMethodByName("ListItems");
  const auto* create = shop->FindMethodByName("CreateOrder");
  const auto* quote = shop->FindMethodByName("QuoteItems");
  ASSERT_NE(get, nullptr);
  ASSERT_NE(list, nullptr);
  ASSERT_NE(create, nullptr);
  ASSERT_NE(quote, nullptr);
  EXPECT_TRUE(quote->client_streaming());
  EXPECT_TRUE(quote->server_streaming());
  EXPECT_EQ(get->input_type()->full_name(), "doppel.demo.v1.GetItemRequest");
  EXPECT_EQ(get->output_type()->full_name(), "doppel.demo.v1.Item");
  EXPECT_FALSE(get->server_streaming());
  EXPECT_TRUE(list->server_streaming());
  EXPECT_FALSE(list->client_streaming());
  EXPECT_EQ(create->output_type()->full_name(), "doppel.demo.v1.Order");
  const auto* price = get->output_type()->FindFieldByName("price_cents");
  ASSERT_NE(price, nullptr);
  EXPECT_EQ(price->type(), google::protobuf::FieldDescriptor::TYPE_INT64);
  const auto* stock = get->output_type()->FindFieldByName("stock");
  ASSERT_NE(stock, nullptr);
  EXPECT_EQ(stock->message_type()->full_name(), "doppel.demo.v1.Stock");
}

}  // namespace
}  // namespace doppel::testing
