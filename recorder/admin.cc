#include "recorder/admin.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "base/thread.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class AdminSession : public std::enable_shared_from_this<AdminSession> {
 public:
  AdminSession(tcp::socket&& socket, const AdminHandler* handler)
      : stream_(std::move(socket)), handler_(handler) {}

  void Read() {
    request_ = {};
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, request_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) return Close();
    AdminReply reply;
    const http::verb method = request_.method();
    if (method != http::verb::get && method != http::verb::head && method != http::verb::post) {
      reply = {405, "text/plain; charset=utf-8", "only GET, HEAD and POST\n"};
    } else {
      beast::error_code peer_ec;
      const auto peer = stream_.socket().remote_endpoint(peer_ec);
      AdminRequest request{request_.method_string(), request_.target(), request_.body(),
                           !peer_ec && peer.address().is_loopback()};
      reply = (*handler_)(request);
    }
    response_ = {};
    response_.version(request_.version());
    response_.result(reply.status);
    response_.set(http::field::content_type, reply.content_type);
    response_.set(http::field::cache_control, "no-store");
    response_.keep_alive(request_.keep_alive());
    response_.body() = std::move(reply.body);
    response_.prepare_payload();
    if (request_.method() == http::verb::head) response_.body().clear();
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || !self->response_.keep_alive()) return self->Close();
                        self->Read();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  const AdminHandler* handler_;
};

class AdminServerImpl : public AdminServer {
 public:
  explicit AdminServerImpl(AdminHandler handler)
      : handler_(std::move(handler)), work_(asio::make_work_guard(io_)), acceptor_(io_) {}
  ~AdminServerImpl() override { Stop(); }

  Status Bind(const net::HostPort& address) {
    beast::error_code ec;
    const auto ip = asio::ip::make_address(address.host, ec);
    if (ec) return Status::InvalidArgument("--admin: '" + address.host + "' is not an IP address");
    const tcp::endpoint ep(ip, address.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status::Unavailable("--admin " + address.ToString() + ": " + ec.message());
    const auto local = acceptor_.local_endpoint(ec);
    address_ = {local.address().to_string(), local.port()};
    Accept();
    thread_ = std::thread([this] { io_.run(); });
    NameThread(thread_, "doppel-admin");
    return Status::Ok();
  }

  net::HostPort address() const override { return address_; }

  void Stop() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  void Accept() {
    acceptor_.async_accept(io_, [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) std::make_shared<AdminSession>(std::move(socket), &handler_)->Read();
      Accept();
    });
  }

  AdminHandler handler_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  net::HostPort address_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const net::HostPort& address,
                                                        AdminHandler handler) {
  auto server = std::make_unique<AdminServerImpl>(std::move(handler));
  DOPPEL_RETURN_IF_ERROR(server->Bind(address));
  return std::unique_ptr<AdminServer>(std::move(server));
}

}  // namespace doppel::recorder
