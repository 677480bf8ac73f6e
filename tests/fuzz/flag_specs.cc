// Fuzz target: the recorder's compound flag values on arbitrary text, one per line —
//   - `--fault SPEC` (net/fault.h ParseFaultSpec), then the injector built from what parsed,
//     drawing plans for a few requests, with `--fault-headers` fed the same line as header
//     values;
//   - `--mirror URL,KEY=VALUE...` (recorder/mirror.h ParseMirrorSpec), including fault= and
//     adaptive;
//   - `--mirror-budget` (recorder/adaptive_mirror.h ParseMirrorBudget), and a controller run
//     on the budget with signals taken from the line's bytes.
//
// Properties: Ok or an error with a message; never a crash or an escaping exception; a plan
// never both resets and aborts, never shapes a body it replaced; a controller's percentage
// stays within [0, configured].
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/fault.h"
#include "recorder/adaptive_mirror.h"
#include "recorder/mirror.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void FuzzFault(std::string_view line) {
  auto spec = doppel::net::ParseFaultSpec(line);
  doppel::net::FaultInjector::Options options;
  if (spec.ok()) {
    options.spec = std::move(spec.value());
  } else {
    FUZZ_CHECK(!spec.status().message().empty(), "fault spec error without a message");
  }
  options.from_headers = true;
  options.max_active = 2;
  options.seed = line.size();
  doppel::net::FaultInjector injector(std::move(options), "fuzz", nullptr);
  const std::string value(line);
  for (int i = 0; i < 4; ++i) {
    doppel::net::RequestView view{
        "GET", "/x", [&value, i](std::string_view name) -> std::optional<std::string_view> {
          if (i % 2 == 0) return std::nullopt;
          if (name == doppel::net::kFaultDelayHeader || name == doppel::net::kFaultAbortHeader) {
            return std::string_view(value);
          }
          return std::nullopt;
        }};
    const doppel::net::FaultPlan plan = injector.Draw(view);
    FUZZ_CHECK(!(plan.reset && plan.abort_status != 0), "a plan that resets and aborts");
    FUZZ_CHECK(!(plan.replaces_response() && plan.shapes_body()),
               "a plan that shapes a body it replaced");
    if (plan.abort_status != 0) {
      FUZZ_CHECK(plan.abort_status >= 200 && plan.abort_status <= 599, "abort status out of range");
    }
  }
}

void FuzzMirror(std::string_view line) {
  auto spec = doppel::recorder::ParseMirrorSpec(line);
  if (!spec.ok()) {
    FUZZ_CHECK(!spec.status().message().empty(), "mirror spec error without a message");
    return;
  }
  FUZZ_CHECK(spec->percent >= 0 && spec->percent <= 100, "mirror percent out of range");
}

void FuzzBudget(std::string_view line) {
  auto budget = doppel::recorder::ParseMirrorBudget(line);
  if (!budget.ok()) {
    FUZZ_CHECK(!budget.status().message().empty(), "budget error without a message");
    return;
  }
  doppel::recorder::AimdController controller(40, budget.value());
  for (size_t i = 0; i < line.size() && i < 64; ++i) {
    const auto byte = static_cast<unsigned char>(line[i]);
    doppel::recorder::AdaptiveSignals s;
    if (byte & 1) s.primary_p99_us = byte * 1000ull;
    if (byte & 2) s.cpu_percent = byte / 2.55;
    if (byte & 4) s.errors_percent = byte / 2.55;
    (void)controller.Tick(s);
    FUZZ_CHECK(controller.effective() >= 0 && controller.effective() <= 40,
               "effective percentage outside [0, configured]");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  for (int lines = 0; start <= text.size() && lines < 16; ++lines) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    FuzzFault(line);
    FuzzMirror(line);
    FuzzBudget(line);
    start = end + 1;
  }
  return 0;
}
