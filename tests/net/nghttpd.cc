#include "tests/net/nghttpd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/base/temp_dir.h"
#include "tests/integration/test_pki.h"

namespace doppel::testing {
namespace {

bool Accepts(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

Nghttpd::Nghttpd(const std::vector<std::string>& trailers, Transport transport)
    : docroot_(MakeTempDir("nghttpd")), tls_(transport == Transport::kTls) {
  TestCertFiles cert;
  if (tls_) {
    tls_dir_ = MakeTempDir("nghttpd-tls");
    TestPki pki(tls_dir_);
    cert = pki.Issue("server", "/CN=nghttpd");
    tls_ca_ = pki.ca();
    if (!pki.error().empty()) return;  // not ok()
  }
  // A port taken meanwhile by another process makes nghttpd exit: try a few.
  for (int attempt = 0; attempt < 3 && !ok_; ++attempt) {
    port_ = FreePort();
    std::vector<std::string> args = {"/usr/sbin/nghttpd", "-a", "127.0.0.1", "-d", docroot_};
    if (!tls_) args.push_back("--no-tls");
    for (const std::string& t : trailers) args.push_back("--trailer=" + t);
    args.push_back(std::to_string(port_));
    if (tls_) {
      args.push_back(cert.key);  // nghttpd PORT KEY CERT
      args.push_back(cert.cert);
    }
    process_ = std::make_unique<ChildProcess>(std::move(args));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!ok_ && std::chrono::steady_clock::now() < deadline) {
      ok_ = Accepts(port_);
      if (!ok_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

Nghttpd::~Nghttpd() {
  process_.reset();  // SIGKILL if still running
  std::filesystem::remove_all(docroot_);
  if (!tls_dir_.empty()) std::filesystem::remove_all(tls_dir_);
}

void Nghttpd::WriteFile(const std::string& name, const std::string& content) const {
  std::ofstream(docroot_ + "/" + name, std::ios::binary) << content;
}

}  // namespace doppel::testing
