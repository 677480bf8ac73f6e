// Helpers of the hardening tests (hostile HTTP, faults, security): a `doppel record` process
// with its admin endpoint, raw TCP exchanges, /metrics values and open descriptor counts.
#pragma once

#include <sys/types.h>

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {

// `doppel --store STORE record --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream URL
// EXTRA...`, started and waited for (both addresses printed). `env` entries ("NAME=value")
// are added to its environment.
class RecordProcess {
 public:
  RecordProcess(const std::string& store, const std::string& upstream,
                std::vector<std::string> extra, std::vector<std::string> env = {});
  bool started() const { return port_ != 0 && admin_port_ != 0; }
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  ChildProcess& child() { return *child_; }
  // GET on the admin endpoint; the body, "" on failure.
  std::string Admin(const std::string& path) const;
  // The value of one series of /metrics, e.g. `doppel_proxy_errors_total{reason="bad_request"}`;
  // -1 when absent.
  double Metric(const std::string& series) const;
  // /status as a JSON object (empty on failure).
  boost::json::object Status() const;
  // The "stored" count of /status; -1 on failure.
  int64_t StatusStored() const;

 private:
  std::unique_ptr<ChildProcess> child_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
};

// Value of `series` in a Prometheus text page, -1 when absent.
double MetricIn(const std::string& page, const std::string& series);

// Open file descriptors of a process (entries of /proc/PID/fd), -1 on failure.
int CountFds(pid_t pid);

// ConnectToLoopback, SendAll and DeadPort: tests/net/test_upstream.h.

// Polls `pred` every 20 ms for up to `timeout_ms`; its last value.
template <class Pred>
bool Eventually(Pred pred, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace doppel::testing
