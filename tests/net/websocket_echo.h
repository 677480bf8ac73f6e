// A WebSocket echo server on loopback for tests, Beast's WebSocket on blocking threads: each
// message is answered as `reply` says (by default it comes back as it came, text as text and
// binary as binary) until the client closes. A handshake for /refuse is answered 403 instead.
// With `tls`, over TLS with a fresh self-signed certificate (cert_pem()). A client that offers
// permessage-deflate (RFC 7692) gets it, with context takeover: Beast compresses every message.
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

// The payloads of `messages` as a permessage-deflate peer with context takeover sends them
// (RFC 7692 7.2.1: raw DEFLATE, sync-flushed, the trailing 00 00 ff ff taken off), each
// compressed after the ones before it (zlib).
std::vector<std::string> PerMessageDeflate(const std::vector<std::string>& messages);

}  // namespace doppel::testing
