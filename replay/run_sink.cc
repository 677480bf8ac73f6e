#include "replay/run_sink.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "report/noise_mask.h"

namespace doppel::replay {

namespace {
constexpr int kPathsPerResult = 10;
constexpr size_t kQueuePerCompareThread = 256;
}  // namespace

// One finished request. With compare threads it owns copies (the engine's data is gone once
// OnCompleted returns); compared inline it points at the engine's data, which outlives it.
struct RunSink::Job {
  uint64_t seq = 0;  // OnCompleted order
  uint64_t index = 0;
  report::RunAggregator* part = nullptr;  // counted here too (OnCompleted's `part`)
  const doppel::v1::Envelope* envelope = nullptr;
  const std::vector<TargetOutcome>* targets = nullptr;
  const TargetOutcome* secondary = nullptr;  // null: no secondary

  // The copies, when owned (pointed at by the members above).
  doppel::v1::Envelope envelope_copy;
  std::vector<TargetOutcome> targets_copy;
  std::optional<TargetOutcome> secondary_copy;
};

struct RunSink::Compared {
  std::shared_ptr<const Job> job;
  std::string endpoint;
  std::optional<diff::DiffResult> noise;               // secondary vs recorded
  std::vector<std::optional<diff::DiffResult>> diffs;  // per target; empty = not compared
};

RunSink::RunSink(const diff::Differ* differ, report::RunAggregator* aggregator,
                 storage::Store* store, uint32_t run_id, RunSinkOptions options)
    : differ_(differ),
      aggregator_(aggregator),
      store_(store),
      run_id_(run_id),
      options_(options),
      writer_("doppel-results", 1, std::max<size_t>(options.write_queue, 1)),
      comparers_("doppel-cmp", std::max<size_t>(options.compare_threads, 1),  // unused at 0
                 options.compare_queue > 0
                     ? options.compare_queue
                     : kQueuePerCompareThread * std::max<size_t>(options.compare_threads, 1)) {}

RunSink::~RunSink() {
  // A store error was for Flush to report; a sink destroyed without Flush has none to give.
  (void)Flush();
}

void RunSink::OnCompleted(const Completed& c, report::RunAggregator* part) {
  auto job = std::make_shared<Job>();
  job->seq = next_seq_++;
  job->index = c.index;
  job->part = part;
  if (options_.compare_threads == 0) {  // inline: no copy, no hand-over
    job->envelope = c.envelope;
    job->targets = c.targets;
    job->secondary = c.secondary;
    Deliver(Diff(std::move(job)));
    return;
  }
  job->envelope_copy = *c.envelope;
  job->targets_copy = *c.targets;
  if (c.secondary) job->secondary_copy = *c.secondary;
  job->envelope = &job->envelope_copy;
  job->targets = &job->targets_copy;
  job->secondary = job->secondary_copy ? &*job->secondary_copy : nullptr;
  comparers_.Post([this, job = std::shared_ptr<const Job>(std::move(job))] { Deliver(Diff(job)); });
}

std::unique_ptr<RunSink::Compared> RunSink::Diff(std::shared_ptr<const Job> job) const {
  auto compared = std::make_unique<Compared>();
  compared->job = std::move(job);
  const Job& j = *compared->job;
  const auto& req = j.envelope->request();
  compared->diffs.resize(j.targets->size());
  if (!differ_) {
    compared->endpoint = req.method() + " " + req.target();
    return compared;
  }
  const diff::ExpectedPtr expected =
      differ_->Prepare(req.method(), req.target(), j.envelope->response(),
                       j.envelope->has_websocket() ? &j.envelope->websocket() : nullptr);
  compared->endpoint = expected->endpoint();
  const bool recorded = j.envelope->has_response() && j.envelope->response().status() != 0;
  if (!recorded) return compared;
  auto compare = [&](const TargetOutcome& out) {
    return differ_->Compare(*expected, out.response, out.websocket ? &*out.websocket : nullptr);
  };
  if (j.secondary && j.secondary->error.empty()) compared->noise = compare(*j.secondary);
  for (size_t t = 0; t < j.targets->size(); ++t) {
    if ((*j.targets)[t].error.empty()) compared->diffs[t] = compare((*j.targets)[t]);
  }
  return compared;
}

void RunSink::Deliver(std::unique_ptr<Compared> compared) {
  std::lock_guard<std::mutex> lock(order_mu_);
  const uint64_t seq = compared->job->seq;
  ready_.emplace(seq, std::move(compared));
  for (auto it = ready_.begin(); it != ready_.end() && it->first == next_record_;
       it = ready_.erase(it)) {
    Record(*it->second);
    ++next_record_;
  }
}

void RunSink::Record(const Compared& c) {
  const Job& j = *c.job;
  const doppel::v1::Envelope& env = *j.envelope;
  const diff::DiffResult* noise = c.noise ? &*c.noise : nullptr;
  for (size_t t = 0; t < j.targets->size(); ++t) {
    const TargetOutcome& out = (*j.targets)[t];
    const bool answered = out.error.empty();
    const diff::DiffResult* d = c.diffs[t] ? &*c.diffs[t] : nullptr;

    if (aggregator_) {
      report::Observation obs;
      obs.target = static_cast<uint32_t>(t);
      obs.endpoint = c.endpoint;
      obs.envelope = &env;
      obs.actual = answered ? &out.response : nullptr;
      obs.error = out.error;
      obs.diff = d;
      obs.noise = noise;
      obs.secondary =
          (j.secondary && j.secondary->error.empty()) ? &j.secondary->response : nullptr;
      obs.latency_us = out.latency_us;
      obs.fault = out.fault;
      // Add refuses only a target index out of range or a missing envelope; neither happens
      // here.
      (void)aggregator_->Add(obs);
      if (j.part) (void)j.part->Add(obs);
    }

    doppel::v1::RunResult r;
    r.set_index(j.index);
    r.set_arrival_us(env.arrival_us());
    r.set_seq(env.seq());
    r.set_target(static_cast<uint32_t>(t));
    r.set_latency_us(out.latency_us);
    r.set_fault(out.fault);
    if (!answered) {
      r.set_error(out.error + (out.error_detail.empty() ? "" : ": " + out.error_detail));
      r.set_verdict(doppel::v1::RunResult::VERDICT_ERROR);
    } else {
      r.set_status(out.response.status());
      if (!d) {
        r.set_verdict(doppel::v1::RunResult::VERDICT_NOT_COMPARED);
      } else {
        compared_.fetch_add(1, std::memory_order_relaxed);
        // Masked by noise exactly as the report masks it: one model for both.
        const report::NoiseMask mask(noise);
        const bool mismatch = mask.IsMismatch(*d);
        int listed = 0;
        for (const auto& fd : d->diffs) {
          if (mask.Masks(fd.path) || listed++ >= kPathsPerResult) continue;
          r.add_diff_paths(fd.path);
        }
        // A faulted request's difference is never a mismatch of the run (docs/chaos.md).
        if (mismatch && out.fault.empty()) mismatches_.fetch_add(1, std::memory_order_relaxed);
        r.set_verdict(mismatch ? doppel::v1::RunResult::VERDICT_MISMATCH
                               : doppel::v1::RunResult::VERDICT_MATCH);
      }
    }
    if (store_) {
      batch_.push_back(std::move(r));
      if (batch_.size() >= options_.result_batch) PostBatch();
    }
  }
}

void RunSink::PostBatch() {
  if (batch_.empty()) return;
  auto batch = std::make_shared<std::vector<doppel::v1::RunResult>>(std::move(batch_));
  batch_.clear();
  writer_.Post([this, batch = std::move(batch)] { Write(*batch); });
}

void RunSink::Write(const std::vector<doppel::v1::RunResult>& batch) {
  Status s = store_->AppendRunResults(run_id_, batch);
  if (s.ok()) return;
  std::lock_guard<std::mutex> lock(store_mu_);
  if (store_status_.ok()) store_status_ = std::move(s);
}

Status RunSink::Flush() {
  comparers_.Drain();
  {
    std::lock_guard<std::mutex> lock(order_mu_);
    PostBatch();
  }
  writer_.Drain();
  std::lock_guard<std::mutex> lock(store_mu_);
  return store_status_;
}

}  // namespace doppel::replay
