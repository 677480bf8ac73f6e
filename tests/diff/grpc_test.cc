// gRPC bodies in the diff engine (diff/grpc.h): frames split and decompressed, messages decoded
// through a descriptor set (built here, as protoc would write it) or fingerprinted, trailers
// and trailers-only answers compared as one outcome.
#include "diff/grpc.h"

#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "diff/diff.h"
#include "net/codings.h"

namespace doppel::diff {
namespace {

namespace pb = google::protobuf;

// A length-prefixed message: flag, 4-byte big-endian length, bytes.
std::string Frame(const std::string& message, bool compressed = false) {
  std::string f(1, compressed ? '\1' : '\0');
  const uint32_t n = static_cast<uint32_t>(message.size());
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>((n >> shift) & 0xff);
  return f + message;
}

// demo.Item {int64 id = 1; string name = 2; repeated string tags = 3;} as protobuf's wire
// format writes it, and a service demo.Shop { rpc Get(Item) returns (Item); }.
std::string Item(int64_t id, const std::string& name, const std::vector<std::string>& tags) {
  std::string out;
  out += '\x08';  // field 1, varint
  for (uint64_t v = static_cast<uint64_t>(id);; v >>= 7) {
    if (v < 0x80) {
      out += static_cast<char>(v);
      break;
    }
    out += static_cast<char>((v & 0x7f) | 0x80);
  }
  auto bytes = [&out](char key, const std::string& s) {
    out += key;
    out += static_cast<char>(s.size());  // short strings only
    out += s;
  };
  bytes('\x12', name);
  for (const std::string& t : tags) bytes('\x1a', t);
  return out;
}

std::string DescriptorSet() {
  pb::FileDescriptorSet set;
  pb::FileDescriptorProto* file = set.add_file();
  file->set_name("demo.proto");
  file->set_package("demo");
  file->set_syntax("proto3");
  pb::DescriptorProto* item = file->add_message_type();
  item->set_name("Item");
  auto field = [item](const char* name, int number, pb::FieldDescriptorProto::Type type,
                      bool repeated) {
    pb::FieldDescriptorProto* f = item->add_field();
    f->set_name(name);
    f->set_number(number);
    f->set_type(type);
    f->set_label(repeated ? pb::FieldDescriptorProto::LABEL_REPEATED
                          : pb::FieldDescriptorProto::LABEL_OPTIONAL);
  };
  field("id", 1, pb::FieldDescriptorProto::TYPE_INT64, false);
  field("name", 2, pb::FieldDescriptorProto::TYPE_STRING, false);
  field("tags", 3, pb::FieldDescriptorProto::TYPE_STRING, true);
  pb::ServiceDescriptorProto* service = file->add_service();
  service->set_name("Shop");
  pb::MethodDescriptorProto* get = service->add_method();
  get->set_name("Get");
  get->set_input_type(".demo.Item");
  get->set_output_type(".demo.Item");
  return set.SerializeAsString();
}

doppel::v1::HttpResponse Grpc(const std::string& body, const std::string& status,
                              bool trailers_only = false) {
  doppel::v1::HttpResponse r;
  r.set_status(200);
  auto add = [](auto* fields, const char* n, const std::string& v) {
    doppel::v1::Header* h = fields->Add();
    h->set_name(n);
    h->set_value(v);
  };
  add(r.mutable_headers(), "content-type", "application/grpc");
  add(trailers_only ? r.mutable_headers() : r.mutable_trailers(), "grpc-status", status);
  if (!trailers_only) add(r.mutable_headers(), "grpc-accept-encoding", "identity,gzip");
  r.set_body(body);
  return r;
}

std::vector<std::string> Paths(const DiffResult& r) {
  std::vector<std::string> out;
  for (const FieldDiff& d : r.diffs) out.push_back(d.path);
  return out;
}

TEST(GrpcTest, ContentTypes) {
  EXPECT_TRUE(IsGrpcContentType("application/grpc"));
  EXPECT_TRUE(IsGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(IsGrpcContentType("Application/GRPC; charset=x"));
  EXPECT_FALSE(IsGrpcContentType("application/grpc-web"));
  EXPECT_FALSE(IsGrpcContentType("application/json"));
}

TEST(GrpcTest, FramesAreSplitAndDecompressed) {
  const std::string gz = net::EncodeContent("second", "gzip").value();
  auto m = SplitGrpcMessages(Frame("first") + Frame(gz, true) + Frame(""), "gzip", 1 << 20);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m.value(), (std::vector<std::string>{"first", "second", ""}));
  EXPECT_TRUE(SplitGrpcMessages("", "", 10).value().empty());
}

TEST(GrpcTest, MalformedFramesAreErrorsNotCrashes) {
  EXPECT_EQ(SplitGrpcMessages(std::string_view("\0\0\0", 3), "", 100).status().code(),
            Status::Code::kCorruption);
  EXPECT_NE(SplitGrpcMessages(Frame("abc").substr(0, 6), "", 100)
                .status()
                .message()
                .find("claims 3 bytes, 1 follow"),
            std::string::npos);
  std::string bad_flag = Frame("x");
  bad_flag[0] = '\7';
  EXPECT_EQ(SplitGrpcMessages(bad_flag, "", 100).status().code(), Status::Code::kCorruption);
  EXPECT_FALSE(SplitGrpcMessages(Frame("x", true), "", 100).ok());  // compressed, no coding
  EXPECT_FALSE(SplitGrpcMessages(Frame("not gzip", true), "gzip", 100).ok());
  EXPECT_EQ(SplitGrpcMessages(Frame(std::string(50, 'a')) + Frame(std::string(60, 'b')), "", 100)
                .status()
                .code(),
            Status::Code::kResourceExhausted);
}

TEST(GrpcTest, DescriptorSetDecodesMessagesAsJson) {
  auto schema = GrpcSchema::Parse(DescriptorSet(), "test set");
  ASSERT_TRUE(schema.ok()) << schema.status().ToString();
  auto one = (*schema)->ToJson("/demo.Shop/Get", true, {Item(3, "lamp", {"a"})});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one.value(), R"({"id":"3","name":"lamp","tags":["a"]})");
  auto two = (*schema)->ToJson("/demo.Shop/Get", true, {Item(1, "a", {}), Item(0, "", {})});
  ASSERT_TRUE(two.ok());
  // Default values are printed, so a field that became its default is a value change.
  EXPECT_EQ(two.value(), R"([{"id":"1","name":"a","tags":[]},{"id":"0","name":"","tags":[]}])");
  EXPECT_EQ((*schema)->ToJson("/demo.Shop/Put", true, {}).status().code(), Status::Code::kNotFound);
  EXPECT_EQ((*schema)->ToJson("/demo.Shop/Get", true, {"\xff\xff"}).status().code(),
            Status::Code::kCorruption);
}

TEST(GrpcTest, BadDescriptorSetsAreClearErrors) {
  EXPECT_NE(GrpcSchema::Parse("not a set", "'x.pb'")
                .status()
                .message()
                .find("'x.pb' is not a descriptor set"),
            std::string::npos);
  pb::FileDescriptorSet no_service;
  no_service.add_file()->set_name("empty.proto");
  EXPECT_NE(GrpcSchema::Parse(no_service.SerializeAsString(), "'e.pb'")
                .status()
                .message()
                .find("has no service"),
            std::string::npos);
  pb::FileDescriptorSet missing_import;
  pb::FileDescriptorProto* f = missing_import.add_file();
  f->set_name("a.proto");
  f->add_dependency("b.proto");
  EXPECT_NE(GrpcSchema::Parse(missing_import.SerializeAsString(), "'m.pb'")
                .status()
                .message()
                .find("--include_imports"),
            std::string::npos);
  EXPECT_EQ(GrpcSchema::Load("/nonexistent/set.pb").status().code(), Status::Code::kNotFound);
}

TEST(GrpcTest, DifferNamesChangedFieldsWithASchemaAndFingerprintsWithout) {
  auto schema = GrpcSchema::Parse(DescriptorSet(), "test set").value();
  DiffConfig typed;
  typed.grpc_schema = schema;
  auto with = Differ::Create(typed).value();
  auto without = Differ::Create(DiffConfig{}).value();
  const auto v1 = Grpc(Frame(Item(3, "lamp", {"a"})), "0");
  const auto v2 = Grpc(Frame(Item(3, "lamp", {"a", "sale"})), "0");
  EXPECT_TRUE(with->Compare("POST", "/demo.Shop/Get", v1, v1).match);
  EXPECT_EQ(Paths(with->Compare("POST", "/demo.Shop/Get", v1, v2)),
            (std::vector<std::string>{"body.tags"}));
  EXPECT_EQ(Paths(without->Compare("POST", "/demo.Shop/Get", v1, v2)),
            (std::vector<std::string>{"body"}));
  // A streamed answer: an array of messages.
  const auto s1 = Grpc(Frame(Item(1, "a", {})) + Frame(Item(2, "b", {})), "0");
  const auto s2 = Grpc(Frame(Item(1, "a", {})) + Frame(Item(2, "c", {})), "0");
  EXPECT_EQ(Paths(with->Compare("POST", "/demo.Shop/Get", s1, s2)),
            (std::vector<std::string>{"body[1].name"}));
  EXPECT_EQ(Paths(without->Compare("POST", "/demo.Shop/Get", s1, s2)),
            (std::vector<std::string>{"body[1]"}));
}

TEST(GrpcTest, TrailersOnlyErrorIsAGrpcStatusChange) {
  auto differ = Differ::Create(DiffConfig{}).value();
  const auto ok = Grpc(Frame(Item(7, "speaker", {})), "0");
  const auto unavailable = Grpc("", "14", /*trailers_only=*/true);
  const DiffResult r = differ->Compare("POST", "/demo.Shop/Get", ok, unavailable);
  ASSERT_FALSE(r.match);
  bool status_seen = false;
  for (const FieldDiff& d : r.diffs) {
    EXPECT_NE(d.path, "headers.grpc-status");           // compared as a trailer
    EXPECT_NE(d.path, "headers.grpc-accept-encoding");  // negotiation: ignored
    if (d.path == "trailers.grpc-status") {
      status_seen = true;
      EXPECT_EQ(d.severity, Severity::kHigh);
      EXPECT_EQ(d.expected, "0");
      EXPECT_EQ(d.actual, "14");
    }
  }
  EXPECT_TRUE(status_seen);
}

}  // namespace
}  // namespace doppel::diff
