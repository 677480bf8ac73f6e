// --jwt-resign (replay/jwt_resign.h): base64url, claims moved, signatures for HS256, RS256 and
// ES256 checked here with OpenSSL directly (HMAC recomputed; EVP_DigestVerify with the public
// key), key/alg mismatches, malformed tokens left alone, and which tokens of a request are
// re-signed.
#include "replay/jwt_resign.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <vector>

namespace doppel::replay {
namespace {

namespace json = boost::json;

constexpr int64_t kNow = 2'000'000'000;  // 2033-05-18
constexpr int64_t kIat = 1'700'000'000;

// A token signed with garbage: only its header and claims matter to ResignJwt.
std::string Token(const json::object& header, const json::object& claims) {
  return Base64UrlEncode(json::serialize(header)) + "." + Base64UrlEncode(json::serialize(claims)) +
         "." + Base64UrlEncode("not a signature");
}

std::string Recorded() {
  return Token({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "prod-1"}},
               {{"sub", "ada"}, {"iat", kIat}, {"nbf", kIat - 5}, {"exp", kIat + 3600}});
}

struct Parts {
  json::object header, claims;
  std::string input, signature;  // "H.P", the decoded signature
};

Parts Split(const std::string& token) {
  Parts p;
  const size_t a = token.find('.'), b = token.rfind('.');
  p.header = json::parse(*Base64UrlDecode(token.substr(0, a))).as_object();
  p.claims = json::parse(*Base64UrlDecode(token.substr(a + 1, b - a - 1))).as_object();
  p.input = token.substr(0, b);
  p.signature = *Base64UrlDecode(token.substr(b + 1));
  return p;
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::string Pem(EVP_PKEY* key, bool private_key = true) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (private_key)
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  else
    PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool Verify(EVP_PKEY* key, const std::string& input, const std::string& der_or_raw) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der_or_raw.data()),
                          der_or_raw.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

// The JOSE r||s form back to DER, as EVP_DigestVerify wants it.
std::string RawToDer(const std::string& raw) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig, &der);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

void ExpectFreshTimes(const Parts& p, std::string_view alg) {
  EXPECT_EQ(p.header.at("alg").as_string(), alg);
  EXPECT_EQ(p.header.at("kid").as_string(), "prod-1");  // the rest of the header is kept
  EXPECT_EQ(p.claims.at("sub").as_string(), "ada");
  EXPECT_EQ(p.claims.at("iat").as_int64(), kNow);
  EXPECT_EQ(p.claims.at("nbf").as_int64(), kNow - 5);  // the recorded offsets hold
  EXPECT_EQ(p.claims.at("exp").as_int64(), kNow + 3600);
}

TEST(JwtResignTest, Base64Url) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(Base64UrlDecode("-_8"), "\xfb\xff");
  EXPECT_EQ(Base64UrlDecode("Zm9v"), "foo");
  EXPECT_EQ(Base64UrlDecode("Zg"), "f");
  for (const char* bad : {"+_8", "/w", "Zg==", "Zm9vY", "Zm 9v"})
    EXPECT_EQ(Base64UrlDecode(bad), std::nullopt) << bad;
}

TEST(JwtResignTest, Hs256MovesTheTimesAndSignsWithTheSecret) {
  auto key = JwtKey::FromBytes("test-secret\n", std::nullopt);  // the newline is not the secret
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->alg(), JwtAlg::kHs256);
  auto token = ResignJwt(Recorded(), *key, kNow, 0);
  ASSERT_TRUE(token.has_value());
  Parts p = Split(*token);
  ExpectFreshTimes(p, "HS256");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), "test-secret", 11, reinterpret_cast<const unsigned char*>(p.input.data()),
       p.input.size(), mac, &n);
  EXPECT_EQ(p.signature, std::string(reinterpret_cast<const char*>(mac), n));
}

TEST(JwtResignTest, Rs256SignatureVerifiesWithThePublicKey) {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), EVP_PKEY_free);
  ASSERT_NE(pkey, nullptr);
  auto key = JwtKey::FromBytes(Pem(pkey.get()), std::nullopt);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->alg(), JwtAlg::kRs256);
  auto token = ResignJwt(Recorded(), *key, kNow, 0);
  ASSERT_TRUE(token.has_value());
  Parts p = Split(*token);
  ExpectFreshTimes(p, "RS256");
  EXPECT_EQ(p.signature.size(), 256u);
  EXPECT_TRUE(Verify(pkey.get(), p.input, p.signature));
  EXPECT_FALSE(Verify(pkey.get(), p.input + "x", p.signature));
}

TEST(JwtResignTest, Es256SignatureIsRawRAndSAndVerifies) {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  ASSERT_NE(pkey, nullptr);
  auto key = JwtKey::FromBytes(Pem(pkey.get()), JwtAlg::kEs256);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  for (int i = 0; i < 8; ++i) {  // r or s with a leading zero byte must still be 32 bytes
    auto token = ResignJwt(Recorded(), *key, kNow + i, 0);
    ASSERT_TRUE(token.has_value());
    Parts p = Split(*token);
    EXPECT_EQ(p.header.at("alg").as_string(), "ES256");
    ASSERT_EQ(p.signature.size(), 64u);
    EXPECT_TRUE(Verify(pkey.get(), p.input, RawToDer(p.signature)));
  }
}

TEST(JwtResignTest, AKeyThatCannotSignTheAlgIsAClearError) {
  PkeyPtr rsa(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), EVP_PKEY_free);
  PkeyPtr p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"), EVP_PKEY_free);
  ASSERT_NE(rsa, nullptr);
  ASSERT_NE(p384, nullptr);
  EXPECT_EQ(JwtKey::FromBytes(Pem(rsa.get()), JwtAlg::kHs256).status().ToString(),
            "--jwt-alg HS256 signs with a raw secret, but the key file holds an "
            "RSA private key, which signs RS256: give --jwt-alg RS256 (or leave it out) or "
            "another key");
  EXPECT_EQ(JwtKey::FromBytes("secret", JwtAlg::kRs256).status().ToString(),
            "--jwt-alg RS256 signs with a PEM RSA private key, but the key file "
            "holds a raw secret (not PEM), which signs HS256: give --jwt-alg HS256 (or leave it "
            "out) or another key");
  EXPECT_EQ(JwtKey::FromBytes(Pem(rsa.get()), JwtAlg::kEs256).status().ToString(),
            "--jwt-alg ES256 signs with a PEM EC P-256 private key, but the key "
            "file holds an RSA private key, which signs RS256: give --jwt-alg RS256 (or leave it "
            "out) or another key");
  EXPECT_EQ(JwtKey::FromBytes(Pem(p384.get()), std::nullopt).status().ToString(),
            "the key file holds an EC key on curve 'secp384r1': ES256 signs "
            "with P-256 (prime256v1)");
  EXPECT_NE(JwtKey::FromBytes(Pem(rsa.get(), false), std::nullopt)
                .status()
                .ToString()
                .find("not an unencrypted private key"),
            std::string::npos);
  EXPECT_EQ(JwtKey::FromBytes("\n", std::nullopt).status().ToString(),
            "the key file is empty: HS256 signs with the file's bytes");
}

TEST(JwtResignTest, MalformedTokensAreLeftAlone) {
  auto key = JwtKey::FromBytes("k", std::nullopt);
  ASSERT_TRUE(key.ok());
  const std::string header = Base64UrlEncode(R"({"alg":"HS256"})");
  const std::string claims = Base64UrlEncode(R"({"exp":1})");
  for (const std::string& bad : std::vector<std::string>{
           header + "." + claims,                                         // two parts
           header + "." + claims + ".sig.more",                           // four parts
           "!!!." + claims + ".c2ln",                                     // bad base64
           Base64UrlEncode("not json") + "." + claims + ".c2ln",          // header not JSON
           Base64UrlEncode(R"({"typ":"JWT"})") + "." + claims + ".c2ln",  // no alg
           header + "." + Base64UrlEncode("[1]") + ".c2ln",               // claims not an object
           header + "." + claims + ".c2ln=",                              // padding
           "hmac:0123456789abcdef",                                       // redacted
           "api.example.com",                                             // a host name
       }) {
    EXPECT_EQ(ResignJwt(bad, *key, kNow, 0), std::nullopt) << bad;
  }
}

TEST(JwtResignTest, WithoutIatTheTimesMoveByTheReplaysDistanceToTheRecording) {
  auto key = JwtKey::FromBytes("k", std::nullopt);
  ASSERT_TRUE(key.ok());
  auto token = ResignJwt(Token({{"alg", "none"}}, {{"exp", kIat + 60}, {"nbf", kIat}}), *key, kNow,
                         /*fallback_shift_s=*/1000);
  ASSERT_TRUE(token.has_value());
  Parts p = Split(*token);
  EXPECT_EQ(p.claims.at("exp").as_int64(), kIat + 1060);
  EXPECT_EQ(p.claims.at("nbf").as_int64(), kIat + 1000);
  EXPECT_FALSE(p.claims.contains("iat"));
}

TEST(JwtResignTest, ResignerReplacesTheRecordedTokensEverywhereButLeavesLiveOnesAlone) {
  auto key = JwtKey::FromBytes("k", std::nullopt);
  ASSERT_TRUE(key.ok());
  ManualClock clock(static_cast<uint64_t>(kNow) * 1'000'000);
  JwtResigner resigner(*key, 0, clock);
  const std::string jwt = Recorded();
  const std::string live = Token({{"alg", "RS256"}}, {{"sub", "live"}, {"iat", kNow}});

  doppel::v1::HttpRequest recorded;
  recorded.set_method("POST");
  recorded.set_target("/api?access_token=" + jwt + "&x=1");
  auto header = [&](const char* n, const std::string& v) {
    auto* h = recorded.add_headers();
    h->set_name(n);
    h->set_value(v);
  };
  header("Authorization", "Bearer " + jwt);
  header("Cookie", "a=1; id=" + jwt);
  header("Proxy-Authorization", "hmac:0123456789abcdef");
  header("Content-Type", "application/json");
  recorded.set_body(R"({"id_token":")" + jwt + R"(","other":"a.b.c"})");

  OutgoingRequest out;
  out.target = recorded.target();
  for (const auto& h : recorded.headers()) out.headers.emplace_back(h.name(), h.value());
  out.headers[0].second = "Bearer " + live;  // correlation put the target's own token here
  out.body = recorded.body();
  EXPECT_EQ(resigner.Resign(recorded, &out), 3u);

  auto fresh = ResignJwt(jwt, *key, kNow, 0);
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(out.target, "/api?access_token=" + *fresh + "&x=1");
  EXPECT_EQ(out.headers[0].second, "Bearer " + live);
  EXPECT_EQ(out.headers[1].second, "a=1; id=" + *fresh);
  EXPECT_EQ(out.headers[2].second, "hmac:0123456789abcdef");
  EXPECT_EQ(out.body, R"({"id_token":")" + *fresh + R"(","other":"a.b.c"})");

  // A request without tokens is not touched.
  doppel::v1::HttpRequest plain;
  plain.set_target("/x.y.z");
  OutgoingRequest untouched;
  untouched.target = "/x.y.z";
  EXPECT_EQ(resigner.Resign(plain, &untouched), 0u);
  EXPECT_EQ(untouched.target, "/x.y.z");
}

}  // namespace
}  // namespace doppel::replay
