// Envelopes for storage tests.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::storage::testing {

// A plausible JSON API envelope; `i` varies ids, paths and bodies.
doppel::v1::Envelope MakeEnvelope(uint64_t arrival_us, uint32_t seq, int i = 0);

// Creates session `name` in the store at `store_path` (the store too, when missing), appends
// `envelopes` and closes it, as `doppel record` would have left it. The store is closed again
// on return, so a doppel process can open it.
Status WriteSession(const std::string& store_path, const std::string& name,
                    const std::vector<doppel::v1::Envelope>& envelopes);

// Writes a closed session `name` to the store at `store_path` for replay tests: `gets` GETs
// of /items/<i>, then `posts` POSTs to /orders, 1 ms apart, each with Host: shop.prod, a
// redacted Authorization ("hmac:5f3c") and a recorded 200 with an empty body.
Status WriteReplaySession(const std::string& store_path, const std::string& name, int gets,
                          int posts);

}  // namespace doppel::storage::testing
