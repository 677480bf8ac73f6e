// `doppel import redis://HOST:PORT/STREAM --as NAME`: a Redis stream of envelopes (written by
// `doppel record --sink redis://...`, envelope_stream.h) read into a store session, through
// interop::SessionImport (all or nothing), so it replays, reports and exports like any other.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "base/status.h"
#include "doppel/v1/session.pb.h"
#include "storage/store.h"
#include "stream/redis_client.h"

namespace doppel::stream {

struct StreamImportStats {
  uint64_t envelopes = 0;
  std::map<std::string, uint64_t> by_recorder;  // recorder id -> envelopes
};

// Reads every entry of `url`'s stream, in stream order, into a new session `as` (default: the
// stream's name). Envelopes of several recorders can share an arrival time and sequence
// number, so each gets a new sequence number, unique in the session, in stream order.
Result<doppel::v1::SessionInfo> ImportStream(storage::Store& store, const RedisUrl& url,
                                             const std::string& as, StreamImportStats* stats);

}  // namespace doppel::stream
