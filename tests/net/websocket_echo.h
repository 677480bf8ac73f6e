// A WebSocket echo server on loopback for tests, Beast's WebSocket on blocking threads: each
// message is answered as `reply` says (by default it comes back as it came, text as text and
// binary as binary) until the client closes. A handshake for /refuse is answered 403 instead.
// With `tls`, over TLS with a fresh self-signed certificate (cert_pem()).
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace doppel::testing {

class WebSocketEchoServer {
 public:
  struct Message {
    bool text = true;
    std::string payload;
  };
  // The messages that answer one message from the client (called on a connection's thread).
  using Reply = std::function<std::vector<Message>(const Message&)>;

  explicit WebSocketEchoServer(bool tls = false, Reply reply = {});
  ~WebSocketEchoServer();
  WebSocketEchoServer(const WebSocketEchoServer&) = delete;
  WebSocketEchoServer& operator=(const WebSocketEchoServer&) = delete;

  // http://127.0.0.1:PORT, or https:// with `tls`.
  std::string url() const;
  const std::string& cert_pem() const;
  // The handshakes the server read, as they arrived.
  std::vector<boost::beast::http::request<boost::beast::http::string_body>> handshakes();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace doppel::testing
