#include "tests/net/websocket_echo.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <mutex>
#include <optional>
#include <thread>

#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct WebSocketEchoServer::State {
  Reply reply;
  std::optional<asio::ssl::context> tls;
  std::string cert_pem;
  int fd = -1;
  uint16_t port = 0;
  std::thread accept;
  std::mutex mu;
  std::vector<int> fds;  // connections; -1 once closed
  std::vector<std::thread> conns;
  std::vector<http::request<http::string_body>> handshakes;

  // Serves connection `i` (socket `fd`, which it owns) until the client leaves.
  void Serve(int c, size_t i) {
    asio::io_context io;
    beast::error_code ec;
    if (tls) {
      websocket::stream<asio::ssl::stream<tcp::socket>> ws(io, *tls);
      beast::get_lowest_layer(ws).assign(tcp::v4(), c, ec);
      ws.next_layer().handshake(asio::ssl::stream_base::server, ec);
      if (!ec) Serve(ws);
      std::lock_guard<std::mutex> lock(mu);
      beast::get_lowest_layer(ws).close(ec);
      fds[i] = -1;
      return;
    }
    websocket::stream<tcp::socket> ws(io);
    ws.next_layer().assign(tcp::v4(), c, ec);
    Serve(ws);
    std::lock_guard<std::mutex> lock(mu);
    ws.next_layer().close(ec);
    fds[i] = -1;
  }

  template <class WebSocketStream>
  void Serve(WebSocketStream& ws) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::read(ws.next_layer(), buffer, req, ec);
    if (ec) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      handshakes.push_back(req);
    }
    if (req.target() == "/refuse") {
      http::response<http::string_body> res{http::status::forbidden, 11};
      res.body() = "no sockets here\n";
      res.prepare_payload();
      http::write(ws.next_layer(), res, ec);
      return;
    }
    ws.accept(req, ec);
    while (!ec) {
      beast::flat_buffer message;
      ws.read(message, ec);
      if (ec) break;
      const Message in{ws.got_text(), beast::buffers_to_string(message.data())};
      const std::vector<Message> out = reply ? reply(in) : std::vector<Message>{in};
      for (const Message& m : out) {
        ws.text(m.text);
        ws.write(asio::buffer(m.payload), ec);
        if (ec) break;
      }
    }
  }
};

WebSocketEchoServer::WebSocketEchoServer(bool tls, Reply reply) : state_(new State) {
  State& s = *state_;
  s.reply = std::move(reply);
  if (tls) {
    s.tls.emplace(asio::ssl::context::tls_server);
    s.cert_pem = UseSelfSignedCertificate(*s.tls);
  }
  s.fd = ListenOnLoopback(16, &s.port);
  s.accept = std::thread([&s] {
    for (;;) {
      const int c = ::accept4(s.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::lock_guard<std::mutex> lock(s.mu);
      s.fds.push_back(c);
      s.conns.emplace_back([&s, c, i = s.fds.size() - 1] { s.Serve(c, i); });
    }
  });
}

WebSocketEchoServer::~WebSocketEchoServer() {
  State& s = *state_;
  ::shutdown(s.fd, SHUT_RDWR);
  ::close(s.fd);
  s.accept.join();
  {
    // Connections a client still holds end now (closed ones are -1: no fd reused since).
    std::lock_guard<std::mutex> lock(s.mu);
    for (int c : s.fds) {
      if (c >= 0) ::shutdown(c, SHUT_RDWR);
    }
  }
  for (auto& t : s.conns) t.join();
}

std::string WebSocketEchoServer::url() const {
  return (state_->tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(state_->port);
}

const std::string& WebSocketEchoServer::cert_pem() const { return state_->cert_pem; }

std::vector<http::request<http::string_body>> WebSocketEchoServer::handshakes() {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->handshakes;
}

}  // namespace doppel::testing
