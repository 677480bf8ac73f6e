// History for coverage sampling (docs/sampling.md, "History"): what earlier sessions of the
// same upstream say about each class's frequency, so that a new recording starts knowing
// which classes are rare instead of learning it from its first requests.
//
// A coverage session's record holds the requests the recorder counted of each class
// (SessionCounts.classes, written when it closes); those counts are used as they are. A
// session without them (interrupted, or recorded before they existed) has its counts
// estimated from its envelopes, which carry their class and inclusion probability
// (Horvitz-Thompson: the sum of 1/p over the class's envelopes). The sessions read are the
// latest `max_sessions` closed (or interrupted) recordings of the same upstream that hold
// classified envelopes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "storage/store.h"

namespace doppel::recorder {

struct ClassHistory {
  std::vector<std::string> sessions;                    // read, newest first
  std::vector<std::pair<std::string, double>> classes;  // label, requests per session
};

struct ClassHistoryOptions {
  size_t max_sessions = 3;
  // Envelopes read at most, over all sessions (bounds the start-up time).
  uint64_t max_envelopes = 1'000'000;
  // A session whose first this-many envelopes carry no class (recorded uniformly, or
  // imported) is skipped without reading the rest.
  uint64_t probe_envelopes = 1000;
};

// `upstream` as net::Url::ToString() writes it (the session record's `upstream`). Sessions
// named `exclude` (the one being started) are left out. An empty history is not an error.
Result<ClassHistory> LoadClassHistory(storage::Store& store, const std::string& upstream,
                                      const std::string& exclude,
                                      const ClassHistoryOptions& options = {});

}  // namespace doppel::recorder
