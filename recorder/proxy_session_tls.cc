// TLS client connections of the capture proxy (ProxySession::StartTls): the handshake, then
// HTTP/2 (H2Session) or the HTTP/1.x session of recorder/proxy_session_impl.h over TLS.
#include "recorder/proxy_session_impl.h"

namespace doppel::recorder {

using namespace proxy_session_detail;  // NOLINT: this file instantiates what it declares

void ProxySession::StartTls(tcp::socket&& socket, asio::ssl::context& tls, Worker& worker,
                            RecorderImpl& recorder) {
  ClientInfo client = DescribeClient(socket);
  client.scheme = "https";
  auto stream = std::make_shared<TlsStream>(beast::tcp_stream(std::move(socket)), tls);
  beast::get_lowest_layer(*stream).expires_after(recorder.options().request_timeout);
  stream->async_handshake(
      asio::ssl::stream_base::server,
      [stream, &worker, &recorder, client = std::move(client)](beast::error_code ec) mutable {
        if (ec) {
          // Not TLS, a certificate the client refused, or too slow: nothing to answer.
          recorder.metrics().tls_handshake_failed->Inc();
          if (!recorder.options().tls_client_ca_file.empty()) {
            // With mTLS an operator needs to know why a client is turned away.
            const std::string verify = net::PeerVerifyError(stream->native_handle());
            recorder.LogRefusedClient(client.ip, verify.empty() ? ec.message() : verify);
          }
          recorder.open_connections().fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        beast::get_lowest_layer(*stream).expires_never();
        client.tls_version = net::NegotiatedTlsVersion(stream->native_handle());
        client.alpn = net::NegotiatedAlpn(stream->native_handle());
        client.client_cert_subject = net::PeerCertificateSubject(stream->native_handle());
        if (worker.draining) {
          recorder.open_connections().fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        if (client.alpn == "h2") {
          client.protocol = "h2";
          return H2Session::StartTls(std::move(*stream), worker, recorder, std::move(client));
        }
        client.protocol = "http/1.1";
        std::make_shared<Session<TlsStream>>(std::move(*stream), worker, recorder,
                                             std::move(client))
            ->Start();
      });
}

}  // namespace doppel::recorder
