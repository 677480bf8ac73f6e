#include "tools/echo/stateful.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>

#include "tools/echo/json_writer.h"

namespace doppel::echo {

namespace http = boost::beast::http;

struct StatefulApi::Impl {
  std::mutex mu;
  std::mt19937_64 rng{std::random_device{}()};
  std::unordered_map<std::string, std::string> tokens;    // bearer token -> user
  std::unordered_map<std::string, std::string> sessions;  // sid -> user
  std::set<std::string> orders, csrf, tickets;
  std::string jwt_secret;

  // `digits` random hex digits; the first one a digit 1-9 when `digit_first`.
  std::string Random(int digits, bool digit_first) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s;
    while (static_cast<int>(s.size()) < digits) {
      uint64_t word = rng();
      for (int i = 0; i < 16 && static_cast<int>(s.size()) < digits; ++i, word >>= 4)
        s.push_back(kHex[word & 15]);
    }
    if (digit_first) s[0] = static_cast<char>('1' + rng() % 9);
    return s;
  }
};

namespace {

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or "".
std::string_view CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view item = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) return item.substr(eq + 1);
  }
  return {};
}

// The value of field `name` in a form body ("a=1&b=2"; the values here need no decoding).
std::string_view FormValue(std::string_view body, std::string_view name) {
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view item = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) return item.substr(eq + 1);
  }
  return {};
}

// base64url without padding (RFC 7515 §2), by OpenSSL's base64 and the URL alphabet: this
// server checks doppel's JWTs with code of its own.
std::string Base64Url(const unsigned char* bytes, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  out.resize(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(n)));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<boost::json::object> JsonPart(std::string_view part) {
  std::string in(part);
  for (char& c : in) {
    if (c == '+' || c == '/' || c == '=') return std::nullopt;
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  const size_t pad = (4 - in.size() % 4) % 4;
  in.append(pad, '=');
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0 || pad == 3) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(out, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// "" when `token` is an HS256 JWT signed with `secret`, in its validity window now; else why not.
std::string CheckJwt(std::string_view token, const std::string& secret, std::string* sub) {
  const size_t a = token.find('.'), b = token.rfind('.');
  if (a == std::string_view::npos || a == b) return "not a JWT";
  auto header = JsonPart(token.substr(0, a));
  auto claims = JsonPart(token.substr(a + 1, b - a - 1));
  if (!header || !claims) return "not a JWT";
  const auto* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256") return "alg is not HS256";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(token.data()), b, mac, &len);
  if (Base64Url(mac, len) != token.substr(b + 1)) return "bad signature";
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const auto* exp = claims->if_contains("exp");
  if (exp == nullptr || !exp->is_number()) return "no exp";
  boost::system::error_code ec;
  if (exp->to_number<double>(ec) <= now) return "expired";
  if (const auto* nbf = claims->if_contains("nbf");
      nbf != nullptr && nbf->is_number() && nbf->to_number<double>(ec) > now + 1)
    return "not valid yet";
  if (const auto* s = claims->if_contains("sub"); s != nullptr && s->is_string())
    *sub = std::string(s->as_string());
  return "";
}

void Json(Reply* r, unsigned status, const std::function<void(JsonWriter&)>& fill) {
  r->status = status;
  r->owned.clear();
  JsonWriter w(&r->owned);
  w.BeginObject();
  fill(w);
  w.EndObject();
  r->body = r->owned;
  r->gzip_body = {};
}

}  // namespace

StatefulApi::StatefulApi(std::string jwt_secret) : impl_(std::make_unique<Impl>()) {
  impl_->jwt_secret = std::move(jwt_secret);
}
StatefulApi::~StatefulApi() = default;

bool StatefulApi::Handle(http::verb method, std::string_view target, std::string_view authorization,
                         std::string_view cookie, std::string_view body, Reply* r) {
  std::string_view path = target.substr(0, target.find('?'));
  const bool is_orders = path == "/orders" || path.starts_with("/orders/");
  const bool is_jwt = path == "/jwt/me" && !impl_->jwt_secret.empty();
  if (path != "/login" && path != "/account" && path != "/form" && path != "/tickets" &&
      path != "/tickets/check" && !is_orders && !is_jwt)
    return false;
  r->Reset();
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  std::string bearer;
  if (authorization.starts_with("Bearer ")) bearer = authorization.substr(7);
  auto user = s.tokens.find(bearer);
  const bool authorized = user != s.tokens.end();
  auto unauthorized = [&] {
    r->Error(401, "unauthorized", "send Authorization: Bearer <a token from POST /login>");
    return true;
  };

  if (path == "/login") {
    if (method != http::verb::post) {
      r->Error(405, "method_not_allowed", "POST /login");
      r->allow = "POST";
      return true;
    }
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    const boost::json::string* name = nullptr;
    if (!ec && v.is_object()) {
      if (const auto* u = v.as_object().if_contains("user")) name = u->if_string();
    }
    if (name == nullptr) {
      r->Error(400, "bad_request", "POST /login wants JSON {\"user\": \"...\", \"password\": ...}");
      return true;
    }
    std::string token = s.Random(32, false), sid = s.Random(32, false);
    s.tokens[token] = std::string(*name);
    s.sessions[sid] = std::string(*name);
    r->set_cookie = "sid=" + sid + "; Path=/; HttpOnly";
    Json(r, 200, [&](JsonWriter& w) { w.Key("token").String(token).Key("user").String(*name); });
    return true;
  }
  if (path == "/account") {
    auto session = s.sessions.find(std::string(CookieValue(cookie, "sid")));
    if (!authorized && session == s.sessions.end()) return unauthorized();
    const std::string& name = authorized ? user->second : session->second;
    Json(r, 200, [&](JsonWriter& w) { w.Key("user").String(name); });
    return true;
  }
  if (path == "/form") {
    if (method == http::verb::get) {
      std::string token = s.Random(32, false);
      s.csrf.insert(token);
      r->set_cookie = "csrf=" + token + "; Path=/";
      Json(r, 200, [&](JsonWriter& w) { w.Key("csrf").String(token); });
      return true;
    }
    std::string_view form = FormValue(body, "csrf");
    if (form.empty() || form != CookieValue(cookie, "csrf") ||
        !s.csrf.contains(std::string(form))) {
      r->Error(403, "csrf", "POST /form wants csrf=<token from GET /form> in the body and cookie");
      return true;
    }
    Json(r, 200, [&](JsonWriter& w) { w.Key("saved").Bool(true); });
    return true;
  }
  if (is_jwt) {
    std::string sub;
    const std::string why =
        CheckJwt(authorization.substr(authorization.find(' ') + 1), s.jwt_secret, &sub);
    if (!authorization.starts_with("Bearer ") || !why.empty()) {
      r->Error(401, "unauthorized", "GET /jwt/me wants a valid HS256 Bearer JWT: " + why);
      return true;
    }
    Json(r, 200, [&](JsonWriter& w) { w.Key("sub").String(sub); });
    return true;
  }
  // /tickets and /orders...
  if (!authorized) return unauthorized();
  if (path == "/tickets") {
    if (method != http::verb::post) {
      r->Error(405, "method_not_allowed", "POST /tickets");
      r->allow = "POST";
      return true;
    }
    const std::string ticket = s.Random(16, false);
    s.tickets.insert(ticket);
    r->status = 201;
    r->content_type = "text/plain";
    r->json_object = false;
    r->owned = "ticket " + ticket + "\n";
    r->body = r->owned;
    return true;
  }
  if (path == "/tickets/check") {
    const std::string_view query =
        target.size() > path.size() ? target.substr(path.size() + 1) : std::string_view();
    const std::string code(FormValue(query, "code"));
    if (!s.tickets.contains(code)) {
      r->Error(404, "not_found", "no ticket '" + code + "' was issued by this process");
      return true;
    }
    Json(r, 200, [&](JsonWriter& w) { w.Key("valid").Bool(true); });
    return true;
  }
  if (path == "/orders") {
    if (method != http::verb::post) {
      r->Error(405, "method_not_allowed", "POST /orders");
      r->allow = "POST";
      return true;
    }
    std::string id = s.Random(16, true);
    s.orders.insert(id);
    r->location = "/orders/" + id;
    Json(r, 201, [&](JsonWriter& w) { w.Key("id").String(id); });
    return true;
  }
  std::string id(path.substr(8));
  if (!s.orders.contains(id)) {
    r->Error(404, "not_found", "no order " + id + " was created by this process");
    return true;
  }
  Json(r, 200, [&](JsonWriter& w) { w.Key("id").String(id).Key("state").String("open"); });
  return true;
}

}  // namespace doppel::echo
