#include "recorder/request_reader.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <cctype>
#include <iterator>

#include "recorder/request_checks.h"

namespace doppel::recorder {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

}  // namespace

void RequestReader::Start() {
  parser_.emplace();
  parser_->header_limit(limits_.max_header_bytes);
  parser_->body_limit(limits_.max_body_bytes);
  in_body_ = false;
  head_read_ = false;
  version_error_ = false;
  empty_line_bytes_ = 0;
  obs_fold_ = false;
  wants_continue_ = false;
  last_chunk_short_ = false;
  chunk_data_read_ = false;
  refusal_ = {};
}

RequestReader::Event RequestReader::Parse(std::string_view bytes, size_t* consumed) {
  *consumed = 0;
  return in_body_ ? ParseBody(bytes, consumed) : ParseHead(bytes, consumed);
}

// http::async_read_header by hand, because the reader looks at the raw head. Empty lines
// before the request line are skipped (RFC 9112 2.2; Beast answers them "bad method") and
// obs-fold is noted to be refused (5.2; Beast would unfold it silently). The parser consumes
// the head in whole lines (a folded field with its continuation lines), so each consumed
// piece is checked on its own.
RequestReader::Event RequestReader::ParseHead(std::string_view bytes, size_t* consumed) {
  if (version_error_) return OnHead(http::error::bad_version, bytes);
  size_t& pos = *consumed;
  for (;;) {
    const std::string_view rest = bytes.substr(pos);
    if (h2_preface_ && first_request_ && !parser_->got_some() && empty_line_bytes_ == 0 &&
        !rest.empty()) {
      // HTTP/2 with prior knowledge (RFC 9113 3.4): the connection is not HTTP/1.x. The
      // preface is the connection's first bytes; after empty lines it is an HTTP/1.x request
      // line with version 2.0, however the bytes arrived.
      const PrefaceMatch preface = MatchH2Preface(rest);
      if (preface == PrefaceMatch::kYes) return Event::kHttp2;
      if (preface == PrefaceMatch::kPrefix) break;  // read on
    }
    if (!parser_->got_some()) {
      const size_t empty = LeadingEmptyLines(rest);
      pos += empty;
      empty_line_bytes_ += empty;
      if (empty_line_bytes_ > limits_.max_header_bytes) {
        return Refuse(ProxyFailure::kBadRequest, 400,
                      "malformed request: over " + std::to_string(limits_.max_header_bytes) +
                          " bytes of empty lines before the request line");
      }
      if (bytes.substr(pos) == "\r") break;  // one more empty line, or garbage: read on
    }
    const std::string_view data = bytes.substr(pos);
    if (data.empty()) break;
    beast::error_code ec;
    const size_t used = parser_->put(asio::buffer(data.data(), data.size()), ec);
    obs_fold_ = obs_fold_ || HasObsFold(data.substr(0, used));
    pos += used;
    if (ec == http::error::need_more) break;
    if (ec || parser_->is_header_done()) return OnHead(ec, bytes.substr(pos));
    if (used == 0) break;
  }
  return Event::kNeedMore;
}

RequestReader::Event RequestReader::OnHead(beast::error_code ec, std::string_view rest) {
  if (ec) {
    if (ec == http::error::header_limit) {
      return Refuse(ProxyFailure::kHeaderTooLarge, 431,
                    "request header over " + std::to_string(limits_.max_header_bytes) + " bytes");
    }
    if (ec == http::error::body_limit) return RefuseBodyTooLarge();
    if (ec == http::error::bad_version) {
      // 2.3: a well-formed version other than 1.x is a 505, anything else a 400; which one
      // shows once the request line is whole. Beast can report the version bad before its
      // CRLF came (it needs 8 bytes there, not the line end), so the answer would depend on
      // how the bytes arrived: wait for the line end (bounded by the header limit) while
      // the line can still end in CRLF (no LF yet, no CR but a last byte).
      const size_t cr = rest.find('\r');
      const bool line_goes_on = rest.find('\n') == std::string_view::npos &&
                                (cr == std::string_view::npos || cr + 1 == rest.size());
      if (line_goes_on && rest.size() < limits_.max_header_bytes) {
        version_error_ = true;
        return Event::kNeedMore;
      }
      if (UnsupportedVersion(rest)) {
        return Refuse(ProxyFailure::kBadRequest, 505,
                      "HTTP version not supported: use HTTP/1.1 or HTTP/1.0");
      }
    }
    // put() reports nothing but parse errors (the end of the stream is the caller's).
    return Refuse(ProxyFailure::kBadRequest, 400, "malformed request: " + ec.message());
  }
  head_read_ = true;
  first_request_ = false;
  auto& req = parser_->get();
  if (obs_fold_) {
    return Refuse(ProxyFailure::kBadRequest, 400,
                  "malformed request: obs-fold (a header line continued on the next, which "
                  "starts with a space or tab) is not allowed; send each header on one line");
  }
  switch (CheckMethod(req.method_string())) {
    case MethodCheck::kForward:
      break;
    case MethodCheck::kConnect:
      return Refuse(ProxyFailure::kBadRequest, 501,
                    "CONNECT is not supported: doppel forwards requests, it does not open "
                    "tunnels");
    case MethodCheck::kNotToken:
      return Refuse(ProxyFailure::kBadRequest, 400, "malformed request: the method is not a token");
  }
  // RFC 9112 6.1/6.3: a Transfer-Encoding whose last coding is not chunked cannot be
  // framed; Transfer-Encoding together with Content-Length, or in an HTTP/1.0 request, is
  // a smuggling vector.
  // Only chunked alone is taken (IsChunkedAlone), checked on the field itself as well as
  // Beast's reading of it.
  const size_t te_fields = req.count(http::field::transfer_encoding);
  if (te_fields != 0 &&
      (!parser_->chunked() || !IsChunkedAlone(te_fields, req[http::field::transfer_encoding]) ||
       req.version() < 11 || req.find(http::field::content_length) != req.end())) {
    return Refuse(ProxyFailure::kBadRequest, 400,
                  "malformed request: Transfer-Encoding must be chunked, without "
                  "Content-Length, and HTTP/1.1");
  }
  size_t hosts = 0;
  for (const auto& f : req) hosts += f.name() == http::field::host;
  const TargetCheck target = CheckRequestTarget(req.method_string(), req.target(), req.version(),
                                                hosts, req[http::field::host]);
  if (!target.error.empty()) {
    return Refuse(ProxyFailure::kBadRequest, 400, "malformed request: " + target.error);
  }
  if (target.absolute) {
    req.set(http::field::host, target.authority);
    req.target(target.origin);
  }
  auto expect = req.find(http::field::expect);
  wants_continue_ = expect != req.end() && beast::iequals(expect->value(), "100-continue");
  if (expect != req.end()) req.erase(http::field::expect);
  if (parser_->chunked()) {
    // Beast adds the trailer fields to the header fields; these are the real headers.
    head_fields_.clear();
    for (const auto& f : req) head_fields_.push_back(&f);
  }
  in_body_ = true;
  return Event::kHead;
}

namespace {

// Whether `left` (bytes Beast did not consume) starts with a whole last-chunk line: "0" (or
// "00"...), an extension maybe, then CRLF; after a chunk's data (`after_data`), first the CRLF
// that ends that data, which Beast reads as the start of the next chunk's line. (A chunk size
// with another digit in it, "05", is not the last chunk; without that CRLF, "hel\r\n0\r\n"
// for a 5-byte chunk, it is a bad chunk, which Beast must see.)
bool IsLastChunkLine(std::string_view left, bool after_data) {
  if (after_data) {
    if (!left.starts_with("\r\n")) return false;
    left.remove_prefix(2);
  }
  size_t zeros = 0;
  while (zeros < left.size() && left[zeros] == '0') ++zeros;
  if (zeros == 0 ||
      (zeros < left.size() && std::isxdigit(static_cast<unsigned char>(left[zeros])))) {
    return false;
  }
  return left.find("\r\n", zeros) != std::string_view::npos;
}

}  // namespace

// http::async_read's loop after the head: eager, so each call parses all it can.
RequestReader::Event RequestReader::ParseBody(std::string_view bytes, size_t* consumed) {
  size_t& pos = *consumed;
  parser_->eager(true);
  while (!parser_->is_done()) {
    const std::string_view data = bytes.substr(pos);
    if (data.empty()) return Event::kNeedMore;
    // Once Beast has read the last chunk's line ("0\r\n") and waits for the end of the
    // trailer, it asserts that it is called again with at least 5 bytes (basic_parser.ipp,
    // parse_chunk_header: BOOST_ASSERT(n >= 5)), which a client sending "0\r\n\r" in pieces
    // breaks; a build without assertions parses on correctly. Fewer than 5 bytes cannot end
    // the body there ("0\r\n\r\n" is the shortest end), so they are not given to it: the
    // answer is the need_more it would give. Beast is in that state when what it left
    // unconsumed is a whole last-chunk line (IsLastChunkLine); a chunk's data it consumes.
    if (last_chunk_short_ && data.size() < 5) return Event::kNeedMore;
    beast::error_code ec;
    const size_t used = parser_->put(asio::buffer(data.data(), data.size()), ec);
    pos += used;
    // Body bytes came out of this put (TakeBody empties the body between calls).
    chunk_data_read_ = chunk_data_read_ || !parser_->get().body().empty();
    if (ec == http::error::need_more) {
      const std::string_view left = data.substr(used);
      last_chunk_short_ = left.size() < 5 && IsLastChunkLine(left, chunk_data_read_);
      return Event::kNeedMore;
    }
    if (ec == http::error::body_limit) return RefuseBodyTooLarge();
    if (ec)
      return Refuse(ProxyFailure::kBadRequest, 400, "malformed request body: " + ec.message());
    if (used == 0 && !parser_->is_done()) return Event::kNeedMore;
  }
  if (parser_->chunked()) DropTrailers();
  return Event::kRequest;
}

// RFC 9110 6.5.1: a trailer field must not be merged into the header section (unless its
// definition allows it, which no field the proxy relies on does), and RFC 9112 7.1.2 lets a
// recipient that removes the chunked coding discard the trailer fields. Beast's parser
// inserts them among the header fields, where a trailer "Host", "Content-Length" or
// "Connection" would reach the primary as a header nobody checked (the proxy forwards the
// body re-chunked, without trailers).
void RequestReader::DropTrailers() {
  auto& req = parser_->get();
  if (static_cast<size_t>(std::distance(req.begin(), req.end())) == head_fields_.size()) return;
  std::sort(head_fields_.begin(), head_fields_.end());
  for (auto it = req.begin(); it != req.end();) {
    const bool header = std::binary_search(head_fields_.begin(), head_fields_.end(),
                                           static_cast<const void*>(&*it));
    it = header ? std::next(it) : req.erase(it);
  }
}

RequestReader::Request RequestReader::Release() {
  Parsed parsed = parser_->release();
  return Request(std::move(parsed.base()), std::move(parsed.body()));
}

void RequestReader::TakeBody(std::string* out) {
  out->clear();
  out->swap(parser_->get().body());
}

RequestReader::Framing RequestReader::ForwardFraming(const Request& request) {
  const bool chunked = request.chunked();
  if (chunked && request.body().empty()) return {false, true};
  return {chunked, request.find(http::field::content_length) != request.end()};
}

RequestReader::Event RequestReader::Refuse(ProxyFailure failure, unsigned status,
                                           std::string reason) {
  refusal_ = {failure, status, std::move(reason)};
  return Event::kRefused;
}

RequestReader::Event RequestReader::RefuseBodyTooLarge() {
  return Refuse(ProxyFailure::kBodyTooLarge, 413,
                "request body over " + std::to_string(limits_.max_body_bytes) + " bytes");
}

}  // namespace doppel::recorder
