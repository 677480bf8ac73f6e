// One proxy thread of the recorder: its io_context, SO_REUSEPORT acceptor, upstream
// keep-alive pool, mirror lane and live client sessions. Everything here is touched only from
// the worker's own thread, except `live_sessions` (read by Stop()).
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <memory>
#include <random>
#include <thread>
#include <unordered_set>

#include "net/http_client.h"
#include "recorder/coverage_sampler.h"
#include "recorder/mirror.h"
#include "recorder/sampler.h"

namespace doppel::recorder {

class ProxySession;
struct LivePlan;

struct Worker {
  std::unordered_set<ProxySession*> sessions;
  bool draining = false;
  SplitMix64 rng{std::random_device{}() * 0x9e3779b97f4a7c15ull ^ std::random_device{}()};
  std::atomic<size_t> live_sessions{0};
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
      boost::asio::make_work_guard(io)};
  boost::asio::ip::tcp::acceptor acceptor{io};
  boost::asio::steady_timer accept_backoff{io};
  net::HttpClientPoolPtr pool;
  // The plan of the requests starting now (RecorderImpl::PlanFor), and the lane of its hub;
  // lanes of earlier hubs stay until the worker ends (their copies may be in flight).
  const LivePlan* plan = nullptr;
  std::unique_ptr<MirrorLane> mirror;  // --mirror only
  std::vector<std::unique_ptr<MirrorLane>> retired_lanes;
  std::unique_ptr<CoverageSampler> coverage;  // --sample-mode coverage only
  std::thread thread;
};

}  // namespace doppel::recorder
