// All Beast/Asio client code of net/ lives here, so the heavy templates are compiled once.
#include "net/http_client.h"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <vector>

#include "net/headers.h"

namespace doppel::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

Result<std::shared_ptr<asio::ssl::context>> MakeClientTlsContext(const TlsClientOptions& options) {
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot create a TLS context: ") + e.what());
  }
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1,
                   ec);
  if (options.verify) {
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
    if (!options.ca_file.empty()) {
      ctx->load_verify_file(options.ca_file, ec);
      if (ec) {
        return Status::InvalidArgument("cannot load CA file '" + options.ca_file +
                                       "': " + ec.message());
      }
    } else {
      ctx->set_default_verify_paths(ec);
      if (ec) return Status::Internal("cannot load the system CA store: " + ec.message());
    }
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  return ctx;
}

namespace {

bool IsIdempotent(http::verb v) {
  switch (v) {
    case http::verb::get:
    case http::verb::head:
    case http::verb::options:
    case http::verb::trace:
    case http::verb::put:
    case http::verb::delete_:
      return true;
    default:
      return false;
  }
}

bool IsIpLiteral(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

constexpr size_t kReadBufferBytes = 16 * 1024;

// One upstream connection, plain or TLS.
struct Connection {
  Connection(asio::io_context& io, asio::ssl::context* tls) {
    // Beast reads max(512, free capacity) bytes per recv: an empty flat_buffer would take a
    // 1 KB response in three recv calls, each with its own timer re-arm and reactor pass.
    buffer.reserve(kReadBufferBytes);
    if (tls != nullptr) {
      tls_stream.emplace(io, *tls);
    } else {
      tcp_stream.emplace(io);
    }
  }
  beast::tcp_stream& lowest() {
    return tls_stream ? beast::get_lowest_layer(*tls_stream) : *tcp_stream;
  }
  template <class F>
  void Visit(F&& f) {
    if (tls_stream) {
      f(*tls_stream);
    } else {
      f(*tcp_stream);
    }
  }
  // True when the peer has not closed the idle connection nor sent anything unexpected.
  bool LooksAlive() {
    auto& sock = lowest().socket();
    if (!sock.is_open()) return false;
    char byte;
    const ssize_t n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  std::optional<beast::tcp_stream> tcp_stream;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
};

class PoolImpl;

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<PoolImpl> pool, HttpRequest request, ExchangeCallback done)
      : pool_(std::move(pool)), request_(std::move(request)), done_(std::move(done)) {}
  void Start();

 private:
  void Connect();
  void OnResolved(const boost::system::error_code& ec, tcp::resolver::results_type results);
  void DoConnect();
  void OnConnected(const boost::system::error_code& ec);
  void OnHandshake(const boost::system::error_code& ec);
  void Write();
  void OnWrite(const boost::system::error_code& ec);
  void Read();
  void OnRead(const boost::system::error_code& ec);
  void Retry();
  void Finish(ClientError error, std::string detail);

  std::shared_ptr<PoolImpl> pool_;
  HttpRequest request_;
  ExchangeCallback done_;
  std::unique_ptr<Connection> conn_;
  std::optional<http::response_parser<http::string_body>> parser_;
  Clock::time_point start_;
  bool reused_ = false;
  bool retried_ = false;
};

class PoolImpl : public HttpClientPool, public std::enable_shared_from_this<PoolImpl> {
 public:
  PoolImpl(asio::io_context& io, Url upstream, ClientOptions options,
           std::shared_ptr<asio::ssl::context> tls)
      : io_(io),
        upstream_(std::move(upstream)),
        options_(options),
        tls_(std::move(tls)),
        resolver_(io) {}

  void Send(HttpRequest request, ExchangeCallback done) override {
    ++stats_.exchanges;
    ++stats_.active;
    std::make_shared<Exchange>(shared_from_this(), std::move(request), std::move(done))->Start();
  }

  void Shutdown() override {
    shutdown_ = true;
    idle_.clear();
  }

  PoolStats stats() const override {
    PoolStats s = stats_;
    s.idle = idle_.size();
    return s;
  }
  const Url& upstream() const override { return upstream_; }

  // `probe_always`: for requests that are not retried when the connection turns out closed
  // (POST, PATCH), so a connection the upstream closed while idle is never used for them.
  std::unique_ptr<Connection> TakeIdle(bool probe_always) {
    const auto now = Clock::now();
    while (!idle_.empty()) {
      std::unique_ptr<Connection> c = std::move(idle_.back());
      idle_.pop_back();
      const auto idle = now - c->idle_since;
      // The liveness probe costs a syscall; a connection used within the last second is
      // taken as alive (servers close idle connections after seconds, and announce a close
      // after N requests with "Connection: close", which keeps it out of the pool).
      if (idle < options_.idle_timeout &&
          ((idle < std::chrono::seconds(1) && !probe_always) || c->LooksAlive())) {
        ++stats_.reused;
        return c;
      }
    }
    return nullptr;
  }

  void ReturnIdle(std::unique_ptr<Connection> c) {
    if (shutdown_ || idle_.size() >= options_.max_idle_connections) return;
    c->idle_since = Clock::now();
    idle_.push_back(std::move(c));
  }

  std::unique_ptr<Connection> NewConnection() {
    ++stats_.connections_opened;
    return std::make_unique<Connection>(io_, tls_.get());
  }

  asio::io_context& io_;
  Url upstream_;
  ClientOptions options_;
  std::shared_ptr<asio::ssl::context> tls_;
  tcp::resolver resolver_;
  std::optional<tcp::resolver::results_type> endpoints_;
  std::vector<std::unique_ptr<Connection>> idle_;
  PoolStats stats_;
  bool shutdown_ = false;
};

void Exchange::Start() {
  conn_ = pool_->TakeIdle(!IsIdempotent(request_.method()));
  if (conn_) {
    reused_ = true;
    Write();
  } else {
    Connect();
  }
}

void Exchange::Connect() {
  reused_ = false;
  conn_ = pool_->NewConnection();
  if (pool_->endpoints_) {
    DoConnect();
    return;
  }
  pool_->resolver_.async_resolve(pool_->upstream_.host, std::to_string(pool_->upstream_.port),
                                 [self = shared_from_this()](const boost::system::error_code& ec,
                                                             tcp::resolver::results_type results) {
                                   self->OnResolved(ec, std::move(results));
                                 });
}

void Exchange::OnResolved(const boost::system::error_code& ec,
                          tcp::resolver::results_type results) {
  if (ec)
    return Finish(ClientError::kConnect,
                  "cannot resolve " + pool_->upstream_.host + ": " + ec.message());
  pool_->endpoints_ = std::move(results);
  DoConnect();
}

void Exchange::DoConnect() {
  conn_->lowest().expires_after(pool_->options_.connect_timeout);
  conn_->lowest().async_connect(
      *pool_->endpoints_,
      [self = shared_from_this()](const boost::system::error_code& ec, const tcp::endpoint&) {
        self->OnConnected(ec);
      });
}

void Exchange::OnConnected(const boost::system::error_code& ec) {
  if (ec) {
    pool_->endpoints_.reset();  // resolve again next time: the address may have moved
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout,
                    "connect to " + pool_->upstream_.Authority() + " timed out");
    }
    return Finish(ClientError::kConnect,
                  "connect to " + pool_->upstream_.Authority() + ": " + ec.message());
  }
  boost::system::error_code ignored;
  conn_->lowest().socket().set_option(tcp::no_delay(true), ignored);
  if (!conn_->tls_stream) return Write();
  auto& tls = *conn_->tls_stream;
  const std::string& host = pool_->upstream_.host;
  if (!IsIpLiteral(host)) SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());
  tls.set_verify_callback(asio::ssl::host_name_verification(host), ignored);
  tls.async_handshake(
      asio::ssl::stream_base::client,
      [self = shared_from_this()](const boost::system::error_code& ec) { self->OnHandshake(ec); });
}

void Exchange::OnHandshake(const boost::system::error_code& ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout,
                    "TLS handshake with " + pool_->upstream_.Authority() + " timed out");
    }
    return Finish(ClientError::kConnect,
                  "TLS handshake with " + pool_->upstream_.Authority() + ": " + ec.message());
  }
  Write();
}

void Exchange::Write() {
  start_ = Clock::now();
  conn_->lowest().expires_after(pool_->options_.response_timeout);
  conn_->Visit([&](auto& stream) {
    http::async_write(stream, request_,
                      [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                        self->OnWrite(ec);
                      });
  });
}

void Exchange::OnWrite(const boost::system::error_code& ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout, "sending the request upstream timed out");
    }
    if (reused_ && !retried_) return Retry();
    return Finish(ClientError::kReset, "sending the request upstream: " + ec.message());
  }
  Read();
}

void Exchange::Read() {
  parser_.emplace();
  parser_->header_limit(pool_->options_.max_response_header);
  parser_->body_limit(pool_->options_.max_response_body);
  if (request_.method() == http::verb::head) parser_->skip(true);
  conn_->Visit([&](auto& stream) {
    http::async_read(stream, conn_->buffer, *parser_,
                     [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                       self->OnRead(ec);
                     });
  });
}

void Exchange::OnRead(const boost::system::error_code& ec) {
  if (ec) {
    if (ec == beast::error::timeout) {
      return Finish(ClientError::kTimeout,
                    "the upstream did not answer within " +
                        std::to_string(pool_->options_.response_timeout.count()) + " ms");
    }
    const bool closed_before_answer =
        !parser_->got_some() &&
        (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
         ec == asio::error::eof || ec == asio::error::broken_pipe);
    if (closed_before_answer && reused_ && !retried_ && IsIdempotent(request_.method())) {
      return Retry();
    }
    if (ec == http::error::body_limit) {
      return Finish(ClientError::kTooLarge, "the upstream response body is over " +
                                                std::to_string(pool_->options_.max_response_body) +
                                                " bytes");
    }
    if (ec.category() == http::make_error_code(http::error::bad_version).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return Finish(ClientError::kBadResponse, "malformed upstream response: " + ec.message());
    }
    return Finish(ClientError::kReset, "the upstream closed the connection: " + ec.message());
  }
  const unsigned status = parser_->get().result_int();
  if (status >= 100 && status < 200 && status != 101) {
    Read();  // 1xx: interim, the final response follows on the same connection
    return;
  }
  ExchangeResult result;
  result.latency_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count());
  result.reused_connection = reused_;
  const bool keep = parser_->keep_alive() && request_.keep_alive() && status != 101;
  result.response = parser_->release();
  if (keep) pool_->ReturnIdle(std::move(conn_));
  conn_.reset();
  --pool_->stats_.active;
  ExchangeCallback done = std::move(done_);
  done(std::move(result));
}

void Exchange::Retry() {
  retried_ = true;
  ++pool_->stats_.retried;
  conn_.reset();
  Connect();
}

void Exchange::Finish(ClientError error, std::string detail) {
  ExchangeResult result;
  result.error = error;
  result.detail = std::move(detail);
  result.reused_connection = reused_;
  if (start_ != Clock::time_point()) {
    result.latency_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count());
  }
  conn_.reset();
  --pool_->stats_.active;
  ExchangeCallback done = std::move(done_);
  done(std::move(result));
}

}  // namespace

Result<std::shared_ptr<HttpClientPool>> HttpClientPool::Create(
    asio::io_context& io, Url upstream, ClientOptions options,
    std::shared_ptr<asio::ssl::context> tls) {
  if (upstream.tls() && !tls) {
    return Status::InvalidArgument("https upstream " + upstream.ToString() +
                                   " needs a TLS context");
  }
  if (!upstream.tls()) tls.reset();
  return std::shared_ptr<HttpClientPool>(
      std::make_shared<PoolImpl>(io, std::move(upstream), options, std::move(tls)));
}

// Everything of a recorded response but its body.
static void ToProtoHead(const HttpResponse& in, doppel::v1::HttpResponse* out) {
  out->Clear();
  out->set_status(in.result_int());
  out->set_reason(std::string(in.reason()));
  out->set_version(in.version());
  CopyHeaders(in, out->mutable_headers());
  out->set_body_size(in.body().size());
}

void ToProto(const HttpResponse& in, doppel::v1::HttpResponse* out) {
  ToProtoHead(in, out);
  out->set_body(in.body());
}

void ToProto(HttpResponse&& in, doppel::v1::HttpResponse* out) {
  ToProtoHead(in, out);
  out->set_body(std::move(in.body()));
}

}  // namespace doppel::net
