#include "recorder/redis_sink.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "base/log.h"
#include "base/stable_hash.h"
#include "net/match.h"
#include "net/proto_headers.h"

namespace doppel::recorder {
namespace {

constexpr log::Component kSinkLog{"sink", "doppel record"};

// One stream's writer, reconnected with backoff after a failure.
class ShardWriter {
 public:
  ShardWriter(const stream::RedisUrl& url, const RedisSinkOptions& options,
              stream::StreamWriterOptions writer)
      : options_(options), writer_(url, std::move(writer)), backoff_(options.min_backoff) {}

  Status Connect() { return writer_.Connect(); }
  template <typename Batch>
  Status Append(const Batch& batch) {
    return writer_.Append(batch);
  }

  Status Recover() {
    if (writer_.connected()) return Status::Ok();  // Redis refused a command: try again
    const auto now = std::chrono::steady_clock::now();
    if (now < next_attempt_) {
      return Status::Unavailable("redis " + writer_.url().ToString() + ": reconnecting");
    }
    Status st = writer_.Connect();
    if (st.ok()) {
      backoff_ = options_.min_backoff;
      log::Info(kSinkLog, "reconnected to " + writer_.url().ToString(),
                {{"sink", writer_.url().ToString()}});
      return st;
    }
    next_attempt_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    return st;
  }

 private:
  const RedisSinkOptions& options_;
  stream::StreamWriter writer_;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
};

class RedisSink : public CaptureSink {
 public:
  RedisSink(const stream::RedisUrl& url, RedisSinkOptions options, Sampler keys)
      : options_(std::move(options)), keys_(std::move(keys)) {
    if (options_.shards == 0) {
      shards_.push_back(std::make_unique<ShardWriter>(url, options_, options_.writer));
      return;
    }
    for (uint32_t i = 0; i < options_.shards; ++i) {
      stream::RedisUrl u = url;
      u.stream = stream::ShardStreamName(url.stream, i);
      stream::StreamWriterOptions w = options_.writer;
      if (i == 0) {
        w.shards_key = stream::ShardsKey(url.stream);
        w.shard_count = options_.shards;
      }
      shards_.push_back(std::make_unique<ShardWriter>(u, options_, std::move(w)));
    }
    parts_.resize(options_.shards);
  }

  // Every shard connected; the first error (the others are tried anyway, so that an
  // optional sink has what it can reach).
  Status Connect() {
    Status first;
    for (auto& s : shards_) {
      Status st = s->Connect();
      if (first.ok() && !st.ok()) first = st;
    }
    return first;
  }

  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    stored_of_failed_ = 0;
    if (shards_.size() == 1) return shards_[0]->Append(batch);
    for (auto& p : parts_) p.clear();
    for (const auto& e : batch) {
      parts_[ShardOf(e, keys_, static_cast<uint32_t>(shards_.size()))].push_back(&e);
    }
    Status first;
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (parts_[i].empty()) continue;
      Status st = shards_[i]->Recover();  // a shard that failed before: reconnect first
      if (st.ok()) st = shards_[i]->Append(std::span<const doppel::v1::Envelope* const>(parts_[i]));
      if (st.ok()) {
        stored_of_failed_ += parts_[i].size();
      } else if (first.ok()) {
        first = st;
      }
    }
    return first;
  }

  bool StoresInParts() const override { return shards_.size() > 1; }
  size_t StoredOfFailedAppend() const override { return stored_of_failed_; }

  // Called by the capture writer (at most once a second) while appends fail.
  Status Recover() override {
    if (shards_.size() > 1) return Status::Ok();  // Append reconnects shard by shard
    return shards_[0]->Recover();
  }

 private:
  RedisSinkOptions options_;
  Sampler keys_;
  std::vector<std::unique_ptr<ShardWriter>> shards_;
  std::vector<std::vector<const doppel::v1::Envelope*>> parts_;  // into the batch: no copies
  size_t stored_of_failed_ = 0;
};

}  // namespace

uint32_t ShardOf(const doppel::v1::Envelope& envelope, const Sampler& keys, uint32_t shards) {
  const auto& headers = envelope.request().headers();
  net::RequestView view{envelope.request().method(), envelope.request().target(),
                        [&headers](std::string_view name) -> std::optional<std::string_view> {
                          const std::string* v = net::FindHeader(headers, name);
                          if (v == nullptr) return std::nullopt;
                          return std::string_view(*v);
                        }};
  return static_cast<uint32_t>(keys.Draw(view, StableHash64(envelope.client_addr())) % shards);
}

Result<CaptureSinkPtr> MakeRedisSink(const stream::RedisUrl& url, RedisSinkOptions options) {
  DOPPEL_ASSIGN_OR_RETURN(Sampler keys, Sampler::Create(100, options.sample_key));
  const bool optional = options.optional;
  auto sink = std::make_unique<RedisSink>(url, std::move(options), std::move(keys));
  Status st = sink->Connect();
  if (!st.ok()) {
    // A refused password is wrong whatever --sink-optional says; an absent server is not.
    if (!optional || st.code() != Status::Code::kUnavailable) {
      return st.WithContext("--sink " + url.ToString());
    }
    log::Warn(kSinkLog,
              "--sink " + url.ToString() + ": " + st.ToString() +
                  "; starting anyway (--sink-optional): captures for it are dropped and counted "
                  "until it answers",
              {{"sink", url.ToString()}, {"error", st.ToString()}});
  }
  return CaptureSinkPtr(std::move(sink));
}

}  // namespace doppel::recorder
