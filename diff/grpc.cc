#include "diff/grpc.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "diff/body.h"
#include "net/codings.h"

namespace doppel::diff {
namespace {

namespace pb = google::protobuf;

constexpr size_t kFrameHeader = 5;

// Quotes `s` as a JSON string (s is ASCII here: sizes and hex digits).
std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

class SchemaImpl final : public GrpcSchema {
 public:
  Status Build(const pb::FileDescriptorSet& set, const std::string& name) {
    // Files may come in any order: build each after the files it imports.
    std::vector<const pb::FileDescriptorProto*> left;
    for (const auto& f : set.file()) left.push_back(&f);
    while (!left.empty()) {
      size_t before = left.size();
      for (auto it = left.begin(); it != left.end();) {
        bool ready = true;
        for (const std::string& dep : (*it)->dependency()) {
          if (pool_.FindFileByName(dep) == nullptr) ready = false;
        }
        if (!ready) {
          ++it;
          continue;
        }
        if (pool_.BuildFile(**it) == nullptr) {
          return Status::InvalidArgument(name + ": cannot build " + (*it)->name() +
                                         " (a type is defined twice or refers to a missing one)");
        }
        it = left.erase(it);
      }
      if (left.size() == before) {
        return Status::InvalidArgument(
            name + ": " + left.front()->name() +
            " imports a file the set does not have; write the set with protoc "
            "--include_imports --descriptor_set_out");
      }
    }
    for (const auto& f : set.file()) services_ += static_cast<size_t>(f.service_size());
    return Status::Ok();
  }

  bool HasNoSideEffects(std::string_view method_path) const override {
    auto method = Method(method_path);
    return method.ok() &&
           (*method)->options().idempotency_level() == pb::MethodOptions::NO_SIDE_EFFECTS;
  }

  Result<std::string> ToJson(std::string_view method_path, bool response,
                             const std::vector<std::string>& messages) const override {
    DOPPEL_ASSIGN_OR_RETURN(const pb::MethodDescriptor* method, Method(method_path));
    const pb::Descriptor* type = response ? method->output_type() : method->input_type();
    const pb::Message* prototype = factory_.GetPrototype(type);
    pb::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    std::string out;
    if (messages.size() != 1) out += '[';
    for (size_t i = 0; i < messages.size(); ++i) {
      std::unique_ptr<pb::Message> m(prototype->New());
      if (!m->ParseFromString(messages[i])) {
        return Status::Corruption("message " + std::to_string(i) + " is not a " +
                                  type->full_name());
      }
      std::string json;
      if (!pb::util::MessageToJsonString(*m, &json, print).ok()) {
        return Status::Corruption("message " + std::to_string(i) + " has no JSON form");
      }
      if (i > 0) out += ',';
      out += json;
    }
    if (messages.size() != 1) out += ']';
    return out;
  }

  size_t services() const override { return services_; }

 private:
  // "/package.Service/Method" -> the method of "package.Service.Method".
  Result<const pb::MethodDescriptor*> Method(std::string_view method_path) const {
    std::string full(method_path.substr(method_path.starts_with('/') ? 1 : 0));
    const size_t slash = full.find('/');
    if (slash == std::string::npos) {
      return Status::NotFound("'" + std::string(method_path) + "' is not a gRPC method path");
    }
    full[slash] = '.';
    const pb::MethodDescriptor* method = pool_.FindMethodByName(full);
    if (method == nullptr) return Status::NotFound("the descriptor set has no method " + full);
    return method;
  }

  pb::DescriptorPool pool_;
  // GetPrototype is thread-safe; prototypes live as long as the factory.
  mutable pb::DynamicMessageFactory factory_{&pool_};
  size_t services_ = 0;
};

}  // namespace

bool IsGrpcContentType(std::string_view content_type) {
  std::string type = AsciiLower(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
  return type == "application/grpc" || type.starts_with("application/grpc+");
}

Result<std::vector<std::string>> SplitGrpcMessages(std::string_view body,
                                                   std::string_view grpc_encoding,
                                                   size_t max_bytes) {
  std::vector<std::string> out;
  size_t total = 0;
  size_t at = 0;
  while (at < body.size()) {
    if (body.size() - at < kFrameHeader) {
      return Status::Corruption("gRPC frame header cut after " + std::to_string(at) + " bytes");
    }
    const auto* h = reinterpret_cast<const unsigned char*>(body.data() + at);
    const uint8_t flag = h[0];
    const uint64_t length =
        (uint64_t{h[1]} << 24) | (uint64_t{h[2]} << 16) | (uint64_t{h[3]} << 8) | uint64_t{h[4]};
    if (flag > 1) {
      return Status::Corruption("gRPC frame at byte " + std::to_string(at) +
                                " has compressed flag " + std::to_string(flag) + " (0 or 1)");
    }
    if (length > body.size() - at - kFrameHeader) {
      return Status::Corruption("gRPC message at byte " + std::to_string(at) + " claims " +
                                std::to_string(length) + " bytes, " +
                                std::to_string(body.size() - at - kFrameHeader) + " follow");
    }
    std::string_view message = body.substr(at + kFrameHeader, length);
    at += kFrameHeader + length;
    if (flag == 1) {
      if (grpc_encoding.empty() || EqualsIgnoreCase(grpc_encoding, "identity")) {
        return Status::Corruption("a compressed gRPC message without a grpc-encoding");
      }
      Result<std::string> plain = net::DecodeContent(message, grpc_encoding, max_bytes - total);
      if (!plain.ok()) return plain.status().WithContext("gRPC message");
      total += plain.value().size();
      out.push_back(std::move(plain).value());
    } else {
      total += message.size();
      if (total > max_bytes) {
        return Status::ResourceExhausted("gRPC messages over " + std::to_string(max_bytes) +
                                         " bytes");
      }
      out.emplace_back(message);
    }
  }
  return out;
}

Result<std::shared_ptr<const GrpcSchema>> GrpcSchema::Parse(std::string_view bytes,
                                                            const std::string& name) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::InvalidArgument(name +
                                   " is not a descriptor set (write one with protoc "
                                   "--include_imports --descriptor_set_out FILE)");
  }
  auto schema = std::make_shared<SchemaImpl>();
  DOPPEL_RETURN_IF_ERROR(schema->Build(set, name));
  if (schema->services() == 0) {
    return Status::InvalidArgument(name + " has no service: gRPC calls cannot be decoded with it");
  }
  return std::shared_ptr<const GrpcSchema>(std::move(schema));
}

Result<std::shared_ptr<const GrpcSchema>> GrpcSchema::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read descriptor set '" + path + "'");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return Parse(bytes.str(), "'" + path + "'");
}

Result<std::string> DecodeGrpcBody(std::string_view body, std::string_view grpc_encoding,
                                   std::string_view method_path, bool response,
                                   const GrpcSchema* schema, size_t max_bytes) {
  DOPPEL_ASSIGN_OR_RETURN(std::vector<std::string> messages,
                          SplitGrpcMessages(body, grpc_encoding, max_bytes));
  if (schema != nullptr) {
    Result<std::string> json = schema->ToJson(method_path, response, messages);
    if (json.ok() || json.status().code() != Status::Code::kNotFound) return json;
  }
  std::string out;
  if (messages.size() != 1) out += '[';
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out += ',';
    out += Quoted(SizeAndHash(messages[i]));
  }
  if (messages.size() != 1) out += ']';
  return out;
}

}  // namespace doppel::diff
