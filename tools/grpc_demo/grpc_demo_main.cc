// doppel-grpc-demo: a gRPC test peer (issue #15). The Shop service of shop.proto over plaintext
// HTTP/2 (h2c), and a client for it. README.md here; the data and the v2 changes are listed in
// catalogue.h.
//
//   doppel-grpc-demo serve --port P [--host 127.0.0.1] [--version v1|v2]
//   doppel-grpc-demo call --addr HOST:PORT --method GetItem|ListItems|CreateOrder|QuoteItems
//                         --json '{...}' [--json '{...}' ...] [--repeat N] [--deadline-ms 5000]
//
// serve prints "listening on HOST:PORT" on stdout once it accepts (--port 0: an ephemeral
// port); SIGINT or SIGTERM stop it with exit code 0; exit code 2 when it cannot listen.
//
// call parses the request from JSON (proto3 JSON mapping), makes the call --repeat times on
// one channel, one after the other, and prints each response message as one JSON line (proto
// field names; int64 fields are strings, fields with default values are left out, as the
// mapping says), then "status: CODE_NAME[ message]" after each call, e.g. "status: OK" or
// "status: NOT_FOUND no item 99". QuoteItems (bidirectional) takes one --json per request
// message and sends each only after the answer to the one before arrived. Exit code 0 when every
// call ended OK, 3 when any ended with another status (also when the server cannot be reached:
// UNAVAILABLE), 2 on bad usage.
//
// All of the tool's gRPC code is in this file, to keep it to one heavy translation unit.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shop.grpc.pb.h"
#include "tools/grpc_demo/catalogue.h"

namespace {

namespace pb = google::protobuf;
using doppel::demo::v1::CreateOrderRequest;
using doppel::demo::v1::GetItemRequest;
using doppel::demo::v1::Item;
using doppel::demo::v1::ListItemsRequest;
using doppel::demo::v1::Order;
using doppel::demo::v1::Shop;
using doppel::grpc_demo::Catalogue;
using doppel::grpc_demo::Version;

constexpr int kExitUsage = 2;
constexpr int kExitCallFailed = 3;

// The synchronous Shop service: gRPC's thread pool calls these; the catalogue is immutable.
class ShopService final : public Shop::Service {
 public:
  explicit ShopService(Version version) : catalogue_(version) {}

  grpc::Status GetItem(grpc::ServerContext*, const GetItemRequest* request, Item* item) override {
    return catalogue_.GetItem(*request, item);
  }

  grpc::Status ListItems(grpc::ServerContext* context, const ListItemsRequest* request,
                         grpc::ServerWriter<Item>* writer) override {
    std::vector<Item> items;
    grpc::Status status = catalogue_.ListItems(*request, &items);
    if (!status.ok()) return status;
    for (const Item& item : items) {
      if (context->IsCancelled() || !writer->Write(item)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status CreateOrder(grpc::ServerContext*, const CreateOrderRequest* request,
                           Order* order) override {
    return catalogue_.CreateOrder(*request, order);
  }

  grpc::Status QuoteItems(grpc::ServerContext*,
                          grpc::ServerReaderWriter<Item, GetItemRequest>* stream) override {
    GetItemRequest request;
    while (stream->Read(&request)) {
      Item item;
      grpc::Status status = catalogue_.GetItem(request, &item);
      if (!status.ok()) return status;
      if (!stream->Write(item)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    return grpc::Status::OK;
  }

 private:
  const Catalogue catalogue_;
};

int Serve(const std::string& host, int port, Version version) {
  // Block the stop signals before gRPC starts any thread, so every thread inherits the mask
  // and sigwait() below is the only place they are delivered.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const bool v6 = host.find(':') != std::string::npos;
  const std::string shown_host = v6 ? "[" + host + "]" : host;
  ShopService service(version);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let two servers share a port: a busy port
  // must fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int bound_port = 0;
  builder.AddListeningPort(shown_host + ":" + std::to_string(port),
                           grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::cerr << "doppel-grpc-demo serve: cannot listen on " << shown_host << ":" << port << "\n";
    return kExitUsage;
  }
  std::cout << "listening on " << shown_host << ":" << bound_port
            << std::endl;  // flushes: tests and scripts wait for this line

  int sig = 0;
  sigwait(&stop_signals, &sig);
  // Calls in flight get 2 s to finish, then are cancelled.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  return 0;
}

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

void PrintMessage(const pb::Message& message) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!pb::util::MessageToJsonString(message, &json, options).ok()) {
    json = "{\"error\":\"cannot render the response as JSON\"}";
  }
  std::cout << json << "\n";
}

// Prints the status line; true when the call ended OK.
bool PrintStatus(const grpc::Status& status) {
  std::cout << "status: " << CodeName(status.error_code());
  if (!status.error_message().empty()) std::cout << " " << status.error_message();
  std::cout << "\n";
  return status.ok();
}

struct CallOptions {
  std::string addr;
  std::string method;
  std::vector<std::string> json;  // one request message; QuoteItems: one or more
  int repeat = 1;
  int deadline_ms = 5000;
};

// Parses `json` into `message`; false (and why on stderr) when it is not one.
bool ParseRequest(const std::string& json, const std::string& method, pb::Message* message) {
  const auto parsed = pb::util::JsonStringToMessage(json, message);
  if (parsed.ok()) return true;
  // protobuf's parse errors may span lines (a caret under the input): one line here.
  std::string why(parsed.message());
  std::replace(why.begin(), why.end(), '\n', ' ');
  while (!why.empty() && why.back() == ' ') why.pop_back();
  std::cerr << "doppel-grpc-demo call: --json is not a valid "
            << message->GetDescriptor()->full_name() << " for " << method << ": " << why << "\n";
  return false;
}

// QuoteItems: each request written after the answer to the one before was read.
grpc::Status QuoteItems(Shop::Stub& stub, grpc::ClientContext* context,
                        const std::vector<GetItemRequest>& requests) {
  std::unique_ptr<grpc::ClientReaderWriter<GetItemRequest, Item>> stream = stub.QuoteItems(context);
  for (const GetItemRequest& request : requests) {
    Item item;
    if (!stream->Write(request) || !stream->Read(&item)) break;  // the call ended: Finish says why
    PrintMessage(item);
  }
  stream->WritesDone();
  return stream->Finish();
}

int Call(const CallOptions& options) {
  GetItemRequest get_item;
  ListItemsRequest list_items;
  CreateOrderRequest create_order;
  std::vector<GetItemRequest> quotes;
  pb::Message* request = &get_item;
  if (options.method == "ListItems") request = &list_items;
  if (options.method == "CreateOrder") request = &create_order;
  if (options.method == "QuoteItems") {
    for (const std::string& json : options.json) {
      if (!ParseRequest(json, options.method, &quotes.emplace_back())) return kExitUsage;
    }
  } else if (options.json.size() != 1) {
    std::cerr << "doppel-grpc-demo call: " << options.method
              << " takes one --json (only QuoteItems takes several)\n";
    return kExitUsage;
  } else if (!ParseRequest(options.json.front(), options.method, request)) {
    return kExitUsage;
  }

  std::unique_ptr<Shop::Stub> stub =
      Shop::NewStub(grpc::CreateChannel(options.addr, grpc::InsecureChannelCredentials()));
  bool all_ok = true;
  for (int i = 0; i < options.repeat; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options.deadline_ms));
    grpc::Status status;
    if (!quotes.empty()) {
      status = QuoteItems(*stub, &context, quotes);
    } else if (request == &get_item) {
      Item item;
      status = stub->GetItem(&context, get_item, &item);
      if (status.ok()) PrintMessage(item);
    } else if (request == &list_items) {
      std::unique_ptr<grpc::ClientReader<Item>> reader = stub->ListItems(&context, list_items);
      Item item;
      while (reader->Read(&item)) PrintMessage(item);
      status = reader->Finish();
    } else {
      Order order;
      status = stub->CreateOrder(&context, create_order, &order);
      if (status.ok()) PrintMessage(order);
    }
    all_ok = PrintStatus(status) && all_ok;
  }
  std::cout.flush();
  return all_ok ? 0 : kExitCallFailed;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"doppel-grpc-demo: a gRPC demo service (doppel.demo.v1.Shop) and its client"};
  app.require_subcommand(1);

  std::string host = "127.0.0.1";
  int port = 0;
  std::string version = "v1";
  CLI::App* serve = app.add_subcommand("serve", "serve the Shop service over h2c (plaintext)");
  serve->add_option("--port", port, "port to listen on (0: an ephemeral port)")
      ->required()
      ->check(CLI::Range(0, 65535));
  serve->add_option("--host", host, "IPv4 or IPv6 address to listen on")->capture_default_str();
  serve->add_option("--version", version, "v1, or v2 with four deliberate changes (README.md)")
      ->capture_default_str()
      ->check(CLI::IsMember({"v1", "v2"}));

  CallOptions call_options;
  CLI::App* call = app.add_subcommand("call", "call one Shop method, print the answers as JSON");
  call->add_option("--addr", call_options.addr, "the server, HOST:PORT")->required();
  call->add_option("--method", call_options.method,
                   "GetItem, ListItems, CreateOrder or QuoteItems (bidirectional)")
      ->required()
      ->check(CLI::IsMember({"GetItem", "ListItems", "CreateOrder", "QuoteItems"}));
  call->add_option("--json", call_options.json,
                   "the request message as JSON, e.g. '{\"id\":3}'; QuoteItems: one per message")
      ->required();
  call->add_option("--repeat", call_options.repeat, "calls to make, one after the other")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  call->add_option("--deadline-ms", call_options.deadline_ms, "deadline of each call")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600 * 1000));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  if (serve->parsed()) return Serve(host, port, version == "v2" ? Version::kV2 : Version::kV1);
  return Call(call_options);
}
