#include "recorder/capture_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tests/base/gate.h"

namespace doppel::recorder {
namespace {

class MemorySink : public CaptureSink {
 public:
  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
      entered_.notify_all();
    }
    gate_.Wait();
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return Status::IoError("disk on fire");
    envelopes_.insert(envelopes_.end(), batch.begin(), batch.end());
    return Status::Ok();
  }
  void Block() { gate_.Close(); }
  void Release() { gate_.Open(); }
  void WaitForCall() {
    std::unique_lock<std::mutex> lock(mu_);
    entered_.wait(lock, [this] { return calls_ > 0; });
  }
  std::vector<doppel::v1::Envelope> envelopes() {
    std::lock_guard<std::mutex> lock(mu_);
    return envelopes_;
  }
  bool fail_ = false;

 private:
  testing::Gate gate_{/*open=*/true};
  std::mutex mu_;
  std::condition_variable entered_;
  int calls_ = 0;
  std::vector<doppel::v1::Envelope> envelopes_;
};

class CaptureWriterTest : public ::testing::Test {
 protected:
  CaptureCounters counters() { return {&stored_, &dropped_full_, &dropped_error_}; }
  static doppel::v1::Envelope Make(uint32_t seq) {
    doppel::v1::Envelope e;
    e.set_seq(seq);
    e.set_arrival_us(1000 + seq);
    auto* h = e.mutable_request()->add_headers();
    h->set_name("Authorization");
    h->set_value("Bearer s3cr3t");
    return e;
  }
  // Starts `w` with the sink blocked, pushes envelope 0 and waits until the writer holds it and
  // is stuck in the sink: from then on Push only fills the queue, until sink_.Release().
  void StartStuckInTheSink(CaptureWriter& w) {
    sink_.Block();
    w.Start();
    ASSERT_TRUE(w.Push(Make(0)));
    sink_.WaitForCall();
  }
  net::Counter stored_, dropped_full_, dropped_error_;
  MemorySink sink_;
};

TEST_F(CaptureWriterTest, StoresEverythingPushedAndRedacts) {
  redact::Redactor redactor("0123456789abcdef0123456789abcdef", {});
  CaptureWriter w(&sink_, &redactor, {}, counters());
  w.Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t i = 0; i < 500; ++i) EXPECT_TRUE(w.Push(Make(t * 1000 + i)));
    });
  }
  for (auto& t : threads) t.join();
  w.Stop();
  const auto got = sink_.envelopes();
  ASSERT_EQ(got.size(), 2000u);
  EXPECT_EQ(w.stored(), 2000u);
  EXPECT_EQ(w.dropped(), 0u);
  EXPECT_EQ(w.depth(), 0u);
  for (const auto& e : got) {
    EXPECT_EQ(e.request().headers(0).value(), redactor.Hash("Bearer s3cr3t"));
  }
}

TEST_F(CaptureWriterTest, FullQueueDropsWithoutBlocking) {
  CaptureWriterOptions o;
  o.queue_size = 10;
  CaptureWriter w(&sink_, nullptr, o, counters());
  ASSERT_NO_FATAL_FAILURE(StartStuckInTheSink(w));
  // The sink stays blocked until Release() below: a Push that waited for it would never return.
  int accepted = 0;
  for (uint32_t i = 1; i <= 20; ++i) accepted += w.Push(Make(i));
  EXPECT_EQ(accepted, 9);
  EXPECT_EQ(dropped_full_.value(), 11u);
  EXPECT_EQ(w.depth(), 10u);
  sink_.Release();
  w.Stop();
  EXPECT_EQ(sink_.envelopes().size(), 10u);
  EXPECT_EQ(w.stored() + w.dropped(), 21u);
  EXPECT_FALSE(w.Push(Make(99)));  // stopped
}

TEST_F(CaptureWriterTest, ByteBoundDropsLargeEnvelopes) {
  CaptureWriterOptions o;
  o.max_queue_bytes = 10000;
  CaptureWriter w(&sink_, nullptr, o, counters());
  ASSERT_NO_FATAL_FAILURE(StartStuckInTheSink(w));
  doppel::v1::Envelope big = Make(1);
  big.mutable_request()->set_body(std::string(20000, 'x'));
  EXPECT_FALSE(w.Push(std::move(big)));
  EXPECT_TRUE(w.Push(Make(2)));
  sink_.Release();
  w.Stop();
  EXPECT_EQ(sink_.envelopes().size(), 2u);
}

TEST_F(CaptureWriterTest, StoreErrorsAreCountedAndReported) {
  sink_.fail_ = true;
  CaptureWriter w(&sink_, nullptr, {}, counters());
  w.Start();
  for (uint32_t i = 0; i < 5; ++i) w.Push(Make(i));
  w.Stop();
  EXPECT_EQ(dropped_error_.value(), 5u);
  EXPECT_EQ(w.stored(), 0u);
  EXPECT_FALSE(w.first_error().ok());
  EXPECT_NE(w.first_error().message().find("disk on fire"), std::string::npos);
}

// A sink that stores a part of each batch and fails the rest, as a sharded Redis sink with one
// shard down does: the part is counted as stored, the rest as dropped, and the next batch is
// appended at once, not after the once-a-second retry of a sink that fails whole.
class HalfShardSink : public CaptureSink {
 public:
  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    std::lock_guard<std::mutex> lock(mu_);
    stored_of_failed_ = 0;
    for (const auto& e : batch) {
      if (e.seq() % 2 == 0) {
        kept_.push_back(e.seq());
        ++stored_of_failed_;
      }
    }
    ++calls_;
    called_.notify_all();
    return Status::Unavailable("redis redis://127.0.0.1:1/s{1}: connection lost");
  }
  bool StoresInParts() const override { return true; }
  size_t StoredOfFailedAppend() const override { return stored_of_failed_; }
  void WaitForCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    called_.wait(lock, [&] { return calls_ >= n; });
  }
  std::vector<uint32_t> kept() {
    std::lock_guard<std::mutex> lock(mu_);
    return kept_;
  }

 private:
  std::mutex mu_;
  std::condition_variable called_;
  int calls_ = 0;
  size_t stored_of_failed_ = 0;
  std::vector<uint32_t> kept_;
};

TEST_F(CaptureWriterTest, APartlyFailedAppendCountsItsPartsAndTheNextBatchIsAppended) {
  HalfShardSink sink;
  CaptureWriter w(&sink, nullptr, {}, counters());
  w.Start();
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(w.Push(Make(i)));
    sink.WaitForCalls(static_cast<int>(i) + 1);  // one batch each, well within a second
  }
  w.Stop();
  EXPECT_EQ(sink.kept(), (std::vector<uint32_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(w.stored(), 5u);
  EXPECT_EQ(dropped_error_.value(), 5u);
  EXPECT_TRUE(w.failing());
  EXPECT_NE(w.first_error().message().find("connection lost"), std::string::npos);
}

}  // namespace
}  // namespace doppel::recorder
