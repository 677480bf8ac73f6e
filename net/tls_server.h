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
//
// `client_ca_file` (PEM, may be empty): require a client certificate issued by one of these
// CAs (mTLS); a client without one, or with one that does not verify (unknown issuer,
// expired), fails the handshake. PeerCertificateSubject then names the verified client.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file,
    const std::string& client_ca_file = "");

// Loads `cert_file` (PEM chain) and `key_file` into `ctx` for a server or a client (mTLS):
// the key must pass CheckPrivateKeyFile, the certificate must be valid now (not expired, not
// yet valid: the error names the file, its subject and the date) and match the key. Errors
// name the files as `cert_flag` 'FILE' / `key_flag` 'FILE' (InvalidArgument).
Status UseCertificateAndKey(boost::asio::ssl::context& ctx, const std::string& cert_file,
                            const std::string& key_file, const std::string& cert_flag,
                            const std::string& key_flag);

// A private key file must be a regular file that neither group nor others may read or write
// (mode 0600 or 0400): InvalidArgument naming `flag`, the file and its mode otherwise, with
// the chmod that fixes it. Key contents are never part of any message.
Status CheckPrivateKeyFile(const std::string& key_file, const std::string& flag);

// The subject of the certificate the peer presented and the handshake verified, RFC 2253
// ("CN=billing,O=Example"); "" when the peer sent none. REQUIRES: as NegotiatedAlpn.
std::string PeerCertificateSubject(void* ssl);

// Why verifying the peer's certificate failed ("certificate has expired", "unable to get
// local issuer certificate"); "" when it did not fail. For a connection whose handshake
// failed; `ssl` is its OpenSSL SSL*.
std::string PeerVerifyError(void* ssl);

// The ALPN protocols doppel offers (client) and prefers (server), in the wire format of RFC
// 7301 3.1 (length-prefixed names): h2, then http/1.1.
inline constexpr std::string_view kAlpnH2AndHttp11("\x02h2\x08http/1.1", 12);

// The ALPN protocol a TLS connection, server or client side, agreed on ("" for none).
// REQUIRES: `ssl` is an OpenSSL SSL* whose handshake completed.
std::string_view NegotiatedAlpn(void* ssl);
// The connection's TLS version, e.g. "TLSv1.3". REQUIRES: as NegotiatedAlpn.
std::string_view NegotiatedTlsVersion(void* ssl);

}  // namespace doppel::net
