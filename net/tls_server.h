// The TLS context of a server socket (the capture proxy's listener): its certificate chain
// and key from PEM files, TLS 1.2 and later, and ALPN. The client side is
// MakeClientTlsContext (net/http_client.h); both start from NewTlsContext.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace doppel::net {

// A context for a server (`server`) or a client that speaks TLS 1.2 and later only (SSLv2,
// SSLv3, TLS 1.0 and 1.1 off). Internal error when OpenSSL cannot make one.
Result<std::shared_ptr<boost::asio::ssl::context>> NewTlsContext(bool server);

// `cert_file`: PEM, the server certificate first, then its chain (intermediates); `key_file`:
// PEM, the certificate's private key. ALPN: the first of "h2", "http/1.1" that the client
// offers, in that order of preference; a client offering neither (or no ALPN) gets none
// (HTTP/1.1). Errors name the file and what is wrong with it (InvalidArgument). The context
// is read-only after creation and may be shared by threads.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

// The ALPN protocol a server-side TLS connection agreed on ("" for none).
// REQUIRES: `ssl` is an OpenSSL SSL* whose handshake completed.
std::string_view NegotiatedAlpn(void* ssl);
// The connection's TLS version, e.g. "TLSv1.3". REQUIRES: as NegotiatedAlpn.
std::string_view NegotiatedTlsVersion(void* ssl);

}  // namespace doppel::net
