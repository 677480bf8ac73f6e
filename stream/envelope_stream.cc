#include "stream/envelope_stream.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <utility>

namespace doppel::stream {
namespace {

constexpr char kValueField[] = "e";
constexpr char kRecorderField[] = "r";

}  // namespace

std::string DictionariesKey(const std::string& stream) { return stream + ":dicts"; }

std::string ShardStreamName(const std::string& stream, uint32_t shard) {
  return stream + "{" + std::to_string(shard) + "}";
}

std::string ShardsKey(const std::string& stream) { return ShardStreamName(stream, 0) + ":shards"; }

Result<uint32_t> ShardCount(const RedisUrl& url, RedisClientOptions options) {
  RedisUrl shard0 = url;
  shard0.stream = ShardStreamName(url.stream, 0);
  DOPPEL_ASSIGN_OR_RETURN(auto client, RedisClient::Connect(shard0, options));
  const std::string key = ShardsKey(url.stream);
  DOPPEL_ASSIGN_OR_RETURN(auto reply, client->Command({"GET", key}));
  if (reply.type == RedisReply::Type::kNil) return 0u;
  DOPPEL_RETURN_IF_ERROR(ExpectType(reply, RedisReply::Type::kString, "GET " + key));
  uint32_t n = 0;
  const auto [p, ec] = std::from_chars(reply.str.data(), reply.str.data() + reply.str.size(), n);
  if (ec != std::errc() || p != reply.str.data() + reply.str.size() || n == 0 || n > kMaxShards) {
    return Status::Corruption(key + " holds '" + reply.str.substr(0, 40) +
                              "', not a shard count (1.." + std::to_string(kMaxShards) + ")");
  }
  return n;
}

Status CheckSameSlot(const RedisClient& client, const std::vector<std::string>& keys) {
  if (!client.cluster()) return Status::Ok();
  const std::string& stream = client.url().stream;
  for (const std::string& key : keys) {
    if (KeySlot(key) == KeySlot(stream)) continue;
    return Status::InvalidArgument(
        client.url().ToString() + " is a Redis Cluster, and the key '" + key +
        "' doppel keeps beside the stream would live on another node: name the stream with a "
        "hash tag, e.g. redis://HOST:PORT/{" +
        stream + "}, or record with --sink-shards K (streams " + stream + "{0}, " + stream +
        "{1}, ...)");
  }
  return Status::Ok();
}

StreamWriter::StreamWriter(RedisUrl url, StreamWriterOptions options)
    : url_(std::move(url)), options_(std::move(options)) {}

StreamWriter::~StreamWriter() = default;

Status StreamWriter::Connect() {
  if (client_) {
    DOPPEL_RETURN_IF_ERROR(client_->Reconnect());
  } else {
    auto client = RedisClient::Connect(url_, options_.client);
    if (!client.ok()) return client.status();
    client_ = std::move(client.value());
  }
  std::vector<std::string> keys = {DictionariesKey(url_.stream)};
  if (!options_.shards_key.empty()) keys.push_back(options_.shards_key);
  DOPPEL_RETURN_IF_ERROR(CheckSameSlot(*client_, keys));
  if (options_.shards_key.empty()) return Status::Ok();
  const std::string count = std::to_string(options_.shard_count);
  DOPPEL_ASSIGN_OR_RETURN(
      auto replies,
      client_->Pipeline({std::vector<std::string>{"SET", options_.shards_key, count, "NX"},
                         std::vector<std::string>{"GET", options_.shards_key}}));
  DOPPEL_RETURN_IF_ERROR(
      ExpectType(replies[1], RedisReply::Type::kString, "GET " + options_.shards_key));
  if (replies[1].str != count) {
    return Status::InvalidArgument(
        url_.ToString() + ": the stream is sharded " + replies[1].str.substr(0, 40) +
        " ways already (its recorders were started with "
        "--sink-shards " +
        replies[1].str.substr(0, 40) + "); give the same count, not " + count);
  }
  return Status::Ok();
}

bool StreamWriter::connected() const { return client_ && !client_->broken(); }

Status StreamWriter::Append(std::span<const doppel::v1::Envelope> batch) {
  std::vector<const doppel::v1::Envelope*> all;
  all.reserve(batch.size());
  for (const auto& e : batch) all.push_back(&e);
  return Append(std::span<const doppel::v1::Envelope* const>(all));
}

Status StreamWriter::Append(std::span<const doppel::v1::Envelope* const> batch) {
  if (!connected()) {
    return Status::Unavailable("redis " + url_.ToString() + ": not connected");
  }
  commands_.clear();
  for (const doppel::v1::Envelope* e : batch) {
    serialized_.clear();
    e->AppendToString(&serialized_);
    if (!dict_trained_) {
      samples_.push_back(serialized_);
      sample_bytes_ += serialized_.size();
      if (samples_.size() >= storage::kDictTrainSamples ||
          sample_bytes_ >= storage::kDictTrainMaxBytes) {
        dict_ = storage::TrainDictionary(samples_, storage::kDictSize);
        if (!dict_.empty()) DOPPEL_RETURN_IF_ERROR(codec_.AddDictionary(dict_, true));
        dict_trained_ = true;
        dict_published_ = dict_.empty();
        samples_.clear();
        samples_.shrink_to_fit();
      }
    }
    DOPPEL_RETURN_IF_ERROR(codec_.EncodeZstdSerialized(serialized_, &value_));
    std::vector<std::string> xadd = {"XADD", url_.stream};
    if (options_.maxlen > 0) {
      xadd.insert(xadd.end(), {"MAXLEN", "~", std::to_string(options_.maxlen)});
    }
    xadd.insert(xadd.end(), {"*", kValueField, value_, kRecorderField, options_.recorder_id});
    commands_.push_back(std::move(xadd));
  }
  if (commands_.empty()) return Status::Ok();
  const bool publishing = dict_trained_ && !dict_published_;
  if (publishing) {
    // Until Redis has confirmed the dictionary, every batch publishes it first (the pipeline
    // runs in order): an entry naming it must never be readable without it.
    commands_.insert(commands_.begin(), {"HSETNX", DictionariesKey(url_.stream),
                                         std::to_string(storage::DictionaryId(dict_)), dict_});
  }
  DOPPEL_ASSIGN_OR_RETURN(auto replies, client_->Pipeline(commands_));
  size_t i = 0;
  if (publishing) {
    DOPPEL_RETURN_IF_ERROR(ExpectType(replies[0], RedisReply::Type::kInteger, "HSETNX"));
    dict_published_ = true;  // set now (1), or by a writer whose dictionary has the same id
    i = 1;
  }
  for (; i < replies.size(); ++i) {
    DOPPEL_RETURN_IF_ERROR(
        ExpectType(replies[i], RedisReply::Type::kString, "XADD " + url_.stream));
  }
  return Status::Ok();
}

struct StreamReader::Shard {
  RedisClientPtr client;
  EntryDecoder decoder;
  std::string last_id;  // "" before the first entry
  std::deque<StreamEnvelope> buffered;
  bool done = false;
};

StreamReader::StreamReader() = default;
StreamReader::~StreamReader() = default;

Result<StreamSet> OpenStreams(const RedisUrl& url, RedisClientOptions options) {
  DOPPEL_ASSIGN_OR_RETURN(auto client, RedisClient::Connect(url, options));
  DOPPEL_ASSIGN_OR_RETURN(auto type, client->Command({"TYPE", url.stream}));
  DOPPEL_RETURN_IF_ERROR(ExpectType(type, RedisReply::Type::kStatus, "TYPE"));
  if (type.str != "none" && type.str != "stream") {
    return Status::InvalidArgument("'" + url.stream + "' on " + url.ToString() + " is a " +
                                   type.str + ", not a stream");
  }
  StreamSet set;
  DOPPEL_ASSIGN_OR_RETURN(set.shards, ShardCount(url, options));
  if (type.str == "none" && set.shards == 0) {
    return Status::NotFound("there is no stream '" + url.stream + "' on " + url.ToString() +
                            " (check the name: nothing was recorded into it yet?)");
  }
  if (type.str == "stream" && set.shards > 0) {
    return Status::InvalidArgument(
        url.ToString() + " names both a stream and a stream sharded " + std::to_string(set.shards) +
        " ways (" + ShardStreamName(url.stream, 0) + ", ...): read one of them under another name");
  }
  if (set.shards == 0) {
    set.clients.push_back(std::move(client));
    return set;
  }
  for (uint32_t i = 0; i < set.shards; ++i) {
    RedisUrl u = url;
    u.stream = ShardStreamName(url.stream, i);
    DOPPEL_ASSIGN_OR_RETURN(set.clients.emplace_back(), RedisClient::Connect(u, options));
  }
  return set;
}

Result<std::unique_ptr<StreamReader>> StreamReader::Open(const RedisUrl& url,
                                                         RedisClientOptions options) {
  DOPPEL_ASSIGN_OR_RETURN(StreamSet streams, OpenStreams(url, options));
  std::unique_ptr<StreamReader> reader(new StreamReader());
  reader->sharded_ = streams.shards > 0;
  for (RedisClientPtr& client : streams.clients) {
    auto shard = std::make_unique<Shard>();
    shard->client = std::move(client);
    DOPPEL_RETURN_IF_ERROR(
        CheckSameSlot(*shard->client, {DictionariesKey(shard->client->url().stream)}));
    DOPPEL_RETURN_IF_ERROR(shard->decoder.LoadDictionaries(*shard->client));
    reader->shards_.push_back(std::move(shard));
  }
  return reader;
}

Status EntryDecoder::LoadDictionaries(RedisClient& client) {
  const std::string key = DictionariesKey(client.url().stream);
  DOPPEL_ASSIGN_OR_RETURN(auto all, client.Command({"HGETALL", key}));
  DOPPEL_RETURN_IF_ERROR(ExpectType(all, RedisReply::Type::kArray, "HGETALL " + key));
  for (size_t i = 0; i + 1 < all.elements.size(); i += 2) {
    const RedisReply& id = all.elements[i];
    const RedisReply& dict = all.elements[i + 1];
    DOPPEL_RETURN_IF_ERROR(ExpectType(id, RedisReply::Type::kString, "HGETALL " + key));
    DOPPEL_RETURN_IF_ERROR(ExpectType(dict, RedisReply::Type::kString, "HGETALL " + key));
    uint32_t want = 0;
    const auto [p, ec] = std::from_chars(id.str.data(), id.str.data() + id.str.size(), want);
    if (ec != std::errc() || p != id.str.data() + id.str.size() ||
        storage::DictionaryId(dict.str) != want) {
      return Status::Corruption(key + ": field '" + id.str +
                                "' does not hold the dictionary with that id");
    }
    DOPPEL_RETURN_IF_ERROR(codec_.AddDictionary(dict.str, false).WithContext(key));
  }
  return Status::Ok();
}

Status EntryDecoder::Decode(RedisClient& client, const RedisReply& entry, StreamEnvelope* out) {
  const std::string& stream = client.url().stream;
  if (entry.type != RedisReply::Type::kArray || entry.elements.size() != 2 ||
      entry.elements[0].type != RedisReply::Type::kString ||
      entry.elements[1].type != RedisReply::Type::kArray) {
    return Status::Internal(stream + ": an entry is " + DescribeReply(entry) +
                            ", expected [id, [field, value, ...]]");
  }
  out->entry_id = entry.elements[0].str;
  const RedisReply* value = nullptr;
  const RedisReply* recorder = nullptr;
  const auto& fields = entry.elements[1].elements;
  for (size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].str == kValueField) value = &fields[i + 1];
    if (fields[i].str == kRecorderField) recorder = &fields[i + 1];
  }
  const std::string where = stream + " entry " + out->entry_id;
  if (value == nullptr || value->type != RedisReply::Type::kString) {
    return Status::Corruption(where + " has no '" + kValueField +
                              "' field: not written by doppel record --sink");
  }
  out->recorder_id = recorder != nullptr ? recorder->str : "";
  Status s = codec_.Decode(value->str, &out->envelope);
  if (!s.ok()) {
    // A writer may have published its dictionary after we loaded them: load again, once.
    DOPPEL_RETURN_IF_ERROR(LoadDictionaries(client));
    s = codec_.Decode(value->str, &out->envelope);
  }
  return s.WithContext(where);
}

namespace {

// The order in which shards are merged: by capture time, then by entry id within a stream
// ("1700000000000-3" as (1700000000000, 3)): entry ids alone order entries of one stream
// only, and several streams' entries share milliseconds.
struct MergeOrder {
  uint64_t arrival_us, ms, seq;
  auto operator<=>(const MergeOrder&) const = default;
};
MergeOrder MergeOrderOf(const StreamEnvelope& e) {
  MergeOrder out{e.envelope.arrival_us(), 0, 0};
  const std::string& id = e.entry_id;
  const size_t dash = std::min(id.find('-'), id.size());
  std::from_chars(id.data(), id.data() + dash, out.ms);
  if (dash < id.size()) std::from_chars(id.data() + dash + 1, id.data() + id.size(), out.seq);
  return out;
}

}  // namespace

Status StreamReader::Fill(Shard& shard, size_t count) {
  const std::string& stream = shard.client->url().stream;
  const std::string start = shard.last_id.empty() ? "-" : "(" + shard.last_id;
  DOPPEL_ASSIGN_OR_RETURN(auto reply, shard.client->Command({"XRANGE", stream, start, "+", "COUNT",
                                                             std::to_string(count)}));
  DOPPEL_RETURN_IF_ERROR(ExpectType(reply, RedisReply::Type::kArray, "XRANGE " + stream));
  if (reply.elements.empty()) shard.done = true;
  for (const RedisReply& entry : reply.elements) {
    StreamEnvelope& out = shard.buffered.emplace_back();
    DOPPEL_RETURN_IF_ERROR(shard.decoder.Decode(*shard.client, entry, &out));
    shard.last_id = out.entry_id;
  }
  return Status::Ok();
}

Result<std::vector<StreamEnvelope>> StreamReader::Next(size_t count) {
  std::vector<StreamEnvelope> out;
  while (out.size() < count) {
    Shard* first = nullptr;
    MergeOrder first_order{};
    for (auto& shard : shards_) {
      if (shard->buffered.empty() && !shard->done) DOPPEL_RETURN_IF_ERROR(Fill(*shard, count));
      if (shard->buffered.empty()) continue;
      const MergeOrder order = MergeOrderOf(shard->buffered.front());
      if (first == nullptr || order < first_order) {
        first = shard.get();
        first_order = order;
      }
    }
    if (first == nullptr) break;  // every shard read to its end
    out.push_back(std::move(first->buffered.front()));
    first->buffered.pop_front();
  }
  return out;
}

}  // namespace doppel::stream
