// Normalizers: values that legitimately differ on every response (timestamps, generated ids,
// tokens). When the expected and actual values differ but are of the same normalizable kind,
// the field is reported as "normalized" (DiffResult::normalized), not as a value diff and
// not silently dropped. All are on by default; each can be switched off in DiffConfig.
//
//   rfc3339  both strings are RFC 3339 date-times: 2024-05-01T12:00:00Z,
//            2024-05-01t12:00:00.123+02:00, 2024-05-01 12:00:00Z (dates alone are not)
//   epoch    both numbers are Unix times in the same unit, within 2000-01-01..2100-01-01:
//            seconds in [946684800, 4102444800) or milliseconds in that range × 1000
//   uuid     both strings are 8-4-4-4-12 hex UUIDs (any version, any case)
//   ulid     both strings are ULIDs: 26 Crockford base32 chars, the first 0-7
//   jwt      both strings are JWTs (three base64url parts, the header a JSON object with
//            "alg") whose payload claims are equal once iat, exp, nbf and jti are removed;
//            JWTs whose remaining claims differ are a value diff
#pragma once

#include <string_view>

namespace doppel::diff {

struct NormalizerOptions {
  bool rfc3339 = true;
  bool epoch = true;
  bool uuid = true;
  bool ulid = true;
  bool jwt = true;
};

bool IsRfc3339Timestamp(std::string_view s);
bool IsUuid(std::string_view s);
bool IsUlid(std::string_view s);
bool IsJwt(std::string_view s);

enum class EpochUnit { kNone, kSeconds, kMilliseconds };
EpochUnit EpochUnitOf(double value);

// REQUIRES: IsJwt(a) && IsJwt(b). True when the payload claims minus iat/exp/nbf/jti are
// structurally equal.
bool JwtClaimsEqual(std::string_view a, std::string_view b);

// For two *different* strings: the name of the normalizer that makes them equivalent
// ("rfc3339", "uuid", "ulid", "jwt"), or "" when none does.
std::string_view NormalizeStrings(std::string_view expected, std::string_view actual,
                                  const NormalizerOptions& options);
// For two *different* numbers: "epoch" when both are epochs of the same unit, else "".
std::string_view NormalizeNumbers(double expected, double actual, const NormalizerOptions& options);

}  // namespace doppel::diff
