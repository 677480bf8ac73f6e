#include "storage/key_codec.h"

#include <cstring>

namespace doppel::storage {

void PutBigEndian32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}

void PutBigEndian64(std::string* out, uint64_t v) {
  PutBigEndian32(out, static_cast<uint32_t>(v >> 32));
  PutBigEndian32(out, static_cast<uint32_t>(v));
}

uint32_t GetBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

uint64_t GetBigEndian64(const char* p) {
  return (uint64_t{GetBigEndian32(p)} << 32) | GetBigEndian32(p + 4);
}

std::string EncodeEnvelopeKey(const EnvelopeKey& key) {
  std::string out;
  out.reserve(kEnvelopeKeySize);
  PutBigEndian32(&out, key.session_id);
  PutBigEndian64(&out, key.arrival_us);
  PutBigEndian32(&out, key.seq);
  return out;
}

std::optional<EnvelopeKey> DecodeEnvelopeKey(std::string_view bytes) {
  if (bytes.size() != kEnvelopeKeySize) return std::nullopt;
  return EnvelopeKey{GetBigEndian32(bytes.data()), GetBigEndian64(bytes.data() + 4),
                     GetBigEndian32(bytes.data() + 12)};
}

std::string SessionPrefix(uint32_t session_id) {
  std::string out;
  PutBigEndian32(&out, session_id);
  return out;
}

std::string DescribeEnvelopeKey(std::string_view bytes) {
  auto key = DecodeEnvelopeKey(bytes);
  if (!key) return "malformed key of " + std::to_string(bytes.size()) + " bytes";
  return "session " + std::to_string(key->session_id) + " @ " + std::to_string(key->arrival_us) +
         "#" + std::to_string(key->seq);
}

std::string EncodeDictKey(uint32_t session_id, uint32_t dict_id) {
  std::string out;
  PutBigEndian32(&out, session_id);
  PutBigEndian32(&out, dict_id);
  return out;
}

std::string EncodeRunInfoKey(uint32_t run_id) {
  std::string out;
  PutBigEndian32(&out, run_id);
  out.push_back('\0');
  return out;
}

std::string RunResultPrefix(uint32_t run_id) {
  std::string out;
  PutBigEndian32(&out, run_id);
  out.push_back('\1');
  return out;
}

std::string EncodeRunResultKey(uint32_t run_id, uint64_t index, uint32_t target) {
  std::string out = RunResultPrefix(run_id);
  PutBigEndian64(&out, index);
  PutBigEndian32(&out, target);
  return out;
}

}  // namespace doppel::storage
