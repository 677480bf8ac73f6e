// A capture sink for in-process recorder tests: keeps the envelopes in memory, and can hold
// every Append to imitate a store that does not keep up.
#pragma once

#include <mutex>
#include <span>
#include <vector>

#include "recorder/capture_writer.h"
#include "tests/base/gate.h"

namespace doppel::recorder {

class MemorySink : public CaptureSink {
 public:
  Status Append(std::span<const doppel::v1::Envelope> batch) override {
    gate_.Wait();
    std::lock_guard<std::mutex> lock(mu_);
    envelopes_.insert(envelopes_.end(), batch.begin(), batch.end());
    return Status::Ok();
  }
  std::vector<doppel::v1::Envelope> envelopes() {
    std::lock_guard<std::mutex> lock(mu_);
    return envelopes_;
  }
  // Until Release(), Append blocks: a store that does not keep up at all.
  void Hold() { gate_.Close(); }
  void Release() { gate_.Open(); }

 private:
  testing::Gate gate_{/*open=*/true};
  std::mutex mu_;
  std::vector<doppel::v1::Envelope> envelopes_;
};

}  // namespace doppel::recorder
