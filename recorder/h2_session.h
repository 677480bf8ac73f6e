// One HTTP/2 client connection of the capture proxy (h2c with prior knowledge): nghttp2
// frames, parses, compresses headers and keeps the flow-control windows; this session owns
// the socket and drives nghttp2 from the worker's io_context (bytes read go to
// nghttp2_session_mem_recv, nghttp2_session_mem_send's bytes are written). Each stream's
// request goes through the same Exchange as an HTTP/1.1 request (checks, capture, mirrors)
// to the HTTP/1.1 primary; its response goes back as HEADERS + DATA, read from the primary
// only as fast as the client's flow-control window lets it go out.
//
// All nghttp2 code of the proxy is in h2_session.cc.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "recorder/exchange.h"
#include "recorder/proxy_session.h"

namespace doppel::recorder {

class H2Session : public ProxySession {
 public:
  // Serves HTTP/2 on `socket`, whose first bytes `received` (the client preface and maybe
  // more) were read already. Takes over the connection as ProxySession::Start does (in
  // worker.sessions while it lives, gives the open connection back when it ends).
  // REQUIRES: on the worker's thread; `recorder` counts the connection as open.
  static void Start(boost::asio::ip::tcp::socket&& socket, Worker& worker, RecorderImpl& recorder,
                    ClientInfo client, std::string received);
  // The same over TLS, after a handshake whose ALPN chose "h2".
  static void StartTls(TlsStream&& stream, Worker& worker, RecorderImpl& recorder,
                       ClientInfo client);

  // Streams a client may reset before the connection is closed with GOAWAY
  // ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487): this many, plus one for every stream
  // answered in full on the connection, so a client that cancels some of its requests is
  // served while one that only opens and resets streams is cut off.
  static constexpr uint64_t kResetBudget = 100;
  // PING and SETTINGS acknowledgements (and RST_STREAMs) queued unsent at most; a client
  // that sends more than it reads is cut off (nghttp2_option_set_max_outbound_ack).
  static constexpr size_t kMaxOutboundAck = 1000;
};

}  // namespace doppel::recorder
