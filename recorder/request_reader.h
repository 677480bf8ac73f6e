// The HTTP/1.x request framing and checks of the capture proxy, without I/O: bytes in, per
// request a decision out. ProxySession (proxy_session.cc) reads the socket and feeds what
// it read here; the in-process fuzz targets (tests/fuzz/http_framing.cc, http_smuggling.cc)
// feed their input the same way, so they exercise the code the proxy runs.
//
// What it does on top of Beast's request_parser (header and body limits): empty lines before
// the request line are skipped (RFC 9112 2.2), the HTTP/2 client preface is recognised, and
// the head is refused for obs-fold (5.2), an unsupported version (2.3), a method that is not
// a token or CONNECT, a Transfer-Encoding that cannot frame the body (6.1, 6.3) and a bad
// target or Host (3.2) — the rules of request_checks.h; docs/recorder.md lists the answers.
//
// Thread safety: none; one reader per connection.
#pragma once

#include <algorithm>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recorder/recorder_metrics.h"

namespace doppel::recorder {

class RequestReader {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  // The body as the parser fills it: a std::string, as Beast's string_body, but for a
  // declared length it reserves no more than kReserveBytes up front. string_body reserves the
  // whole Content-Length, which for a body that streams to the primary in pieces (TakeBody)
  // was address space for all of it (1 GiB for a 1 GiB upload), and for a length under a
  // large --max-request-body an allocation that could fail and throw.
  struct Body {
    static constexpr uint64_t kReserveBytes = 1 << 20;
    using value_type = std::string;
    class reader {
     public:
      template <bool isRequest, class Fields>
      reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}
      void init(const boost::optional<std::uint64_t>& length, boost::beast::error_code& ec) {
        if (length) body_.reserve(static_cast<size_t>(std::min<uint64_t>(*length, kReserveBytes)));
        ec = {};
      }
      template <class ConstBufferSequence>
      size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
        const size_t extra = boost::beast::buffer_bytes(buffers);
        const size_t size = body_.size();
        body_.resize(size + extra);
        char* dest = body_.data() + size;
        for (auto b : boost::beast::buffers_range_ref(buffers)) {
          std::memcpy(dest, b.data(), b.size());
          dest += b.size();
        }
        ec = {};
        return extra;
      }
      void finish(boost::beast::error_code& ec) { ec = {}; }

     private:
      value_type& body_;
    };
  };
  using Parsed = boost::beast::http::request<Body>;

  struct Limits {
    uint32_t max_header_bytes = 0;  // request line and headers (and empty lines before them)
    uint64_t max_body_bytes = 0;    // the body, decoded
  };

  // What Parse found.
  enum class Event {
    kNeedMore,  // every byte given was consumed (or is kept for later): read more
    kHttp2,     // the bytes start with the HTTP/2 client preface (none consumed)
    kHead,      // the request head is complete and passed the checks: request() holds it,
                // the body (if any) follows with the next Parse calls
    kRequest,   // the request is complete, body and all: Release() it (a chunked body's
                // trailer fields are dropped, never merged into the headers)
    kRefused,   // the request is refused: refusal() says how to answer
  };

  // How the proxy answers a refused request. The connection is closed after the answer:
  // the rest of the request is unread, so its end is unknown.
  struct Refusal {
    ProxyFailure failure = ProxyFailure::kBadRequest;
    unsigned status = 400;
    std::string reason;
  };

  // `h2_preface`: whether a connection may switch to HTTP/2 with prior knowledge (plaintext
  // only; over TLS ALPN decided before).
  RequestReader(Limits limits, bool h2_preface) : limits_(limits), h2_preface_(h2_preface) {}

  // Starts the next request on the connection. REQUIRES: before the first Parse, and after
  // each kRequest.
  void Start();

  // Parses the front of `bytes` (what the connection has buffered, unconsumed) and sets
  // `*consumed` to how many bytes were used; the caller drops those and calls again with the
  // rest and whatever it reads next. Consumed bytes are never needed again: the body is
  // copied into the request as it is parsed. After kHead the next call goes on with the body
  // (it returns kRequest without consuming anything when there is none). After kRefused or
  // kHttp2, only Start resets the reader.
  //
  // The body is parsed into the request's body, where it stays until the request is complete
  // or TakeBody() takes what came so far (a body that streams to the primary).
  Event Parse(std::string_view bytes, size_t* consumed);

  // Whether the current request's head was read whole and parsed (kHead, or a refusal by
  // the checks that follow the parse).
  bool head_read() const { return head_read_; }
  // After kHead: whether the body is complete too (none, or it came with the head).
  bool body_done() const { return parser_->is_done(); }
  // After kHead: whether the body is chunked (Transfer-Encoding: chunked, checked).
  bool chunked() const { return parser_->chunked(); }
  // After kHead: the body's length, when the client declared it (Content-Length).
  std::optional<uint64_t> content_length() const {
    const auto length = parser_->content_length();
    return length ? std::optional<uint64_t>(*length) : std::nullopt;
  }
  // After kHead: the body bytes parsed and not yet taken.
  size_t body_buffered() const { return parser_->get().body().size(); }
  // After kHead: moves the body bytes parsed so far into `*out` (its old contents are
  // dropped); later Parse calls collect the next ones.
  void TakeBody(std::string* out);
  // After kHead: the client asked for "100 Continue" (the Expect field is removed from the
  // request, the proxy answers it itself).
  bool wants_continue() const { return wants_continue_; }
  // After kRefused.
  const Refusal& refusal() const { return refusal_; }

  // The request being read: after kHead its checked head (an absolute-form target already
  // rewritten to origin form with its authority as Host), after a refusal what was read of
  // it. REQUIRES: Start was called.
  const Parsed& request() const { return parser_->get(); }
  // After kRequest: the complete request, moved out.
  Request Release();

  // How a complete request is framed toward the primary (Exchange::Forward's `chunked` and
  // `had_length`): a chunked body is re-chunked; otherwise a Content-Length is sent when the
  // client sent one (or there is a body). A chunked request with an empty body goes with
  // Content-Length: 0 instead: Beast's serializer writes an empty body as an empty chunk
  // followed by the last chunk, and the primary would read the second "0\r\n\r\n" as the
  // start of another request on a pooled connection.
  struct Framing {
    bool chunked = false;
    bool content_length = false;
  };
  static Framing ForwardFraming(const Request& request);

 private:
  using Parser = boost::beast::http::request_parser<Body>;

  Event ParseHead(std::string_view bytes, size_t* consumed);
  Event ParseBody(std::string_view bytes, size_t* consumed);
  // The head is complete (ec clear) or failed: the checks, or the refusal for ec.
  Event OnHead(boost::system::error_code ec, std::string_view rest);
  Event Refuse(ProxyFailure failure, unsigned status, std::string reason);
  Event RefuseBodyTooLarge();
  void DropTrailers();

  Limits limits_;
  bool h2_preface_;
  bool first_request_ = true;  // no request head was read yet: HTTP/2 may start
  std::optional<Parser> parser_;
  bool in_body_ = false;  // kHead was returned
  bool head_read_ = false;
  bool version_error_ = false;   // Beast found the version bad; the line end is not here yet
  size_t empty_line_bytes_ = 0;  // skipped before the current request line
  bool obs_fold_ = false;        // the current request head has an obs-fold
  bool wants_continue_ = false;
  // Beast stopped on the last chunk's line with fewer than 5 bytes buffered (ParseBody).
  bool last_chunk_short_ = false;
  bool chunk_data_read_ = false;  // a chunk's data was read: a CRLF ends it
  // A chunked request's header fields when its head was read (Beast adds the trailer fields
  // to them): their addresses, stable in Beast's field list.
  std::vector<const void*> head_fields_;
  Refusal refusal_;
};

}  // namespace doppel::recorder
