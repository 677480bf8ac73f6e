// Fuzz target: request smuggling. The bytes of one client connection go to the capture
// proxy's request reader (recorder/request_reader.h, read as http_framing.cc reads them,
// with the proxy's default limits) and to nodejs's http-parser (Debian's libhttp-parser,
// HTTP_REQUEST), and the requests the proxy would forward are compared with what
// http-parser makes of the same bytes. Then the forwarded requests themselves
// (ForwardedBytes, one after another on one upstream connection) go to http-parser, which
// stands for the primary.
//
// Properties (each failure aborts; an allowed divergence is a row of kAllowed below, each
// documented in tests/fuzz/README.md with its RFC section):
//   client side, for every request the proxy forwards, in order: http-parser parsed a
//     message there too, complete, with the same body bytes (so the same number of messages
//     up to that point, the same body length, no body where it saw none); or it rejected the
//     message for a reason in kAllowed whose condition holds. A rejection for framing
//     (Content-Length with Transfer-Encoding, two Content-Lengths, a bad Content-Length or
//     chunk size, a Transfer-Encoding that is not chunked, a bare CR) is never allowed; the
//     one chunk-line row is a tab before a chunk extension, with the size itself read alike.
//   upstream side: the forwarded bytes parse as exactly the forwarded requests (same count,
//     same body bytes), with no error but the allowed ones.
//
// Debian builds http-parser with HTTP_PARSER_STRICT=0 (it accepts "Foo Bar: x" as a header
// and a raw 0xFF in the target, which strict mode refuses): the framing checks that matter
// here (Content-Length, Transfer-Encoding, chunk sizes, CRLF after a header line) are made in
// both modes. An upgrade request ends the comparison: http-parser hands the rest of the
// connection to the other protocol; the proxy ignores Upgrade (RFC 9110 7.8) and strips it,
// except an HTTP/1.1 GET asking for WebSocket, whose connection it relays unparsed after the
// primary's 101 (and reads as HTTP/1.x again when the primary answers otherwise).
#include <http_parser.h>

#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.h"
#include "recorder/recorder.h"
#include "recorder/request_checks.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/proxy_requests.h"

namespace {

using doppel::fuzz::ReadRequest;
using doppel::fuzz::ReadResult;
using doppel::recorder::RequestReader;

// What http-parser made of a byte stream.
struct HpMessage {
  std::string method;
  std::string body;
  bool complete = false;
};
struct HpResult {
  std::vector<HpMessage> messages;
  http_errno error = HPE_OK;
  size_t stopped_at = 0;  // with an error: the offset of the byte it stopped at
  bool upgrade = false;   // stopped after an upgrade request: the rest is another protocol
};

HpResult HpParse(std::string_view bytes) {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = [](http_parser* p) {
      static_cast<HpResult*>(p->data)->messages.emplace_back();
      return 0;
    };
    s.on_headers_complete = [](http_parser* p) {
      static_cast<HpResult*>(p->data)->messages.back().method =
          http_method_str(static_cast<http_method>(p->method));
      return 0;
    };
    s.on_body = [](http_parser* p, const char* at, size_t n) {
      static_cast<HpResult*>(p->data)->messages.back().body.append(at, n);
      return 0;
    };
    s.on_message_complete = [](http_parser* p) {
      static_cast<HpResult*>(p->data)->messages.back().complete = true;
      return 0;
    };
    // The proxy's own header limit (431) comes first; http-parser's 80 KB default must not.
    http_parser_set_max_header_size(1u << 24);
    return s;
  }();
  HpResult out;
  http_parser parser;
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &out;
  out.stopped_at = http_parser_execute(&parser, &settings, bytes.data(), bytes.size());
  out.error = HTTP_PARSER_ERRNO(&parser);
  out.upgrade = parser.upgrade != 0;
  return out;
}

// Whether `method` is one http-parser knows (it refuses the others as HPE_INVALID_METHOD).
bool HpKnowsMethod(std::string_view method) {
  for (int m = 0;; ++m) {
    const std::string_view name = http_method_str(static_cast<http_method>(m));
    if (name == "<unknown>") return false;
    if (name == method) return true;
  }
}

// RFC 3986 3.3/3.4: the characters a path and query may hold (pchar, "/", "?"), "%" not
// checked for its two hex digits.
bool IsUriChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-._~!$&'()*+,;=:@/?%").find(c) != std::string_view::npos;
}

// Whether `v` (a Content-Length value or list item, OWS trimmed) is 1*DIGIT with the value
// `n` (leading zeros allowed: RFC 9110 8.6 says "decimal").
bool IsLength(std::string_view v, uint64_t n) {
  v = doppel::TrimSpaces(v);
  if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) return false;
  while (v.size() > 1 && v.front() == '0') v.remove_prefix(1);
  return v == std::to_string(n);
}

// Whether the request has no Transfer-Encoding and every Content-Length value (each field,
// each comma-separated item) is the body's length: whatever http-parser objects to in them,
// both frame the body alike.
bool OneLength(const RequestReader::Request& req) {
  if (req.count(boost::beast::http::field::transfer_encoding) != 0) return false;
  for (const auto& f : req) {
    if (f.name() != boost::beast::http::field::content_length) continue;
    std::string_view v = f.value();
    for (;;) {
      const size_t comma = v.find(',');
      if (!IsLength(v.substr(0, comma), req.body().size())) return false;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return true;
}

// An allowed divergence: http-parser rejects, with `error`, a message the proxy forwards,
// and `holds` (the forwarded request) says the divergence is the documented one, not a
// framing difference. `rfc` is the section that allows the proxy's answer.
struct Allowed {
  http_errno error;
  const char* rfc;
  bool (*holds)(const RequestReader::Request& req);
  // When set, also: the bytes http-parser stopped at (its input, the offset) are the
  // documented divergence.
  bool (*stopped_on)(std::string_view bytes, size_t at) = nullptr;
};

// Whether http-parser stopped at a tab that directly follows the hex digits of a chunk-size
// line (the line after a CRLF): BWS before a chunk extension ("0\t;ext").
bool TabAfterChunkSize(std::string_view bytes, size_t at) {
  if (at >= bytes.size() || bytes[at] != '\t') return false;
  size_t digits = at;
  while (digits > 0 && std::isxdigit(static_cast<unsigned char>(bytes[digits - 1]))) --digits;
  return digits < at && digits >= 2 && bytes.substr(digits - 2, 2) == "\r\n";
}

const Allowed kAllowed[] = {
    // An extension method: any token is a method; http-parser knows a fixed list.
    {HPE_INVALID_METHOD, "RFC 9110 9.1, RFC 9112 3.1",
     [](const RequestReader::Request& req) { return !HpKnowsMethod(req.method_string()); }},
    // A target with bytes a URI cannot hold (Beast takes any visible byte and obs-text): the
    // proxy forwards the target as sent, it records what clients send. Framing is not
    // involved: the request line ends at its CRLF for both.
    {HPE_INVALID_URL, "RFC 9112 3.2 (a SHOULD, not a MUST: 400 or a redirect)",
     [](const RequestReader::Request& req) {
       for (const char c : req.target()) {
         if (!IsUriChar(c)) return true;
       }
       return false;
     }},
    // Content-Length repeated with one value ("3" twice, or "3, 3"): the same framing for
    // both; the proxy forwards a single Content-Length (Exchange::Forward sets it from the
    // body). Any other Content-Length trouble (differing values, with Transfer-Encoding) is a
    // finding.
    {HPE_UNEXPECTED_CONTENT_LENGTH, "RFC 9110 8.6, RFC 9112 6.3 (5)", OneLength},
    // Content-Length with tabs around its value: OWS is spaces and tabs, and Beast trims it;
    // http-parser 2.9.4 takes a trailing space but not a tab.
    {HPE_INVALID_CONTENT_LENGTH, "RFC 9110 5.5 (OWS around a field value), 8.6", OneLength},
    // A field whose name only starts with "Transfer-Encoding" ("Transfer-Encodingc",
    // "Transfer-Encoding-Foo"): http-parser 2.9.4 marks the message as using
    // Transfer-Encoding when the name's prefix matches, then refuses its value as not
    // chunked. It is another field; the request's Transfer-Encoding, if any, is chunked alone
    // (checked here).
    // A tab between a chunk's size and its extension ("0\t;ext"): BWS, which a recipient
    // MUST parse; http-parser 2.9.4 takes a space there but not a tab. The size is the same
    // for both, and the proxy forwards the body re-chunked, without extensions (the upstream
    // side then checks that framing).
    {HPE_INVALID_CHUNK_SIZE, "RFC 9112 7.1.1 (BWS before a chunk-ext), RFC 9110 5.6.3",
     [](const RequestReader::Request&) { return true; }, TabAfterChunkSize},
    // "Transfer-Encoding: chunked" with a tab after it (or on a line folded into it): a field
    // value excludes the whitespace, SP or HTAB, around it, and Beast trims both; http-parser
    // 2.9.4 ends the coding name at a space only and refuses "chunked<HTAB>". The forwarded
    // request is chunked alone (checked here), and so was the message: every earlier one
    // passed http-parser, so the tab is in the head it refused. The response target has the
    // same allowance.
    {HPE_INVALID_TRANSFER_ENCODING, "RFC 9110 5.5 (OWS around a field value)",
     [](const RequestReader::Request& req) {
       const size_t te = req.count(boost::beast::http::field::transfer_encoding);
       return te != 0 && doppel::recorder::IsChunkedAlone(
                             te, req[boost::beast::http::field::transfer_encoding]);
     },
     [](std::string_view bytes, size_t at) {
       return doppel::fuzz::TransferEncodingHasTab(bytes.substr(0, at));
     }},
    {HPE_INVALID_TRANSFER_ENCODING, "RFC 9110 5.1 (a field name is the whole token)",
     [](const RequestReader::Request& req) {
       const size_t te = req.count(boost::beast::http::field::transfer_encoding);
       if (te != 0 && !doppel::recorder::IsChunkedAlone(
                          te, req[boost::beast::http::field::transfer_encoding])) {
         return false;
       }
       for (const auto& f : req) {
         const std::string_view name = f.name_string();
         if (name.size() > 17 && boost::beast::iequals(name.substr(0, 17), "transfer-encoding")) {
           return true;
         }
       }
       return false;
     }},
};

// Why http-parser's error (hp.error, at hp.stopped_at in `bytes`) on `req` is allowed, or
// nullptr when it is a finding.
const char* AllowedBecause(http_errno error, size_t stopped_at, const RequestReader::Request& req,
                           std::string_view bytes) {
  for (const Allowed& a : kAllowed) {
    if (a.error == error && a.holds(req) &&
        (a.stopped_on == nullptr || a.stopped_on(bytes, stopped_at))) {
      return a.rfc;
    }
  }
  return nullptr;
}

std::string Show(std::string_view bytes) {
  std::string out;
  for (const char c : bytes.substr(0, 600)) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[c & 15];
    } else {
      out += c;
    }
  }
  return out;
}

// The forwarded requests `doppel` against http-parser's reading `hp` of the same bytes.
void Compare(const std::vector<ReadRequest>& doppel, const HpResult& hp, std::string_view side,
             std::string_view bytes) {
  for (size_t i = 0; i < doppel.size(); ++i) {
    const auto& req = doppel[i].request;
    const std::string where = std::string(side) + ": request " + std::to_string(i) + " (" +
                              std::string(req.method_string()) + " " + std::string(req.target()) +
                              ")\n" + Show(bytes);
    const bool hp_has = i < hp.messages.size() && hp.messages[i].complete;
    if (!hp_has) {
      // The last message http-parser began, if any, is the one it stopped in.
      if (hp.upgrade && i == hp.messages.size()) return;  // the rest is another protocol
      FUZZ_CHECK(hp.error != HPE_OK,
                 "the proxy forwards a message http-parser still waits "
                 "for (a longer body): " +
                     where);
      const char* why = AllowedBecause(hp.error, hp.stopped_at, req, bytes);
      FUZZ_CHECK(why != nullptr, std::string("the proxy forwards a message http-parser rejects: ") +
                                     http_errno_name(hp.error) + ": " + where);
      return;  // http-parser read no further
    }
    // The HPE_INVALID_TRANSFER_ENCODING divergences of kAllowed ("chunked<HTAB>", a field
    // name that only starts with Transfer-Encoding), on an upgrade request: http-parser
    // 2.9.4 does not see the body as chunked, so the request has no body to it, and with
    // Connection: upgrade it ends the message at the head and takes what follows as the new
    // protocol's, where it would otherwise refuse the Transfer-Encoding. The proxy reads (and
    // forwards) the chunked body, re-chunked. Allowed on the same conditions.
    if (hp.upgrade && i + 1 == hp.messages.size() && hp.messages[i].body.empty() &&
        doppel[i].chunked &&
        AllowedBecause(HPE_INVALID_TRANSFER_ENCODING, doppel[i].end, req, bytes) != nullptr) {
      return;
    }
    FUZZ_CHECK(hp.messages[i].body == req.body(),
               "body differs: proxy " + std::to_string(req.body().size()) + " bytes, http-parser " +
                   std::to_string(hp.messages[i].body.size()) + ": " + where);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  static const RequestReader::Limits limits = [] {
    const doppel::recorder::RecorderOptions o;
    return RequestReader::Limits{o.max_header_bytes, o.max_request_body};
  }();
  const ReadResult read = doppel::fuzz::ReadRequests(bytes, limits);
  if (read.end == ReadResult::End::kHttp2) return 0;  // not HTTP/1.x: the HTTP/2 session's
  const HpResult hp = HpParse(bytes);
  Compare(read.requests, hp, "client", bytes);
  const size_t n = read.requests.size();
  // A proxy still waiting for a body is not compared: it forwarded nothing yet, and Debian's
  // lenient http-parser ends a chunked body on "0\r\n\r" followed by anything, where the
  // proxy waits for the LF. Were the proxy's body longer than http-parser's, the bytes that
  // complete it make the comparison above fail.

  // What the primary reads: the forwarded requests on one connection.
  std::string upstream;
  for (const auto& r : read.requests) {
    upstream += doppel::fuzz::ForwardedBytes(r.request, r.chunked, r.had_length);
  }
  const HpResult up = HpParse(upstream);
  // The allow-list looks at the requests as forwarded (hop-by-hop fields gone, the framing
  // re-done): doppel's reader reads them back (http_framing checks that it reads back the
  // same requests).
  const ReadResult forwarded = doppel::fuzz::ReadRequests(upstream, {1u << 24, uint64_t{1} << 32});
  Compare(forwarded.requests.size() == n ? forwarded.requests : read.requests, up, "upstream",
          upstream);
  size_t complete = 0;
  for (const auto& m : up.messages) complete += m.complete;
  if (complete >= n) {
    // Every forwarded request parsed: nothing may follow them on the connection.
    FUZZ_CHECK(up.error == HPE_OK && complete == n && up.messages.size() == n,
               "the primary reads more than the forwarded requests (" + std::to_string(n) +
                   "): " + http_errno_name(up.error) + "\n" + Show(upstream));
  }
  return 0;
}
