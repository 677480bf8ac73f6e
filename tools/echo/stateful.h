// doppel-echo --stateful: endpoints whose answers depend on what this process handed out
// earlier, so that a replay against a fresh process fails (401, 403, 404) unless it carries
// values from earlier live answers into later requests (replay/correlate.h, issue #16).
//
//   POST /login           JSON {"user": "...", "password": "..."} -> 200 {"token": T, "user": U}
//                         and Set-Cookie: sid=S; Path=/; HttpOnly. 400 without a "user" string.
//   GET  /account         200 {"user": U} with "Authorization: Bearer T" or the cookie sid=S
//                         this process issued; 401 otherwise.
//   POST /orders          Bearer T required (401): 201 {"id": I}, Location: /orders/I.
//   GET  /orders/{id}     Bearer T required (401); 404 unless this process created the order.
//   GET  /form            200 {"csrf": C} and Set-Cookie: csrf=C; Path=/.
//   POST /form            form body csrf=C (application/x-www-form-urlencoded) and the cookie
//                         csrf=C, both equal and issued by this process: 200 {"saved": true};
//                         403 otherwise.
//   POST /tickets         Bearer T required (401): 201, text/plain "ticket K\n" (K: 16 random
//                         hex digits; in a text body, where learning does not look).
//   GET  /tickets/check?code=K
//                         Bearer T required (401); 200 {"valid": true} when this process issued
//                         K, 404 otherwise.
//   GET  /jwt/me          with a JWT secret (--jwt-key): "Authorization: Bearer J", J an HS256
//                         JWT signed with the secret whose exp is in the future and nbf (if
//                         any) not: 200 {"sub": ...}; 401 otherwise, saying why.
// Every other request goes to the shop (shop.h). T, S and C are 32 random hex digits, I is 16
// random hex digits starting with a digit (so endpoint templating names it {id}). The state
// lives in this object, one per process, guarded by a mutex; nothing is forgotten.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <memory>
#include <string_view>

#include "tools/echo/shop.h"

namespace doppel::echo {

class StatefulApi {
 public:
  // `jwt_secret`: the HS256 secret GET /jwt/me verifies with; "" leaves that endpoint out.
  explicit StatefulApi(std::string jwt_secret = "");
  ~StatefulApi();
  StatefulApi(const StatefulApi&) = delete;
  StatefulApi& operator=(const StatefulApi&) = delete;

  // Fills *r and returns true when `target` is one of the endpoints above; false (r
  // untouched) for anything else. `authorization` and `cookie` are the request's header
  // values ("" when absent). Thread-safe.
  bool Handle(boost::beast::http::verb method, std::string_view target,
              std::string_view authorization, std::string_view cookie, std::string_view body,
              Reply* r);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace doppel::echo
