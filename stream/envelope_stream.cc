#include "stream/envelope_stream.h"

#include <charconv>

namespace doppel::stream {
namespace {

constexpr char kValueField[] = "e";
constexpr char kRecorderField[] = "r";

}  // namespace

std::string DictionariesKey(const std::string& stream) { return stream + ":dicts"; }

StreamWriter::StreamWriter(RedisUrl url, StreamWriterOptions options)
    : url_(std::move(url)), options_(std::move(options)) {}

StreamWriter::~StreamWriter() = default;

Status StreamWriter::Connect() {
  if (client_) return client_->Reconnect();
  auto client = RedisClient::Connect(url_, options_.client);
  if (!client.ok()) return client.status();
  client_ = std::move(client.value());
  return Status::Ok();
}

bool StreamWriter::connected() const { return client_ && !client_->broken(); }

Status StreamWriter::Append(std::span<const doppel::v1::Envelope> batch) {
  if (!connected()) {
    return Status::Unavailable("redis " + url_.ToString() + ": not connected");
  }
  commands_.clear();
  for (const auto& e : batch) {
    serialized_.clear();
    e.AppendToString(&serialized_);
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

StreamReader::StreamReader(RedisClientPtr client) : client_(std::move(client)) {}
StreamReader::~StreamReader() = default;

Result<std::unique_ptr<StreamReader>> StreamReader::Open(const RedisUrl& url,
                                                         RedisClientOptions options) {
  DOPPEL_ASSIGN_OR_RETURN(auto client, RedisClient::Connect(url, options));
  DOPPEL_ASSIGN_OR_RETURN(auto type, client->Command({"TYPE", url.stream}));
  DOPPEL_RETURN_IF_ERROR(ExpectType(type, RedisReply::Type::kStatus, "TYPE"));
  if (type.str == "none") {
    return Status::NotFound("there is no stream '" + url.stream + "' on " + url.ToString() +
                            " (check the name: nothing was recorded into it yet?)");
  }
  if (type.str != "stream") {
    return Status::InvalidArgument("'" + url.stream + "' on " + url.ToString() + " is a " +
                                   type.str + ", not a stream");
  }
  std::unique_ptr<StreamReader> reader(new StreamReader(std::move(client)));
  DOPPEL_RETURN_IF_ERROR(reader->decoder_.LoadDictionaries(*reader->client_));
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

Result<std::vector<StreamEnvelope>> StreamReader::Next(size_t count) {
  const std::string& stream = client_->url().stream;
  const std::string start = last_id_.empty() ? "-" : "(" + last_id_;
  DOPPEL_ASSIGN_OR_RETURN(
      auto reply, client_->Command({"XRANGE", stream, start, "+", "COUNT", std::to_string(count)}));
  DOPPEL_RETURN_IF_ERROR(ExpectType(reply, RedisReply::Type::kArray, "XRANGE " + stream));
  std::vector<StreamEnvelope> out(reply.elements.size());
  for (size_t i = 0; i < reply.elements.size(); ++i) {
    DOPPEL_RETURN_IF_ERROR(decoder_.Decode(*client_, reply.elements[i], &out[i]));
    last_id_ = out[i].entry_id;
  }
  return out;
}

}  // namespace doppel::stream
