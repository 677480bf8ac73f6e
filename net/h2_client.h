// HTTP/2 toward an upstream, in plaintext with prior knowledge (h2c://, RFC 9113 3.3) or over
// TLS (h2://, RFC 9113 3.2: the handshake offers only h2 by ALPN): HttpClientPool's interface
// over one multiplexed connection per pool, driven by nghttp2. HttpClientPool::Create returns
// it for h2c:// and h2:// URLs; nothing else names it.
//
// What callers see, beyond HttpClientPool's contract:
// - Requests are sent as the caller built them, translated to HTTP/2: Host becomes
//   :authority (the upstream's authority when there is none), the connection-specific fields
//   (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) are dropped, and
//   `te: trailers` is sent, which gRPC servers require.
// - Responses come back as HTTP/1.1-shaped Beast messages with version 20 and lower-case
//   field names; 1xx heads are skipped; trailers are in ExchangeResult::trailers (Send) or
//   BodyReader::trailers() (SendStreaming).
// - Flow control is the backpressure of SendStreaming(): a stream's receive window (256 KiB)
//   is given back only as the reader takes the bytes, so a slow reader slows the upstream's
//   stream down and a stream holds at most its window in memory. Send() gives it back as the
//   bytes arrive, up to ClientOptions::max_response_body.
// - Streams beyond the upstream's SETTINGS_MAX_CONCURRENT_STREAMS wait in nghttp2's queue.
//   A stream the upstream refused (REFUSED_STREAM, or above a GOAWAY's last stream id) is
//   retried once on a new connection: the upstream did not process it.
// - Timeouts: connect_timeout for the connection, response_timeout for each exchange,
//   read_idle_timeout (streaming) between bytes of a stream; idle_timeout closes a connection
//   with no stream open.
#pragma once

#include <functional>
#include <memory>

#include "base/status.h"
#include "net/http_client.h"
#include "net/url.h"

namespace doppel::net {

// Where an https:// pool that switched to HTTP/2 (net/http_client.cc) sends the exchanges
// of a connection whose server chose http/1.1 instead: the request and its callback (one of
// the two is set, as the caller passed it to Send or SendStreaming).
using HttpFallback =
    std::function<void(HttpRequest, ExchangeCallback, StreamCallback, BodySourcePtr)>;

// REQUIRES: upstream.http2(), and `tls` (a client context: verification, CA, client
// certificate) exactly when upstream.tls(). A TLS server that does not choose h2 by ALPN fails
// the exchanges with kConnect, saying what it chose; with a `fallback`, the handshake offers
// http/1.1 too, and a server that chooses it gets the connection's exchanges handed to
// `fallback` instead (they were not sent).
Result<HttpClientPoolPtr> NewH2ClientPool(boost::asio::io_context& io, Url upstream,
                                          ClientOptions options,
                                          std::shared_ptr<boost::asio::ssl::context> tls,
                                          HttpFallback fallback = nullptr);

}  // namespace doppel::net
