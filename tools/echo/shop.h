// doppel-echo's data and behaviour: the catalogue generated from --seed and the shop API
// that maps a request to a Reply, with the v2 regressions. No I/O here (echo_server.cc has
// the HTTP server, json_writer.h the JSON rendering).
//
// Endpoints (GET also answers HEAD: same status and headers, no body):
//   GET  /healthz                      {"status":"ok"}
//   GET  /static/logo.txt              text/plain ASCII logo
//   GET  /api/v1/products              list; ?limit=1..100 (20) &offset>=0 (0) &category=
//   GET  /api/v1/products/{id}         one product, id 1..1000; 404 JSON error otherwise
//   GET  /api/v1/users/{id}            one user, id 1..1000
//   GET  /api/v1/orders/{id}           one order with a nested items array, id 1..1000
//   GET  /api/v1/search?q=&page=       product names containing q, 10 per page; 400 without q
//   POST /api/v1/orders                201 {"id","status","order":<the parsed body>} and a
//                                      Location header; 400 on invalid JSON or a non-object.
//                                      The id is a hash of the body (deterministic).
// Other paths answer 404, other methods 405 (with Allow); a non-numeric {id} answers 400.
// Errors are JSON: {"error":{"status":404,"code":"not_found","message":"..."}}.
//
// Data is generated from (--seed, id) once at startup; without --noise identical requests
// get byte-identical responses (no Date header either). --noise prepends "generated_at"
// (RFC 3339), "request_id" (UUID v4) and "nonce" (random hex) to every JSON object body and
// adds X-Request-Id and Date headers. gzip is used when Accept-Encoding allows it.
//
// --variant v2 makes exactly three deliberate behaviour changes, and nothing else:
//   1. GET /api/v1/products/{id}: "price" is 10 % higher (rounded to the cent). The list,
//      search and order endpoints keep the v1 prices.
//   2. GET /api/v1/users/{id}: the "email" field is missing.
//   3. GET /api/v1/search: always 500 {"error":{"code":"internal",...}}.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tools/echo/echo_server.h"
#include "tools/echo/json_writer.h"

namespace doppel::echo {

// What to send back. `body` and `gzip_body` view either `owned` or the catalogue; a Reply
// lives in its connection and is refilled per request (so `owned` keeps its capacity).
struct Reply {
  unsigned status = 200;
  std::string_view content_type = "application/json";
  std::string_view body;
  std::string_view gzip_body;  // pre-compressed `body`, or empty
  std::string owned;
  std::string_view allow;   // for 405
  std::string location;     // for 201
  std::string set_cookie;   // a Set-Cookie value (--stateful), or empty
  bool json_object = true;  // noise fields may be injected into the body

  void Reset() {
    status = 200;
    content_type = "application/json";
    body = gzip_body = allow = {};
    owned.clear();
    location.clear();
    set_cookie.clear();
    json_object = true;
  }
  void Cached(std::string_view plain, std::string_view gzip) {
    body = plain;
    gzip_body = gzip;
  }
  void Error(unsigned s, std::string_view code, std::string_view message) {
    status = s;
    owned.clear();
    JsonWriter w(&owned);
    w.BeginObject().Key("error").BeginObject();
    w.Key("status").Int(s).Key("code").String(code).Key("message").String(message);
    w.EndObject().EndObject();
    body = owned;
    gzip_body = {};
  }
};

// The catalogue and the API over it. Everything is generated in the constructor (the id
// endpoints' bodies rendered and gzipped once); immutable after that, so one Shop is shared
// by all threads.
class Shop {
 public:
  Shop(uint64_t seed, Variant variant);
  ~Shop();
  Shop(const Shop&) = delete;
  Shop& operator=(const Shop&) = delete;

  // Fills *r for one request. HEAD is answered like GET (the caller drops the body).
  void Handle(boost::beast::http::verb method, std::string_view target, std::string_view body,
              Reply* r) const;

 private:
  struct Impl;
  std::unique_ptr<const Impl> impl_;
};

}  // namespace doppel::echo
