#include "replay/run_sink.h"

#include <optional>

#include "report/noise_mask.h"

namespace doppel::replay {

namespace {
constexpr size_t kResultBatch = 1000;
constexpr int kPathsPerResult = 10;
}  // namespace

void RunSink::OnCompleted(const Completed& c) {
  const doppel::v1::Envelope& env = *c.envelope;
  const auto& req = env.request();
  const bool recorded = env.has_response() && env.response().status() != 0;
  std::string endpoint = differ_ ? differ_->Endpoint(req.method(), req.target())
                                 : req.method() + " " + req.target();
  std::optional<diff::DiffResult> noise;
  if (differ_ && recorded && c.secondary && c.secondary->error.empty())
    noise = differ_->Compare(req.method(), req.target(), env.response(), c.secondary->response);

  for (size_t t = 0; t < c.targets->size(); ++t) {
    const TargetOutcome& out = (*c.targets)[t];
    const bool answered = out.error.empty();
    std::optional<diff::DiffResult> d;
    if (differ_ && recorded && answered)
      d = differ_->Compare(req.method(), req.target(), env.response(), out.response);

    if (aggregator_) {
      report::Observation obs;
      obs.target = static_cast<uint32_t>(t);
      obs.endpoint = endpoint;
      obs.envelope = &env;
      obs.actual = answered ? &out.response : nullptr;
      obs.error = out.error;
      obs.diff = d ? &*d : nullptr;
      obs.noise = noise ? &*noise : nullptr;
      obs.secondary = (c.secondary && c.secondary->error.empty()) ? &c.secondary->response : nullptr;
      obs.latency_us = out.latency_us;
      aggregator_->Add(obs);
    }

    doppel::v1::RunResult r;
    r.set_index(c.index);
    r.set_arrival_us(env.arrival_us());
    r.set_seq(env.seq());
    r.set_target(static_cast<uint32_t>(t));
    r.set_latency_us(out.latency_us);
    if (!answered) {
      r.set_error(out.error + (out.error_detail.empty() ? "" : ": " + out.error_detail));
      r.set_verdict(doppel::v1::RunResult::VERDICT_ERROR);
    } else {
      r.set_status(out.response.status());
      if (!d) {
        r.set_verdict(doppel::v1::RunResult::VERDICT_NOT_COMPARED);
      } else {
        ++compared_;
        // Masked by noise exactly as the report masks it: one model for both.
        const report::NoiseMask mask(noise ? &*noise : nullptr);
        const bool mismatch = mask.IsMismatch(*d);
        int listed = 0;
        for (const auto& fd : d->diffs) {
          if (mask.Masks(fd.path) || listed++ >= kPathsPerResult) continue;
          r.add_diff_paths(fd.path);
        }
        if (mismatch) ++mismatches_;
        r.set_verdict(mismatch ? doppel::v1::RunResult::VERDICT_MISMATCH
                               : doppel::v1::RunResult::VERDICT_MATCH);
      }
    }
    if (store_) {
      pending_.push_back(std::move(r));
      if (pending_.size() >= kResultBatch) Flush();
    }
  }
}

Status RunSink::Flush() {
  if (store_ && !pending_.empty()) {
    Status s = store_->AppendRunResults(run_id_, pending_);
    if (!s.ok() && store_status_.ok()) store_status_ = s;
    pending_.clear();
  }
  return store_status_;
}

}  // namespace doppel::replay
