// A stored session seen by class (diff/request_class.h, docs/sampling.md): the class table
// behind `doppel sessions classes`, and the minimized copy behind `doppel sessions minimize`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "diff/endpoint.h"
#include "storage/store.h"

namespace doppel::interop {

// One class of a session's envelopes.
struct ClassRow {
  std::string label;    // "GET /users/{id} 200 json:5f3a9c1e"
  uint64_t count = 0;   // envelopes
  double weighted = 0;  // the sum of their 1/inclusion_probability
  // The requests the class stood for (diff::ClassRequests): the recorder's count of them
  // when the session record has it, else `weighted`.
  double requests = 0;
  uint64_t first_us = 0;  // arrival of the first and the last
  uint64_t last_us = 0;
  std::string example;  // "METHOD TARGET" of the first envelope
};

// Every class of `session`, most envelopes first (ties: by label). Memory grows with the
// number of classes, not of envelopes.
Result<std::vector<ClassRow>> SessionClasses(storage::Store& store, std::string_view session,
                                             const diff::EndpointNamer& namer);

struct MinimizeResult {
  uint64_t classes = 0;  // classes in the session (every one is kept)
  uint64_t envelopes_in = 0;
  uint64_t envelopes_kept = 0;
  uint64_t bytes_in = 0;  // encoded envelope bytes (protobuf), before compression
  uint64_t bytes_kept = 0;
};

// Writes to a new session `out` (through SessionImport: all or nothing) the smallest set of
// `session`'s envelopes that holds `per_class` envelopes of every class (all of a class with
// fewer). Greedy weighted set cover, each envelope covering one slot of its class at the
// cost of its encoded size: since an envelope covers one class, greedy picks each class's
// `per_class` smallest envelopes, which is optimal. Two passes over the session; memory grows
// with classes x per_class. Envelopes keep their order, class and inclusion probability.
// REQUIRES: per_class >= 1.
Result<MinimizeResult> MinimizeSession(storage::Store& store, std::string_view session,
                                       const std::string& out, uint32_t per_class,
                                       const diff::EndpointNamer& namer);

}  // namespace doppel::interop
