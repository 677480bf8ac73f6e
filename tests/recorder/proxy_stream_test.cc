// Streaming through the capture proxy (issue #23): the proxy in-process on loopback between
// raw-socket clients and a scripted upstream that writes its responses piece by piece, so a
// test can hold the upstream at a known point (a Gate) and check what the client already has.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "recorder/recorder.h"
#include "tests/base/gate.h"
#include "tests/net/test_upstream.h"
#include "tests/recorder/loopback_options.h"
#include "tests/recorder/memory_sink.h"

namespace doppel::recorder {
namespace {

using testing::Gate;
using testing::ListenOnLoopback;
using testing::SendAll;
using testing::TestClient;

// An upstream that reads one request head per connection and hands the socket to `script`,
// which writes the response as it likes (one thread per connection). A script may wait at
// `hold` until the test opens it; the destructor opens it too, so a failed test cannot hang.
class ScriptedUpstream {
 public:
  using Script = std::function<void(int fd, Gate& hold)>;
  explicit ScriptedUpstream(Script script) : script_(std::move(script)) {
    fd_ = ListenOnLoopback(16, &port_);
    accept_ = std::thread([this] {
      for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        conns_.emplace_back([this, c] {
          std::string head;
          char buf[4096];
          while (head.find("\r\n\r\n") == std::string::npos) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            head.append(buf, static_cast<size_t>(n));
          }
          script_(c, hold_);
          ::close(c);
        });
      }
    });
  }
  ~ScriptedUpstream() {
    hold_.Open();
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : conns_) t.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  Gate& hold() { return hold_; }

 private:
  Script script_;
  Gate hold_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

class StreamTest : public LoopbackRecorderTest {
 protected:
  void Start(const std::string& upstream, const std::function<void(RecorderOptions&)>& tweak = {}) {
    StartRecorder(upstream, "stream", tweak);
  }
};

constexpr const char* kGet = "GET /stream HTTP/1.1\r\nHost: shop.test\r\n\r\n";

std::string Event(int i) { return "data: event " + std::to_string(i) + "\n\n"; }
std::string Chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// The first event of a server-sent-events stream reaches the client while the upstream still
// holds the rest back: it cannot have waited for the end of the response.
TEST_F(StreamTest, EventStreamReachesTheClientAsItArrives) {
  ScriptedUpstream up([](int fd, Gate& rest) {
    SendAll(fd,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n" +
                Chunk(Event(1)));
    rest.Wait();  // until the client has the first event
    for (int i = 2; i <= 5; ++i) SendAll(fd, Chunk(Event(i)));
    SendAll(fd, "0\r\n\r\n");
  });
  Start(up.url());
  TestClient client(port_);
  ASSERT_TRUE(client.Write(kGet));
  const std::string first = client.ReadUntil(Event(1), 10000);
  EXPECT_NE(first.find("HTTP/1.1 200 OK"), std::string::npos) << first;
  EXPECT_NE(first.find("Transfer-Encoding: chunked"), std::string::npos) << first;
  ASSERT_NE(first.find(Event(1)), std::string::npos) << "only got: " << first;
  up.hold().Open();
  const std::string tail = client.ReadUntil("0\r\n\r\n", 10000);
  EXPECT_NE(tail.find(Event(5)), std::string::npos) << tail;

  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  const auto& r = env[0].response();
  std::string all;
  for (int i = 1; i <= 5; ++i) all += Event(i);
  EXPECT_EQ(r.body(), all);
  EXPECT_EQ(r.body_size(), all.size());
  EXPECT_FALSE(r.body_truncated());
  // The pieces' arrival: the first alone (the rest was held back), in order, covering the body.
  ASSERT_GE(r.chunks_size(), 2);
  EXPECT_EQ(r.chunks(0).offset(), 0u);
  EXPECT_EQ(r.chunks(0).size(), Event(1).size());
  uint64_t covered = 0;
  for (const auto& c : r.chunks()) {
    EXPECT_EQ(c.offset(), covered);
    covered += c.size();
  }
  EXPECT_EQ(covered, all.size());
  EXPECT_GE(r.chunks(1).at_us(), r.chunks(0).at_us());
}

// The head of a response whose body has not started (an event stream before its first event)
// goes to the client at once.
TEST_F(StreamTest, HeadGoesOutBeforeTheBodyStarts) {
  ScriptedUpstream up([](int fd, Gate& body) {
    SendAll(fd,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
    body.Wait();  // until the client has the head
    SendAll(fd, Chunk(Event(1)) + "0\r\n\r\n");
  });
  Start(up.url());
  TestClient client(port_);
  ASSERT_TRUE(client.Write(kGet));
  const std::string head = client.ReadUntil("\r\n\r\n", 10000);
  ASSERT_NE(head.find("HTTP/1.1 200 OK"), std::string::npos) << "only got: " << head;
  up.hold().Open();
  EXPECT_NE(client.ReadUntil("0\r\n\r\n", 10000).find(Event(1)), std::string::npos);
}

uint64_t ProcStatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key)));
  }
  return 0;
}

char PatternByte(uint64_t i) { return static_cast<char>('a' + i % 23); }

// A large download to a client that stops reading: the proxy stops reading from the upstream
// (the upstream's send blocks) instead of buffering the body, memory stays flat, and once the
// client reads on it gets every byte intact.
TEST_F(StreamTest, SlowClientSlowsTheUpstreamAndMemoryStaysBounded) {
  constexpr uint64_t kBody = 128ull << 20;
  std::atomic<uint64_t> sent{0};
  std::atomic<bool> blocked{false};
  ScriptedUpstream up([&](int fd, Gate&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBody) + "\r\n\r\n");
    std::string block(64 * 1024, ' ');
    while (sent < kBody) {
      const uint64_t n = std::min<uint64_t>(block.size(), kBody - sent);
      for (uint64_t i = 0; i < n; ++i) block[i] = PatternByte(sent + i);
      size_t off = 0;
      while (off < n) {
        const ssize_t w = ::send(fd, block.data() + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
          off += static_cast<size_t>(w);
          continue;
        }
        if (w < 0 && errno != EAGAIN) return;
        blocked = true;  // the proxy is not reading: wait until it does
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
      }
      sent += n;
    }
  });
  Start(up.url(), [](RecorderOptions& o) { o.capture_body_limit = 1000; });
  // Peak RSS from here on (Linux: writing 5 to clear_refs resets VmHWM).
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const uint64_t rss_before_kb = ProcStatusKb("VmRSS:");

  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 64 * 1024;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port_);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_TRUE(SendAll(fd, kGet));
  // Nothing read yet: the chain fills up and the upstream blocks long before the end.
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!blocked && std::chrono::steady_clock::now() < limit) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(blocked) << "the upstream never had to wait; sent " << sent;
  const uint64_t sent_when_blocked = sent;
  EXPECT_LT(sent_when_blocked, 48ull << 20) << "the proxy kept reading for a client that did not";

  std::string head;
  char buf[16 * 1024];
  uint64_t got = 0;
  bool intact = true;
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    size_t i = 0;
    if (head.find("\r\n\r\n") == std::string::npos) {
      head.append(buf, static_cast<size_t>(n));
      const size_t end = head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      i = static_cast<size_t>(n) - (head.size() - end - 4);
    }
    for (; i < static_cast<size_t>(n); ++i, ++got) intact = intact && buf[i] == PatternByte(got);
    if (got == kBody) break;
  }
  ::close(fd);
  EXPECT_NE(head.find("Content-Length: " + std::to_string(kBody)), std::string::npos) << head;
  EXPECT_EQ(got, kBody);
  EXPECT_TRUE(intact);
  const uint64_t peak_kb = ProcStatusKb("VmHWM:");
  std::cout << "upstream blocked after " << (sent_when_blocked >> 20) << " MiB of " << (kBody >> 20)
            << "; peak RSS " << rss_before_kb / 1024 << " -> " << peak_kb / 1024 << " MiB\n";
  EXPECT_LT(peak_kb, rss_before_kb + 64 * 1024) << "peak RSS grew with the body";

  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  const auto& r = env[0].response();
  EXPECT_EQ(r.body().size(), 1000u);
  EXPECT_EQ(r.body_size(), kBody);
  EXPECT_TRUE(r.body_truncated());
  EXPECT_EQ(r.body().substr(0, 3), std::string({PatternByte(0), PatternByte(1), PatternByte(2)}));
}

// An upstream that stalls mid-body: once --upstream-idle-timeout passes without a byte, the
// client connection is closed (the head went out, so a 504 is no longer possible).
TEST_F(StreamTest, UpstreamStallMidBodyClosesTheClientAfterTheIdleTimeout) {
  ScriptedUpstream up([](int fd, Gate& hold) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst-part");
    hold.Wait();  // stalls (the connection stays open)
  });
  Start(up.url(),
        [](RecorderOptions& o) { o.upstream_client.read_idle_timeout = std::chrono::seconds(1); });
  TestClient client(port_);
  ASSERT_TRUE(client.Write(kGet));
  const std::string got = client.ReadUntil("first-part", 10000);
  ASSERT_NE(got.find("first-part"), std::string::npos) << got;
  EXPECT_TRUE(client.PeerClosed(10000));
  up.hold().Open();
  const std::string m = rec_->MetricsText();
  EXPECT_NE(m.find("doppel_responses_cut_total{reason=\"upstream_timeout\"} 1"), std::string::npos)
      << m;
  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].error(), doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  EXPECT_EQ(env[0].response().status(), 200u);
  EXPECT_EQ(env[0].response().body(), "first-part");
  EXPECT_TRUE(env[0].response().body_truncated());
}

// The idle timeout is between bytes, not for the whole response: a body trickling one byte
// every 300 ms for 3 s passes with a 1 s idle timeout and no total timeout.
TEST_F(StreamTest, IdleTimeoutIsNotATotalTimeout) {
  ScriptedUpstream up([&](int fd, Gate&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    for (int i = 0; i < 10; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the pace under test
      SendAll(fd, std::string(1, static_cast<char>('0' + i)));
    }
  });
  Start(up.url(),
        [](RecorderOptions& o) { o.upstream_client.read_idle_timeout = std::chrono::seconds(1); });
  auto res = testing::Fetch(port_, "GET", "/trickle");
  EXPECT_EQ(res.result_int(), 200u) << res.body();
  EXPECT_EQ(res.body(), "0123456789");
}

// Framing is kept: a close-delimited response stays close-delimited (no Content-Length
// invented, the connection closes after it), whole.
TEST_F(StreamTest, CloseDelimitedStaysCloseDelimited) {
  ScriptedUpstream up([&](int fd, Gate&) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(100000, 'z'));
  });
  Start(up.url());
  TestClient client(port_);
  ASSERT_TRUE(client.Write(kGet));
  const std::string all = client.ReadAll(10000);
  const size_t end = all.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos) << all;
  const std::string head = all.substr(0, end);
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  EXPECT_EQ(head.find("chunked"), std::string::npos) << head;
  EXPECT_EQ(all.substr(end + 4), std::string(100000, 'z'));
}

}  // namespace
}  // namespace doppel::recorder
