#include "recorder/coverage_history.h"

#include <algorithm>
#include <map>

#include "diff/request_class.h"

namespace doppel::recorder {

Result<ClassHistory> LoadClassHistory(storage::Store& store, const std::string& upstream,
                                      const std::string& exclude,
                                      const ClassHistoryOptions& options) {
  DOPPEL_ASSIGN_OR_RETURN(auto sessions, store.ListSessions());
  std::vector<const doppel::v1::SessionInfo*> candidates;
  for (const auto& info : sessions) {
    const bool ended = info.state() == doppel::v1::SESSION_STATE_CLOSED ||
                       info.state() == doppel::v1::SESSION_STATE_INTERRUPTED;
    if (ended && info.upstream() == upstream && info.name() != exclude &&
        info.source() == "record") {
      candidates.push_back(&info);
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const auto* a, const auto* b) { return a->created_us() > b->created_us(); });
  ClassHistory out;
  std::map<std::string, double> requests;
  uint64_t budget = options.max_envelopes;
  for (const auto* info : candidates) {
    if (out.sessions.size() >= options.max_sessions || budget == 0) break;
    if (info->counts().classes_size() > 0) {
      // The recorder counted its classes: exact, and nothing to read.
      out.sessions.push_back(info->name());
      for (const auto& k : info->counts().classes()) {
        requests[k.label()] += static_cast<double>(k.requests());
      }
      continue;
    }
    DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(info->name()));
    uint64_t read = 0;
    bool classified = false;
    std::map<std::string, double> here;
    for (; it->Valid() && budget > 0; it->Next(), --budget) {
      const doppel::v1::Envelope& e = it->envelope();
      ++read;
      if (!e.sample_class().empty()) {
        classified = true;
        here[e.sample_class()] += diff::InverseProbability(e);
      }
      if (!classified && read >= options.probe_envelopes) break;
    }
    DOPPEL_RETURN_IF_ERROR(it->status());
    if (!classified) continue;
    out.sessions.push_back(info->name());
    for (auto& [label, n] : here) requests[label] += n;
  }
  for (auto& [label, n] : requests) {
    out.classes.emplace_back(label, n / static_cast<double>(out.sessions.size()));
  }
  return out;
}

}  // namespace doppel::recorder
