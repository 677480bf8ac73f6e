// Syntax checks on a request head that the capture proxy makes on top of Beast's parser:
// pure functions on bytes and strings, no sockets and no Beast, so each rule is unit-tested
// on its own (tests/recorder/request_checks_test.cc). RFC section numbers are RFC 9112
// (HTTP/1.1) unless said otherwise; docs/recorder.md lists the resulting behaviour.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace doppel::recorder {

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

// 3.2: at most one Host field (`host_fields` is how many the request has), required in
// HTTP/1.1 (`version` 11); a target in origin form, absolute form (http or https) or "*"
// with OPTIONS. An absolute-form target is forwarded in origin form with its authority as
// Host, as a gateway must.
TargetCheck CheckRequestTarget(std::string_view method, std::string_view target, unsigned version,
                               size_t host_fields);

}  // namespace doppel::recorder
