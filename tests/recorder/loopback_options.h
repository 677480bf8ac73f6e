// An in-process recorder for tests: listening on 127.0.0.1 at a free port, one proxy
// thread, in front of `upstream_url`.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "net/url.h"
#include "recorder/recorder.h"
#include "tests/recorder/memory_sink.h"

namespace doppel::recorder {

inline RecorderOptions LoopbackOptions(const std::string& upstream_url,
                                       const std::string& session = "test") {
  RecorderOptions o;
  o.listen = {"127.0.0.1", 0};
  o.upstream = net::ParseUrl(upstream_url).value();
  o.threads = 1;
  o.session = session;
  return o;
}

// Starts a recorder with `options` and sets *port to its listening port; null (the test
// failed) when it does not start.
inline RecorderPtr StartLoopback(RecorderOptions options, CaptureSink* sink,
                                 const redact::Redactor* redactor, uint16_t* port) {
  auto rec = Recorder::Start(std::move(options), sink, redactor);
  if (!rec.ok()) {
    ADD_FAILURE() << rec.status().ToString();
    return nullptr;
  }
  *port = (*rec)->listen_address().port;
  return std::move(rec.value());
}

// A fixture with an in-process recorder on loopback in front of an upstream the test chooses,
// its envelopes kept in memory; stopped after the test.
class LoopbackRecorderTest : public ::testing::Test {
 protected:
  // Starts the recorder in front of `upstream_url` (session `session`), with `tweak` applied
  // to the options first.
  void StartRecorder(const std::string& upstream_url, const std::string& session,
                     const std::function<void(RecorderOptions&)>& tweak = {}) {
    RecorderOptions o = LoopbackOptions(upstream_url, session);
    if (tweak) tweak(o);
    rec_ = StartLoopback(std::move(o), &sink_, nullptr, &port_);
    ASSERT_NE(rec_, nullptr);
  }
  void TearDown() override {
    if (rec_) rec_->Stop();
  }
  // Stops the recorder (the capture queue flushed) and returns what it captured.
  std::vector<doppel::v1::Envelope> StopAndCaptured() {
    rec_->Stop();
    return sink_.envelopes();
  }

  MemorySink sink_;
  RecorderPtr rec_;
  uint16_t port_ = 0;  // the recorder's
};

}  // namespace doppel::recorder
