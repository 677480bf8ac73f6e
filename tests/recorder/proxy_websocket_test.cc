// WebSocket through the capture proxy (issue #23): Beast's WebSocket implementation as a real
// echo server behind the proxy and as a real client in front of it, the proxy in-process on
// loopback between them.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/websocket_frames.h"
#include "recorder/recorder.h"
#include "tests/base/temp_dir.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"
#include "tests/net/websocket_echo.h"
#include "tests/recorder/loopback_options.h"

namespace doppel::recorder {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

using EchoServer = testing::WebSocketEchoServer;

// Shuts `fd` down after `seconds` unless disarmed first, so a blocking client cannot hang a
// failed test.
class Watchdog {
 public:
  Watchdog(int fd, int seconds)
      : thread_([this, fd, seconds] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) {
            ::shutdown(fd, SHUT_RDWR);
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

class WebSocketTest : public LoopbackRecorderTest {
 protected:
  void Start(const std::function<void(RecorderOptions&)>& tweak = {}) {
    StartRecorder(server_.url(), "ws", tweak);
  }
  // Waits (up to 10 s) until `n` envelopes were written, then stops the recorder: an envelope
  // that was written before the stop was not ended by it.
  std::vector<doppel::v1::Envelope> CapturedThenStop(size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sink_.envelopes().size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return StopAndCaptured();
  }

  // A client of the proxy, its handshake done, its socket shut down after 15 s whatever
  // happens (a failed test cannot hang on a blocking read).
  struct Client {
    asio::io_context io;
    websocket::stream<tcp::socket> ws{io};
    websocket::response_type handshake;  // the 101
    std::unique_ptr<Watchdog> watchdog;
  };
  // `deflate`: the client offers permessage-deflate (RFC 7692), which the echo server takes.
  std::unique_ptr<Client> Connect(const std::string& target, bool deflate = false) {
    auto c = std::make_unique<Client>();
    c->ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port_});
    c->watchdog = std::make_unique<Watchdog>(c->ws.next_layer().native_handle(), 15);
    if (deflate) {
      websocket::permessage_deflate offer;
      offer.client_enable = true;
      c->ws.set_option(offer);
    }
    c->ws.handshake(c->handshake, "chat.test", target);
    return c;
  }

  EchoServer server_;
};

std::string Read(websocket::stream<tcp::socket>& ws, bool* text) {
  beast::flat_buffer buffer;
  ws.read(buffer);
  *text = ws.got_text();
  return beast::buffers_to_string(buffer.data());
}

// A text and a binary message go through the proxy and come back; the envelope holds the
// handshake and the messages each way, in order, unmasked.
TEST_F(WebSocketTest, EchoOfATextAndABinaryMessagePassesAndIsRecorded) {
  Start();
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/chat?room=1"));
  auto& ws = client->ws;
  EXPECT_EQ(client->handshake.result_int(), 101);
  EXPECT_NE(std::string(client->handshake[http::field::via]).find("1.1 doppel"), std::string::npos);

  const std::string binary("\x00\x01\x02\xff\xfe", 5);
  bool text = false;
  ws.text(true);
  ws.write(asio::buffer(std::string("hello")));
  EXPECT_EQ(Read(ws, &text), "hello");
  EXPECT_TRUE(text);
  ws.binary(true);
  ws.write(asio::buffer(binary));
  EXPECT_EQ(Read(ws, &text), binary);
  EXPECT_FALSE(text);
  ws.close(websocket::close_code::normal);

  // The upstream got the handshake asked again on its hop, with the forwarding headers.
  const auto handshakes = server_.handshakes();
  ASSERT_EQ(handshakes.size(), 1u);
  EXPECT_TRUE(websocket::is_upgrade(handshakes[0]));
  EXPECT_EQ(handshakes[0]["X-Forwarded-For"], "127.0.0.1");

  const auto env = CapturedThenStop(1);
  ASSERT_EQ(env.size(), 1u);
  const auto& e = env[0];
  EXPECT_EQ(e.request().method(), "GET");
  EXPECT_EQ(e.request().target(), "/chat?room=1");
  EXPECT_EQ(e.response().status(), 101u);
  ASSERT_TRUE(e.has_websocket());
  const auto& w = e.websocket();
  ASSERT_EQ(w.messages_size(), 6) << e.DebugString();
  struct Want {
    bool from_client;
    uint32_t opcode;
    std::string payload;
  };
  const Want want[] = {{true, 1, "hello"}, {false, 1, "hello"}, {true, 2, binary},
                       {false, 2, binary}, {true, 8, ""},       {false, 8, ""}};
  for (int i = 0; i < 6; ++i) {
    const auto& m = w.messages(i);
    EXPECT_EQ(m.from_client(), want[i].from_client) << i;
    EXPECT_EQ(m.opcode(), want[i].opcode) << i;
    if (want[i].opcode != 8) {
      EXPECT_EQ(m.payload(), want[i].payload) << i;
    }
    EXPECT_EQ(m.payload_size(), m.payload().size()) << i;
    if (i > 0) {
      EXPECT_GE(m.at_us(), w.messages(i - 1).at_us()) << i;
    }
  }
  EXPECT_EQ(w.messages(4).payload().substr(0, 2), "\x03\xe8");  // 1000, normal closure
  EXPECT_EQ(w.client_messages(), 3u);
  EXPECT_EQ(w.server_messages(), 3u);
  EXPECT_FALSE(w.messages_truncated());
  // Every byte relayed is counted: each frame's 2-byte header (every payload here is under
  // 126 bytes), the client's 4-byte masks, and the payloads.
  uint64_t client_bytes = 0, server_bytes = 0;
  for (const auto& m : w.messages()) {
    (m.from_client() ? client_bytes : server_bytes) +=
        2 + (m.from_client() ? 4 : 0) + m.payload_size();
  }
  EXPECT_EQ(w.client_bytes(), client_bytes);
  EXPECT_EQ(w.server_bytes(), server_bytes);
  EXPECT_TRUE(w.framing_error().empty()) << w.framing_error();
  EXPECT_TRUE(w.ended() == "client closed" || w.ended() == "primary closed") << w.ended();
}

// A client and a server that negotiated permessage-deflate (Beast's DEFLATE, context
// takeover): the proxy relays and records the messages as they went, compressed, and
// net::InflateWebSocketSession gives back what was sent, as the replayer needs it.
TEST_F(WebSocketTest, CompressedMessagesAreRecordedAsSentAndDecompressToWhatWasSent) {
  Start();
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/chat", /*deflate=*/true));
  auto& ws = client->ws;
  EXPECT_NE(std::string(client->handshake["Sec-WebSocket-Extensions"]).find("permessage-deflate"),
            std::string::npos);
  const std::vector<std::string> sent = {R"({"op":"quote","sku":"A-7","qty":1})",
                                         R"({"op":"quote","sku":"A-7","qty":2})"};
  bool text = false;
  for (const std::string& m : sent) {
    ws.text(true);
    ws.write(asio::buffer(m));
    EXPECT_EQ(Read(ws, &text), m);
  }
  ws.close(websocket::close_code::normal);

  const auto env = CapturedThenStop(1);
  ASSERT_EQ(env.size(), 1u);
  const auto& w = env[0].websocket();
  ASSERT_GE(w.messages_size(), 4) << env[0].DebugString();
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(w.messages(i).compressed()) << i;
    EXPECT_NE(w.messages(i).payload(), sent[static_cast<size_t>(i / 2)]) << i;
  }
  auto plain = net::InflateWebSocketSession(w, 1 << 20);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(plain->messages(i).from_client(), i % 2 == 0) << i;
    EXPECT_EQ(plain->messages(i).payload(), sent[static_cast<size_t>(i / 2)]) << i;
    EXPECT_FALSE(plain->messages(i).compressed()) << i;
  }
}

// More messages than an envelope keeps: all counted, the first 64 each way kept.
TEST_F(WebSocketTest, MessagesPastTheCapAreCountedNotKept) {
  Start();
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/chat"));
  auto& ws = client->ws;
  bool text = false;
  for (int i = 0; i < 70; ++i) {
    ws.write(asio::buffer("m" + std::to_string(i)));
    ASSERT_EQ(Read(ws, &text), "m" + std::to_string(i));
  }
  ws.close(websocket::close_code::normal);
  const auto env = CapturedThenStop(1);
  ASSERT_EQ(env.size(), 1u);
  const auto& w = env[0].websocket();
  EXPECT_EQ(w.messages_size(), 2 * 64);
  EXPECT_TRUE(w.messages_truncated());
  EXPECT_EQ(w.client_messages(), 71u);
  EXPECT_EQ(w.server_messages(), 71u);
  EXPECT_EQ(w.messages(127).payload(), "m63");
}

// A primary that refuses the upgrade answers as for any request, and the connection can go
// on with the next request.
TEST_F(WebSocketTest, AnUpgradeThePrimaryRefusesIsAnsweredAsUsual) {
  Start();
  testing::TestClient client(port_);
  ASSERT_TRUE(client.Write(
      "GET /refuse HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  const std::string answer = client.ReadUntil("no sockets here\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << answer;
  const auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].response().status(), 403u);
  EXPECT_FALSE(env[0].has_websocket());
}

// A primary behind TLS (https://): the relay runs over the TLS connection the pool opened,
// and a close from either side ends it as a close, not as an error (TLS cannot half-close).
TEST_F(WebSocketTest, APrimaryOverTlsIsRelayedToo) {
  EchoServer tls_server(/*tls=*/true);
  const std::string dir = testing::MakeTempDir("ws-tls");
  testing::WriteFile(dir + "/ca.pem", tls_server.cert_pem());
  StartRecorder(tls_server.url(), "ws-tls",
                [&](RecorderOptions& o) { o.upstream_tls.ca_file = dir + "/ca.pem"; });
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/secure"));
  auto& ws = client->ws;
  bool text = false;
  for (const std::string message : {"over tls", "again"}) {
    ws.write(asio::buffer(message));
    EXPECT_EQ(Read(ws, &text), message);
  }
  ws.close(websocket::close_code::normal);
  const auto env = CapturedThenStop(1);
  std::filesystem::remove_all(dir);
  ASSERT_EQ(env.size(), 1u);
  const auto& w = env[0].websocket();
  EXPECT_EQ(w.messages_size(), 6);
  EXPECT_EQ(w.client_messages(), 3u);
  EXPECT_EQ(w.server_messages(), 3u);
  EXPECT_TRUE(w.ended() == "client closed" || w.ended() == "primary closed") << w.ended();
}

// Bytes that are not WebSocket framing still go through (the proxy relays, the primary
// judges): the echo server fails the connection with a close frame (1002, protocol error),
// and the envelope says where the framing broke.
TEST_F(WebSocketTest, BytesThatAreNotFramingAreRelayedAndTheBreakRecorded) {
  Start();
  {
    testing::TestClient client(port_);
    ASSERT_TRUE(
        client.Write("GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
    const std::string head = client.ReadUntil("\r\n\r\n");
    ASSERT_EQ(head.rfind("HTTP/1.1 101 ", 0), 0u) << head;
    ASSERT_TRUE(client.Write("GET / HTTP/1.1\r\n\r\n"));  // 'G': opcode 7, reserved
    // A close frame (FIN, opcode 8) with code 1002, protocol error.
    const std::string close("\x88\x02\x03\xea", 4);
    const std::string frames = client.ReadUntil(close);
    EXPECT_EQ(frames, close);
  }  // the client leaves without answering the close
  const auto env = CapturedThenStop(1);
  ASSERT_EQ(env.size(), 1u);
  const auto& w = env[0].websocket();
  EXPECT_EQ(w.framing_error(), "client: frame with reserved opcode 7");
  EXPECT_EQ(w.client_messages(), 0u);
  EXPECT_EQ(w.client_bytes(), 18u);
  ASSERT_EQ(w.messages_size(), 1);
  EXPECT_FALSE(w.messages(0).from_client());
  EXPECT_EQ(w.messages(0).opcode(), 8u);
  // The echo server fails the connection (it closes after its close frame), the client
  // leaves: a clean end either way.
  EXPECT_TRUE(w.ended() == "primary closed" || w.ended() == "client closed") << w.ended();
}

// Only an HTTP/1.1 GET can switch to WebSocket (RFC 6455 4.1): an HTTP/1.0 GET or a POST that
// asks goes to the primary without its Upgrade header, as any request, and gets no 101.
TEST_F(WebSocketTest, AnUpgradeThatIsNotAnHttp11GetIsNotRelayed) {
  Start();
  const std::string handshake =
      " /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade, close\r\n"
      "Upgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
  for (const std::string& request :
       std::vector<std::string>{"POST" + handshake + "Content-Length: 2\r\n\r\nhi",
                                "GET /chat HTTP/1.0\r\nHost: chat.test\r\nConnection: Upgrade\r\n"
                                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"}) {
    testing::TestClient client(port_);
    ASSERT_TRUE(client.Write(request));
    const std::string answer = client.ReadAll(5000);
    EXPECT_EQ(answer.find(" 101 "), std::string::npos) << answer;
    EXPECT_NE(answer.find(" 400 "), std::string::npos) << answer;  // Beast: not an upgrade
  }
  const auto handshakes = server_.handshakes();
  ASSERT_EQ(handshakes.size(), 2u);
  for (const auto& h : handshakes) {
    EXPECT_EQ(h.count(http::field::upgrade), 0u) << h;
    EXPECT_FALSE(websocket::is_upgrade(h)) << h;
  }
  const auto env = StopAndCaptured();
  ASSERT_EQ(env.size(), 2u);
  for (const auto& e : env) EXPECT_FALSE(e.has_websocket());
}

// No byte either way for --upstream-idle-timeout: both connections are closed, and the
// envelope says why.
TEST_F(WebSocketTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  Start([](RecorderOptions& o) {
    o.upstream_client.read_idle_timeout = std::chrono::milliseconds(300);
  });
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/chat"));
  auto& ws = client->ws;
  bool text = false;
  ws.write(asio::buffer(std::string("ping?")));
  EXPECT_EQ(Read(ws, &text), "ping?");
  const auto start = std::chrono::steady_clock::now();
  beast::flat_buffer buffer;
  beast::error_code ec;
  ws.read(buffer, ec);  // nothing comes: the proxy closes after 300 ms
  EXPECT_TRUE(ec) << "the connection stayed open";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  const auto env = CapturedThenStop(1);
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].websocket().ended(), "idle timeout");
  EXPECT_EQ(env[0].websocket().messages_size(), 2);
}

// Stopping the recorder closes open WebSocket connections and records them.
TEST_F(WebSocketTest, ShutdownClosesOpenConnectionsAndRecordsThem) {
  Start();
  std::unique_ptr<Client> client;
  ASSERT_NO_THROW(client = Connect("/chat"));
  auto& ws = client->ws;
  bool text = false;
  ws.write(asio::buffer(std::string("still here")));
  EXPECT_EQ(Read(ws, &text), "still here");
  const auto env = StopAndCaptured();
  beast::flat_buffer buffer;
  beast::error_code ec;
  ws.read(buffer, ec);
  EXPECT_TRUE(ec) << "the connection stayed open";
  ASSERT_EQ(env.size(), 1u);
  EXPECT_EQ(env[0].websocket().ended(), "shutdown");
  EXPECT_EQ(env[0].websocket().messages_size(), 2);
}

}  // namespace
}  // namespace doppel::recorder
