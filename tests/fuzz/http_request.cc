// Fuzz target: bytes from a client socket into the capture proxy (recorder/recorder.h),
// in process. Two recorders start once, both in front of one small in-process upstream:
// one captures everything, the other has match rules (regexes on the URI and a header), a
// keyed 50 % sample, extra redaction and a live mirror (to the same upstream) with
// --mirror-diff. Per input, for each recorder: connect, write the
// bytes, half-close, read until the proxy closes.
//
// Properties: no crash, no hang, no leak —
//   - the proxy closes the connection within kCloseTimeout of the client's half-close;
//   - what it sends back, if anything, starts as an HTTP/1.x response (as HTTP/2, its
//     SETTINGS frame, when the input starts with the HTTP/2 client preface);
//   - afterwards its open-connection count returns to 0, its capture queue drains and no
//     mirrored copy stays in flight;
//   - every captured envelope can be stored and read back (protobuf and store codec round
//     trip: proto3 string fields must be valid UTF-8);
//   - the recorder still answers a well-formed request with the upstream's 200;
//   - the upstream never holds more than kMaxUpstreamConnections connections (the proxy's
//     pool does not leak upstream connections).
// Slow per input (real sockets, two round trips); that is expected.
//
// tests/fuzz/h2_session.cc builds this harness again with DOPPEL_FUZZ_H2: every input then
// follows the HTTP/2 client preface, so it is frames into recorder/h2_session.cc (an input
// whose first byte is 0x80 or above drives that file's frame generator instead), and what
// the proxy sends back must start as HTTP/2 (its SETTINGS frame) instead of HTTP/1.x.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net/match.h"
#include "net/url.h"
#include "recorder/capture_writer.h"
#include "recorder/mirror.h"
#include "recorder/recorder.h"
#include "redact/redactor.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr auto kCloseTimeout = std::chrono::seconds(5);
constexpr auto kSettleTimeout = std::chrono::seconds(5);
constexpr int kMaxUpstreamConnections = 32;

// The primary: HTTP/1.1 keep-alive, one thread per connection (the proxy pools a few).
//   /status/NNN  answers NNN      /chunked  a chunked body      /interim  100 + 102, then 200
//   /reset       closes without answering                      /close    answers, then closes
//   anything else: 200 application/json echoing the request body ({"ok":true} when empty)
class Upstream {
 public:
  Upstream() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    std::thread([this] { AcceptLoop(); }).detach();
  }
  uint16_t port() const { return port_; }
  int connections() const { return live_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) continue;
      ++live_;
      std::thread([this, s = std::move(socket)]() mutable {
        Serve(std::move(s));
        --live_;
      }).detach();
    }
  }

  static std::string Answer(const http::request<http::string_body>& req, bool* close) {
    const std::string_view target = req.target();
    const bool head = req.method() == http::verb::head;
    unsigned status = 200;
    std::string type = "application/json";
    std::string body = req.body().empty() ? std::string(R"({"ok":true})") : req.body();
    std::string prefix;
    if (target.rfind("/status/", 0) == 0) {
      status = 0;
      for (char c : target.substr(8, 3)) {
        if (c < '0' || c > '9') break;
        status = status * 10 + static_cast<unsigned>(c - '0');
      }
      if (status < 200 || status > 599) status = 200;
      type = "text/plain";
      body = "status";
    } else if (target.rfind("/interim", 0) == 0) {
      prefix = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n";
    } else if (target.rfind("/close", 0) == 0) {
      *close = true;
    }
    const bool no_body = head || status == 204 || status == 304;
    std::string out = prefix + "HTTP/1.1 " + std::to_string(status) +
                      " X\r\nContent-Type: " + type + "\r\nX-Upstream: fuzz\r\n";
    if (*close) out += "Connection: close\r\n";
    if (target.rfind("/chunked", 0) == 0 && !no_body) {
      out += "Transfer-Encoding: chunked\r\n\r\n";
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", body.size());
      if (!body.empty()) out += size + body + "\r\n";
      out += "0\r\n\r\n";
      return out;
    }
    if (status != 204 && status != 304) {
      out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n";
    if (!no_body) out += body;
    return out;
  }

  static void Serve(tcp::socket socket) {
    beast::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(1 << 20);
      parser.body_limit(1 << 26);
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      if (parser.get().target().rfind("/reset", 0) == 0) break;
      bool close = false;
      const std::string answer = Answer(parser.get(), &close);
      asio::write(socket, asio::buffer(answer), ec);
      if (ec || close) break;
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> live_{0};
};

// Checks that every envelope the recorder captures survives the store, and keeps nothing.
class CheckingSink : public doppel::recorder::CaptureSink {
 public:
  doppel::Status Append(std::span<const doppel::v1::Envelope> batch) override {
    for (const auto& e : batch) doppel::fuzz::CheckStorable(e, "a captured envelope");
    return doppel::Status::Ok();
  }
};

// libFuzzer's -timeout watchdog is a SIGALRM installed without SA_RESTART, so a blocking
// connect() on a loaded machine can come back with EINTR; that is the harness's problem, not
// the proxy's, so it tries again with a fresh socket. Any other failure names errno.
int Connect(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const auto deadline = Clock::now() + kCloseTimeout;
  for (;;) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, std::string("socket() failed: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    const int err = errno;
    ::close(fd);
    FUZZ_CHECK(err == EINTR && Clock::now() < deadline, "cannot connect to the recorder on port " +
                                                            std::to_string(port) + ": " +
                                                            std::strerror(err));
  }
}

// Writes `data` (as far as the peer accepts it), half-closes, and reads until the peer
// closes. Returns what arrived; *closed is false when kCloseTimeout passed first.
std::string Exchange(uint16_t port, std::string_view data, bool* closed) {
  const int fd = Connect(port);
  const auto deadline = Clock::now() + kCloseTimeout;
  std::string received;
  char buf[16384];
  size_t off = 0;
  bool writing = true;
  *closed = false;
  for (;;) {
    if (writing && off == data.size()) {
      ::shutdown(fd, SHUT_WR);
      writing = false;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        *closed = true;  // EOF, or reset: either way the proxy let go
        break;
      }
      if (n > 0) received.append(buf, static_cast<size_t>(n));
    }
    if (writing && (p.revents & POLLOUT)) {
      const ssize_t n =
          ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        writing = false;  // the proxy stopped reading; what it answers still counts
        ::shutdown(fd, SHUT_WR);
      }
    }
  }
  ::close(fd);
  return received;
}

struct Proxy {
  std::unique_ptr<CheckingSink> sink = std::make_unique<CheckingSink>();
  std::unique_ptr<doppel::redact::Redactor> redactor;
  doppel::recorder::RecorderPtr recorder;
  uint16_t port = 0;
};

Proxy StartProxy(uint16_t upstream_port, bool with_rules) {
  Proxy p;
  doppel::recorder::RecorderOptions o;
  o.listen = {"127.0.0.1", 0};
  o.upstream = doppel::net::ParseUrl("http://127.0.0.1:" + std::to_string(upstream_port)).value();
  o.threads = 1;
  o.session = "fuzz";
  o.max_request_body = 64 * 1024;
  o.idle_timeout = std::chrono::seconds(10);
  o.request_timeout = std::chrono::seconds(10);
  o.upstream_client.response_timeout = std::chrono::seconds(10);
  o.capture_body_limit = 1024;
  o.drain_timeout = std::chrono::seconds(2);
  std::vector<std::string> extra_redact;
  if (with_rules) {
    auto rules = doppel::net::MatchRules::FromFlags(
        {"name=api,uri~=/api/v[0-9]+/.*,header.X-User~=[a-z]+(-[a-z]+)*",
         "name=checkout,method=POST,uri^=/checkout,query.debug", "name=rest,method~=[A-Z]+"});
    FUZZ_CHECK(rules.ok(), rules.status().message());
    o.rules = std::move(rules.value());
    o.sample_percent = 50;
    o.sample_key = "header:X-Session";
    extra_redact = {"X-Secret"};
    // A live mirror to the same upstream, its responses diffed against the primary's.
    auto mirror = doppel::recorder::ParseMirrorSpec(
        "http://127.0.0.1:" + std::to_string(upstream_port) + ",timeout=2s");
    FUZZ_CHECK(mirror.ok(), mirror.status().message());
    o.mirror.mirrors.push_back(std::move(mirror.value()));
    o.mirror.diff = true;
  }
  p.redactor =
      std::make_unique<doppel::redact::Redactor>("0123456789abcdef0123456789abcdef", extra_redact);
  auto rec = doppel::recorder::Recorder::Start(std::move(o), p.sink.get(), p.redactor.get());
  FUZZ_CHECK(rec.ok(), "the recorder does not start: " + rec.status().message());
  p.recorder = std::move(rec.value());
  p.port = p.recorder->listen_address().port;
  return p;
}

struct Harness {
  Upstream upstream;
  Proxy proxies[2] = {StartProxy(upstream.port(), false), StartProxy(upstream.port(), true)};
};

Harness* TheHarness() {
  static Harness* h = [] {
    // OpenSSL (the redactor's HMAC) registers its own exit handler on first use; initialized
    // first, it runs after ours below, so the recorder threads end (freeing their OpenSSL
    // thread state) before OpenSSL is torn down. The other order reports a leak at exit.
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    // Every thread the harness starts (the upstream's, the recorders') inherits a mask that
    // blocks libFuzzer's SIGALRM, so the watchdog always lands on this thread, whose calls
    // handle EINTR, and never fails a blocking read in the upstream.
    sigset_t alarm, old;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alarm, &old);
    auto* harness = new Harness();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // Stop the recorders before static destructors run (libFuzzer and the regression
    // runner both leave through exit()); the upstream's threads die with the process.
    std::atexit([] {
      for (auto& p : TheHarness()->proxies) p.recorder->Stop();
    });
    return harness;
  }();
  return h;
}

template <class Pred>
bool WaitFor(Pred pred) {
  const auto deadline = Clock::now() + kSettleTimeout;
  while (!pred()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

void CheckHealthy(const Proxy& p) {
  bool closed = false;
  const std::string reply =
      Exchange(p.port, "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n", &closed);
  FUZZ_CHECK(reply.rfind("HTTP/1.1 200 ", 0) == 0,
             "the recorder no longer answers a well-formed request: " + reply.substr(0, 100));
}

void RunOne(const Proxy& p, std::string_view data) {
  bool closed = false;
  static constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#ifdef DOPPEL_FUZZ_H2
  const std::string input = std::string(kH2Preface) + H2Input(data);  // h2_session.cc
#else
  const std::string input(data);
#endif
  const std::string reply = Exchange(p.port, input, &closed);
  FUZZ_CHECK(closed, "the proxy kept the connection open after the client half-closed");
  if (input.rfind(kH2Preface, 0) == 0) {
    // HTTP/2: a frame header (9 bytes) of type SETTINGS (4) first.
    FUZZ_CHECK(reply.size() < 9 || reply[3] == 4,
               "the proxy's HTTP/2 answer does not start with its SETTINGS frame");
  } else {
    FUZZ_CHECK(reply.empty() || reply.rfind("HTTP/1.", 0) == 0,
               "the proxy sent something that is not an HTTP response: " + reply.substr(0, 100));
  }
  const auto& rec = *p.recorder;
  FUZZ_CHECK(WaitFor([&] { return rec.counts().connections == 0; }),
             "a client connection is still open after the client closed");
  FUZZ_CHECK(WaitFor([&] { return rec.counts().queue_depth == 0; }),
             "the capture queue does not drain");
  FUZZ_CHECK(WaitFor([&] {
               for (const auto& m : rec.mirror_counts()) {
                 if (m.inflight != 0) return false;
               }
               return true;
             }),
             "a mirrored copy is still in flight");
  FUZZ_CHECK(rec.capture_error().ok(), rec.capture_error().message());
  CheckHealthy(p);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Harness* h = TheHarness();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const auto& p : h->proxies) RunOne(p, input);
  FUZZ_CHECK(h->upstream.connections() <= kMaxUpstreamConnections,
             std::to_string(h->upstream.connections()) + " upstream connections are open");
  return 0;
}
