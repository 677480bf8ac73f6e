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

struct StreamWriterOptions {
  std::string recorder_id;  // the "r" field; required
  uint64_t maxlen = 0;      // XADD MAXLEN ~ maxlen; 0 = unbounded
  RedisClientOptions client;
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
  // Connects and checks that the key is a stream (NotFound when there is no such key).
  static Result<std::unique_ptr<StreamReader>> Open(const RedisUrl& url,
                                                    RedisClientOptions options = {});
  ~StreamReader();

  // The next up to `count` entries (XRANGE after the last one read); empty at the end.
  // An entry that does not decode is a Corruption error naming its id.
  Result<std::vector<StreamEnvelope>> Next(size_t count = 500);

 private:
  explicit StreamReader(RedisClientPtr client);

  RedisClientPtr client_;
  EntryDecoder decoder_;
  std::string last_id_;  // "" before the first entry
};

}  // namespace doppel::stream
