#include "recorder/redactor.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace doppel::recorder {

namespace {

constexpr size_t kKeyBytes = 32;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void RedactHeaders(google::protobuf::RepeatedPtrField<doppel::v1::Header>* headers,
                   const Redactor& r) {
  for (auto& h : *headers) {
    if (r.ShouldRedact(h.name())) h.set_value(r.Hash(h.value()));
  }
}

}  // namespace

const std::vector<std::string>& Redactor::DefaultHeaders() {
  static const std::vector<std::string> kHeaders = {"authorization", "proxy-authorization",
                                                    "cookie", "set-cookie", "x-api-key"};
  return kHeaders;
}

Result<std::string> Redactor::LoadOrCreateKey(const std::string& store_dir) {
  const std::string path = store_dir + "/redaction.key";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    unsigned char key[kKeyBytes];
    if (RAND_bytes(key, sizeof key) != 1) {
      return Status::Internal("cannot get random bytes for the redaction key");
    }
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const bool ok =
          ::write(fd, key, sizeof key) == static_cast<ssize_t>(sizeof key) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) {
        ::unlink(path.c_str());
        return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
      }
      return std::string(reinterpret_cast<const char*>(key), sizeof key);
    }
    if (errno != EEXIST) {
      return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
    }
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // another process won the race
  }
  if (fd < 0) return Status::IoError("cannot read " + path + ": " + std::strerror(errno));
  std::string key(256, '\0');
  const ssize_t n = ::read(fd, key.data(), key.size());
  ::close(fd);
  if (n < 16) {
    return Status::Corruption(path +
                              " is shorter than 16 bytes; remove it to make a new key "
                              "(earlier hashes will then no longer match)");
  }
  key.resize(static_cast<size_t>(n));
  return key;
}

Redactor::Redactor(std::string key, const std::vector<std::string>& extra_headers)
    : key_(std::move(key)), headers_(DefaultHeaders()) {
  for (const std::string& h : extra_headers) headers_.push_back(Lower(h));
}

bool Redactor::ShouldRedact(std::string_view header_name) const {
  for (const std::string& h : headers_) {
    if (h.size() == header_name.size() &&
        std::equal(h.begin(), h.end(), header_name.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      return true;
    }
  }
  return false;
}

std::string Redactor::Hash(std::string_view value) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "hmac:";
  out.reserve(5 + 2 * len);
  for (unsigned i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

void Redactor::Redact(doppel::v1::Envelope* envelope) const {
  RedactHeaders(envelope->mutable_request()->mutable_headers(), *this);
  RedactHeaders(envelope->mutable_response()->mutable_headers(), *this);
}

}  // namespace doppel::recorder
