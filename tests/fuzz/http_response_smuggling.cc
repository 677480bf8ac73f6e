// Fuzz target: response framing on a pooled upstream connection. The input is what the
// primary sends on one keep-alive connection (after its first byte, whose bits say which of
// up to 8 requests were HEAD); it is read as net/http_client.cc's streaming read does
// (Exchange::ReadHead and its body pieces: Beast's response_parser with the client's default
// header limit, no body limit, skip() for a HEAD, interim 1xx responses skipped, the next
// response read from the bytes left in the connection's buffer while the connection is kept
// alive) and by nodejs's http-parser (HTTP_RESPONSE, the body skipped for a HEAD, the end of
// input signalled for a close-delimited body).
//
// Property: for every final response the pool would hand to the proxy, http-parser parsed a
// complete response there too, with the same status and the same body bytes. Allowed (and
// the end of the comparison): a 204 or 304 with a Content-Length, which has no body (RFC 9112
// 6.3 (1)) while http-parser 2.9.4 reads one; the last response doppel reads from a
// connection it does not reuse (nothing after it is read; see the loop); and the others
// listed with their RFC sections at the end of LLVMFuzzerTestOneInput. A difference means a
// response body that ends elsewhere for the primary than for doppel, which on a reused connection
// gives one client another's answer.
//
// The parser settings are repeated from net/http_client.cc (its read is asynchronous and
// bound to a socket); the parser is the same Beast code. The pool reads the rest of a
// Content-Length body from the socket around the parser once nothing of it is buffered
// (Exchange::ReadPiece), asking for no more than the parser's content_length_remaining():
// the body ends where the parser would end it, which is what this target reads.
#include <http_parser.h>

#include <boost/beast/http.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/strings.h"
#include "net/headers.h"
#include "net/http_client.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

namespace http = boost::beast::http;

struct Response {
  unsigned status = 0;
  std::string body;
  bool complete = false;
  bool reused = false;  // doppel: the connection goes back to the pool after it
  // doppel: no Transfer-Encoding, and every Content-Length value (fields, list items) is
  // digits equal to the body length.
  bool one_length = false;
  // doppel: an interim (1xx) response before it had framing fields, which it ignores.
  bool framed_interim = false;
  bool chunk_ext = false;  // doppel: a chunk line had an extension (and maybe BWS before it)
  // doppel: a Transfer-Encoding line of the head has a tab in its value (OWS around "chunked").
  bool te_tab = false;
};

// `size`: the body's length, or nullopt for the answer to a HEAD (no body: the values need
// only agree).
bool OneLength(const http::fields& fields, std::optional<uint64_t> size) {
  if (fields.count(http::field::transfer_encoding) != 0) return false;
  std::string expected = size ? std::to_string(*size) : std::string();
  for (const auto& f : fields) {
    if (f.name() != http::field::content_length) continue;
    std::string_view v = f.value();
    for (;;) {
      const size_t comma = v.find(',');
      std::string_view one = doppel::TrimSpaces(v.substr(0, comma));
      if (one.empty() || one.find_first_not_of("0123456789") != std::string_view::npos) {
        return false;
      }
      while (one.size() > 1 && one.front() == '0') one.remove_prefix(1);
      if (expected.empty()) expected = std::string(one);
      if (one != expected) return false;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return true;
}

// doppel's pool: the final responses it hands on, in order.
std::vector<Response> DoppelRead(std::string_view bytes, uint8_t head_mask) {
  static const uint32_t header_limit = doppel::net::ClientOptions{}.max_response_header;
  std::vector<Response> out;
  size_t pos = 0;
  for (int request = 0; request < 8; ++request) {
    const bool head = (head_mask >> request) & 1;
    std::optional<http::response_parser<http::string_body>> parser;
    bool framed_interim = false;
    size_t head_start = pos;
    for (;;) {  // interim responses, then the final one
      head_start = pos;
      parser.emplace();
      parser->header_limit(header_limit);
      // The pool's streaming read has no body limit (it holds no body); the body is collected
      // here to compare it, so over 1 MiB is not followed (string_body would reserve a claimed
      // Content-Length at once).
      parser->body_limit(1u << 20);
      if (head) parser->skip(true);
      boost::system::error_code ec;
      // The head, then (eager) the body: all the bytes are here.
      while (!parser->is_header_done()) {
        const std::string_view rest = bytes.substr(pos);
        if (rest.empty()) return out;  // the connection ended before a response
        pos += parser->put(boost::asio::buffer(rest.data(), rest.size()), ec);
        if (ec == http::error::need_more) return out;  // incomplete head at the end
        if (ec) return out;                            // malformed: kBadResponse
      }
      const unsigned status = parser->get().result_int();
      if (status >= 100 && status < 200 && status != 101) {
        // (by name prefix: http-parser 2.9.4 takes "Transfer-EncodingX" for the field)
        for (const auto& f : parser->get()) {
          const std::string_view name = f.name_string();
          framed_interim = framed_interim ||
                           boost::beast::iequals(name.substr(0, 17), "transfer-encoding") ||
                           boost::beast::iequals(name.substr(0, 14), "content-length");
        }
        continue;
      }
      break;
    }
    const bool te_tab =
        doppel::fuzz::TransferEncodingHasTab(bytes.substr(head_start, pos - head_start));
    bool chunk_ext = false;
    auto on_chunk = [&chunk_ext](uint64_t, std::string_view ext, boost::system::error_code&) {
      chunk_ext = chunk_ext || !ext.empty();
    };
    parser->on_chunk_header(on_chunk);
    parser->eager(true);
    while (!parser->is_done()) {
      const std::string_view rest = bytes.substr(pos);
      boost::system::error_code ec;
      if (rest.empty()) {
        parser->put_eof(ec);  // the primary closed: a close-delimited body ends here
        if (ec) return out;   // cut short: the client gets a truncated body, never reused
        break;
      }
      pos += parser->put(boost::asio::buffer(rest.data(), rest.size()), ec);
      if (ec == http::error::need_more) {
        // All the bytes are here: what is left cannot complete the body.
        parser->put_eof(ec);
        if (ec) return out;
        break;
      }
      if (ec) return out;
    }
    Response r;
    r.status = parser->get().result_int();
    r.body = parser->get().body();
    r.complete = true;
    r.framed_interim = framed_interim;
    r.chunk_ext = chunk_ext;
    r.te_tab = te_tab;
    r.one_length =
        OneLength(parser->get(), head ? std::nullopt : std::optional<uint64_t>(r.body.size()));
    // Exchange::OnHead: the connection goes back to the pool only when kept alive.
    r.reused =
        parser->keep_alive() && r.status != 101 && doppel::net::ReusableFraming(parser->get());
    const bool reused = r.reused;
    out.push_back(std::move(r));
    if (!reused) break;
  }
  return out;
}

struct HpState {
  std::vector<Response> responses;  // final ones
  uint8_t head_mask = 0;
  int request = 0;  // the request whose response is being parsed
  Response current;
};

struct HpResult {
  std::vector<Response> responses;
  http_errno error = HPE_OK;
};

HpResult HpRead(std::string_view bytes, uint8_t head_mask) {
  static const http_parser_settings settings = [] {
    http_parser_settings s;
    http_parser_settings_init(&s);
    s.on_message_begin = [](http_parser* p) {
      static_cast<HpState*>(p->data)->current = {};
      return 0;
    };
    s.on_headers_complete = [](http_parser* p) {
      auto* st = static_cast<HpState*>(p->data);
      st->current.status = p->status_code;
      // 1: no body (the answer to a HEAD).
      return st->request < 8 && ((st->head_mask >> st->request) & 1) ? 1 : 0;
    };
    s.on_body = [](http_parser* p, const char* at, size_t n) {
      static_cast<HpState*>(p->data)->current.body.append(at, n);
      return 0;
    };
    s.on_message_complete = [](http_parser* p) {
      auto* st = static_cast<HpState*>(p->data);
      const unsigned status = st->current.status;
      if (status >= 100 && status < 200 && status != 101) return 0;  // interim
      st->current.complete = true;
      st->responses.push_back(std::move(st->current));
      st->current = {};
      ++st->request;
      return 0;
    };
    http_parser_set_max_header_size(1u << 24);
    return s;
  }();
  HpState state;
  state.head_mask = head_mask;
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &state;
  const size_t used = http_parser_execute(&parser, &settings, bytes.data(), bytes.size());
  if (HTTP_PARSER_ERRNO(&parser) == HPE_OK && used == bytes.size()) {
    http_parser_execute(&parser, &settings, nullptr, 0);  // the end of the connection
  }
  return {std::move(state.responses), HTTP_PARSER_ERRNO(&parser)};
}

std::string Show(std::string_view bytes) {
  std::string out;
  for (const char c : bytes.substr(0, 600)) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n\n";
    } else if (b < 0x20 || b >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t head_mask = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<Response> doppel = DoppelRead(bytes, head_mask);
  const HpResult hp = HpRead(bytes, head_mask);
  for (size_t i = 0; i < doppel.size(); ++i) {
    const std::string where = "response " + std::to_string(i) + " (status " +
                              std::to_string(doppel[i].status) + ", head mask " +
                              std::to_string(head_mask) + ")\n" + Show(bytes);
    const bool same = i < hp.responses.size() && hp.responses[i].status == doppel[i].status &&
                      hp.responses[i].body == doppel[i].body;
    if (same) continue;
    // Allowed, and the end of the comparison (http-parser frames the rest otherwise):
    //  - the last response doppel reads from the connection (not reused: Connection: close,
    //    HTTP/1.0, a body to the close, or a Transfer-Encoding other than chunked alone, see
    //    net::ReusableFraming): nothing after it is read, so no other exchange can get its
    //    bytes. Its own body is what Beast frames (a Transfer-Encoding with a byte no coding
    //    has, taken for chunked or read to the close, RFC 9112 6.3 (4));
    //  - a 204 or 304, which has no body whatever its Content-Length says (RFC 9112 6.3 (1));
    //    http-parser 2.9.4 reads (or waits for) Content-Length bytes after it, or for a 1xx
    //    with Transfer-Encoding or Content-Length before it a body.
    const unsigned status = doppel[i].status;
    if (!doppel[i].reused) return 0;
    if ((status == 204 || status == 304) && doppel[i].body.empty()) return 0;
    if (doppel[i].framed_interim) return 0;  // the same for a 1xx before it
    //  - "chunked" with a tab after it: a field value excludes the whitespace (SP or HTAB)
    //    around it (RFC 9110 5.5), so Beast frames it as chunked; http-parser 2.9.4 ends
    //    the coding name at a space only and takes "chunked<HTAB>" for an unknown coding
    //    (a body to the close).
    if (doppel[i].te_tab) return 0;
    //  - a chunk extension with whitespace around its ";" (BWS, RFC 9112 7.1.1), which
    //    http-parser 2.9.4 refuses as a bad chunk size; the size is the same for both.
    if (doppel[i].chunk_ext && hp.error == HPE_INVALID_CHUNK_SIZE && i >= hp.responses.size()) {
      return 0;
    }
    //  - Content-Length repeated with one value (or leading zeros, or tabs around it): the
    //    same framing for both; http-parser 2.9.4 refuses it (RFC 9110 8.6 lets a recipient
    //    take it as one value; 5.5: OWS is spaces and tabs).
    if (doppel[i].one_length &&
        (hp.error == HPE_UNEXPECTED_CONTENT_LENGTH || hp.error == HPE_INVALID_CONTENT_LENGTH) &&
        i >= hp.responses.size()) {
      return 0;
    }
    if (i >= hp.responses.size()) {
      FUZZ_CHECK(false,
                 std::string("doppel hands on a response http-parser ") +
                     (hp.error == HPE_OK ? "has not complete"
                                         : std::string("rejects: ") + http_errno_name(hp.error)) +
                     ": " + where);
    }
    FUZZ_CHECK(hp.responses[i].status == doppel[i].status, "status differs: " + where);
    FUZZ_CHECK(false, "body differs: doppel " + std::to_string(doppel[i].body.size()) +
                          " bytes, http-parser " + std::to_string(hp.responses[i].body.size()) +
                          ": " + where);
  }
  return 0;
}
