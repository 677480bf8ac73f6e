// What an envelope's proxy error (doppel.v1.ProxyError, proto/doppel/v1/envelope.proto) says
// about its request: whether the request ever went to the primary.
#pragma once

#include "doppel/v1/envelope.pb.h"

namespace doppel::storage {

// True when the recording proxy refused the request itself and never forwarded it to the
// primary: PROXY_ERROR_BAD_REQUEST (malformed, incomplete or timed-out request, header block
// too large; a connection that sent a lone "\n" is stored so, with an empty method) and
// PROXY_ERROR_BODY_TOO_LARGE (over --max-request-body). Such an envelope holds at most part of
// a request, which production never served: replay, HAR and curl export and `noise learn`
// leave it out and count it. An error value this build does not know counts as refused too.
//
// False for PROXY_ERROR_NONE and the upstream errors (UPSTREAM_CONNECT, UPSTREAM_RESET,
// UPSTREAM_TIMEOUT): the proxy had read the whole request and sent it to (or tried to reach)
// the primary, so it is real traffic and stays replayable; only the primary's response is
// missing, so replay has nothing to compare the target's answer with.
inline bool ProxyRefused(const doppel::v1::Envelope& envelope) {
  switch (envelope.error()) {
    case doppel::v1::PROXY_ERROR_NONE:
    case doppel::v1::PROXY_ERROR_UPSTREAM_CONNECT:
    case doppel::v1::PROXY_ERROR_UPSTREAM_RESET:
    case doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT:
      return false;
    case doppel::v1::PROXY_ERROR_BAD_REQUEST:
    case doppel::v1::PROXY_ERROR_BODY_TOO_LARGE:
      return true;
    default:
      return true;
  }
}

}  // namespace doppel::storage
