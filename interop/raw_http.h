// Parses one HTTP/1.x message as captured on the wire (a GoReplay payload): start line,
// headers, body. Lenient where captures are (bare LF line ends, a body cut short), strict
// where a wrong guess would store garbage (a malformed start line or header, bad chunking).
#pragma once

#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::interop {

// "GET /a?b HTTP/1.1\r\n...". An absolute-form target ("http://h/a?b") becomes origin-form
// ("/a?b") and, when there is no Host header, gives one. Chunked bodies are de-chunked; a
// body shorter than its Content-Length is kept and flagged truncated with the declared
// size. Hop-by-hop headers are removed (as the recorder stores requests).
Status ParseRawRequest(std::string_view raw, doppel::v1::HttpRequest* request);

// "HTTP/1.1 200 OK\r\n...". Body framing as for requests; without Content-Length or
// chunking the rest of the payload is the body. A response to HEAD (`head_request`) and a
// 1xx, 204 or 304 response have no body whatever their headers say.
Status ParseRawResponse(std::string_view raw, bool head_request,
                        doppel::v1::HttpResponse* response);

}  // namespace doppel::interop
