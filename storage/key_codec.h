// Key layout of the store. Keys are fixed-width big-endian, so byte order is numeric order
// and, for envelopes, time order. The same layout is described in docs/storage-format.md.
//
//   envelopes CF:  session_id u32 | arrival_us u64 | seq u32                     (16 bytes)
//                  the first 4 bytes are the prefix (RocksDB fixed prefix extractor)
//   dicts CF:      session_id u32 | dict_id u32                                  (8 bytes)
//   runs CF:       run_id u32 | 0x00                        -> RunInfo             (5 bytes)
//                  run_id u32 | 0x01 | index u64 | target u32 -> RunResult        (17 bytes)
//   sessions CF:   session name (UTF-8 bytes)               -> SessionInfo
//   default CF:    "meta/format_version" -> u32, "meta/next_session_id" -> u32,
//                  "meta/next_run_id" -> u32
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel::storage {

inline constexpr size_t kEnvelopeKeySize = 16;
inline constexpr size_t kSessionPrefixSize = 4;

void PutBigEndian32(std::string* out, uint32_t v);
void PutBigEndian64(std::string* out, uint64_t v);
uint32_t GetBigEndian32(const char* p);
uint64_t GetBigEndian64(const char* p);

struct EnvelopeKey {
  uint32_t session_id = 0;
  uint64_t arrival_us = 0;
  uint32_t seq = 0;
  friend bool operator==(const EnvelopeKey&, const EnvelopeKey&) = default;
};

std::string EncodeEnvelopeKey(const EnvelopeKey& key);
// Returns nullopt when `bytes` is not exactly a 16-byte envelope key.
std::optional<EnvelopeKey> DecodeEnvelopeKey(std::string_view bytes);
// The 4-byte prefix shared by all keys of a session.
std::string SessionPrefix(uint32_t session_id);
// Human-readable form for error messages: "session 3 @ 1764201600000000#7".
std::string DescribeEnvelopeKey(std::string_view bytes);

std::string EncodeDictKey(uint32_t session_id, uint32_t dict_id);
std::string EncodeRunInfoKey(uint32_t run_id);
std::string EncodeRunResultKey(uint32_t run_id, uint64_t index, uint32_t target);
std::string RunResultPrefix(uint32_t run_id);

}  // namespace doppel::storage
