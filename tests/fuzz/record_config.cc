// Fuzz target: the document of `doppel record --config FILE`, SIGHUP and POST /config
// (recorder/record_config.h) on arbitrary text, as JSON and as YAML — parsed (net/rules_file.h
// ParseConfig), checked against doppel.v1.RecordConfig and applied over the defaults, with
// and without flags that win over it.
//
// Properties: Ok or an error with a message; never a crash or an escaping exception; a flag
// given keeps its value whatever the document says; an applied configuration written out as
// --print-config does reads back to the same configuration.
#include "recorder/record_config.h"

#include <boost/json/serialize.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/rules_file.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using doppel::recorder::ApplyRecordConfig;
using doppel::recorder::ChangedRecordConfigFields;
using doppel::recorder::RecordConfigJson;
using doppel::recorder::RecordConfigSource;
using doppel::recorder::SessionOptions;

void Apply(std::string_view text, doppel::net::ConfigFormat format) {
  auto doc = doppel::net::ParseConfig(text, format);
  if (!doc.ok()) {
    FUZZ_CHECK(!doc.status().message().empty(), "a parse error without a message");
    return;
  }
  RecordConfigSource src;
  src.flags.sample = 42;  // --sample 42 given: the document cannot change it
  src.given = {"sampling.percent"};
  auto applied = ApplyRecordConfig(src, SessionOptions{}, doc.value());
  if (!applied.ok()) {
    FUZZ_CHECK(!applied.status().message().empty(), "a config error without a message");
    return;
  }
  FUZZ_CHECK(applied->sample == SessionOptions{}.sample, "a given flag changed by the document");
  // --print-config's document reads back to the same configuration.
  const std::string printed = boost::json::serialize(RecordConfigJson(applied.value()));
  auto again = doppel::net::ParseConfig(printed, doppel::net::ConfigFormat::kJson);
  FUZZ_CHECK(again.ok(), "--print-config wrote what does not parse: " + printed);
  auto back = ApplyRecordConfig(RecordConfigSource{}, SessionOptions{}, again.value());
  FUZZ_CHECK(back.ok(), "--print-config wrote what does not apply: " + back.status().message());
  FUZZ_CHECK(ChangedRecordConfigFields(applied.value(), back.value()).empty(),
             "--print-config's document reads back to another configuration: " + printed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Apply(text, doppel::net::ConfigFormat::kJson);
  Apply(text, doppel::net::ConfigFormat::kYaml);
  return 0;
}
