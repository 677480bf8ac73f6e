// Envelopes in a Redis stream: the entry format, a writer (the capture sink's side) and a
// reader (import's side).
//
// Format (also in docs/distributed.md; stable: a change needs a new field name):
//   XADD STREAM [MAXLEN ~ N] * e VALUE r RECORDER_ID
//     e  the envelope, encoded as a store value (storage/envelope_codec.h): tag 0x01 and one
//        zstd frame naming its dictionary (id 0: none)
//     r  the id of the recorder that captured it (--recorder-id; default HOSTNAME-PID)
//   HSET STREAM:dicts ID DICTIONARY
//     the zstd dictionaries the entries name, by decimal id. Each writer trains one on its first
//     envelopes (the same thresholds as the store) and publishes it (HSETNX) in the same
//     pipeline before the first entry that needs it; until then it compresses without one.
// Several writers may share one stream: entries keep their recorder id; readers load every
// dictionary of the hash.
//
// Sharded (`--sink-shards K`): shard i is the stream STREAM{i}, with its own dictionaries
// (STREAM{i}:dicts); the hash tag keeps each shard and its keys on one Redis Cluster slot and
// puts the shards on different slots. The shard count is kept in STREAM{0}:shards, so a
// reader given STREAM finds the shards.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "storage/envelope_codec.h"
#include "stream/redis_client.h"

namespace doppel::stream {

// The key of the dictionaries of `stream`.
std::string DictionariesKey(const std::string& stream);

// Shard `shard` of the sharded stream `stream`: "STREAM{SHARD}".
std::string ShardStreamName(const std::string& stream, uint32_t shard);
// Where a sharded stream keeps its shard count: "STREAM{0}:shards".
std::string ShardsKey(const std::string& stream);
// The most shards a stream may have (--sink-shards).
inline constexpr uint32_t kMaxShards = 1024;

// The number of shards of `url`'s stream (0: it is not sharded). An error when Redis cannot
// be reached or the count is not one doppel wrote.
Result<uint32_t> ShardCount(const RedisUrl& url, RedisClientOptions options = {});

// The streams `url` names: its own (`shards` 0), or each shard of a sharded stream, with a
// client connected to each (to the master owning its slot on a Redis Cluster; a client's
// url().stream is its stream's key). A shard nothing was written to may have no key yet.
// Errors: NotFound when the URL names neither; InvalidArgument when the key is not a stream,
// or when it names both a stream and a sharded one; Redis not reachable.
struct StreamSet {
  std::vector<RedisClientPtr> clients;
  uint32_t shards = 0;
};
Result<StreamSet> OpenStreams(const RedisUrl& url, RedisClientOptions options = {});

// On a Redis Cluster, every key doppel keeps beside the client's stream must hash to the
// stream's slot (a client talks to that slot's node only): InvalidArgument, saying to name
// the stream with a hash tag, when one of `keys` does not. OK on a single server.
Status CheckSameSlot(const RedisClient& client, const std::vector<std::string>& keys);

struct StreamWriterOptions {
  std::string recorder_id;  // the "r" field; required
  uint64_t maxlen = 0;      // XADD MAXLEN ~ maxlen; 0 = unbounded
  RedisClientOptions client;
  // Set for shard 0 of a sharded stream: Connect() records the shard count under this key
  // (ShardsKey) and refuses a stream already sharded another number of ways.
  std::string shards_key;
  uint32_t shard_count = 0;
};

// Not thread-safe: the capture writer thread owns it.
class StreamWriter {
 public:
  StreamWriter(RedisUrl url, StreamWriterOptions options);
  ~StreamWriter();

  // Connects (again, when connected before). Errors as RedisClient::Connect.
  Status Connect();
  bool connected() const;
  // XADDs one entry per envelope in one pipeline. Unavailable when not connected or the
  // connection was lost (Connect() again); Internal when Redis refused an entry.
  Status Append(std::span<const doppel::v1::Envelope> batch);
  // The same for envelopes that do not lie together (a sharded sink's part of a batch).
  Status Append(std::span<const doppel::v1::Envelope* const> batch);

  const RedisUrl& url() const { return url_; }

 private:
  RedisUrl url_;
  StreamWriterOptions options_;
  RedisClientPtr client_;
  storage::EnvelopeCodec codec_;
  // Dictionary training, as the store does it.
  std::vector<std::string> samples_;
  size_t sample_bytes_ = 0;
  bool dict_trained_ = false;
  std::string dict_;             // trained, empty when training gave none
  bool dict_published_ = false;  // HSETNX answered
  std::string serialized_, value_;
  std::vector<std::vector<std::string>> commands_;
};

// One entry read back.
struct StreamEnvelope {
  std::string entry_id;  // "1700000000000-0"
  std::string recorder_id;
  doppel::v1::Envelope envelope;
};

// Decodes the entries of one stream, with the dictionaries of its DictionariesKey hash:
// loaded by LoadDictionaries, and again, once, when an entry names one not loaded yet (a
// writer may publish its dictionary after a reader started).
class EntryDecoder {
 public:
  Status LoadDictionaries(RedisClient& client);
  // `entry` as XRANGE and XREADGROUP return it: [id, [field, value, ...]]. Errors: Internal
  // when the reply has another shape; Corruption, naming the entry, when it has no envelope
  // or the envelope does not decode.
  Status Decode(RedisClient& client, const RedisReply& entry, StreamEnvelope* out);

 private:
  storage::EnvelopeCodec codec_;
};

class StreamReader {
 public:
  // Connects and checks that the key is a stream, or names a sharded stream, whose shards
  // are read together (NotFound when it is neither).
  static Result<std::unique_ptr<StreamReader>> Open(const RedisUrl& url,
                                                    RedisClientOptions options = {});
  ~StreamReader();

  // The next up to `count` entries (XRANGE after the last one read); empty at the end. The
  // shards are merged by capture time (arrival_us), each read in its own order. An entry that does
  // not decode is a Corruption error naming its id.
  Result<std::vector<StreamEnvelope>> Next(size_t count = 500);
  // The shards read (0: the stream is not sharded).
  uint32_t shards() const { return sharded_ ? static_cast<uint32_t>(shards_.size()) : 0; }

 private:
  struct Shard;
  StreamReader();
  // Reads the next entries of `shard` into its buffer; marks it done at its end.
  Status Fill(Shard& shard, size_t count);

  std::vector<std::unique_ptr<Shard>> shards_;
  bool sharded_ = false;
};

}  // namespace doppel::stream
