// Sessions between a store and a Redis stream of envelopes (envelope_stream.h):
// `doppel import redis://HOST:PORT/STREAM --as NAME` reads a stream (written by `doppel record
// --sink redis://...`) into a store session, through interop::SessionImport (all or nothing),
// so it replays, reports and exports like any other; `doppel export NAME redis://...` appends
// a stored session to a stream, in the format the recorders write, so a group of replay
// workers (replay/group.h) can share it.
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

// Writes every envelope of `session`, in time order, into `url`'s stream (XADD, 500 per
// pipeline), with `recorder_id` as the entries' recorder; *exported counts them. Errors: no
// such session; Redis not reachable; the key exists (a stream with entries would mix two
// sessions, or the same one twice: InvalidArgument); a batch refused (the entries before it
// stay).
Status ExportToStream(storage::Store& store, const std::string& session, const RedisUrl& url,
                      const std::string& recorder_id, uint64_t* exported);

}  // namespace doppel::stream
