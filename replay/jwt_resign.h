// `doppel replay --jwt-resign KEYFILE [--jwt-alg HS256|RS256|ES256]` (issue #16): JWTs in
// recorded requests have expired by the time of a replay, and a pre-prod target trusts a test
// issuer, not production's. Every JWT a recorded request carries gets fresh times and is
// signed again with the test key before it is sent (docs/stateful-replay.md).
//
// What is a JWT: a compact JWS, three base64url parts "H.P.S" (S may be empty) within a run of
// base64url characters and dots, whose H decodes to a JSON object with "alg" and whose P
// decodes to a JSON object. Found anywhere in the request target (query), in header values
// (Authorization: Bearer, cookies, any header) and in a body not under a Content-Encoding
// (JSON string values, form fields). Anything else, such as a redacted "hmac:…" value, is left
// alone.
//
// Times: with an "iat", the token moves by (now − iat): iat becomes now, exp and nbf keep
// their distance to it. Without "iat", exp and nbf move by the replay's start minus the
// recording's. "alg" in the header becomes the key's; every other claim and header field is
// kept.
//
// Live values: only tokens that the recorded request holds are re-signed. A token that
// correlation put into the request from the target's own answer is fresh and signed by the
// target's issuer, and is sent as the target gave it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/enum_names.h"
#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "replay/request_plan.h"

namespace doppel::replay {

enum class JwtAlg { kHs256, kRs256, kEs256, kMaxValue = kEs256 };
inline constexpr EnumNames<JwtAlg, 3> kJwtAlgNames{{"HS256", "RS256", "ES256"}};

// base64url without padding (RFC 7515 §2). Decode refuses '+', '/', '=', other characters
// outside the alphabet, and a length that leaves 6 stray bits.
std::string Base64UrlEncode(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// A signing key: a raw secret (HS256) or a PEM private key (RSA for RS256, EC P-256 for
// ES256).
class JwtKey {
 public:
  // `bytes`: a file's content. A PEM private key ("-----BEGIN") is RSA or EC; anything else is
  // an HMAC secret (a trailing newline is not part of it). `alg`: as given by --jwt-alg, or
  // nullopt to take the key's (HS256 for a secret, RS256 for RSA, ES256 for EC P-256). A key
  // that cannot sign `alg` is an error that says which alg it can sign.
  static Result<JwtKey> FromBytes(std::string_view bytes, std::optional<JwtAlg> alg);
  // Reads `path`; errors name it.
  static Result<JwtKey> Load(const std::string& path, std::optional<JwtAlg> alg);

  JwtAlg alg() const { return alg_; }
  // The JWS signature of `signing_input` ("H.P"): HMAC-SHA256, RSASSA-PKCS1-v1_5 SHA-256, or
  // ECDSA P-256 SHA-256 as the 64 bytes r||s (RFC 7518 §3.4).
  Result<std::string> Sign(std::string_view signing_input) const;

 private:
  JwtAlg alg_ = JwtAlg::kHs256;
  std::string secret_;
  std::shared_ptr<void> pkey_;  // EVP_PKEY, freed with EVP_PKEY_free
};

// The token with new times (see above: `now_s`, and `fallback_shift_s` when it has no "iat"),
// the key's alg and a new signature; nullopt when `token` is not a JWT or signing failed.
std::optional<std::string> ResignJwt(std::string_view token, const JwtKey& key, int64_t now_s,
                                     int64_t fallback_shift_s);

// The replay engine's re-signer (ReplayOptions::jwt_resign). Engine thread only.
class JwtResigner {
 public:
  // `fallback_shift_s`: the replay's start minus the recording's, for tokens without "iat".
  // REQUIRES: `clock` outlives this object.
  JwtResigner(JwtKey key, int64_t fallback_shift_s, const Clock& clock);

  // Re-signs, in `out`, every JWT that `recorded` (the request as recorded, before
  // correlation) holds; returns how many tokens were replaced.
  uint64_t Resign(const doppel::v1::HttpRequest& recorded, OutgoingRequest* out);

 private:
  JwtKey key_;
  int64_t fallback_shift_s_;
  const Clock& clock_;
  // Recorded token -> (the second it was signed for, the re-signed token): a token is signed
  // once per second, not once per target and request.
  std::map<std::string, std::pair<int64_t, std::string>, std::less<>> cache_;
};

}  // namespace doppel::replay
