#include "net/tls_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>

namespace doppel::net {

namespace {

namespace asio = boost::asio;

// ALPN protocols in wire format (length-prefixed), in the server's order of preference.
constexpr unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpn, sizeof kAlpn, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no protocol in common: go on without ALPN (HTTP/1.1)
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The reason OpenSSL gives for the last error ("" when it gives none).
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : "";
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> NewTlsContext(bool server) {
  std::shared_ptr<asio::ssl::context> ctx;
  try {
    ctx = std::make_shared<asio::ssl::context>(server ? asio::ssl::context::tls_server
                                                      : asio::ssl::context::tls_client);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot create a TLS context: ") + e.what());
  }
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 |
                       (server ? asio::ssl::context::single_dh_use : 0),
                   ec);
  if (ec) return Status::Internal("cannot set the TLS context's protocols: " + ec.message());
  return ctx;
}

Result<std::shared_ptr<asio::ssl::context>> MakeServerTlsContext(const std::string& cert_file,
                                                                 const std::string& key_file) {
  DOPPEL_ASSIGN_OR_RETURN(std::shared_ptr<asio::ssl::context> ctx, NewTlsContext(true));
  boost::system::error_code ec;
  // The key first: a certificate that does not match it is then refused by the check below,
  // with an error that says so.
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return Status::InvalidArgument("--tls-key '" + key_file +
                                   "': cannot load a PEM private key from it: " + ec.message());
  }
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return Status::InvalidArgument(
        "--tls-cert '" + cert_file +
        "': cannot load a PEM certificate chain from it: " + ec.message() +
        "; give the server certificate first, then "
        "its intermediates, in PEM");
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return Status::InvalidArgument("--tls-key '" + key_file + "' does not match --tls-cert '" +
                                   cert_file + "': " + OpenSslReason());
  }
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), &SelectAlpn, nullptr);
  return ctx;
}

std::string_view NegotiatedAlpn(void* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(static_cast<SSL*>(ssl), &data, &len);
  if (data == nullptr) return {};
  return {reinterpret_cast<const char*>(data), len};
}

std::string_view NegotiatedTlsVersion(void* ssl) { return SSL_get_version(static_cast<SSL*>(ssl)); }

}  // namespace doppel::net
