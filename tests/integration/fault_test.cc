// Faults around real doppel processes: a misbehaving primary (scripted over raw TCP), a store
// whose disk fills up and then gets space again (disk_full_preload.cc), SIGKILL of the
// recorder under load, and a replay target that dies mid-run.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "storage/store.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace http = boost::beast::http;
namespace json = boost::json;

// A primary that misbehaves on purpose, one thread per connection. The request path picks
// the behaviour:
//   /ok         200 "ok", Connection: close
//   /keepalive  200 "ka", keep-alive, then closes the idle connection after 50 ms
//   /reset-mid  headers and part of the body, then a TCP reset
//   /slow       answers after 2 s
//   /garbage    a garbage status line
//   /badchunk   a chunked body with a non-hex chunk size
class ScriptedUpstream {
 public:
  ScriptedUpstream() {
    listen_fd_ = ListenOnLoopback(128, &port_);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~ScriptedUpstream() {
    StopListening();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  // Closes the listening socket: connecting is refused from now on.
  void StopListening() {
    if (stopping_.exchange(true)) return;
    ::shutdown(listen_fd_, SHUT_RDWR);
    accept_.join();
    ::close(listen_fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int count(const std::string& request_line) {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_[request_line];
  }
  // Keep-alive connections closed for being idle after a /keepalive answer.
  int idle_closes() {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_closes_;
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& [line, c] : seen_) n += c;
    return n;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (stopping_) return;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  // Reads one request (head and Content-Length body); its request line, "" on EOF.
  static std::string ReadRequest(int fd, std::string* pending, int timeout_ms) {
    for (;;) {
      const size_t end = pending->find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t body = 0;
        const size_t cl = pending->find("Content-Length: ");
        if (cl != std::string::npos && cl < end) body = std::stoul(pending->substr(cl + 16));
        if (pending->size() >= end + 4 + body) {
          std::string line = pending->substr(0, pending->find("\r\n"));
          pending->erase(0, end + 4 + body);
          return line;
        }
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return "";
      char buf[16384];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return "";
      pending->append(buf, static_cast<size_t>(n));
    }
  }

  void Serve(int fd) {
    std::string pending;
    bool reset = false;
    bool idle_closed = false;
    for (;;) {
      const std::string line = ReadRequest(fd, &pending, 10000);
      if (line.empty()) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++seen_[line];
      }
      const std::string path =
          line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
      if (path == "/keepalive") {
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nka");
        // Close the idle keep-alive connection soon, as servers with short idle timeouts do.
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) == 0) {
          idle_closed = true;
          break;
        }
        continue;
      }
      if (path == "/reset-mid") {
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x'));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        reset = true;
      } else if (path == "/slow") {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow");
      } else if (path == "/garbage") {
        SendAll(fd, "HELLO THERE\r\n\r\n");
      } else if (path == "/badchunk") {
        SendAll(fd,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
      } else {
        SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
      }
      break;
    }
    if (reset) {
      linger l{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.erase(std::find(fds_.begin(), fds_.end(), fd));
    ::close(fd);
    if (idle_closed) ++idle_closes_;
  }

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::map<std::string, int> seen_;
  int idle_closes_ = 0;  // guarded by mu_
};

std::string Series(const char* reason) {
  return std::string("doppel_proxy_errors_total{reason=\"") + reason + "\"}";
}

class FaultTest : public StoreDirTest {
 protected:
  std::unique_ptr<storage::Store> OpenStore(bool read_only) {
    storage::StoreOptions o;
    o.read_only = read_only;
    o.create_if_missing = false;
    std::unique_ptr<storage::Store> s;
    Status st = storage::Store::Open(o, store_, &s);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return s;
  }
  // Every envelope of `session` decodes; returns how many there are (-1 on an error).
  int64_t CountDecodable(storage::Store& store, const std::string& session) {
    auto it = store.Scan(session);
    if (!it.ok()) return -1;
    int64_t n = 0;
    for (auto& i = it.value(); i->Valid(); i->Next()) ++n;
    EXPECT_TRUE(it.value()->status().ok()) << it.value()->status().ToString();
    return it.value()->status().ok() ? n : -1;
  }
};

TEST_F(FaultTest, MisbehavingPrimaryGets502Or504AndLeaksNothing) {
  ScriptedUpstream up;
  RecordProcess rec(store_, up.url(),
                    {"--session", "faults", "--threads", "1", "--upstream-timeout", "300ms",
                     "--upstream-connect-timeout", "1s"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Fetch(rec.port(), "GET", "/ok").result_int(), 200u);
  ASSERT_TRUE(Eventually([&] { return rec.Metric("doppel_connections_active") == 0; }));
  const int baseline_fds = CountFds(rec.child().pid());
  ASSERT_GT(baseline_fds, 0);

  struct Fault {
    const char* path;
    unsigned status;
    const char* reason;
    const char* body;  // in the answer's text
    int times;
  } faults[] = {
      // Responses stream: once the head went to the client, a primary failing mid-body can
      // only be told by closing the client connection (status 0: no complete response).
      {"/reset-mid", 0, "upstream_reset", "no complete response", 10},
      {"/garbage", 502, "upstream_reset", "malformed upstream response", 10},
      {"/badchunk", 0, "upstream_reset", "no complete response", 10},
      {"/slow", 504, "upstream_timeout", "primary timeout", 4},
  };
  std::map<std::string, int> want;
  for (const Fault& f : faults) {
    for (int i = 0; i < f.times; ++i) {
      auto res = Fetch(rec.port(), "GET", f.path);
      EXPECT_EQ(res.result_int(), f.status) << f.path << ": " << res.body();
      EXPECT_NE(res.body().find(f.body), std::string::npos) << f.path << ": " << res.body();
    }
    want[f.reason] += f.times;
  }

  // The primary closes idle keep-alive connections 50 ms after each answer. A request that
  // finds its pooled connection closed goes out on a new one, sent once: a GET may be
  // retried, a POST is not sent on a connection already known to be closed.
  {
    testing::TestClient client(rec.port());
    for (int i = 0; i < 4; ++i) {
      for (http::verb verb : {http::verb::get, http::verb::post}) {
        net::HttpRequest req{verb, "/keepalive", 11};
        req.set(http::field::host, "shop.test");
        if (verb == http::verb::post) {
          req.body() = "order-" + std::to_string(i);
          req.prepare_payload();
        }
        const int closes = up.idle_closes();
        auto res = client.Send(std::move(req));
        EXPECT_EQ(res.result_int(), 200u)
            << http::to_string(verb) << " " << i << ": " << res.body();
        // The next request finds the pooled connection closed by the primary.
        EXPECT_TRUE(Eventually([&] { return up.idle_closes() > closes; }))
            << http::to_string(verb) << " " << i;
      }
    }
  }
  EXPECT_EQ(up.count("POST /keepalive HTTP/1.1"), 4);  // each POST reached the primary once
  EXPECT_EQ(up.count("GET /keepalive HTTP/1.1"), 4);

  // A primary that refuses connections.
  up.StopListening();
  for (int i = 0; i < 10; ++i) {
    auto res = Fetch(rec.port(), "GET", "/ok");
    EXPECT_EQ(res.result_int(), 502u) << res.body();
    EXPECT_NE(res.body().find("primary unreachable"), std::string::npos) << res.body();
  }
  want["upstream_connect"] += 10;

  for (const char* reason : {"upstream_reset", "upstream_timeout", "upstream_connect"}) {
    EXPECT_EQ(rec.Metric(Series(reason)), want[reason]) << reason;
  }
  EXPECT_EQ(rec.Metric(Series("bad_request")), 0);
  EXPECT_EQ(rec.Admin("/healthz"), "ok\n");
  // No leaked client or upstream connection: 44 faults would leak at least 44 descriptors.
  EXPECT_TRUE(Eventually([&] { return rec.Metric("doppel_connections_active") == 0; }))
      << rec.Metric("doppel_connections_active");
  int fds = 0;
  EXPECT_TRUE(Eventually([&] { return (fds = CountFds(rec.child().pid())) <= baseline_fds + 2; }))
      << "open descriptors: " << fds << ", baseline " << baseline_fds;
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(20000), 0) << rec.child().all_stderr();
}

// The store's disk fills up, then gets space again. The disk is made "full" by
// disk_full_preload.cc, preloaded into the recorder: while the flag file exists, its writes
// under the store fail with ENOSPC, as on a full file system, so RocksDB reports NoSpace and
// recovers (DB::Resume) once writes succeed again. No tmpfs mount, so this runs without root.
// (A file size limit, RLIMIT_FSIZE, would not do: its EFBIG is a plain IOError, which RocksDB
// treats as fatal, so the store never resumes.)
TEST_F(FaultTest, FullDiskDropsRecordingKeepsProxyingAndResumes) {
  const std::string full_flag = dir_ + "/disk-is-full";
  const char* asan = std::getenv("ASAN_OPTIONS");
  TestUpstream up;
  RecordProcess rec(
      store_, up.url(), {"--session", "full", "--threads", "1"},
      {"LD_PRELOAD=" DOPPEL_DISK_FULL_PRELOAD, "DOPPEL_TEST_DISK_DIR=" + store_,
       "DOPPEL_TEST_DISK_FULL=" + full_flag,
       // The preloaded library comes before an ASan runtime (sanitizer builds).
       std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":verify_asan_link_order=0"});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();

  std::mt19937_64 rng(7);
  testing::TestClient client(rec.port());
  auto post = [&] {
    net::HttpRequest req{http::verb::post, "/upload", 11};
    req.set(http::field::host, "shop.test");
    req.body() = std::string(4096, static_cast<char>('a' + rng() % 26));
    req.prepare_payload();
    return client.Send(std::move(req)).result_int();
  };
  for (int i = 0; i < 10; ++i) ASSERT_EQ(post(), 200u) << rec.child().all_stderr();
  ASSERT_TRUE(Eventually([&] { return rec.StatusStored() == 10; }, 10000))
      << rec.StatusStored() << rec.child().all_stderr();

  // The disk is full: every request is still proxied, and its capture dropped and counted.
  std::ofstream(full_flag) << "full\n";
  const std::string dropped =
      "doppel_envelopes_dropped_total{sink=\"store\",reason=\"store_error\"}";
  ASSERT_TRUE(Eventually(
      [&] {
        EXPECT_EQ(post(), 200u);
        return rec.Metric(dropped) > 0;
      },
      10000))
      << "no capture was dropped: " << rec.child().all_stderr();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(post(), 200u);
  const int64_t stored_full = rec.StatusStored();
  EXPECT_GE(stored_full, 10);
  // Stays flat while the disk is full, across the writer's once-a-second retry.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(post(), 200u);
  EXPECT_TRUE(Eventually([&] { return rec.Metric(dropped) >= 7; }))
      << "dropped " << rec.Metric(dropped);
  EXPECT_EQ(rec.StatusStored(), stored_full);
  EXPECT_GT(up.requests().size(), static_cast<size_t>(stored_full));  // all were proxied

  // Space again: the writer's next retry resumes the store, and recording goes on.
  std::filesystem::remove(full_flag);
  bool resumed = Eventually(
      [&] {
        EXPECT_EQ(post(), 200u);
        return rec.StatusStored() > stored_full;
      },
      8000);
  EXPECT_TRUE(resumed) << rec.child().all_stderr();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(post(), 200u);
  EXPECT_TRUE(Eventually([&] { return rec.StatusStored() >= stored_full + 4; }))
      << rec.StatusStored();
  const int64_t stored_end = rec.StatusStored();
  const double dropped_total = rec.Metric(dropped);

  rec.child().Signal(SIGTERM);
  // Envelopes were lost: exit 2, saying how many.
  EXPECT_EQ(rec.child().Wait(30000), 2) << rec.child().all_stderr();
  const std::string err = rec.child().all_stderr();
  EXPECT_NE(err.find("storing envelopes failed"), std::string::npos) << err;
  EXPECT_NE(err.find("disk is full"), std::string::npos) << err;
  EXPECT_NE(err.find("storing envelopes works again"), std::string::npos) << err;
  EXPECT_NE(err.find("envelopes were not stored"), std::string::npos) << err;

  // Nothing is corrupt: every stored envelope decodes, and none acknowledged is missing.
  auto store = OpenStore(false);
  ASSERT_TRUE(store);
  auto info = store->GetSession("full");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->state(), v1::SESSION_STATE_CLOSED);
  EXPECT_EQ(static_cast<double>(info->counts().dropped()), dropped_total);
  const int64_t n = CountDecodable(*store, "full");
  EXPECT_GE(n, stored_end);
  EXPECT_GT(n, stored_full);
  store.reset();
  std::printf("full disk: %lld stored before, %.0f dropped while full, %lld stored after\n",
              static_cast<long long>(stored_full), dropped_total, static_cast<long long>(n));
}

// SIGKILL under load, three times into one store: each session is readable afterwards,
// marked interrupted, holds at least what /status called stored just before the kill, and
// `doppel cat` reads it whole.
TEST_F(FaultTest, SigkillUnderLoadLosesNothingAcknowledged) {
  TestUpstream up;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string session = "kill-" + std::to_string(round);
    RecordProcess rec(store_, up.url(), {"--session", session, "--threads", "2"});
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 3; ++t) {
      clients.emplace_back([&, t] {
        testing::TestClient c(rec.port());
        for (int i = 0; !stop; ++i) {
          net::HttpRequest req{http::verb::post, "/load/" + std::to_string(t), 11};
          req.set(http::field::host, "shop.test");
          req.body() = std::string(200, static_cast<char>('a' + i % 26));
          req.prepare_payload();
          if (c.Send(std::move(req)).result_int() != 200) break;
          ++ok;
        }
      });
    }
    int64_t acknowledged = 0;
    ASSERT_TRUE(Eventually([&] { return (acknowledged = rec.StatusStored()) >= 300; }, 10000))
        << acknowledged;
    acknowledged = rec.StatusStored();
    rec.child().Signal(SIGKILL);
    EXPECT_EQ(rec.child().Wait(10000), 128 + SIGKILL);
    stop = true;
    for (auto& t : clients) t.join();

    auto store = OpenStore(false);  // read-write: marks the session interrupted
    ASSERT_TRUE(store);
    auto info = store->GetSession(session);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->state(), v1::SESSION_STATE_INTERRUPTED);
    const int64_t n = CountDecodable(*store, session);
    EXPECT_GE(n, acknowledged) << "acknowledged as stored before the kill";
    EXPECT_LE(n, ok.load() + 3);
    store.reset();

    ChildProcess cat({DoppelBinary(), "--store", store_, "cat", "--session", session});
    EXPECT_EQ(cat.Wait(30000), 0) << cat.all_stderr();
    const std::string out = cat.all_stdout();
    EXPECT_EQ(static_cast<int64_t>(std::count(out.begin(), out.end(), '\n')), n);
    std::printf("sigkill round %d: %lld acknowledged, %lld readable\n", round,
                static_cast<long long>(acknowledged), static_cast<long long>(n));
  }
}

// The replay target dies mid-run: its errors are counted, the run completes and is saved.
// (An interrupted replay is covered by ReplayCliTest.SigintSavesAPartialRunMarkedInterrupted.)
TEST_F(FaultTest, ReplayTargetDyingMidRunIsCountedAndTheRunSaved) {
  constexpr int kEnvelopes = 150;
  {
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < kEnvelopes; ++i) {
      v1::Envelope e;
      e.set_arrival_us(1'000'000 + i * 1000);
      e.set_seq(i);
      e.mutable_request()->set_method("GET");
      e.mutable_request()->set_target("/api/products/" + std::to_string(i % 10 + 1));
      e.mutable_request()->set_version(11);
      e.mutable_response()->set_status(200);
      batch.push_back(e);
    }
    const Status written = storage::testing::WriteSession(store_, "s", batch);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }
  // The target answers (Connection: close) until it has seen kFirst requests, then stops
  // listening: every later connect is refused. Progress-driven, not timed, so a slow
  // (sanitized) build cannot kill the target before the replay has started.
  constexpr int kFirst = 20;
  ScriptedUpstream target;
  const std::string report = dir_ + "/report.json";
  ChildProcess replay({DoppelBinary(), "--store", store_, "replay", "--session", "s", "--target",
                       target.url(), "--rate", "100", "--no-diff", "--no-progress", "--timeout",
                       "2s", "--report-json", report});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (target.total() < kFirst && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(target.total(), kFirst) << replay.all_stderr();
  target.StopListening();
  const int code = replay.Wait(30000);
  EXPECT_EQ(code, 1) << "errors fail the run, it is not a runtime error: " << replay.all_stderr();

  std::ifstream f(report);
  std::stringstream ss;
  ss << f.rdbuf();
  auto rep = json::parse(ss.str()).as_object();
  const auto& t = rep.at("targets").as_array().at(0).as_object();
  EXPECT_EQ(t.at("requests").to_number<int64_t>(), kEnvelopes);
  const int64_t errors = t.at("errors").to_number<int64_t>();
  EXPECT_GT(errors, 0);
  EXPECT_LT(errors, kEnvelopes);  // the first ones were answered

  ChildProcess runs({DoppelBinary(), "--store", store_, "runs", "list"});
  ASSERT_EQ(runs.Wait(), 0) << runs.all_stderr();
  EXPECT_NE(runs.all_stdout().find("COMPLETED"), std::string::npos) << runs.all_stdout();
  const std::string again = dir_ + "/again.json";
  ChildProcess rerender(
      {DoppelBinary(), "--store", store_, "report", "--run", "1", "--report-json", again});
  EXPECT_EQ(rerender.Wait(), 1) << rerender.all_stderr();
  std::ifstream g(again);
  std::stringstream gs;
  gs << g.rdbuf();
  EXPECT_EQ(json::parse(gs.str()).at("targets").as_array().at(0).at("errors").to_number<int64_t>(),
            errors);
  std::printf("replay target gone after %d requests: %lld of %d requests failed\n", kFirst,
              static_cast<long long>(errors), kEnvelopes);
}

}  // namespace
}  // namespace doppel::testing
