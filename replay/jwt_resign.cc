#include "replay/jwt_resign.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "base/strings.h"
#include "interop/envelope_json.h"
#include "net/proto_headers.h"

namespace doppel::replay {
namespace {

namespace json = boost::json;

constexpr size_t kMaxBodyBytes = 8u << 20;  // larger bodies are not looked into
constexpr size_t kMaxCache = 10000;

bool IsBase64Url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// A JSON object from a base64url part, or nullopt.
std::optional<json::object> DecodeObject(std::string_view part) {
  std::optional<std::string> bytes = Base64UrlDecode(part);
  if (!bytes) return std::nullopt;
  json::error_code ec;
  json::value v = json::parse(*bytes, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

struct Jwt {
  json::object header, payload;
};

// `token` as a JWT (see the header), or nullopt.
std::optional<Jwt> ParseJwt(std::string_view token) {
  const size_t a = token.find('.');
  if (a == std::string_view::npos || a == 0) return std::nullopt;
  const size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos || b == a + 1) return std::nullopt;
  const std::string_view signature = token.substr(b + 1);
  if (signature.find('.') != std::string_view::npos || !Base64UrlDecode(signature))
    return std::nullopt;
  std::optional<json::object> header = DecodeObject(token.substr(0, a));
  if (!header || !header->contains("alg")) return std::nullopt;
  std::optional<json::object> payload = DecodeObject(token.substr(a + 1, b - a - 1));
  if (!payload) return std::nullopt;
  return Jwt{std::move(*header), std::move(*payload)};
}

// Calls fn(offset, length) for every maximal run of base64url characters and dots in `text`.
template <typename Fn>
void ForEachRun(std::string_view text, Fn fn) {
  size_t i = 0;
  while (i < text.size()) {
    if (!IsBase64Url(text[i]) && text[i] != '.') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && (IsBase64Url(text[end]) || text[end] == '.')) ++end;
    fn(i, end - i);
    i = end;
  }
}

// Moves a NumericDate claim by `delta` seconds, keeping its JSON type.
void Shift(json::object& claims, std::string_view name, int64_t delta) {
  json::value* v = claims.if_contains(name);
  if (v == nullptr) return;
  if (v->is_int64()) *v = v->as_int64() + delta;
  if (v->is_uint64()) *v = static_cast<int64_t>(v->as_uint64()) + delta;
  if (v->is_double()) *v = v->as_double() + static_cast<double>(delta);
}

std::string StripTrailingNewlines(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return std::string(s);
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// What key signs `alg`, for error messages.
std::string_view KeyFor(JwtAlg alg) {
  switch (alg) {
    case JwtAlg::kHs256:
      return "a raw secret";
    case JwtAlg::kRs256:
      return "a PEM RSA private key";
    case JwtAlg::kEs256:
      return "a PEM EC P-256 private key";
  }
  return "";
}

// PEM passphrase callback: no passphrase (never prompts on a terminal).
int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out = interop::Base64Encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string standard(text);
  for (char& c : standard) {
    if (!IsBase64Url(c)) return std::nullopt;
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  std::string out;
  if (!interop::Base64Decode(standard, &out)) return std::nullopt;
  return out;
}

Result<JwtKey> JwtKey::FromBytes(std::string_view bytes, std::optional<JwtAlg> alg) {
  JwtKey key;
  auto mismatch = [&](JwtAlg own, std::string_view what) {
    return Status::InvalidArgument(
        "--jwt-alg " + std::string(kJwtAlgNames.Name(*alg)) + " signs with " +
        std::string(KeyFor(*alg)) + ", but the key file holds " + std::string(what) +
        ", which signs " + std::string(kJwtAlgNames.Name(own)) + ": give --jwt-alg " +
        std::string(kJwtAlgNames.Name(own)) + " (or leave it out) or another key");
  };
  if (!TrimSpaces(bytes).starts_with("-----BEGIN")) {
    key.secret_ = StripTrailingNewlines(bytes);
    if (key.secret_.empty())
      return Status::InvalidArgument("the key file is empty: HS256 signs with the file's bytes");
    if (alg && *alg != JwtAlg::kHs256) return mismatch(JwtAlg::kHs256, "a raw secret (not PEM)");
    key.alg_ = JwtAlg::kHs256;
    return key;
  }
  BIO* bio = BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PrivateKey(bio, nullptr, NoPassphrase, nullptr) : nullptr;
  BIO_free(bio);
  if (pkey == nullptr) {
    ERR_clear_error();
    return Status::InvalidArgument(
        "the key file is PEM but not an unencrypted private key (RS256 and ES256 sign with the "
        "private key; a public key, a certificate or an encrypted key cannot sign)");
  }
  key.pkey_ =
      std::shared_ptr<void>(pkey, [](void* p) { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); });
  JwtAlg own;
  if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
    own = JwtAlg::kRs256;
    if (alg && *alg != own) return mismatch(own, "an RSA private key");
  } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
    char group[80] = "";
    size_t len = 0;
    EVP_PKEY_get_group_name(pkey, group, sizeof group, &len);
    if (std::string_view(group) != "prime256v1") {
      return Status::InvalidArgument("the key file holds an EC key on curve '" +
                                     std::string(group) + "': ES256 signs with P-256 (prime256v1)");
    }
    own = JwtAlg::kEs256;
    if (alg && *alg != own) return mismatch(own, "an EC P-256 private key");
  } else {
    return Status::InvalidArgument(
        "the key file holds a private key that is neither RSA (RS256) nor EC P-256 (ES256)");
  }
  key.alg_ = own;
  return key;
}

Result<JwtKey> JwtKey::Load(const std::string& path, std::optional<JwtAlg> alg) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("--jwt-resign: cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  Result<JwtKey> key = FromBytes(ss.str(), alg);
  if (!key.ok()) return key.status().WithContext("--jwt-resign " + path);
  return key;
}

Result<std::string> JwtKey::Sign(std::string_view input) const {
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (alg_ == JwtAlg::kHs256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), data, input.size(),
             mac, &mac_len) == nullptr)
      return Status::Internal("HMAC-SHA256: " + OpenSslError());
    return std::string(reinterpret_cast<const char*>(mac), mac_len);
  }
  EVP_PKEY* pkey = static_cast<EVP_PKEY*>(pkey_.get());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1)
    return Status::Internal("signing: " + OpenSslError());
  std::vector<unsigned char> sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, data, input.size()) != 1)
    return Status::Internal("signing: " + OpenSslError());
  if (alg_ == JwtAlg::kRs256) return std::string(reinterpret_cast<const char*>(sig.data()), len);
  // ES256: DER ECDSA-Sig-Value -> r || s, 32 bytes each.
  const unsigned char* p = sig.data();
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> ecdsa(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)), ECDSA_SIG_free);
  if (!ecdsa) return Status::Internal("ES256 signature: " + OpenSslError());
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(ecdsa.get(), &r, &s);
  unsigned char raw[64];
  if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
    return Status::Internal("ES256 signature: r or s longer than 32 bytes");
  return std::string(reinterpret_cast<const char*>(raw), sizeof raw);
}

std::optional<std::string> ResignJwt(std::string_view token, const JwtKey& key, int64_t now_s,
                                     int64_t fallback_shift_s) {
  std::optional<Jwt> jwt = ParseJwt(token);
  if (!jwt) return std::nullopt;
  int64_t delta = fallback_shift_s;
  if (json::value* iat = jwt->payload.if_contains("iat"); iat != nullptr && iat->is_number()) {
    json::error_code ec;
    const double was = iat->to_number<double>(ec);
    if (!ec) delta = now_s - static_cast<int64_t>(was);
    Shift(jwt->payload, "iat", delta);
  }
  Shift(jwt->payload, "nbf", delta);
  Shift(jwt->payload, "exp", delta);
  jwt->header["alg"] = kJwtAlgNames.Name(key.alg());
  const std::string input = Base64UrlEncode(json::serialize(jwt->header)) + "." +
                            Base64UrlEncode(json::serialize(jwt->payload));
  Result<std::string> signature = key.Sign(input);
  if (!signature.ok()) return std::nullopt;
  return input + "." + Base64UrlEncode(*signature);
}

JwtResigner::JwtResigner(JwtKey key, int64_t fallback_shift_s, const Clock& clock)
    : key_(std::move(key)), fallback_shift_s_(fallback_shift_s), clock_(clock) {}

uint64_t JwtResigner::Resign(const doppel::v1::HttpRequest& recorded, OutgoingRequest* out) {
  // The recorded request's tokens; only these are replaced in `out`.
  std::set<std::string, std::less<>> tokens;
  auto collect = [&](std::string_view text) {
    ForEachRun(text, [&](size_t at, size_t n) {
      if (ParseJwt(text.substr(at, n))) tokens.emplace(text.substr(at, n));
    });
  };
  collect(recorded.target());
  for (const auto& h : recorded.headers()) collect(h.value());
  const bool plain_body = recorded.body().size() <= kMaxBodyBytes &&
                          net::FindHeader(recorded.headers(), "content-encoding") == nullptr;
  if (plain_body) collect(recorded.body());
  if (tokens.empty()) return 0;

  const int64_t now_s = static_cast<int64_t>(clock_.WallUs() / 1'000'000);
  if (cache_.size() > kMaxCache) cache_.clear();
  uint64_t replaced = 0;
  auto replace = [&](std::string* text) {
    std::string result;
    size_t copied = 0;
    ForEachRun(*text, [&](size_t at, size_t n) {
      const std::string_view run = std::string_view(*text).substr(at, n);
      if (!tokens.contains(run)) return;
      auto it = cache_.find(run);
      if (it == cache_.end() || it->second.first != now_s) {
        std::optional<std::string> fresh = ResignJwt(run, key_, now_s, fallback_shift_s_);
        if (!fresh) return;
        it = cache_.insert_or_assign(std::string(run), std::make_pair(now_s, std::move(*fresh)))
                 .first;
      }
      result.append(*text, copied, at - copied).append(it->second.second);
      copied = at + n;
      ++replaced;
    });
    if (copied == 0) return;
    result.append(*text, copied);
    *text = std::move(result);
  };
  replace(&out->target);
  for (auto& [name, value] : out->headers) replace(&value);
  if (plain_body) replace(&out->body);
  return replaced;
}

}  // namespace doppel::replay
