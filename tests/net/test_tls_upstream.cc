#include "tests/net/test_tls_upstream.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

#include "net/tls_server.h"

namespace doppel::testing {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string UseSelfSignedCertificate(asio::ssl::context& ctx) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  bool ok = key && cert;
  if (ok) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    ok = san && X509_add_ext(cert, san, -1) == 1;
    X509_EXTENSION_free(san);
    ok = ok && X509_sign(cert, key, EVP_sha256()) > 0 &&
         SSL_CTX_use_certificate(ctx.native_handle(), cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx.native_handle(), key) == 1;
  }
  std::string pem;
  if (ok) {
    BIO* bio = BIO_new(BIO_s_mem());
    char* data = nullptr;
    if (bio && PEM_write_bio_X509(bio, cert) == 1) {
      const long n = BIO_get_mem_data(bio, &data);
      pem.assign(data, static_cast<size_t>(n));
    }
    BIO_free(bio);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok || pem.empty()) throw std::runtime_error("TestTlsUpstream: cannot make a certificate");
  return pem;
}

TestTlsUpstream::TestTlsUpstream(TestTlsUpstreamOptions options)
    : options_(options), ctx_(asio::ssl::context::tls_server), acceptor_(io_) {
  cert_pem_ = UseSelfSignedCertificate(ctx_);
  if (!options_.client_ca_file.empty()) {
    ctx_.load_verify_file(options_.client_ca_file);  // throws on a bad file: a test bug
    ctx_.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  accept_thread_ = std::thread([this] { AcceptLoop(); });
}

TestTlsUpstream::~TestTlsUpstream() {
  stopping_ = true;
  ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
  accept_thread_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
}

std::vector<std::string> TestTlsUpstream::answered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return answered_;
}

std::vector<std::string> TestTlsUpstream::client_subjects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return client_subjects_;
}

void TestTlsUpstream::AcceptLoop() {
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (ec) continue;
    const uint64_t n = ++connections_;
    if (refuse_ && refuse_(n)) continue;  // closed here, before any TLS byte is answered
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(socket.native_handle());
    workers_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
  }
}

void TestTlsUpstream::Serve(tcp::socket socket) {
  const int fd = socket.native_handle();
  asio::ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
  Answer(stream);
  // Forgotten before the socket closes, so the destructor never shuts down a reused fd.
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(std::find(fds_.begin(), fds_.end(), fd));
}

void TestTlsUpstream::Answer(asio::ssl::stream<tcp::socket>& stream) {
  boost::system::error_code ec;
  stream.handshake(asio::ssl::stream_base::server, ec);
  if (ec) return;
  ++handshakes_;
  if (!options_.client_ca_file.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    client_subjects_.push_back(net::PeerCertificateSubject(stream.native_handle()));
  }
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    http::read(stream, buffer, req, ec);
    if (ec) return;
    const bool keep_alive = options_.keep_alive && req.keep_alive();
    http::response<http::string_body> res{http::status::ok, 11};
    res.set(http::field::content_type, "text/plain");
    res.body() = "tls ok " + std::string(req.target());
    res.keep_alive(keep_alive);
    res.prepare_payload();
    {
      std::lock_guard<std::mutex> lock(mu_);
      answered_.push_back(std::string(req.target()));
    }
    http::write(stream, res, ec);
    if (ec) return;
    if (!keep_alive) break;
  }
  stream.shutdown(ec);
}

}  // namespace doppel::testing
