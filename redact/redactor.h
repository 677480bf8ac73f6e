// Redaction before anything is persisted: sensitive header values, query parameters of the
// request-target and JSON body fields are replaced by "hmac:" + hex(HMAC-SHA256(key, value)),
// so equal values stay equal (a replay can still tell two users apart, a diff still compares
// them) while the secret itself never reaches the store. `doppel record` runs it in the capture
// writer, `doppel import` on every HAR, JSON Lines and GoReplay envelope.
//
// The key is per store, kept in `<store>/redaction.key` (32 random bytes, mode 0600), and is
// never logged.
//
// JSON paths use the diff rules' syntax (diff/path.h) rooted at `body` (`body.user.ssn`,
// `body.items[*].card`) and apply to request and response bodies alike. To redact a body it is
// Content-Encoding-decoded (diff/decode.h) and parsed; a matched value is replaced by the hash
// of its text (a string's characters, any other value's JSON), and the body is stored
// re-serialized, decoded, without its Content-Encoding header. A body that cannot be redacted
// is dropped, never stored in the clear: see Redact().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "diff/path.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::redact {

struct RedactOptions {
  bool off = false;                       // --no-redact: store everything verbatim
  std::vector<std::string> headers;       // beyond DefaultHeaders(); case-insensitive
  std::vector<std::string> query_params;  // request-target query parameter names; exact
  std::vector<std::string> json_paths;    // e.g. "body.items[*].card" (diff/path.h)
  size_t max_decoded_bytes = 64 << 20;    // a body decoding to more is dropped
};

// What Redact() did to one envelope.
struct RedactCounts {
  uint32_t dropped_bodies = 0;  // bodies that could not be redacted and were dropped
};

class Redactor {
 public:
  // Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key.
  static const std::vector<std::string>& DefaultHeaders();

  // Reads `<store_dir>/redaction.key`, creating it (0600, random bytes from the OpenSSL
  // CSPRNG) when absent. REQUIRES: store_dir exists.
  static Result<std::string> LoadOrCreateKey(const std::string& store_dir);

  // A redactor with the key of the store at `store_dir` (LoadOrCreateKey), or null when
  // `options.off`. InvalidArgument when `off` comes with anything to redact, or a JSON path
  // does not parse or is not rooted at `body`.
  static Result<std::unique_ptr<Redactor>> ForStore(const std::string& store_dir,
                                                    const RedactOptions& options);
  // As ForStore with a given key (tests, fuzzing). `options.off` is ignored.
  static Result<std::unique_ptr<Redactor>> WithKey(std::string key, const RedactOptions& options);

  // Redacts the default headers plus `extra_headers` (names are case-insensitive).
  Redactor(std::string key, const std::vector<std::string>& extra_headers);

  bool ShouldRedact(std::string_view header_name) const;
  // "hmac:" followed by 64 hex digits.
  std::string Hash(std::string_view value) const;
  // Rewrites the envelope in place: header values of the request and the response, the
  // request-target's query parameters, and the JSON paths in both bodies. Values that are
  // hashes already ("hmac:" + 64 hex digits) stay as they are, so redacting twice (importing
  // a JSON Lines or HAR export of a redacted session) changes nothing. With JSON paths, a
  // non-empty body is dropped (emptied, body_truncated set, body_size kept: the diff then
  // compares sizes only) when its Content-Encoding cannot be undone (or it decodes to more
  // than max_decoded_bytes), or it does not parse as JSON (a truncated one does not) while
  // its Content-Type says JSON, or it has none and looks like JSON. A body that parses is
  // redacted whatever its Content-Type; one declared as something else (text/html, image/png)
  // that is not JSON is kept: no JSON path can address anything in it. Thread-safe (const).
  RedactCounts Redact(doppel::v1::Envelope* envelope) const;

 private:
  template <typename Message>
  bool RedactBody(Message* message) const;  // false: the body was dropped

  std::string key_;
  std::vector<std::string> headers_;  // lower case
  std::vector<std::string> query_params_;
  std::vector<diff::PathPattern> json_paths_;
  size_t max_decoded_bytes_ = 64 << 20;
};

}  // namespace doppel::redact
