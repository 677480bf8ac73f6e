#include "interop/raw_http.h"

#include <string>

#include "base/strings.h"
#include "interop/internal.h"
#include "net/proto_headers.h"

namespace doppel::interop {
namespace {

using Headers = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

constexpr size_t kMaxHeaders = 1000;

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!IsTokenChar(c)) return false;
  return true;
}

// Reads the line starting at *pos (without its '\n' and a '\r' before it); false when no
// '\n' ends it.
bool NextLine(std::string_view raw, size_t* pos, std::string_view* line) {
  size_t nl = raw.find('\n', *pos);
  if (nl == std::string_view::npos) return false;
  *line = raw.substr(*pos, nl - *pos);
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
  *pos = nl + 1;
  return true;
}

// Start line, header fields, and the bytes after the empty line.
Status SplitHead(std::string_view raw, std::string_view* start, Headers* headers,
                 std::string_view* body) {
  size_t pos = 0;
  if (!NextLine(raw, &pos, start))
    return Status::InvalidArgument("no complete start line (the payload has no line end)");
  std::string_view line;
  while (true) {
    if (!NextLine(raw, &pos, &line))
      return Status::InvalidArgument(
          "the header section does not end (no empty line after "
          "the headers)");
    if (line.empty()) break;
    if (line[0] == ' ' || line[0] == '\t') {  // obsolete line folding: continues the last value
      if (headers->empty()) return Status::InvalidArgument("a header line starts with whitespace");
      auto* last = headers->Mutable(headers->size() - 1);
      last->set_value(last->value() + " " + std::string(TrimSpaces(line)));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon)))
      return Status::InvalidArgument("malformed header line '" + std::string(line.substr(0, 80)) +
                                     "'");
    if (static_cast<size_t>(headers->size()) >= kMaxHeaders)
      return Status::InvalidArgument("more than " + std::to_string(kMaxHeaders) + " headers");
    auto* h = headers->Add();
    h->set_name(std::string(line.substr(0, colon)));
    h->set_value(std::string(TrimSpaces(line.substr(colon + 1))));
  }
  *body = raw.substr(pos);
  return Status::Ok();
}

// Removes chunked framing. A payload cut inside a chunk keeps what arrived (*cut = true).
Status Dechunk(std::string_view in, std::string* out, bool* cut) {
  out->clear();
  *cut = false;
  size_t pos = 0;
  while (true) {
    std::string_view line;
    if (!NextLine(in, &pos, &line)) {
      *cut = true;  // the capture stopped before the last chunk
      return Status::Ok();
    }
    line = TrimSpaces(line.substr(0, line.find(';')));
    if (line.empty() || line.size() > 15)
      return Status::InvalidArgument("bad chunk size line in a chunked body");
    uint64_t size = 0;
    for (char c : line) {
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return Status::InvalidArgument("bad chunk size '" + std::string(line) + "'");
      size = size * 16 + static_cast<uint64_t>(d);
    }
    if (size == 0) return Status::Ok();  // trailers, if any, are dropped
    if (in.size() - pos < size) {
      out->append(in.substr(pos));
      *cut = true;
      return Status::Ok();
    }
    out->append(in.substr(pos, size));
    pos += size;
    if (in.substr(pos, 2) == "\r\n")
      pos += 2;
    else if (in.substr(pos, 1) == "\n")
      pos += 1;
    else if (pos < in.size())
      return Status::InvalidArgument("a chunk is not followed by a line end");
  }
}

// Body by the message's framing. Without Content-Length or chunking the rest of the payload
// is the body (a response read until close; for a request, what the capture holds).
template <typename Message>
Status ReadBody(std::string_view body, Message* m, bool no_body = false) {
  if (no_body) {  // a response to HEAD, or 1xx/204/304: headers only, whatever they say
    m->set_body_size(0);
    net::StripHopByHop(m->mutable_headers());
    return Status::Ok();
  }
  const std::string* te = net::FindHeader(m->headers(), "Transfer-Encoding");
  const std::string* cl = net::FindHeader(m->headers(), "Content-Length");
  bool truncated = false;
  uint64_t size = 0;
  if (te && AsciiLower(*te).find("chunked") != std::string::npos) {
    DOPPEL_RETURN_IF_ERROR(Dechunk(body, m->mutable_body(), &truncated));
    size = m->body().size();
  } else if (cl) {
    std::string_view v = TrimSpaces(*cl);
    if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string_view::npos)
      return Status::InvalidArgument("Content-Length '" + std::string(v.substr(0, 40)) +
                                     "' is not a number");
    size = std::stoull(std::string(v));
    if (body.size() >= size) {
      m->set_body(std::string(body.substr(0, size)));
    } else {
      m->set_body(std::string(body));
      truncated = true;  // the capture holds less than the message had
    }
  } else {
    m->set_body(std::string(body));
    size = body.size();
  }
  m->set_body_truncated(truncated);
  m->set_body_size(truncated ? std::max<uint64_t>(size, m->body().size()) : m->body().size());
  net::StripHopByHop(m->mutable_headers());
  return Status::Ok();
}

Result<uint32_t> ParseVersion(std::string_view v) {
  if (v == "HTTP/1.1") return 11u;
  if (v == "HTTP/1.0") return 10u;
  return Status::InvalidArgument("'" + std::string(v.substr(0, 20)) +
                                 "' is not HTTP/1.0 or HTTP/1.1");
}

}  // namespace

Status ParseRawRequest(std::string_view raw, doppel::v1::HttpRequest* r) {
  r->Clear();
  std::string_view start, body;
  DOPPEL_RETURN_IF_ERROR(SplitHead(raw, &start, r->mutable_headers(), &body));
  size_t sp1 = start.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : start.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || start.find(' ', sp2 + 1) != std::string_view::npos)
    return Status::InvalidArgument("request line '" + std::string(start.substr(0, 80)) +
                                   "' is not 'METHOD TARGET HTTP/1.x'");
  std::string_view method = start.substr(0, sp1);
  std::string_view target = start.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!IsToken(method)) return Status::InvalidArgument("bad request method");
  if (target.empty()) return Status::InvalidArgument("empty request target");
  auto version = ParseVersion(start.substr(sp2 + 1));
  if (!version.ok()) return version.status().WithContext("request line");
  r->set_method(std::string(method));
  r->set_version(*version);
  // Absolute-form (a request to a proxy): keep origin-form, as a server would see it.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() > scheme.size() &&
        EqualsIgnoreCase(target.substr(0, scheme.size()), scheme)) {
      std::string_view rest = target.substr(scheme.size());
      size_t slash = rest.find_first_of("/?");
      std::string_view authority = rest.substr(0, slash);
      target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
      if (!net::FindHeader(r->headers(), "Host") && !authority.empty()) {
        auto* h = r->add_headers();
        h->set_name("Host");
        h->set_value(std::string(authority));
      }
      break;
    }
  }
  // Percent-encoded beyond ASCII, as the recorder stores targets (base/strings.h).
  r->set_target(
      PercentEncodeNonAscii(target[0] == '?' ? "/" + std::string(target) : std::string(target)));
  return ReadBody(body, r);
}

Status ParseRawResponse(std::string_view raw, bool head_request, doppel::v1::HttpResponse* s) {
  s->Clear();
  std::string_view start, body;
  DOPPEL_RETURN_IF_ERROR(SplitHead(raw, &start, s->mutable_headers(), &body));
  size_t sp = start.find(' ');
  auto version = ParseVersion(start.substr(0, sp));
  if (!version.ok()) return version.status().WithContext("status line");
  std::string_view rest = sp == std::string_view::npos ? std::string_view() : start.substr(sp + 1);
  if (rest.size() < 3 || rest.find_first_not_of("0123456789") < 3 ||
      (rest.size() > 3 && rest[3] != ' '))
    return Status::InvalidArgument("status line '" + std::string(start.substr(0, 80)) +
                                   "' has no 3-digit status code");
  s->set_version(*version);
  s->set_status(static_cast<uint32_t>(std::stoul(std::string(rest.substr(0, 3)))));
  if (rest.size() > 4) s->set_reason(PercentEncodeNonAscii(rest.substr(4)));
  const uint32_t code = s->status();
  return ReadBody(body, s, head_request || code < 200 || code == 204 || code == 304);
}

}  // namespace doppel::interop
