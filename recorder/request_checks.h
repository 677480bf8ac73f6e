// Syntax checks on a request head that the capture proxy makes on top of Beast's parser:
// pure functions on bytes and strings, no sockets and no Beast, so each rule is unit-tested
// on its own (tests/recorder/request_checks_test.cc). RFC section numbers are RFC 9112
// (HTTP/1.1) unless said otherwise; docs/recorder.md lists the resulting behaviour.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace doppel::recorder {

// 2.2: the length of the empty lines (CRLF, or a bare LF) at the front of `bytes`, which a
// server skips before a request line. A CR at the very end is not counted: its LF may be
// still on the way.
size_t LeadingEmptyLines(std::string_view bytes);

// 5.2: whether request-head bytes hold an obs-fold, a line break followed by SP or HTAB (a
// header value continued on the next line).
bool HasObsFold(std::string_view head);

// 6.1, 7: whether a request's Transfer-Encoding (`fields`: how many Transfer-Encoding fields
// it has, `value` the first one's value) is chunked alone, the one transfer coding the proxy
// takes. "chunked, gzip" (chunked not last), "gzip, chunked" (a coding it would have to
// decode) and "chunked, chunked" are not; neither is a value Beast's list parser stops reading
// early ("chunked, \x91zip" looked chunked to it).
bool IsChunkedAlone(size_t fields, std::string_view value);

// RFC 9110 5.6.2: token = 1*tchar.
bool IsToken(std::string_view s);

// RFC 9110 9.1: any token is a method (case-sensitive) and is forwarded as sent, extension
// methods such as M-SEARCH or PROPFIND included; CONNECT asks for a tunnel, which the
// proxy does not open (answered 501).
enum class MethodCheck { kForward, kConnect, kNotToken };
MethodCheck CheckMethod(std::string_view method);

// RFC 9110 7.2 with RFC 3986 3.2.2-3.2.3: a Host value (or an absolute target's authority) is
// a reg-name or IPv4 address, or an IP literal in brackets (IPv6, IPvFuture), optionally
// followed by ":" and a port of digits, at most 65535 (an empty port is allowed, as in RFC
// 3986). An empty host, user info, spaces or other characters a URI host cannot hold are
// refused. Returns why, or "" when the value is fine.
std::string CheckHost(std::string_view host);

// 2.3: whether the request line at the front of `head` ends in "HTTP/" DIGIT "." DIGIT with
// a version other than 1.0 and 1.1 (answered 505; Beast reports it like garbage, as
// bad_version). False when `head` holds no complete request line.
bool UnsupportedVersion(std::string_view head);

// How a request's target is forwarded (3.2).
struct TargetCheck {
  std::string error;      // why the request is refused; "" when it can be forwarded
  bool absolute = false;  // absolute form: forward `origin` with `authority` as Host
  std::string authority;
  std::string origin;
};

// 3.2: at most one Host field (`host_fields` is how many the request has, `host` its
// value), required in HTTP/1.1 (`version` 11); a target in origin form, absolute form (http
// or https) or "*" with OPTIONS only (3.2.4). An absolute-form target is forwarded in origin
// form with its authority as Host, as a gateway must. The Host that is forwarded must pass
// CheckHost.
TargetCheck CheckRequestTarget(std::string_view method, std::string_view target, unsigned version,
                               size_t host_fields, std::string_view host);

// RFC 9113 3.4: whether `bytes` (the first bytes of a connection) are the HTTP/2 client
// preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (kYes: HTTP/2 with prior knowledge follows), a
// proper prefix of it (kPrefix: read more before deciding), or not (kNo: HTTP/1.x).
enum class PrefaceMatch { kNo, kPrefix, kYes };
PrefaceMatch MatchH2Preface(std::string_view bytes);

}  // namespace doppel::recorder
