// nghttpd (Debian's nghttp2-server) as a real HTTP/2 upstream for tests: h2c on 127.0.0.1 at a
// free port, or h2 over TLS (ALPN h2) with a given certificate, serving the files of a
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
  // `trailers`: "name: value" lines. `tls_cert` and `tls_key` (PEM files, both or neither):
  // TLS instead of h2c. Check ok() before use.
  explicit Nghttpd(const std::vector<std::string>& trailers = {}, const std::string& tls_cert = "",
                   const std::string& tls_key = "");
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
  // Writes `content` as the file served at "/" + name.
  void WriteFile(const std::string& name, const std::string& content) const;

 private:
  std::string docroot_;
  unsigned port_ = 0;
  std::unique_ptr<ChildProcess> process_;
  bool tls_ = false;
  bool ok_ = false;
};

}  // namespace doppel::testing
