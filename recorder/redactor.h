// Redaction before anything is persisted: the values of sensitive headers are replaced by
// "hmac:" + hex(HMAC-SHA256(key, value)), so equal values stay equal (a replay can still
// tell two users apart) while the secret itself never reaches the store.
//
// The key is per store, kept in `<store>/redaction.key` (32 random bytes, mode 0600), and is
// never logged.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::recorder {

class Redactor {
 public:
  // Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key.
  static const std::vector<std::string>& DefaultHeaders();

  // Reads `<store_dir>/redaction.key`, creating it (0600, random bytes from the OpenSSL
  // CSPRNG) when absent. REQUIRES: store_dir exists.
  static Result<std::string> LoadOrCreateKey(const std::string& store_dir);

  // Redacts the default headers plus `extra_headers` (names are case-insensitive).
  Redactor(std::string key, const std::vector<std::string>& extra_headers);

  bool ShouldRedact(std::string_view header_name) const;
  // "hmac:" followed by 64 hex digits.
  std::string Hash(std::string_view value) const;
  // Rewrites the sensitive header values of the request and the response in place.
  void Redact(doppel::v1::Envelope* envelope) const;

 private:
  std::string key_;
  std::vector<std::string> headers_;  // lower case
};

}  // namespace doppel::recorder
