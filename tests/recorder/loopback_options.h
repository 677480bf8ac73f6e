// An in-process recorder for tests: listening on 127.0.0.1 at a free port, one proxy
// thread, in front of `upstream_url`.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "net/url.h"
#include "recorder/recorder.h"

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

}  // namespace doppel::recorder
