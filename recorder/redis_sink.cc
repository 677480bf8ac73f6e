#include "recorder/redis_sink.h"

#include <algorithm>
#include <cstdio>

#include "base/log.h"

namespace doppel::recorder {
namespace {

constexpr log::Component kSinkLog{"sink", "doppel record"};

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
      log::Info(kSinkLog, "reconnected to " + writer_.url().ToString(),
                {{"sink", writer_.url().ToString()}});
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
    log::Warn(kSinkLog,
              "--sink " + url.ToString() + ": " + st.ToString() +
                  "; starting anyway (--sink-optional): captures for it are dropped and counted "
                  "until it answers",
              {{"sink", url.ToString()}, {"error", st.ToString()}});
  }
  return CaptureSinkPtr(std::move(sink));
}

}  // namespace doppel::recorder
