// The corpus as GoReplay (gor) writes it with --output-file: the baseline doppel's store is
// measured against in bench/RESULTS.md.
//
// Each message is one record:
//   <type> SP <id> SP <timestamp ns> SP <latency ns> LF     type 1 = request, 2 = response
//   <raw HTTP/1.1 message bytes>
//   LF 0xF0 0x9F 0x90 0xB5 0xF0 0x9F 0x99 0x88 0xF0 0x9F 0x99 0x89 LF   ("\n🐵🙈🙉\n")
// The id is 24 hex digits shared by a request and its response. The request record carries
// the arrival time and latency 0; the response record the time its last byte was read and
// the primary's latency.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::bench {

inline constexpr std::string_view kGoReplaySeparator =
    "\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n";

// The message as it went over the wire (HTTP/1.1 framing, headers in recorded order).
std::string HttpRequestBytes(const doppel::v1::HttpRequest& request);
std::string HttpResponseBytes(const doppel::v1::HttpResponse& response);

// Appends the request record and the response record of `envelope` to *out.
void AppendGoReplayRecords(const doppel::v1::Envelope& envelope, std::string* out);

// Writes all envelopes to `path` (replacing it). On success *bytes_written (if not null)
// holds the file size.
Status WriteGoReplayFile(std::span<const doppel::v1::Envelope> envelopes, const std::string& path,
                         uint64_t* bytes_written = nullptr);

}  // namespace doppel::bench
