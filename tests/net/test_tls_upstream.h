// Test helper: a blocking HTTPS upstream on 127.0.0.1:0 that can fail chosen connections at
// the TLS handshake, which an HTTP client reports as a connection failure (what replay's
// --retries retries). A plain TCP listener cannot do that: the kernel completes the TCP
// handshake before accept(), so a closed connection shows up as a reset instead.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace doppel::testing {

// Makes `ctx` (a server context) use a fresh P-256 key and a self-signed certificate for
// IP:127.0.0.1 and DNS:localhost, valid for a day. Returns the certificate as PEM, for clients
// to trust. Throws when OpenSSL cannot make it.
std::string UseSelfSignedCertificate(boost::asio::ssl::context& ctx);

struct TestTlsUpstreamOptions {
  // false: one response a connection, with Connection: close, so every request needs a new
  // connection. true: every request of a connection is answered, kept alive while the client
  // asks for it.
  bool keep_alive = false;
  // mTLS: when set (a PEM CA file), a client must present a certificate this CA issued, or
  // its handshake fails; client_subjects() lists the verified ones.
  std::string client_ca_file;
};

// Its certificate is self-signed for IP:127.0.0.1 and DNS:localhost and made at start: clients
// verify it with cert_pem() as their CA, or not at all (replay: --target-insecure). One thread
// per connection; every answer is 200 "tls ok TARGET".
class TestTlsUpstream {
 public:
  explicit TestTlsUpstream(TestTlsUpstreamOptions options = {});
  ~TestTlsUpstream();
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  // The certificate, PEM: write it to a file for --upstream-ca / --target-ca.
  const std::string& cert_pem() const { return cert_pem_; }

  // Connection number n (1, 2, ... in accept order) is closed before the TLS handshake when
  // `refuse(n)` is true. Set before the first connection arrives.
  void SetRefuse(std::function<bool(uint64_t connection)> refuse) { refuse_ = std::move(refuse); }
  uint64_t connections() const { return connections_.load(); }
  uint64_t handshakes() const { return handshakes_.load(); }  // TLS handshakes completed
  // Request-targets answered, in the order the answers were sent.
  std::vector<std::string> answered() const;
  // With client_ca_file: the subject (RFC 2253) of each verified client certificate, one per
  // completed handshake.
  std::vector<std::string> client_subjects() const;

 private:
  void AcceptLoop();
  void Serve(boost::asio::ip::tcp::socket socket);
  void Answer(boost::asio::ssl::stream<boost::asio::ip::tcp::socket>& stream);

  TestTlsUpstreamOptions options_;
  boost::asio::io_context io_;
  boost::asio::ssl::context ctx_;
  std::string cert_pem_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::function<bool(uint64_t)> refuse_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> handshakes_{0};
  mutable std::mutex mu_;
  std::vector<std::string> answered_;         // guarded by mu_
  std::vector<std::string> client_subjects_;  // guarded by mu_
  std::vector<int> fds_;                      // guarded by mu_
  std::vector<std::thread> workers_;          // guarded by mu_
  std::thread accept_thread_;
};

}  // namespace doppel::testing
