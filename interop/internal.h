// Pieces the interop readers and writers share (not part of the public interface).
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "interop/interop.h"

namespace doppel::interop::internal {

// Largest single record (JSON line, HAR entry, GoReplay payload) a reader accepts. Matches
// the store's largest decoded envelope: bigger would not be readable afterwards anyway.
inline constexpr size_t kMaxRecordBytes = 256u << 20;

// A record failed with `why`. With skip_bad: counts it, keeps the first reason, returns OK
// (the caller moves on). Without: returns `why` with a hint about --skip-bad.
Status BadRecord(const ImportOptions& options, ImportStats* stats, const Status& why);

// Microseconds since the Unix epoch <-> ISO 8601 / RFC 3339 ("2024-05-01T10:20:30.123Z",
// "+02:00" offsets, any number of fraction digits; output always UTC with 6 digits).
Result<uint64_t> ParseIso8601Us(std::string_view text);
std::string FormatIso8601Us(uint64_t us);

}  // namespace doppel::interop::internal
