#include "tests/net/websocket_echo.h"

#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

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
    websocket::permessage_deflate deflate;
    deflate.server_enable = true;
    ws.set_option(deflate);
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

std::vector<std::string> PerMessageDeflate(const std::vector<std::string>& messages) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::vector<std::string> out;
  for (const std::string& m : messages) {
    std::string compressed(deflateBound(&zs, m.size()) + 16, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(m.data()));
    zs.avail_in = static_cast<uInt>(m.size());
    zs.next_out = reinterpret_cast<Bytef*>(compressed.data());
    zs.avail_out = static_cast<uInt>(compressed.size());
    deflate(&zs, Z_SYNC_FLUSH);
    compressed.resize(compressed.size() - zs.avail_out);
    if (compressed.size() >= 4 && compressed.ends_with(std::string_view("\0\0\xff\xff", 4))) {
      compressed.resize(compressed.size() - 4);
    } else if (compressed.empty()) {
      compressed = std::string(1, '\0');  // nothing to flush: an empty stored block (7.2.3.6)
    }
    out.push_back(std::move(compressed));
  }
  deflateEnd(&zs);
  return out;
}

}  // namespace doppel::testing
