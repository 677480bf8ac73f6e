// GatedDiffer: a diff::Differ whose comparisons wait at a testing::Gate before comparing as
// the real Differ does — to prove what goes on while every comparison is stuck.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "diff/diff.h"
#include "tests/base/gate.h"

namespace doppel::diff::testing {

class GatedDiffer final : public Differ {
 public:
  using Differ::Compare;
  using Differ::Prepare;
  // REQUIRES: `gate` outlives this.
  GatedDiffer(DifferPtr inner, doppel::testing::Gate* gate)
      : inner_(std::move(inner)), gate_(gate) {}

  ExpectedPtr Prepare(std::string_view method, std::string_view target,
                      const doppel::v1::HttpResponse& expected,
                      const doppel::v1::WebSocketSession* websocket) const override {
    return inner_->Prepare(method, target, expected, websocket);
  }
  DiffResult Compare(const Expected& expected, const doppel::v1::HttpResponse& actual,
                     const doppel::v1::WebSocketSession* websocket) const override {
    gate_->Wait();
    return inner_->Compare(expected, actual, websocket);
  }
  std::string Endpoint(std::string_view method, std::string_view target) const override {
    return inner_->Endpoint(method, target);
  }

 private:
  const DifferPtr inner_;
  doppel::testing::Gate* gate_;
};

}  // namespace doppel::diff::testing
