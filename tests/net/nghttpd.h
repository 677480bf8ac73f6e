// nghttpd (Debian's nghttp2-server) as a real HTTP/2 upstream for tests: h2c on 127.0.0.1 at a
// free port, or h2 over TLS (ALPN h2) with a certificate from its own CA, serving the files of a
// temporary document root, optionally with trailers on every response that has a body
// (`--trailer`), as a gRPC server sends grpc-status.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/child_process.h"

namespace doppel::testing {

class Nghttpd {
 public:
  enum class Transport { kH2c, kTls };
  // `trailers`: "name: value" lines. kTls: TLS instead of h2c, with a certificate for
  // 127.0.0.1 issued by a CA made for this server (tls_ca()). Check ok() before use.
  explicit Nghttpd(const std::vector<std::string>& trailers = {},
                   Transport transport = Transport::kH2c);
  ~Nghttpd();
  Nghttpd(const Nghttpd&) = delete;
  Nghttpd& operator=(const Nghttpd&) = delete;

  // The server accepts connections.
  bool ok() const { return ok_; }
  unsigned port() const { return port_; }
  // h2c://127.0.0.1:PORT, or h2://127.0.0.1:PORT with TLS.
  std::string url() const {
    return (tls_ ? "h2://127.0.0.1:" : "h2c://127.0.0.1:") + std::to_string(port_);
  }
  // kTls: the CA that issued the server's certificate (PEM), for a client to trust.
  const std::string& tls_ca() const { return tls_ca_; }
  // Writes `content` as the file served at "/" + name.
  void WriteFile(const std::string& name, const std::string& content) const;

 private:
  std::string docroot_;
  std::string tls_dir_;  // kTls: the CA, the certificate and their keys
  std::string tls_ca_;
  unsigned port_ = 0;
  std::unique_ptr<ChildProcess> process_;
  bool tls_ = false;
  bool ok_ = false;
};

}  // namespace doppel::testing
