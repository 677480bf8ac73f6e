// doppel-echo: the demo upstream, a small deterministic JSON shop API over HTTP/1.x. The
// endpoints and the v2 behaviour changes are in shop.h; this file is the HTTP server.
//
// Server shape: one io_context per thread; the acceptor runs on the first and hands each
// connection round-robin to a thread, where it stays. A connection reads one request at a
// time (fresh parser per request, body limit --max-request-body → 413, malformed → 400 and
// close, idle/read/write timeouts), answers after the optional --latency delay (an asio
// timer, never a sleep) and keeps the connection alive when the request allows it.
// Responses are serialized by hand into a per-connection buffer: header bytes + the body
// (for the id endpoints a pre-rendered, pre-gzipped body shared by all threads).
#include "tools/echo/echo_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/log.h"
#include "net/codings.h"
#include "tools/echo/json_writer.h"
#include "tools/echo/shop.h"
#include "tools/echo/stateful.h"

namespace doppel::echo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr auto kIoTimeout = std::chrono::seconds(30);

// ---------------------------------------------------------------------------------------
// Helpers for the wire.

// True when an Accept-Encoding value accepts gzip (a "gzip" or "x-gzip" token whose q is
// not zero). "*" is not taken as gzip: clients that want compression name it.
bool AcceptsGzip(std::string_view value) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    size_t semi = item.find(';');
    std::string_view token = trim(item.substr(0, semi));
    if (!beast::iequals(token, "gzip") && !beast::iequals(token, "x-gzip")) continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = trim(item.substr(semi + 1));
    if (params.size() >= 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
      std::string_view qv = trim(params.substr(2));
      bool zero =
          !qv.empty() && qv[0] == '0' && qv.find_first_not_of("0.", 0) == std::string_view::npos;
      if (zero) continue;
    }
    return true;
  }
  return false;
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Per-thread state: the thread's io_context and what its connections share.
struct Worker {
  explicit Worker(uint64_t rng_seed) : rng(rng_seed) {}
  asio::io_context ioc{1};
  std::mt19937_64 rng;  // noise values and latency jitter; seeded from random_device
  net::GzipEncoder gzip;
  std::thread thread;
};

struct ServerConfig {
  bool noise;
  std::chrono::microseconds latency, jitter;
  uint64_t max_request_body;
  StatefulApi* stateful;  // null unless --stateful
};

// ---------------------------------------------------------------------------------------
// A WebSocket connection: a GET (any path) that asks to upgrade. Each message comes back as it
// came, text as text and binary as binary, until the client closes.

class WebSocketEcho : public std::enable_shared_from_this<WebSocketEcho> {
 public:
  explicit WebSocketEcho(beast::tcp_stream&& stream) : ws_(std::move(stream)) {}

  void Start(http::request<http::string_body>&& handshake) {
    beast::get_lowest_layer(ws_).expires_never();  // the stream's own timeouts from here on
    ws_.set_option(beast::websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept(handshake, [self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Read();
    });
  }

 private:
  void Read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;  // closed (the close handshake is Beast's), or broken
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(self->buffer_.data(), [self](beast::error_code ec, size_t) {
        if (ec) return;
        self->buffer_.consume(self->buffer_.size());
        self->Read();
      });
    });
  }

  beast::websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

// ---------------------------------------------------------------------------------------
// One connection.

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Worker* worker, const Shop* api, const ServerConfig* config)
      : stream_(std::move(socket)),
        timer_(stream_.get_executor()),
        worker_(worker),
        api_(api),
        config_(config) {}

  // May be called from any thread: the first read starts on the connection's own thread.
  void Start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->body_limit(config_->max_request_body);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    if (parser_->is_done()) return OnRequest();
    auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      stream_.expires_after(kIoTimeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(kIoTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->OnReadError(ec);
                       self->OnRequest();
                     });
  }

  void OnReadError(beast::error_code ec) {
    // A peer that went away or idled out gets no answer; a broken request gets one and
    // the connection is closed, as the stream position after a parse error is unknown.
    static const auto& kHttpCategory = beast::error_code(http::error::bad_target).category();
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != kHttpCategory) {
      return Close();
    }
    version_ = 11;
    keep_alive_ = false;
    head_ = false;
    gzip_ = false;
    if (ec == http::error::body_limit) {
      reply_.Error(
          413, "body_too_large",
          "the request body exceeds " + std::to_string(config_->max_request_body) + " bytes");
    } else if (ec == http::error::header_limit) {
      reply_.Error(431, "header_too_large", "the request header is too large");
    } else {
      reply_.Error(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    error_reply_ = true;
    Send();
  }

  void OnRequest() {
    if (beast::websocket::is_upgrade(parser_->get())) {
      return std::make_shared<WebSocketEcho>(std::move(stream_))->Start(parser_->release());
    }
    const auto& req = parser_->get();
    version_ = req.version();
    error_reply_ = false;
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    gzip_ = AcceptsGzip(req[http::field::accept_encoding]);
    reply_.set_cookie.clear();
    if (config_->stateful == nullptr ||
        !config_->stateful->Handle(req.method(), req.target(), req[http::field::authorization],
                                   req[http::field::cookie], req.body(), &reply_)) {
      api_->Handle(req.method(), req.target(), req.body(), &reply_);
    }
    std::chrono::microseconds delay = config_->latency;
    if (config_->jitter.count() > 0) {
      std::uniform_int_distribution<int64_t> d(-config_->jitter.count(), config_->jitter.count());
      delay += std::chrono::microseconds(d(worker_->rng));
    }
    if (delay.count() <= 0) return Send();
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->Close();
      self->Send();
    });
  }

  // Writes an RFC 3339 time with microseconds (strictly increasing across the process, so
  // no two responses share it), a UUID v4 and a hex nonce for --noise.
  void MakeNoise(std::string* generated_at, std::string* uuid, std::string* nonce) {
    static constexpr char kHex[] = "0123456789abcdef";
    static std::atomic<int64_t> last_us{0};
    int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    int64_t prev = last_us.load(std::memory_order_relaxed);
    do {
      if (us <= prev) us = prev + 1;
    } while (!last_us.compare_exchange_weak(prev, us, std::memory_order_relaxed));
    std::time_t t = static_cast<std::time_t>(us / 1000000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06dZ", static_cast<int>(us % 1000000));
    *generated_at = buf;

    uint64_t a = worker_->rng(), b = worker_->rng();
    a = (a & ~(0xFull << 12)) | (0x4ull << 12);  // version 4
    b = (b & ~(0x3ull << 62)) | (0x2ull << 62);  // RFC 4122 variant
    uuid->clear();
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) uuid->push_back('-');
      uint64_t word = i < 16 ? a : b;
      uuid->push_back(kHex[(word >> (60 - 4 * (i % 16))) & 15]);
    }
    uint64_t c = worker_->rng();
    nonce->clear();
    for (int i = 0; i < 16; ++i) nonce->push_back(kHex[(c >> (60 - 4 * i)) & 15]);
  }

  void Send() {
    std::string_view body = reply_.body;
    std::string_view gz = reply_.gzip_body;
    std::string request_id;
    if (config_->noise) {
      std::string generated_at, nonce;
      MakeNoise(&generated_at, &request_id, &nonce);
      if (reply_.json_object && body.size() >= 2 && body.front() == '{') {
        noisy_.clear();
        JsonWriter w(&noisy_);
        w.BeginObject();
        w.Key("generated_at").String(generated_at);
        w.Key("request_id").String(request_id);
        w.Key("nonce").String(nonce);
        w.EndObject();
        // Splice the original members after ours: drop our '}' and the body's '{'.
        noisy_.pop_back();
        if (body.size() > 2) noisy_.push_back(',');
        noisy_.append(body.substr(1));
        body = noisy_;
        gz = {};
      }
    }
    bool compressed = false;
    if (gzip_ && !body.empty()) {
      if (gz.empty() && worker_->gzip.Compress(body, &gzip_buf_)) gz = gzip_buf_;
      if (!gz.empty()) {
        body = gz;
        compressed = true;
      }
    }

    std::string& h = head_buf_;
    h.clear();
    h.append(version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendUint(&h, reply_.status);
    h.push_back(' ');
    h.append(http::obsolete_reason(static_cast<http::status>(reply_.status)));
    h.append("\r\nServer: doppel-echo\r\nContent-Type: ");
    h.append(reply_.content_type);
    h.append("\r\nContent-Length: ");
    AppendUint(&h, body.size());
    if (compressed) h.append("\r\nContent-Encoding: gzip");
    h.append("\r\nVary: Accept-Encoding");
    if (!reply_.location.empty()) h.append("\r\nLocation: ").append(reply_.location);
    if (!reply_.allow.empty()) h.append("\r\nAllow: ").append(reply_.allow);
    if (!reply_.set_cookie.empty()) h.append("\r\nSet-Cookie: ").append(reply_.set_cookie);
    if (config_->noise) {
      h.append("\r\nX-Request-Id: ").append(request_id);
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char date[40];
      std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      h.append("\r\nDate: ").append(date);
    }
    if (!keep_alive_) {
      h.append("\r\nConnection: close");
    } else if (version_ == 10) {
      h.append("\r\nConnection: keep-alive");
    }
    h.append("\r\n\r\n");

    std::array<asio::const_buffer, 2> buffers = {
        asio::buffer(h.data(), h.size()), asio::buffer(body.data(), head_ ? 0 : body.size())};
    stream_.expires_after(kIoTimeout);
    asio::async_write(stream_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (self->error_reply_) return self->LingeringClose();
      if (!self->keep_alive_) return self->Close();
      self->ReadHeader();
    });
  }

  // After an error reply the client may still be sending (say, a body over the limit).
  // Closing with unread input makes the kernel send RST, which can destroy our reply in
  // flight; so stop sending, then discard input for a short while before closing.
  void LingeringClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    stream_.expires_after(std::chrono::seconds(2));
    Drain();
  }

  void Drain() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Worker* worker_;
  const Shop* api_;
  const ServerConfig* config_;

  // The request being answered.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool gzip_ = false;
  bool error_reply_ = false;  // the reply is to a request we could not read
  Reply reply_;
  // Reused output buffers: they keep their capacity across requests.
  std::string head_buf_, noisy_, gzip_buf_;
};

// ---------------------------------------------------------------------------------------
// The server.

class EchoServerImpl final : public EchoServer {
 public:
  EchoServerImpl(const EchoOptions& options)
      : api_(options.seed, options.variant),
        stateful_(options.stateful ? std::make_unique<StatefulApi>(options.jwt_secret) : nullptr),
        config_{options.noise, options.latency, options.latency_jitter, options.max_request_body,
                stateful_.get()} {
    std::random_device rd;
    for (int i = 0; i < options.threads; ++i) {
      uint64_t s = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(i);
      workers_.push_back(std::make_unique<Worker>(s));
    }
    acceptor_.emplace(workers_[0]->ioc);
  }

  ~EchoServerImpl() override {
    Stop();
    Wait();
    acceptor_.reset();  // before the io_context it belongs to
  }

  Status Listen(const EchoOptions& options) {
    beast::error_code ec;
    auto address = asio::ip::make_address(options.host, ec);
    if (ec) return Status::InvalidArgument("not an IP address: " + options.host);
    tcp::endpoint endpoint(address, options.port);
    auto fail = [&](const char* what) {
      return Status::Unavailable(std::string(what) + " " + options.host + ":" +
                                 std::to_string(options.port) + ": " + ec.message());
    };
    acceptor_->open(endpoint.protocol(), ec);
    if (ec) return fail("cannot open a socket for");
    acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_->bind(endpoint, ec);
    if (ec) return fail("cannot bind");
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return fail("cannot listen on");
    port_ = acceptor_->local_endpoint(ec).port();
    if (ec) return fail("cannot read the local address of");
    return Status::Ok();
  }

  void Run() {
    Accept();
    for (auto& w : workers_) {
      Worker* worker = w.get();
      worker->thread = std::thread([worker] {
        auto guard = asio::make_work_guard(worker->ioc);
        worker->ioc.run();
      });
    }
  }

  uint16_t port() const override { return port_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    // Stopping the io_contexts abandons in-flight work; connections and the acceptor are
    // closed when they are destroyed, after the threads have returned.
    for (auto& w : workers_) w->ioc.stop();
  }

  void Wait() override {
    std::lock_guard<std::mutex> lock(join_mutex_);
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
  }

 private:
  void Accept() {
    Worker* target = workers_[next_worker_].get();
    next_worker_ = (next_worker_ + 1) % workers_.size();
    acceptor_->async_accept(target->ioc, [this, target](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
      if (ec) {
        // Out of descriptors and the like: back off briefly instead of spinning.
        log::Error({"echo", "doppel-echo"}, "accept: " + ec.message());
        auto timer = std::make_shared<asio::steady_timer>(workers_[0]->ioc);
        timer->expires_after(std::chrono::milliseconds(10));
        timer->async_wait([this, timer](beast::error_code) { Accept(); });
        return;
      }
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Connection>(std::move(socket), target, &api_, &config_)->Start();
      Accept();
    });
  }

  Shop api_;
  std::unique_ptr<StatefulApi> stateful_;
  ServerConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<tcp::acceptor> acceptor_;  // on workers_[0]
  size_t next_worker_ = 0;                 // touched only on workers_[0]'s thread
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  std::mutex join_mutex_;
};

}  // namespace

Result<std::unique_ptr<EchoServer>> EchoServer::Start(const EchoOptions& options) {
  if (options.threads < 1 || options.threads > 1024) {
    return Status::InvalidArgument("--threads must be between 1 and 1024");
  }
  if (options.latency.count() < 0 || options.latency_jitter.count() < 0) {
    return Status::InvalidArgument("--latency and --latency-jitter must not be negative");
  }
  if (options.latency > std::chrono::hours(1) || options.latency_jitter > std::chrono::hours(1)) {
    return Status::InvalidArgument("--latency and --latency-jitter must be at most 1h");
  }
  auto server = std::make_unique<EchoServerImpl>(options);
  DOPPEL_RETURN_IF_ERROR(server->Listen(options));
  server->Run();
  return std::unique_ptr<EchoServer>(std::move(server));
}

}  // namespace doppel::echo
