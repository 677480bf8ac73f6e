#include "tests/net/test_tls_upstream.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <stdexcept>

namespace doppel::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// A fresh P-256 key and a self-signed certificate for 127.0.0.1, valid for a day.
void UseSelfSignedCertificate(asio::ssl::context& ctx) {
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
    ok = X509_sign(cert, key, EVP_sha256()) > 0 &&
         SSL_CTX_use_certificate(ctx.native_handle(), cert) == 1 &&
         SSL_CTX_use_PrivateKey(ctx.native_handle(), key) == 1;
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) throw std::runtime_error("TestTlsUpstream: cannot make a certificate");
}

}  // namespace

TestTlsUpstream::TestTlsUpstream() : ctx_(asio::ssl::context::tls_server), acceptor_(io_) {
  UseSelfSignedCertificate(ctx_);
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
  boost::beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::read(stream, buffer, req, ec);
  if (ec) return;
  http::response<http::string_body> res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain");
  res.body() = "tls ok " + std::string(req.target());
  res.keep_alive(false);
  res.prepare_payload();
  {
    std::lock_guard<std::mutex> lock(mu_);
    answered_.push_back(std::string(req.target()));
  }
  http::write(stream, res, ec);
  stream.shutdown(ec);
}

}  // namespace doppel::testing
