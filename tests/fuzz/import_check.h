// The checks har_import and gor_import share: one interop reader (interop/interop.h) run on
// the input twice, strict and with skip_bad.
//
// Properties: no crash; OK or an error with a message; every envelope the reader hands out
// survives the store (fuzz_support.h CheckStorable); ImportStats::envelopes counts exactly
// the envelopes handed out; a file the strict run accepts is accepted by the lenient run
// too, with the same envelopes and nothing skipped.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "interop/interop.h"
#include "tests/fuzz/fuzz_support.h"

namespace doppel::fuzz {

using InteropReader = Status (*)(std::istream&, const std::string&, const interop::ImportOptions&,
                                 const interop::EnvelopeSink&, interop::ImportStats*);

inline void CheckImport(InteropReader read, std::string_view data) {
  struct Run {
    Status status;
    interop::ImportStats stats;
    std::vector<std::string> envelopes;  // serialized
  };
  auto run = [&](bool skip_bad) {
    Run r;
    std::istringstream in{std::string(data)};
    interop::ImportOptions options;
    options.skip_bad = skip_bad;
    r.status = read(
        in, "fuzz-input", options,
        [&r](doppel::v1::Envelope&& e) {
          CheckStorable(e, "an imported envelope");
          r.envelopes.push_back(e.SerializeAsString());
          return Status::Ok();
        },
        &r.stats);
    if (!r.status.ok()) FUZZ_CHECK(!r.status.message().empty(), "import error without a message");
    FUZZ_CHECK(r.stats.envelopes == r.envelopes.size(),
               "ImportStats::envelopes is " + std::to_string(r.stats.envelopes) +
                   ", the sink got " + std::to_string(r.envelopes.size()));
    return r;
  };
  const Run strict = run(false);
  const Run lenient = run(true);
  if (strict.status.ok()) {
    FUZZ_CHECK(lenient.status.ok(),
               "skip_bad refuses a file the strict import accepts: " + lenient.status.message());
    FUZZ_CHECK(lenient.stats.skipped == 0, "skip_bad skipped records the strict import accepted");
    FUZZ_CHECK(lenient.envelopes == strict.envelopes, "skip_bad changed the envelopes");
  }
}

}  // namespace doppel::fuzz
