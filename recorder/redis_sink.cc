#include "recorder/redis_sink.h"

#include <algorithm>
#include <cstdio>

namespace doppel::recorder {
namespace {

class RedisSink : public CaptureSink {
 public:
  RedisSink(const stream::RedisUrl& url, RedisSinkOptions options)
      : options_(options), writer_(url, options.writer), backoff_(options.min_backoff) {}

  Status Connect() { return writer_.Connect(); }

  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    return writer_.Append(batch);
  }

  // Called by the capture writer (at most once a second) while appends fail.
  Status Recover() override {
    if (writer_.connected()) return Status::Ok();  // Redis refused a command: try again
    const auto now = std::chrono::steady_clock::now();
    if (now < next_attempt_) {
      return Status::Unavailable("redis " + writer_.url().ToString() + ": reconnecting");
    }
    Status st = writer_.Connect();
    if (st.ok()) {
      backoff_ = options_.min_backoff;
      std::fprintf(stderr, "doppel record: reconnected to %s\n", writer_.url().ToString().c_str());
      return st;
    }
    next_attempt_ = now + backoff_;
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    return st;
  }

 private:
  RedisSinkOptions options_;
  stream::StreamWriter writer_;
  std::chrono::milliseconds backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
};

}  // namespace

Result<CaptureSinkPtr> MakeRedisSink(const stream::RedisUrl& url, RedisSinkOptions options) {
  auto sink = std::make_unique<RedisSink>(url, options);
  Status st = sink->Connect();
  if (!st.ok()) {
    // A refused password is wrong whatever --sink-optional says; an absent server is not.
    if (!options.optional || st.code() != Status::Code::kUnavailable) {
      return st.WithContext("--sink " + url.ToString());
    }
    std::fprintf(stderr,
                 "doppel record: --sink %s: %s; starting anyway (--sink-optional): captures "
                 "for it are dropped and counted until it answers\n",
                 url.ToString().c_str(), st.ToString().c_str());
  }
  return CaptureSinkPtr(std::move(sink));
}

}  // namespace doppel::recorder
