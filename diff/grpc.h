// gRPC bodies. A gRPC call's request and response bodies are a sequence of
// Length-Prefixed-Messages (gRPC over HTTP/2: a compressed-flag byte, a 4-byte big-endian
// length, the message); the outcome is in the grpc-status trailer (diff/headers.h compares
// it).
//
// For comparison a gRPC body becomes JSON (DecodeGrpcBody), so every rule, normalizer and
// noise feature of the JSON diff works on it unchanged:
// - with a descriptor set (GrpcSchema: `--proto-set FILE`, as written by `protoc
//   --include_imports --descriptor_set_out FILE`) each message is decoded as the method's
//   request or response type and printed through protobuf's JSON conversion (proto field
//   names, default values printed, so a field that changed to its default is a value change,
//   not a missing one): paths read `body.items[3].price_cents`;
// - without one, or for a method the set does not have, each message is the string
//   "<size> bytes, sha256 <first 16 hex digits>", so a changed message is `body` or `body[i]`.
// One message is the body's root (a unary call: `body.price_cents`); none or several (a
// streaming call) are an array (`body[2].price_cents`).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace doppel::diff {

// True for application/grpc and application/grpc+<anything> (parameters ignored).
bool IsGrpcContentType(std::string_view content_type);

// The messages of a gRPC body, decompressed where the compressed flag says so with the coding
// `grpc_encoding` names (the grpc-encoding header: identity, gzip, deflate, zstd; net/codings).
// Errors: a cut or malformed frame (kCorruption), a compressed message without a known
// coding, more than `max_bytes` in all.
Result<std::vector<std::string>> SplitGrpcMessages(std::string_view body,
                                                   std::string_view grpc_encoding,
                                                   size_t max_bytes);

// The message types of a descriptor set's services. Thread-safe after Load (const).
class GrpcSchema {
 public:
  // A serialized google.protobuf.FileDescriptorSet with its imports.
  static Result<std::shared_ptr<const GrpcSchema>> Load(const std::string& path);
  static Result<std::shared_ptr<const GrpcSchema>> Parse(std::string_view bytes,
                                                         const std::string& name);
  virtual ~GrpcSchema() = default;

  // JSON text of `messages` decoded as the request (`response` false) or response type of
  // `method_path` ("/package.Service/Method", the request's path). Errors: no such method
  // (kNotFound), a message that does not parse as the type (kCorruption).
  virtual Result<std::string> ToJson(std::string_view method_path, bool response,
                                     const std::vector<std::string>& messages) const = 0;
  // Whether `method_path` is marked `option idempotency_level = NO_SIDE_EFFECTS;` (a read, as
  // GET is in HTTP): replay sends such calls without --allow-unsafe-methods. False for a
  // method the set lacks.
  virtual bool HasNoSideEffects(std::string_view method_path) const = 0;
  // The number of services in the set.
  virtual size_t services() const = 0;
};

// A gRPC body as the JSON text described above. `schema` may be null.
Result<std::string> DecodeGrpcBody(std::string_view body, std::string_view grpc_encoding,
                                   std::string_view method_path, bool response,
                                   const GrpcSchema* schema, size_t max_bytes);

}  // namespace doppel::diff
