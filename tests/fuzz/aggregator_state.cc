// Fuzz target: RunAggregator::MergeState (report/aggregate.h) on an AggregatorState parsed
// from arbitrary bytes, as `doppel report --from redis://... --group` and a joining worker read
// the states other workers wrote into Redis (replay/group.h), which anyone with access to that
// Redis can write.
//
// Properties: no crash; a state is merged whole or not at all (an error has a message and
// leaves the report as it was); a merged state's report renders as text, JSON, JUnit and
// HTML; the merged aggregator's own state, merged into a fresh aggregator, gives the same
// report. Small bounds (endpoints, fields, exemplar bytes), so inputs reach the paths past
// them.
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <string>

#include "doppel/v1/group.pb.h"
#include "report/aggregate.h"
#include "report/report_html.h"
#include "report/report_json.h"
#include "report/report_junit.h"
#include "report/report_text.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::report::Report;
using doppel::report::RunAggregator;

bool Same(const Report& a, const Report& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  doppel::v1::AggregatorState state;
  if (!state.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto options = RunAggregator::OptionsOf(state);
  if (!options.ok()) {
    FUZZ_CHECK(!options.status().message().empty(), "OptionsOf error without a message");
    return 0;
  }
  options->max_endpoints = 4;
  options->max_fields_per_endpoint = 4;
  options->max_exemplar_body_bytes = 256;
  RunAggregator merged(*options);
  const Report empty = merged.Finish();
  const doppel::Status s = merged.MergeState(state);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "MergeState error without a message");
    FUZZ_CHECK(Same(empty, merged.Finish()), "a refused state changed the report");
    return 0;
  }
  const Report report = merged.Finish();
  doppel::report::TextOptions text;
  text.show_values = true;
  (void)doppel::report::RenderText(report, text);
  (void)doppel::report::ReportToJson(report);
  (void)doppel::report::RenderJUnit(report);
  (void)doppel::report::RenderHtml(report);

  RunAggregator again(*options);
  const doppel::Status back = again.MergeState(merged.SaveState());
  FUZZ_CHECK(back.ok(), "a saved state does not merge back: " + back.message());
  FUZZ_CHECK(Same(report, again.Finish()), "a saved and merged state gives another report");
  return 0;
}
