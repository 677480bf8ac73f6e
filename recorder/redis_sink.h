// The Redis Streams capture sink (`doppel record --sink redis://HOST:PORT/STREAM`): each batch
// of envelopes becomes XADDs in one pipeline (stream/envelope_stream.h has the entry format).
// A lost connection fails the batch (the capture writer counts the drops) and is reconnected
// from Recover(), with backoff; the proxy never waits for Redis.
//
// With `shards` (--sink-shards K) the envelopes are spread over the streams STREAM{0} ..
// STREAM{K-1}, each with its own connection (to the node owning its slot on a Redis
// Cluster): by the hash of the --sample-key value when the request carries one, so that all
// requests of one user or session land on one shard in order, else by the client's address
// (ip:port), so that one connection's requests do.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "recorder/capture_writer.h"
#include "recorder/sampler.h"
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
  // 0: one stream, the URL's. K > 0: K shard streams (stream::ShardStreamName).
  uint32_t shards = 0;
  std::string sample_key;  // --sample-key ("", "header:NAME", "query:NAME"): picks the shard
};

// Connects at once. Errors: Redis unreachable (unless `optional`), a refused password, a
// stream already sharded another number of ways.
Result<CaptureSinkPtr> MakeRedisSink(const stream::RedisUrl& url, RedisSinkOptions options);

// The shard (0..shards-1) an envelope goes to, as the sink picks it: `keys` is a Sampler
// made with the --sample-key (its percentage plays no part). REQUIRES: shards > 0.
uint32_t ShardOf(const doppel::v1::Envelope& envelope, const Sampler& keys, uint32_t shards);

}  // namespace doppel::recorder
