// What `doppel record --log-bodies` writes about a request the proxy answered itself
// (400/413/431/505/502/504): off by default, because request heads and bodies hold
// production data. Sensitive headers are logged as their redaction hash, never verbatim.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "base/log.h"
#include "redact/redactor.h"

namespace doppel::recorder {

// One line: the request line, every header ("Name: value", the headers `redactor` redacts
// as their hash), and the first `max_body` bytes of the body. Control characters and
// non-ASCII bytes are escaped (\xNN), so traffic cannot forge log lines or drive a
// terminal. `redactor` may be null (--no-redact): the default sensitive headers are then
// left out of the line.
std::string DescribeRequestForLog(const boost::beast::http::request_header<>& head,
                                  std::string_view body, const redact::Redactor* redactor,
                                  size_t max_body = 1024);

// Writes lines through base/log.h as `component`, at most `per_second` lines a second; lines
// over that are counted and the count is logged with the next line that gets through.
// Thread-safe.
class RateLimitedLog {
 public:
  RateLimitedLog(log::Component component, int per_second)
      : component_(component), per_second_(per_second) {}
  void Write(log::Level level, const std::string& message, const boost::json::object& fields = {});

 private:
  const log::Component component_;
  const int per_second_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_;  // guarded by mu_
  int in_window_ = 0;                             // guarded by mu_
  uint64_t suppressed_ = 0;                       // guarded by mu_
};

}  // namespace doppel::recorder
