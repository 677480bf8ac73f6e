// A small HTTP/1.1 server for the admin endpoint (/metrics, /healthz, /status, POST /config),
// on its own thread so it answers even while the proxy threads are saturated or draining.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "net/url.h"

namespace doppel::recorder {

struct AdminReply {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};
struct AdminRequest {
  std::string_view method;  // GET, HEAD or POST (others are refused before the handler)
  std::string_view target;
  std::string_view body;
  bool from_loopback = false;  // the client's address is a loopback one
};
// Called on the admin thread; must be thread-safe w.r.t. the proxy.
using AdminHandler = std::function<AdminReply(const AdminRequest& request)>;

class AdminServer {
 public:
  static Result<std::unique_ptr<AdminServer>> Start(const net::HostPort& address,
                                                    AdminHandler handler);
  virtual ~AdminServer() = default;
  virtual net::HostPort address() const = 0;
  // Stops the thread; idempotent.
  virtual void Stop() = 0;
};

}  // namespace doppel::recorder
