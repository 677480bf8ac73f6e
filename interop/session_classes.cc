#include "interop/session_classes.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <utility>

#include "base/stable_hash.h"
#include "diff/request_class.h"
#include "interop/session_import.h"

namespace doppel::interop {
namespace {

std::string Example(const doppel::v1::Envelope& e) {
  constexpr size_t kMaxExample = 200;
  std::string s = e.request().method() + " " + e.request().target();
  if (s.size() > kMaxExample) s = s.substr(0, kMaxExample) + "...";
  return s;
}

// An envelope's place in its session (the store key's order).
using Position = std::pair<uint64_t, uint32_t>;  // arrival_us, seq

}  // namespace

Result<std::vector<ClassRow>> SessionClasses(storage::Store& store, std::string_view session,
                                             const diff::EndpointNamer& namer) {
  DOPPEL_ASSIGN_OR_RETURN(doppel::v1::SessionInfo info, store.GetSession(session));
  std::unordered_map<uint64_t, uint64_t> counted;
  for (const doppel::v1::ClassCount& k : info.counts().classes()) counted[k.id()] += k.requests();
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
  std::unordered_map<std::string, ClassRow> rows;
  for (; it->Valid(); it->Next()) {
    const doppel::v1::Envelope& e = it->envelope();
    std::string label = diff::ClassOf(e, namer);
    ClassRow& r = rows[label];
    if (r.count == 0) {
      r.label = std::move(label);
      r.first_us = e.arrival_us();
      r.example = Example(e);
    }
    ++r.count;
    r.weighted += diff::InverseProbability(e);
    r.last_us = std::max(r.last_us, e.arrival_us());
  }
  DOPPEL_RETURN_IF_ERROR(it->status());
  std::vector<ClassRow> out;
  out.reserve(rows.size());
  for (auto& [label, row] : rows) {
    auto c = counted.find(StableHash64(label));
    row.requests =
        diff::ClassRequests(row.count, row.weighted,
                            c == counted.end() ? std::nullopt : std::optional<uint64_t>(c->second));
    out.push_back(std::move(row));
  }
  std::sort(out.begin(), out.end(), [](const ClassRow& a, const ClassRow& b) {
    return a.count != b.count ? a.count > b.count : a.label < b.label;
  });
  return out;
}

Result<MinimizeResult> MinimizeSession(storage::Store& store, std::string_view session,
                                       const std::string& out, uint32_t per_class,
                                       const diff::EndpointNamer& namer) {
  if (per_class < 1) return Status::InvalidArgument("--per-class must be at least 1");
  DOPPEL_ASSIGN_OR_RETURN(doppel::v1::SessionInfo info, store.GetSession(session));
  // Pass 1: per class, the `per_class` smallest envelopes (a max-heap of size and position).
  using Candidate = std::pair<uint64_t, Position>;  // encoded bytes, position
  std::unordered_map<std::string, std::priority_queue<Candidate>> best;
  // Classed envelopes (coverage sessions): per class, envelopes and the sum of their 1/p.
  std::unordered_map<std::string, std::pair<uint64_t, double>> weights;
  MinimizeResult result;
  {
    DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
    for (; it->Valid(); it->Next()) {
      const doppel::v1::Envelope& e = it->envelope();
      const uint64_t bytes = e.ByteSizeLong();
      ++result.envelopes_in;
      result.bytes_in += bytes;
      if (!e.sample_class().empty()) {
        auto& [n, inverse_sum] = weights[e.sample_class()];
        ++n;
        inverse_sum += diff::InverseProbability(e);
      }
      auto& heap = best[diff::ClassOf(e, namer)];
      const Candidate c{bytes, {e.arrival_us(), e.seq()}};
      if (heap.size() < per_class) {
        heap.push(c);
      } else if (c < heap.top()) {
        heap.pop();
        heap.push(c);
      }
    }
    DOPPEL_RETURN_IF_ERROR(it->status());
  }
  std::set<Position> keep;
  for (auto& [label, heap] : best) {
    for (; !heap.empty(); heap.pop()) keep.insert(heap.top().second);
  }
  result.classes = best.size();
  // Pass 2: copy the chosen envelopes, in session order.
  doppel::v1::SessionInfo copy;
  copy.set_name(out);
  copy.set_upstream(info.upstream());
  *copy.mutable_sampling() = info.sampling();
  copy.set_source("minimize:" + info.name());
  copy.set_note("doppel sessions minimize " + info.name() + " --per-class " +
                std::to_string(per_class));
  DOPPEL_ASSIGN_OR_RETURN(auto import, SessionImport::Begin(store, std::move(copy)));
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
  doppel::v1::Envelope e;
  for (; it->Valid(); it->Next()) {
    const doppel::v1::Envelope& cur = it->envelope();
    if (!keep.count({cur.arrival_us(), cur.seq()})) continue;
    it->TakeEnvelope(&e);
    result.bytes_kept += e.ByteSizeLong();
    ++result.envelopes_kept;
    Status st = import->Add(std::move(e));
    if (!st.ok()) return import->Abort(st);
    e.Clear();
  }
  if (!it->status().ok()) return import->Abort(it->status());
  // The copy's classes stand for the requests the original's did, so `replay --reweight` of
  // the copy sends the traffic's class mix too.
  std::unordered_map<uint64_t, uint64_t> counted;
  for (const doppel::v1::ClassCount& k : info.counts().classes()) counted[k.id()] += k.requests();
  doppel::v1::SessionCounts counts;
  for (const auto& [label, w] : weights) {
    const uint64_t id = StableHash64(label);
    auto c = counted.find(id);
    doppel::v1::ClassCount* row = counts.add_classes();
    row->set_label(label);
    row->set_id(id);
    row->set_requests(static_cast<uint64_t>(std::llround(diff::ClassRequests(
        w.first, w.second,
        c == counted.end() ? std::nullopt : std::optional<uint64_t>(c->second)))));
  }
  auto committed = import->Commit(counts);
  if (!committed.ok()) return committed.status();
  return result;
}

}  // namespace doppel::interop
