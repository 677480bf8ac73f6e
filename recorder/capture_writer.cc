#include "recorder/capture_writer.h"

#include <chrono>
#include <cstdio>

#include "base/log.h"
#include "base/thread.h"
#include "storage/store.h"

namespace doppel::recorder {

namespace {

constexpr log::Component kCaptureLog{"capture", "doppel record"};

class StoreSink : public CaptureSink {
 public:
  StoreSink(storage::Store* store, std::string session)
      : store_(store), session_(std::move(session)) {}
  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    return store_->Append(session_, batch);
  }
  Status Recover() override { return store_->Resume(); }

 private:
  storage::Store* store_;
  std::string session_;
};

uint64_t ApproximateBytes(const doppel::v1::Envelope& e) {
  return e.request().body().size() + e.response().body().size() + 512;
}

}  // namespace

CaptureSinkPtr MakeStoreSink(storage::Store* store, std::string session) {
  return std::make_unique<StoreSink>(store, std::move(session));
}

CaptureWriter::CaptureWriter(CaptureSink* sink, const redact::Redactor* redactor,
                             CaptureWriterOptions options, CaptureCounters counters)
    : sink_(sink), redactor_(redactor), options_(options), counters_(counters) {}

CaptureWriter::~CaptureWriter() { Stop(); }

void CaptureWriter::Start() {
  thread_ = std::thread([this] { Run(); });
  NameThread(thread_, "doppel-capture");
}

bool CaptureWriter::Push(doppel::v1::Envelope&& envelope) {
  const uint64_t bytes = ApproximateBytes(envelope);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || pending_.size() + in_writer_ >= options_.queue_size ||
        queued_bytes_ + bytes > options_.max_queue_bytes) {
      counters_.dropped_queue_full->Inc();
      return false;
    }
    pending_.push_back(std::move(envelope));
    queued_bytes_ += bytes;
    wake = writer_waiting_;
    writer_waiting_ = false;
  }
  if (wake) wake_.notify_one();
  return true;
}

void CaptureWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

size_t CaptureWriter::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size() + in_writer_;
}

Status CaptureWriter::first_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

std::string CaptureWriter::SinkName() const {
  return options_.sink_name.empty() ? "store" : options_.sink_name;
}

std::string CaptureWriter::LogPrefix() const {
  return options_.sink_name.empty() ? "" : "sink " + options_.sink_name + ": ";
}

void CaptureWriter::Run() {
  std::vector<doppel::v1::Envelope> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      in_writer_ = 0;
      if (pending_.empty() && !stopping_) {
        while (pending_.empty() && !stopping_) {
          writer_waiting_ = true;
          wake_.wait(lock);
        }
        // Woken by the first envelope after a quiet spell: give the proxy threads a moment
        // to queue more, so there is one wake-up (a futex call on the proxy's hot path) per
        // batch rather than per request.
        if (!stopping_) {
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::microseconds(500));
          lock.lock();
        }
      }
      if (pending_.empty() && stopping_) return;
      work.swap(pending_);
      in_writer_ = work.size();
      // Bytes being written are no longer counted: memory is bounded by max_queue_bytes
      // queued plus one batch being written.
      queued_bytes_ = 0;
    }
    if (redactor_ != nullptr) {
      for (auto& e : work) redactor_->Redact(&e);
    }
    for (size_t i = 0; i < work.size(); i += options_.max_batch) {
      const size_t n = std::min(options_.max_batch, work.size() - i);
      Status st;
      if (failing_ && !sink_->StoresInParts()) {
        // The sink failed: retry (recover, then append) at most once a second, drop between.
        const auto now = std::chrono::steady_clock::now();
        if (now - last_retry_ < std::chrono::seconds(1)) {
          st = Status::Unavailable("the store failed earlier");
        } else {
          last_retry_ = now;
          st = sink_->Recover();
        }
      }
      const bool appended = st.ok();
      if (appended) st = sink_->Append(std::span<const doppel::v1::Envelope>(work.data() + i, n));
      if (st.ok()) {
        counters_.stored->Inc(n);
        if (failing_) {
          failing_ = false;
          log::Info(kCaptureLog,
                    LogPrefix() + "storing envelopes works again; " +
                        std::to_string(dropped_while_failing_) +
                        " envelopes were dropped meanwhile",
                    {{"sink", SinkName()}, {"dropped", dropped_while_failing_}});
        }
        continue;
      }
      const size_t kept = appended ? std::min(n, sink_->StoredOfFailedAppend()) : 0;
      counters_.stored->Inc(kept);
      counters_.dropped_store_error->Inc(n - kept);
      dropped_while_failing_ += n - kept;
      if (!failing_) {
        failing_ = true;
        dropped_while_failing_ = n - kept;
        last_retry_ = std::chrono::steady_clock::now();
        log::Error(kCaptureLog,
                   LogPrefix() + "storing envelopes failed: " + st.ToString() +
                       "; captures are dropped (and counted) until the " +
                       (options_.sink_name.empty() ? "store" : "sink") +
                       " accepts writes again, retried every second; proxying goes on",
                   {{"sink", SinkName()}, {"error", st.ToString()}});
        std::lock_guard<std::mutex> lock(mu_);
        if (first_error_.ok()) first_error_ = st;
      }
    }
    work.clear();
  }
}

}  // namespace doppel::recorder
