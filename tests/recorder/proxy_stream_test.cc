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
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "recorder/recorder.h"
#include "tests/base/gate.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/net/test_upstream.h"
#include "tests/recorder/loopback_options.h"
#include "tests/recorder/memory_sink.h"

// AddressSanitizer: gcc defines __SANITIZE_ADDRESS__, clang has the feature test.
#if defined(__SANITIZE_ADDRESS__)
#define DOPPEL_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DOPPEL_TEST_UNDER_ASAN 1
#endif
#endif

namespace doppel::recorder {
namespace {

using testing::ChildProcess;
using testing::Gate;
using testing::ListenOnLoopback;
using testing::SendAll;
using testing::TestClient;

// An upstream that reads one request head per connection and hands the socket to `script`,
// which reads the body (none of it was read) and writes the response as it likes (one thread
// per connection). A script may wait at `hold` until the test opens it; the destructor opens
// it too, so a failed test cannot hang. head() is the last request head read.
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
          char byte;  // one at a time: the body stays in the socket for the script
          while (head.find("\r\n\r\n") == std::string::npos && ::recv(c, &byte, 1, 0) == 1) {
            head += byte;
          }
          {
            std::lock_guard<std::mutex> lock(head_mu_);
            head_ = head;
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
  std::string head() {
    std::lock_guard<std::mutex> lock(head_mu_);
    return head_;
  }

 private:
  Script script_;
  Gate hold_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::mutex head_mu_;
  std::string head_;
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

// Issue #23's long poll: the primary answers after 40 s, over the 30 s total the proxy used to
// allow, and the answer arrives, with only the idle timeout set above the wait (as
// `--upstream-idle-timeout 45s` does) and no total (the default). Takes 40 s of real time.
TEST_F(StreamTest, LongPollAnsweredAfterFortySecondsArrives) {
  ScriptedUpstream up([&](int fd, Gate&) {
    std::this_thread::sleep_for(std::chrono::seconds(40));
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nupdated");
  });
  Start(up.url(),
        [](RecorderOptions& o) { o.upstream_client.read_idle_timeout = std::chrono::seconds(45); });
  const auto t0 = std::chrono::steady_clock::now();
  TestClient client(port_);
  ASSERT_TRUE(client.Write("GET /poll HTTP/1.1\r\nHost: shop.test\r\n\r\n"));
  const std::string got = client.ReadUntil("updated", 60000);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK", 0), 0u) << got;
  EXPECT_NE(got.find("updated"), std::string::npos) << got;
  EXPECT_GE(waited, 39.0);
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

// ---- Request bodies over --request-buffer stream to the upstream ----

// Reads exactly `n` bytes from `fd` (fewer when the connection ends first).
std::string RecvExactly(int fd, size_t n) {
  std::string out;
  char buf[16 * 1024];
  while (out.size() < n) {
    const ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// Reads a line ending in CRLF into *line (without it); false when the connection ends first.
bool RecvLine(int fd, std::string* line) {
  line->clear();
  char byte;
  while (::recv(fd, &byte, 1, 0) == 1) {
    *line += byte;
    if (line->size() >= 2 && line->compare(line->size() - 2, 2, "\r\n") == 0) {
      line->resize(line->size() - 2);
      return true;
    }
  }
  return false;
}

// Decodes a chunked body from `fd`; sets *complete when its last chunk and end came.
std::string RecvChunked(int fd, bool* complete) {
  *complete = false;
  std::string body;
  std::string line;
  while (RecvLine(fd, &line) && !line.empty()) {
    const size_t size = std::stoul(line, nullptr, 16);
    if (size == 0) {
      *complete = RecvLine(fd, &line) && line.empty();
      return body;
    }
    const std::string data = RecvExactly(fd, size);
    body += data;
    if (data.size() != size || RecvExactly(fd, 2) != "\r\n") return body;
  }
  return body;
}

// Waits up to `ms` for `flag`.
bool WaitFor(const std::atomic<bool>& flag, int ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!flag && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return flag;
}

// A file of `size` PatternByte bytes in `dir`; its path.
std::string PatternFile(const std::string& dir, uint64_t size) {
  const std::string path = dir + "/body.bin";
  std::ofstream out(path, std::ios::binary);
  std::string block(1 << 20, '\0');
  for (uint64_t off = 0; off < size; off += block.size()) {
    const uint64_t n = std::min<uint64_t>(block.size(), size - off);
    for (uint64_t i = 0; i < n; ++i) block[i] = PatternByte(off + i);
    out.write(block.data(), static_cast<std::streamsize>(n));
  }
  return path;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An upstream script for an upload of `size` PatternByte bytes: it tells that the head came,
// reads nothing until the test opens `hold`, then reads and checks the body and answers "ok".
struct HeldUpload {
  explicit HeldUpload(uint64_t body_size) : size(body_size) {}
  ScriptedUpstream::Script Script() {
    return [this](int fd, Gate& hold) {
      has_head = true;
      hold.Wait();
      char buf[64 * 1024];
      uint64_t got = 0;
      bool ok = true;
      while (got < size) {
        const ssize_t n = ::recv(fd, buf, std::min<uint64_t>(sizeof buf, size - got), 0);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; ++i) ok = ok && buf[i] == PatternByte(got + i);
        got += static_cast<uint64_t>(n);
      }
      received = got;
      intact = ok;
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    };
  }
  const uint64_t size;
  std::atomic<bool> has_head{false};
  std::atomic<uint64_t> received{0};
  std::atomic<bool> intact{true};
};

// A 200 MiB upload: the upstream has the head while the client is still sending, an upstream
// that does not read holds the client back (the proxy does not buffer the body), the body
// arrives intact, the proxy's memory does not grow with it, and the capture keeps the first
// --capture-body-limit bytes with the whole size.
TEST_F(StreamTest, LargeUploadStreamsWithBackpressureBothWays) {
  constexpr uint64_t kBody = 200ull << 20;
  HeldUpload held(kBody);  // reads nothing of the body until the test saw the client held back
  ScriptedUpstream up(held.Script());
  Start(up.url(), [](RecorderOptions& o) {
    o.capture_body_limit = 1000;
    o.max_request_body = 1ull << 30;
  });
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const uint64_t rss_before_kb = ProcStatusKb("VmRSS:");

  const int fd = testing::ConnectToLoopback(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "POST /upload HTTP/1.1\r\nHost: shop.test\r\nContent-Length: " +
                              std::to_string(kBody) + "\r\n\r\n"));
  std::string block(64 * 1024, ' ');
  uint64_t sent = 0;
  // Sends what the chain takes without waiting; true once nothing more went for 1 s.
  auto send_until_held = [&] {
    while (sent < kBody) {
      const uint64_t n = std::min<uint64_t>(block.size(), kBody - sent);
      for (uint64_t i = 0; i < n; ++i) block[i] = PatternByte(sent + i);
      const ssize_t w = ::send(fd, block.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<uint64_t>(w);
        continue;
      }
      if (w < 0 && errno != EAGAIN) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) == 0) return true;
    }
    return false;
  };
  ASSERT_TRUE(send_until_held()) << "the client was never held back; sent " << sent;
  EXPECT_EQ(up.head().find("POST /upload HTTP/1.1"), 0u) << "the upstream had no head yet";
  EXPECT_LT(sent, 48ull << 20) << "the proxy kept reading a body the upstream did not take";
  const uint64_t sent_when_held = sent;

  up.hold().Open();
  while (sent < kBody) {
    const uint64_t n = std::min<uint64_t>(block.size(), kBody - sent);
    for (uint64_t i = 0; i < n; ++i) block[i] = PatternByte(sent + i);
    ASSERT_TRUE(SendAll(fd, block.substr(0, n)));
    sent += n;
  }
  std::string answer;
  char buf[256];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find("\r\n\r\nok") != std::string::npos) break;
  }
  ::close(fd);
  EXPECT_EQ(answer.find("HTTP/1.1 200 OK"), 0u) << answer;
  EXPECT_EQ(held.received, kBody);
  EXPECT_TRUE(held.intact);
  const uint64_t peak_kb = ProcStatusKb("VmHWM:");
  std::cout << "client held back after " << (sent_when_held >> 20) << " MiB of " << (kBody >> 20)
            << "; peak RSS " << rss_before_kb / 1024 << " -> " << peak_kb / 1024 << " MiB\n";
#if !defined(DOPPEL_TEST_UNDER_ASAN)
  // Under ASan, freed memory stays resident in its quarantine (256 MiB by default), so the
  // bound is checked by the plain build; the held-back client above shows the proxy did not
  // take the body in either build.
  EXPECT_LT(peak_kb, rss_before_kb + 64 * 1024) << "peak RSS grew with the body";
#endif

  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  const auto& r = env[0].request();
  EXPECT_EQ(r.body_size(), kBody);
  EXPECT_EQ(r.body().size(), 1000u);
  EXPECT_TRUE(r.body_truncated());
  EXPECT_EQ(r.body().substr(0, 3), std::string({PatternByte(0), PatternByte(1), PatternByte(2)}));
  EXPECT_EQ(env[0].response().body(), "ok");
}

// A chunked body that grows past --request-buffer streams from there on, still chunked, and
// "Expect: 100-continue" keeps working: the upstream has the head and the first chunks while
// the client still holds back its last ones.
TEST_F(StreamTest, ChunkedUploadStreamsOncePastTheBuffer) {
  constexpr size_t kChunk = 50000;
  constexpr int kChunks = 20;
  std::string body;
  for (size_t i = 0; i < kChunk * kChunks; ++i) body += PatternByte(i);
  std::atomic<bool> upstream_has_head{false};
  std::atomic<bool> complete{false};
  std::string received;
  ScriptedUpstream up([&](int fd, Gate&) {
    upstream_has_head = true;
    bool done = false;
    received = RecvChunked(fd, &done);
    complete = done;
    SendAll(fd, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone");
  });
  Start(up.url(), [](RecorderOptions& o) {
    o.request_buffer = 64 * 1024;
    o.capture_body_limit = 4096;
  });
  TestClient client(port_);
  ASSERT_TRUE(
      client.Write("PUT /files/a HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n"
                   "Expect: 100-continue\r\n\r\n"));
  const std::string interim = client.ReadUntil("\r\n\r\n", 10000);
  ASSERT_EQ(interim.find("HTTP/1.1 100 Continue"), 0u) << interim;
  for (int i = 0; i < kChunks / 2; ++i)
    ASSERT_TRUE(client.Write(Chunk(body.substr(i * kChunk, kChunk))));
  ASSERT_TRUE(WaitFor(upstream_has_head, 10000))
      << "the upstream got nothing while half of a body over the buffer was in";
  for (int i = kChunks / 2; i < kChunks; ++i)
    ASSERT_TRUE(client.Write(Chunk(body.substr(i * kChunk, kChunk))));
  ASSERT_TRUE(client.Write("0\r\n\r\n"));
  const std::string answer = client.ReadUntil("done", 10000);
  EXPECT_EQ(answer.find("HTTP/1.1 201 Created"), 0u) << answer;
  EXPECT_TRUE(complete);
  EXPECT_TRUE(received == body) << received.size() << " bytes arrived of " << body.size();
  const std::string head = up.head();
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  EXPECT_EQ(head.find("Expect"), std::string::npos) << head;

  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].request().body_size(), body.size());
  EXPECT_EQ(env[0].request().body(), body.substr(0, 4096));
  EXPECT_TRUE(env[0].request().body_truncated());
}

// A chunked body that passes --max-request-body while it streams: the upstream's connection is
// cut (it never gets a complete request) and the client, not yet answered, gets 413.
TEST_F(StreamTest, StreamedChunkedBodyOverTheLimitIsRefused) {
  std::atomic<bool> upstream_done{false};
  std::atomic<bool> upstream_complete{true};
  ScriptedUpstream up([&](int fd, Gate&) {
    bool done = false;
    RecvChunked(fd, &done);
    upstream_complete = done;
    upstream_done = true;
  });
  Start(up.url(), [](RecorderOptions& o) {
    o.request_buffer = 64 * 1024;
    o.max_request_body = 256 * 1024;
  });
  TestClient client(port_);
  ASSERT_TRUE(
      client.Write("POST /big HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = Chunk(std::string(16 * 1024, 'x'));
  for (int i = 0; i < 32; ++i) {
    if (!client.Write(chunk)) break;  // the proxy may close once it answered
  }
  const std::string answer = client.ReadUntil("\r\n\r\n", 10000);
  EXPECT_EQ(answer.find("HTTP/1.1 413"), 0u) << answer;
  ASSERT_TRUE(WaitFor(upstream_done, 10000)) << "the upstream's connection stayed open";
  EXPECT_FALSE(upstream_complete) << "the upstream got a complete request";
  const std::string m = rec_->MetricsText();
  EXPECT_NE(m.find("doppel_proxy_errors_total{reason=\"body_too_large\"} 1"), std::string::npos)
      << m;
}

// A client that leaves mid-upload: the upstream's connection is closed (it never gets a
// complete request), and the proxy serves the next client.
TEST_F(StreamTest, ClientLeavingMidUploadClosesTheUpstreamConnection) {
  std::atomic<bool> upstream_done{false};
  std::atomic<size_t> upstream_got{0};
  ScriptedUpstream up([&](int fd, Gate&) {
    if (up.head().find("POST") != 0) {
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
      return;
    }
    upstream_got = RecvExactly(fd, 4u << 20).size();
    upstream_done = true;
  });
  Start(up.url(), [](RecorderOptions& o) { o.request_buffer = 64 * 1024; });
  {
    TestClient client(port_);
    ASSERT_TRUE(client.Write("POST /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: " +
                             std::to_string(4u << 20) + "\r\n\r\n" + std::string(300000, 'y')));
  }  // closed after 300,000 of 4 MiB
  ASSERT_TRUE(WaitFor(upstream_done, 10000)) << "the upstream's connection stayed open";
  EXPECT_EQ(upstream_got, 300000u);
  auto res = testing::Fetch(port_, "GET", "/next");
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "fresh");
}

// Stopping the recorder (Ctrl-C) while a body streams: the upload cannot finish, so once the
// drain timeout has passed Stop() closes the client's connection, the upload unwinds as if
// the client had left (the primary's connection closed, nothing recorded: the request never
// completed), and Stop() returns. Before the cut, the session, the upload source and the
// pool's exchange held each other, and both connections stayed open for good.
TEST_F(StreamTest, StoppingTheRecorderMidUploadClosesBothSidesAfterTheDrain) {
  std::atomic<bool> upstream_done{false};
  std::atomic<size_t> upstream_got{0};
  ScriptedUpstream up([&](int fd, Gate&) {
    timeval wait{20, 0};  // a connection left open fails the test instead of hanging it
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    upstream_got = RecvExactly(fd, 4u << 20).size();
    upstream_done = true;
  });
  Start(up.url(), [](RecorderOptions& o) {
    o.request_buffer = 64 * 1024;
    o.drain_timeout = std::chrono::milliseconds(500);
  });
  TestClient client(port_);
  ASSERT_TRUE(client.Write("POST /up HTTP/1.1\r\nHost: shop.test\r\nContent-Length: " +
                           std::to_string(4u << 20) + "\r\n\r\n" + std::string(300000, 'y')));
  // The upload is under way: what was sent reached the upstream.
  for (int i = 0; i < 1000 && upstream_got == 0 && up.head().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(up.head().empty()) << "the head never reached the upstream";
  const auto t0 = std::chrono::steady_clock::now();
  const auto captured = StopAndCaptured();
  const double stop_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(stop_s, 10.0) << "Stop() waited on the upload past its drain timeout";
  EXPECT_TRUE(client.PeerClosed(5000)) << "the client's connection stayed open";
  ASSERT_TRUE(WaitFor(upstream_done, 10000)) << "the upstream's connection stayed open";
  EXPECT_EQ(upstream_got, 300000u);
  EXPECT_TRUE(captured.empty());
}

// ---- HTTP/2 request bodies (h2c, curl as the client) ----

// Uploads `file` with curl (`args` before it) to `port` while `held` holds the upstream: the
// upstream must have the head while the client is held back, the body must arrive intact
// once the upstream reads, and the test process's peak RSS must not grow with the body.
void UploadHeldBack(const std::vector<std::string>& args, const std::string& file, uint16_t port,
                    ScriptedUpstream& up, HeldUpload& held, const std::string& expect_out) {
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const uint64_t rss_before_kb = ProcStatusKb("VmRSS:");
  std::vector<std::string> argv = {"/usr/bin/curl", "-sS"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"-T", file, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                           "http://127.0.0.1:" + std::to_string(port) + "/upload"});
  ChildProcess curl(std::move(argv));
  ASSERT_TRUE(WaitFor(held.has_head, 10000)) << "the upstream got no head while the client sent";
  EXPECT_EQ(curl.Wait(1000), -1) << "the client finished a body the upstream did not read";
  const uint64_t held_kb = ProcStatusKb("VmHWM:");
  up.hold().Open();
  EXPECT_EQ(curl.Wait(60000), 0) << curl.all_stderr();
  EXPECT_EQ(curl.all_stdout(), expect_out);
  EXPECT_EQ(held.received, held.size);
  EXPECT_TRUE(held.intact);
  EXPECT_NE(Lower(up.head()).find("content-length: " + std::to_string(held.size)),
            std::string::npos)
      << up.head();
  const uint64_t peak_kb = ProcStatusKb("VmHWM:");
  std::cout << "peak RSS " << rss_before_kb / 1024 << " -> " << held_kb / 1024
            << " MiB while held, " << peak_kb / 1024 << " MiB at the end\n";
#if !defined(DOPPEL_TEST_UNDER_ASAN)
  EXPECT_LT(peak_kb, rss_before_kb + 48 * 1024) << "peak RSS grew with the body";
#endif
}

// The upload test above over HTTP/2: a 100 MiB body with a content-length goes to the
// HTTP/1.1 upstream as it arrives; while the upstream does not read, the stream's flow-control
// window holds the client back (the proxy's memory does not grow with the body); the body
// arrives intact and the capture keeps its first bytes and whole size.
TEST_F(StreamTest, Http2UploadStreamsWithBackpressure) {
  HeldUpload held(100ull << 20);
  ScriptedUpstream up(held.Script());
  Start(up.url(), [](RecorderOptions& o) {
    o.capture_body_limit = 1000;
    o.max_request_body = 1ull << 30;
  });
  const std::string dir = testing::MakeTempDir("h2-upload");
  UploadHeldBack({"--http2-prior-knowledge"}, PatternFile(dir, held.size), port_, up, held,
                 "2 200");
  std::filesystem::remove_all(dir);

  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  const auto& r = env[0].request();
  EXPECT_EQ(r.body_size(), held.size);
  EXPECT_EQ(r.body().size(), 1000u);
  EXPECT_TRUE(r.body_truncated());
  EXPECT_EQ(env[0].response().body(), "ok");
}

// An HTTP/1.1 upload through two proxies, the second the first's h2c primary: the first
// sends the body in DATA frames as it arrives (it is not read whole first), the second
// streams it on to the HTTP/1.1 upstream, and while that upstream does not read, flow control
// holds the client back across both; the body arrives intact.
TEST_F(StreamTest, UploadToAnH2cPrimaryStreamsWithBackpressure) {
  HeldUpload held(100ull << 20);
  ScriptedUpstream up(held.Script());
  Start(up.url(), [](RecorderOptions& o) { o.max_request_body = 1ull << 30; });
  MemorySink front_sink;
  uint16_t front_port = 0;
  RecorderOptions front = LoopbackOptions("h2c://127.0.0.1:" + std::to_string(port_), "front");
  front.max_request_body = 1ull << 30;
  RecorderPtr front_rec = StartLoopback(std::move(front), &front_sink, nullptr, &front_port);
  ASSERT_NE(front_rec, nullptr);
  const std::string dir = testing::MakeTempDir("h2c-primary-upload");
  UploadHeldBack({}, PatternFile(dir, held.size), front_port, up, held, "1.1 200");
  std::filesystem::remove_all(dir);
  front_rec->Stop();
  auto env = front_sink.envelopes();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].request().body_size(), held.size);
  EXPECT_EQ(env[0].response().body(), "ok");
}

// An HTTP/2 body without a content-length that grows past --request-buffer goes to the
// HTTP/1.1 upstream chunked; one that passes --max-request-body on its way is cut at the
// upstream (never a complete request) and answered 413.
TEST_F(StreamTest, Http2UploadWithoutLengthIsChunkedAndOverTheLimitRefused) {
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> bodies;  // what the upstream got, and complete
  ScriptedUpstream up([&](int fd, Gate&) {
    bool complete = false;
    std::string body = RecvChunked(fd, &complete);
    {
      std::lock_guard<std::mutex> lock(mu);
      bodies.emplace_back(std::move(body), complete);
    }
    if (complete) SendAll(fd, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone");
  });
  Start(up.url(), [](RecorderOptions& o) {
    o.request_buffer = 64 * 1024;
    o.max_request_body = 4 << 20;
  });
  const std::string dir = testing::MakeTempDir("h2-chunked");
  auto post = [&](uint64_t size) {
    const std::string file = PatternFile(dir, size);
    ChildProcess curl({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "--data-binary",
                       "@" + file, "-H", "Content-Length:", "-H", "Content-Type:", "-o",
                       "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1:" + std::to_string(port_) + "/files"});
    EXPECT_EQ(curl.Wait(30000), 0) << curl.all_stderr();
    return curl.all_stdout();
  };
  EXPECT_EQ(post(3 << 20), "201");
  EXPECT_NE(Lower(up.head()).find("transfer-encoding: chunked"), std::string::npos) << up.head();
  EXPECT_EQ(Lower(up.head()).find("content-length"), std::string::npos) << up.head();
  EXPECT_EQ(post(6 << 20), "413");
  std::filesystem::remove_all(dir);
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (bodies.size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(bodies.size(), 2u) << "the second upload's upstream connection stayed open";
  EXPECT_TRUE(bodies[0].second);
  EXPECT_EQ(bodies[0].first.size(), 3u << 20);
  bool intact = true;
  for (size_t i = 0; i < bodies[0].first.size(); ++i) {
    intact = intact && bodies[0].first[i] == PatternByte(i);
  }
  EXPECT_TRUE(intact);
  EXPECT_FALSE(bodies[1].second) << "the upstream got a complete request over the limit";
  EXPECT_LE(bodies[1].first.size(), 4u << 20);
  const std::string m = rec_->MetricsText();
  EXPECT_NE(m.find("doppel_proxy_errors_total{reason=\"body_too_large\"} 1"), std::string::npos)
      << m;
}

// An HTTP/2 client that leaves mid-upload: the upstream's connection is closed without a
// complete request, nothing is recorded, and the proxy serves the next client.
TEST_F(StreamTest, Http2ClientLeavingMidUploadClosesTheUpstreamConnection) {
  constexpr uint64_t kBody = 64ull << 20;
  std::atomic<bool> has_head{false};
  std::atomic<bool> upstream_done{false};
  std::atomic<uint64_t> received{0};
  ScriptedUpstream up([&](int fd, Gate& hold) {
    if (up.head().find("GET") == 0) {
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh");
      return;
    }
    has_head = true;
    hold.Wait();
    timeval wait{20, 0};  // a connection left open fails the test instead of hanging it
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char buf[64 * 1024];
    uint64_t got = 0;
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got += static_cast<uint64_t>(n);
    received = got;
    upstream_done = true;
  });
  Start(up.url());
  const std::string dir = testing::MakeTempDir("h2-leave");
  const std::string file = PatternFile(dir, kBody);
  {
    ChildProcess curl({"/usr/bin/curl", "-sS", "--http2-prior-knowledge", "-T", file, "-o",
                       "/dev/null", "http://127.0.0.1:" + std::to_string(port_) + "/upload"});
    ASSERT_TRUE(WaitFor(has_head, 10000)) << "the upstream got no head while the client sent";
    curl.Signal(SIGKILL);
    curl.Wait(10000);
  }
  up.hold().Open();
  ASSERT_TRUE(WaitFor(upstream_done, 15000)) << "the upstream's connection stayed open";
  EXPECT_LT(received, kBody);
  std::filesystem::remove_all(dir);
  auto res = testing::Fetch(port_, "GET", "/next");
  EXPECT_EQ(res.result_int(), 200u);
  EXPECT_EQ(res.body(), "fresh");
  auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);  // the GET only
  EXPECT_EQ(env[0].request().method(), "GET");
}

}  // namespace
}  // namespace doppel::recorder
