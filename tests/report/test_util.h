// Helpers for the report tests: responses, and feeding exchanges through the real Differ
// into a RunAggregator.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "diff/diff.h"
#include "report/aggregate.h"

namespace doppel::report::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

inline doppel::v1::HttpResponse Response(uint32_t status, std::string body,
                                         uint64_t latency_us = 1000, Headers headers = {},
                                         std::string content_type = "application/json") {
  doppel::v1::HttpResponse r;
  r.set_status(status);
  if (!content_type.empty()) {
    doppel::v1::Header* ct = r.add_headers();
    ct->set_name("Content-Type");
    ct->set_value(content_type);
  }
  for (auto& [name, value] : headers) {
    doppel::v1::Header* h = r.add_headers();
    h->set_name(name);
    h->set_value(value);
  }
  r.set_body(std::move(body));
  r.set_latency_us(latency_us);
  return r;
}

inline diff::DifferPtr MakeDiffer() {
  Result<diff::DifferPtr> differ = diff::Differ::Create(diff::DiffConfig());
  EXPECT_TRUE(differ.ok()) << differ.status().ToString();
  return std::move(differ).value();
}

// One exchange: the recording, the target's answer (or a transport error) and optionally the
// secondary's answer, diffed with the real Differ and added to the aggregator.
struct Exchange {
  uint32_t target = 0;
  std::string method = "GET";
  std::string path = "/";
  std::string request_body;
  doppel::v1::HttpResponse recorded;
  std::optional<doppel::v1::HttpResponse> actual;  // nullopt: transport error
  std::string error = "timeout";
  std::optional<doppel::v1::HttpResponse> secondary;
  uint64_t latency_us = 1000;
  uint64_t arrival_us = 0;  // the recording's clock (Envelope.arrival_us), for the timeline
  std::string fault;        // replay --fault: the injected kinds ("abort", "delay"), "" none
};

class Feeder {
 public:
  explicit Feeder(AggregatorOptions options)
      : differ_(MakeDiffer()), aggregator_(std::move(options)) {}

  void Add(const Exchange& x) {
    doppel::v1::Envelope envelope;
    envelope.mutable_request()->set_method(x.method);
    envelope.mutable_request()->set_target(x.path);
    envelope.mutable_request()->set_body(x.request_body);
    *envelope.mutable_response() = x.recorded;
    envelope.set_arrival_us(x.arrival_us);
    diff::DiffResult candidate, noise;
    Observation obs;
    obs.target = x.target;
    obs.endpoint = differ_->Endpoint(x.method, x.path);
    obs.envelope = &envelope;
    obs.latency_us = x.latency_us;
    obs.fault = x.fault;
    if (x.actual) {
      candidate = differ_->Compare(x.method, x.path, x.recorded, *x.actual);
      obs.actual = &*x.actual;
      obs.diff = &candidate;
    } else {
      obs.error = x.error;
    }
    if (x.secondary) {
      noise = differ_->Compare(x.method, x.path, x.recorded, *x.secondary);
      obs.noise = &noise;
      obs.secondary = &*x.secondary;
    }
    Status st = aggregator_.Add(obs);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }

  Report Finish() const { return aggregator_.Finish(); }
  RunAggregator& aggregator() { return aggregator_; }

 private:
  diff::DifferPtr differ_;
  RunAggregator aggregator_;
};

inline AggregatorOptions OneTarget(std::string secondary = "") {
  AggregatorOptions o;
  o.targets = {"http://candidate:8080"};
  o.secondary = std::move(secondary);
  return o;
}

inline const EndpointReport* FindEndpoint(const Report& r, std::string_view name,
                                          uint32_t target = 0) {
  if (target >= static_cast<uint32_t>(r.targets_size())) return nullptr;
  for (const EndpointReport& e : r.targets()[target].endpoints()) {
    if (e.name() == name) return &e;
  }
  return nullptr;
}

inline const FieldReport* FindField(const EndpointReport* e, std::string_view path) {
  if (e == nullptr) return nullptr;
  for (const FieldReport& f : e->fields()) {
    if (f.path() == path) return &f;
  }
  return nullptr;
}

}  // namespace doppel::report::testing
