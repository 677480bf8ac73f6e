// One proxy thread of the recorder: its io_context, SO_REUSEPORT acceptor, upstream
// keep-alive pool, mirror lane and live client sessions. Everything here is touched only from
// the worker's own thread, except `live_sessions` (read by Stop()).
#pragma once

#include <google/protobuf/arena.h>

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

#include "net/headers.h"
#include "net/http_client.h"
#include "recorder/coverage_sampler.h"
#include "recorder/mirror.h"
#include "recorder/sampler.h"

namespace doppel::recorder {

class ProxySession;
struct LivePlan;

// What coverage sampling builds for every request it may keep, and drops for most once the
// class is known (recorder/exchange.h): the envelope, on an arena with a first block of its
// own, and the request's and response's header fields, kept flat and written into the
// envelope only when it is kept. Reused by the worker's next requests: Reset() keeps the
// arena's first block and the buffers' capacity, so a dropped candidate allocates nothing.
struct Candidate {
  static constexpr size_t kBlockBytes = 4096;
  static google::protobuf::ArenaOptions Options(char* block) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = kBlockBytes;
    return o;
  }
  void Reset() {
    arena.Reset();
    request_fields.clear();
    response_fields.clear();
  }
  std::unique_ptr<char[]> block{new char[kBlockBytes]};
  google::protobuf::Arena arena{Options(block.get())};
  net::FlatFields request_fields, response_fields;
};

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
  // Finished candidates, reset, for the next ones (at most kMaxFreeCandidates: about one per
  // request in flight on the thread).
  static constexpr size_t kMaxFreeCandidates = 64;
  std::vector<std::unique_ptr<Candidate>> free_candidates;
  std::thread thread;
};

}  // namespace doppel::recorder
