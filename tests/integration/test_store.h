// A session written straight into a store, for integration tests that run the doppel binary
// on it (replay, noise learn, sessions, runs).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::testing {

// Creates session `name` in the store at `store` (the store too, when missing), appends
// `envelopes` and closes it, as `doppel record` would have left it. The store is closed again
// on return, so a doppel process can open it.
Status WriteSession(const std::string& store, const std::string& name,
                    const std::vector<v1::Envelope>& envelopes);

}  // namespace doppel::testing
