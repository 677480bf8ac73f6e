// The Redis Streams capture sink (`doppel record --sink redis://HOST:PORT/STREAM`): each batch
// of envelopes becomes XADDs in one pipeline (stream/envelope_stream.h has the entry format).
// A lost connection fails the batch (the capture writer counts the drops) and is reconnected
// from Recover(), with backoff; the proxy never waits for Redis.
#pragma once

#include <chrono>

#include "base/status.h"
#include "recorder/capture_writer.h"
#include "stream/envelope_stream.h"

namespace doppel::recorder {

struct RedisSinkOptions {
  stream::StreamWriterOptions writer;  // recorder id, MAXLEN, timeouts
  // Start without Redis (captures are dropped and counted until it answers) instead of
  // failing. Off: Redis that cannot be reached at start is an error.
  bool optional = false;
  // Reconnect attempts after a failure wait this long, doubling up to max_backoff.
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{5000};
};

// Connects at once. Errors: Redis unreachable (unless `optional`), a refused password.
Result<CaptureSinkPtr> MakeRedisSink(const stream::RedisUrl& url, RedisSinkOptions options);

}  // namespace doppel::recorder
