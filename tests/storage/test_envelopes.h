// Envelopes for storage tests.
#pragma once

#include <string>

#include "doppel/v1/envelope.pb.h"

namespace doppel::storage::testing {

// A plausible JSON API envelope; `i` varies ids, paths and bodies.
doppel::v1::Envelope MakeEnvelope(uint64_t arrival_us, uint32_t seq, int i = 0);
std::string TempDir(const std::string& name);

}  // namespace doppel::storage::testing
