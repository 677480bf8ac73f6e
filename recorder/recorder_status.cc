// What the recorder reports: its counts, the /status JSON and the admin endpoint's pages.
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>

#include "net/fault.h"
#include "net/match.h"
#include "net/url.h"
#include "recorder/recorder_impl.h"
#include "recorder/worker.h"

namespace doppel::recorder {

RecorderCounts RecorderImpl::counts() const {
  RecorderCounts c;
  for (auto* r : metrics_.requests) c.requests += r->value();
  c.sampled = metrics_.sampled->value();
  c.errors = metrics_.errors_total();
  c.request_bytes = metrics_.request_bytes->value();
  c.response_bytes = metrics_.response_bytes->value();
  c.connections = open_connections_.load(std::memory_order_relaxed);
  c.first_arrival_us = first_arrival_us_.load(std::memory_order_relaxed);
  c.last_arrival_us = last_arrival_us_.load(std::memory_order_relaxed);
  for (const SinkWriter& s : sinks_) {
    c.sinks.push_back(
        {s.name, s.writer->stored(), s.writer->dropped(), s.writer->depth(), s.writer->failing()});
  }
  {
    // Each plan has its own injector: the counts of all of them are the session's.
    std::lock_guard<std::mutex> lock(plans_mu_);
    for (const auto& plan : plans_) {
      if (!plan->faults) continue;
      const net::FaultCounts injected = plan->faults->injected_by_kind();
      for (size_t k = 0; k < injected.size(); ++k) c.faults[k] += injected[k];
    }
  }
  c.stored = c.sinks.front().stored;
  c.dropped = c.sinks.front().dropped;
  c.queue_depth = c.sinks.front().queue_depth;
  return c;
}

Status RecorderImpl::capture_error() const {
  if (sinks_.size() == 1) return sinks_.front().writer->first_error();
  for (const SinkWriter& s : sinks_) {
    Status st = s.writer->first_error();
    if (!st.ok()) return st.WithContext("sink " + s.name);
  }
  return Status::Ok();
}

std::optional<CoverageSnapshot> RecorderImpl::coverage() const {
  if (!options_.coverage) return std::nullopt;
  std::vector<std::shared_ptr<const CoverageSnapshot>> parts;
  for (const auto& w : workers_) {
    if (w->coverage) parts.push_back(w->coverage->Published());
  }
  return MergeSnapshots(parts);
}

std::vector<MirrorCounts> RecorderImpl::mirror_counts() const {
  const LivePlan& plan = current_plan();
  return plan.mirrors ? plan.mirrors->counts() : std::vector<MirrorCounts>{};
}

std::string RecorderImpl::StatusJson() const {
  const RecorderCounts c = counts();
  const LivePlan& plan = current_plan();
  boost::json::object o;
  o["session"] = options_.session;
  o["listen"] = listen_address_.ToString();
  o["upstream"] = options_.upstream.ToString();
  o["threads"] = options_.threads;
  o["uptime_s"] = static_cast<double>(options_.clock->NowUs() - started_us_) / 1e6;
  o["config_generation"] = plan.generation;
  o["sample_percent"] = plan.sampler.percent();
  o["sample_key"] = plan.sampler.key();
  o["sample_mode"] = options_.coverage ? "coverage" : "uniform";
  if (const auto cov = coverage()) {
    // The 50 most frequent classes: the per-class rates; the counts cover all of them.
    constexpr size_t kShown = 50;
    boost::json::object s;
    s["budget"] = options_.coverage->budget.text;
    s["per_class_min"] = options_.coverage->per_class_min;
    boost::json::array history;
    for (const std::string& h : options_.coverage->history_sessions) history.emplace_back(h);
    s["history_sessions"] = std::move(history);
    s["classes_seen"] = cov->classes.size();
    s["classes_covered"] = std::count_if(cov->classes.begin(), cov->classes.end(),
                                         [](const ClassStat& c) { return c.kept > 0; });
    s["decisions"] = cov->decisions;
    s["kept"] = cov->kept;
    s["denied_by_budget"] = cov->denied_by_budget;
    if (!std::isinf(cov->water_level)) s["water_level"] = cov->water_level;
    boost::json::array classes;
    for (size_t i = 0; i < cov->classes.size() && i < kShown; ++i) {
      const ClassStat& c = cov->classes[i];
      classes.push_back(boost::json::object{{"class", *c.label},
                                            {"seen", c.seen},
                                            {"kept", c.kept},
                                            {"share", c.share},
                                            {"probability", c.probability}});
    }
    s["classes"] = std::move(classes);
    o["coverage"] = std::move(s);
  }
  boost::json::array rules;
  for (const auto& b : plan.rules.blocks()) rules.emplace_back(b.name);
  o["rules"] = std::move(rules);
  if (plan.mirrors) o["mirrors"] = plan.mirrors->StatusJson();
  if (plan.faults) o["faults"] = plan.faults->StatusJson();
  o["requests"] = c.requests;
  o["sampled"] = c.sampled;
  o["stored"] = c.stored;
  o["dropped"] = c.dropped;
  o["errors"] = c.errors;
  o["queue_depth"] = c.queue_depth;
  boost::json::array sinks;
  for (const SinkCounts& s : c.sinks) {
    sinks.push_back(boost::json::object{{"name", s.name},
                                        {"stored", s.stored},
                                        {"dropped", s.dropped},
                                        {"queue_depth", s.queue_depth},
                                        {"state", s.failing ? "retrying" : "ok"}});
  }
  o["sinks"] = std::move(sinks);
  o["connections"] = c.connections;
  o["request_body_bytes"] = c.request_bytes;
  o["response_body_bytes"] = c.response_bytes;
  o["primary_latency_p50_us_le"] = metrics_.latency->ApproximateQuantileUs(0.5);
  o["primary_latency_p99_us_le"] = metrics_.latency->ApproximateQuantileUs(0.99);
  return boost::json::serialize(o) + "\n";
}

AdminReply RecorderImpl::HandleAdmin(const AdminRequest& request) const {
  const std::string_view path = net::TargetPath(request.target);
  if (request.method == "POST") {
    if (path != "/config") return {404, "text/plain; charset=utf-8", "POST: only /config\n"};
    if (!options_.post_config) return {404, "text/plain; charset=utf-8", "no /config here\n"};
    if (!request.from_loopback) {
      return {403, "text/plain; charset=utf-8",
              "POST /config is taken from loopback clients only (run it on the recorder's "
              "host)\n"};
    }
    return options_.post_config(request.body);
  }
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", registry_.RenderPrometheus()};
  }
  if (path == "/healthz") return {200, "text/plain; charset=utf-8", "ok\n"};
  if (path == "/status") return {200, "application/json", StatusJson()};
  return {404, "text/plain; charset=utf-8", "not found: try /metrics, /healthz, /status\n"};
}

}  // namespace doppel::recorder
