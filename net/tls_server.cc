#include "net/tls_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "base/time_format.h"

namespace doppel::net {

namespace {

namespace asio = boost::asio;

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  // The server's order of preference: h2 first.
  const auto* ours = reinterpret_cast<const unsigned char*>(kAlpnH2AndHttp11.data());
  if (SSL_select_next_proto(&selected, outlen, ours, static_cast<unsigned>(kAlpnH2AndHttp11.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED) {
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

// RFC 2253 ("CN=billing,O=Example"), "" for none.
std::string NameText(X509_NAME* name) {
  if (name == nullptr) return "";
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : "";
}

// A certificate's notBefore/notAfter as RFC 3339 UTC ("2026-12-03T14:07:00Z").
std::string TimeText(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "an unreadable date";
  return FormatUtc(static_cast<int64_t>(timegm(&tm)) * 1000000);
}

// The leaf certificate `ctx` uses must be valid now: an expired one would only fail every
// handshake later, with the peer's alert as the sole hint.
Status CheckValidNow(asio::ssl::context& ctx, const std::string& what) {
  X509* cert = SSL_CTX_get0_certificate(ctx.native_handle());
  if (cert == nullptr) return Status::InvalidArgument(what + ": no certificate in it");
  const std::string subject = NameText(X509_get_subject_name(cert));
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
    return Status::InvalidArgument(what + ": the certificate (subject " + subject +
                                   ") expired at " + TimeText(X509_get0_notAfter(cert)) +
                                   "; give a current one");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
    return Status::InvalidArgument(what + ": the certificate (subject " + subject +
                                   ") is not valid before " + TimeText(X509_get0_notBefore(cert)));
  }
  return Status::Ok();
}

}  // namespace

Status CheckPrivateKeyFile(const std::string& key_file, const std::string& flag) {
  struct stat st {};
  if (::stat(key_file.c_str(), &st) != 0) {
    return Status::InvalidArgument(flag + " '" + key_file +
                                   "': cannot read it: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::InvalidArgument(flag + " '" + key_file + "': not a regular file");
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::InvalidArgument(flag + " '" + key_file + "': a private key that group or " +
                                   "others may access (mode " + mode + "); run chmod 600 '" +
                                   key_file + "'");
  }
  return Status::Ok();
}

Status UseCertificateAndKey(asio::ssl::context& ctx, const std::string& cert_file,
                            const std::string& key_file, const std::string& cert_flag,
                            const std::string& key_flag) {
  DOPPEL_RETURN_IF_ERROR(CheckPrivateKeyFile(key_file, key_flag));
  boost::system::error_code ec;
  // The key first: a certificate that does not match it is then refused by the check below,
  // with an error that says so.
  ctx.use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return Status::InvalidArgument(key_flag + " '" + key_file +
                                   "': cannot load a PEM private key from it: " + ec.message());
  }
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return Status::InvalidArgument(
        cert_flag + " '" + cert_file + "': cannot load a PEM certificate chain from it: " +
        ec.message() + "; give the certificate first, then its intermediates, in PEM");
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return Status::InvalidArgument(key_flag + " '" + key_file + "' does not match " + cert_flag +
                                   " '" + cert_file + "': " + OpenSslReason());
  }
  return CheckValidNow(ctx, cert_flag + " '" + cert_file + "'");
}

std::string PeerVerifyError(void* ssl) {
  const long result = SSL_get_verify_result(static_cast<SSL*>(ssl));
  return result == X509_V_OK ? "" : X509_verify_cert_error_string(result);
}

std::string PeerCertificateSubject(void* ssl) {
  X509* peer = SSL_get0_peer_certificate(static_cast<SSL*>(ssl));
  return peer == nullptr ? "" : NameText(X509_get_subject_name(peer));
}

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

Result<std::shared_ptr<asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file) {
  DOPPEL_ASSIGN_OR_RETURN(std::shared_ptr<asio::ssl::context> ctx, NewTlsContext(true));
  DOPPEL_RETURN_IF_ERROR(
      UseCertificateAndKey(*ctx, cert_file, key_file, "--tls-cert", "--tls-key"));
  if (!client_ca_file.empty()) {
    boost::system::error_code ec;
    ctx->load_verify_file(client_ca_file, ec);
    if (ec) {
      return Status::InvalidArgument("--tls-client-ca '" + client_ca_file +
                                     "': cannot load PEM CA certificates from it: " + ec.message());
    }
    // Tell clients which CAs are accepted (CertificateRequest's certificate_authorities).
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    ERR_clear_error();
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert, ec);
    if (ec) return Status::Internal("cannot require client certificates: " + ec.message());
    // With verify_peer, OpenSSL fails a resumed handshake ("session id context
    // uninitialized") unless the context names its sessions.
    static constexpr unsigned char kSessionId[] = "doppel-mtls";
    SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionId, sizeof kSessionId - 1);
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
