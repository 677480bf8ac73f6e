// Plaintext client connections of the capture proxy (ProxySession::Start); the session
// itself is recorder/proxy_session_impl.h.
#include "recorder/proxy_session_impl.h"

namespace doppel::recorder {

using namespace proxy_session_detail;  // NOLINT: this file instantiates what it declares

void ProxySession::Start(tcp::socket&& socket, Worker& worker, RecorderImpl& recorder) {
  ClientInfo client = DescribeClient(socket);
  client.protocol = "http/1.1";
  std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), worker,
                                               recorder, std::move(client))
      ->Start();
}

}  // namespace doppel::recorder
