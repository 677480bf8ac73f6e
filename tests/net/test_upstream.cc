#include "tests/net/test_upstream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <sstream>
#include <stdexcept>

#include "net/match.h"
#include "net/url.h"

namespace doppel::testing {

namespace http = boost::beast::http;
namespace asio = boost::asio;

namespace {

// Appends what arrives within timeout_ms; false on EOF/error/timeout.
bool RecvSome(int fd, std::string* into, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[65536];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) return false;
  into->append(buf, static_cast<size_t>(n));
  return true;
}

template <class Parser>
bool ParseFrom(int fd, std::string* pending, Parser& parser, int timeout_ms, bool* eof) {
  *eof = false;
  parser.eager(true);
  for (;;) {
    if (!pending->empty()) {
      boost::beast::error_code ec;
      const size_t used = parser.put(asio::buffer(*pending), ec);
      pending->erase(0, used);
      if (parser.is_done()) return true;
      if (ec && ec != http::error::need_more) return false;
      if (!ec && used > 0) continue;
    }
    if (!RecvSome(fd, pending, timeout_ms)) {
      if (!parser.got_some()) return false;  // closed between messages
      boost::beast::error_code ec;
      parser.put_eof(ec);
      *eof = true;
      return !ec && parser.is_done();
    }
  }
}

template <class Message>
std::string Serialize(Message& m) {
  std::ostringstream out;
  out << m;
  return out.str();
}

}  // namespace

std::string ReceivedRequest::Header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return v;
  }
  return "";
}

bool ReceivedRequest::HasHeader(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (boost::beast::iequals(n, name)) return true;
  }
  return false;
}

int ListenOnLoopback(int backlog, uint16_t* port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

int ConnectToLoopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

TestUpstream::TestUpstream() {
  listen_fd_ = ListenOnLoopback(512, &port_);
  if (listen_fd_ < 0) throw std::runtime_error("TestUpstream: cannot listen on 127.0.0.1");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestUpstream::~TestUpstream() { Stop(); }

void TestUpstream::Stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  accept_thread_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void TestUpstream::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

std::vector<ReceivedRequest> TestUpstream::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void TestUpstream::AcceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const uint64_t id = ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    fds_.push_back(fd);
    threads_.emplace_back([this, fd, id] { Serve(fd, id); });
  }
}

void TestUpstream::Serve(int fd, uint64_t id) {
  std::string pending;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    bool eof = false;
    if (!ParseFrom(fd, &pending, parser, 60000, &eof)) break;
    auto req = parser.release();
    ReceivedRequest rec;
    rec.method = std::string(req.method_string());
    rec.target = std::string(req.target());
    rec.version = req.version();
    for (const auto& f : req) rec.headers.emplace_back(f.name_string(), f.value());
    rec.body = req.body();
    rec.chunked = parser.chunked();
    rec.connection_id = id;
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(rec);
      handler = handler_;
    }
    if (never_answer_) {
      // Hold the connection: read and discard until the peer closes or Stop().
      char buf[4096];
      while (!stopping_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) break;
      }
      break;
    }
    if (handler) {
      if (std::optional<net::HttpResponse> custom = handler(rec)) {
        custom->content_length(custom->body().size());
        custom->keep_alive(req.keep_alive());
        if (!SendAll(fd, Serialize(*custom)) || !req.keep_alive()) break;
        continue;
      }
    }
    const std::string_view path = net::TargetPath(req.target());
    const auto param = [&](const char* name, uint64_t dflt) -> uint64_t {
      auto v = net::FindQueryParam(req.target(), name);
      return v ? std::stoull(*v) : dflt;
    };
    net::HttpResponse res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain");
    bool chunked = false;
    if (path == "/chunked") {
      res.body() = std::string(param("n", 1000), 'c');
      chunked = true;
    } else if (path == "/size") {
      res.body() = std::string(param("n", 1000), 's');
    } else if (path == "/slow") {
      std::this_thread::sleep_for(std::chrono::milliseconds(param("ms", 100)));
      res.body() = "slow";
    } else if (path == "/status") {
      res.result(static_cast<unsigned>(param("code", 200)));
      res.body() = "status";
    } else if (path == "/reset") {
      break;
    } else if (path == "/interim") {
      if (!SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n")) break;
      res.body() = "final";
    } else if (path == "/trailers") {
      // A chunked body with a trailer section: a field to keep and a hop-by-hop one that must
      // not pass on.
      std::string out =
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
          "Trailer: X-Checksum\r\n";
      if (!req.keep_alive()) out += "Connection: close\r\n";
      out += "\r\n5\r\nhello\r\n0\r\nX-Checksum: sha-abc\r\nKeep-Alive: timeout=5\r\n\r\n";
      if (!SendAll(fd, out) || !req.keep_alive()) break;
      continue;
    } else if (path == "/hop") {
      res.set(http::field::connection, "X-Hop-Secret");
      res.set("X-Hop-Secret", "1");
      res.set(http::field::keep_alive, "timeout=5");
      res.set(http::field::set_cookie, "upstream-secret");
      res.body() = "hop";
    } else {
      res.body() = req.body();
    }
    const bool head = req.method() == http::verb::head;
    const unsigned status = res.result_int();
    if (chunked && !head) {
      res.chunked(true);
    } else if (status != 204 && status != 304) {
      res.content_length(res.body().size());
    } else {
      res.body().clear();
    }
    if (head) res.body().clear();
    res.keep_alive(req.keep_alive());
    std::string out = Serialize(res);
    if (!SendAll(fd, out) || !req.keep_alive()) break;
  }
  ::shutdown(fd, SHUT_WR);
  std::string drain;
  while (!stopping_ && RecvSome(fd, &drain, 200)) drain.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = fds_.begin(); it != fds_.end(); ++it) {
    if (*it == fd) {
      fds_.erase(it);
      break;
    }
  }
  ::close(fd);
}

TestClient::TestClient(uint16_t port) : fd_(ConnectToLoopback(port)) {}

TestClient::~TestClient() {
  if (fd_ >= 0) ::close(fd_);
}

net::HttpResponse TestClient::Send(net::HttpRequest request, bool head) {
  net::HttpResponse error{http::status::unknown, 11};
  error.result(0);
  if (fd_ < 0) {
    error.body() = "not connected";
    return error;
  }
  if (request.find(http::field::host) == request.end()) request.set(http::field::host, "test");
  if (!Write(Serialize(request))) {
    error.body() = "write failed";
    return error;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  if (head || request.method() == http::verb::head) parser.skip(true);
  bool eof = false;
  if (!ParseFrom(fd_, &pending_, parser, 10000, &eof)) {
    error.body() = "no complete response";
    return error;
  }
  return parser.release();
}

bool TestClient::Write(const std::string& raw) { return fd_ >= 0 && SendAll(fd_, raw); }

std::string TestClient::ReadAll(int timeout_ms) {
  std::string out = std::move(pending_);
  pending_.clear();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now())
                                          .count());
    if (!RecvSome(fd_, &out, std::max(left, 1))) break;
  }
  return out;
}

std::string TestClient::ReadUntil(const std::string& text, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pending_.find(text) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0 || !RecvSome(fd_, &pending_, static_cast<int>(left))) break;
  }
  const size_t at = pending_.find(text);
  if (at == std::string::npos) return std::exchange(pending_, std::string());
  std::string out = pending_.substr(0, at + text.size());
  pending_.erase(0, at + text.size());
  return out;
}

bool TestClient::PeerClosed(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char c;
  return ::recv(fd_, &c, 1, MSG_PEEK) == 0;
}

net::HttpResponse Fetch(uint16_t port, const std::string& method, const std::string& target,
                        const std::string& body,
                        std::vector<std::pair<std::string, std::string>> headers) {
  TestClient client(port);
  net::HttpRequest req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, "test");
  for (const auto& [n, v] : headers) req.insert(n, v);
  req.body() = body;
  if (!body.empty() || method == "POST" || method == "PUT") req.prepare_payload();
  req.keep_alive(false);
  return client.Send(std::move(req));
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

uint16_t DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  // Left open, bound and not listening, for the life of the test process: a connect is refused
  // as before, and no other listener of a parallel test can take the port meanwhile (closing it
  // here once let another test's server answer on a "dead" mirror's port).
  return ntohs(a.sin_port);
}

}  // namespace doppel::testing
