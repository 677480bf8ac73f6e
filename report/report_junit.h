// JUnit XML for CI: one <testsuite> per target, one <testcase> per endpoint
// (classname = target, name = endpoint). A failing endpoint's testcase carries a
// <failure message="..."> naming its top regressing field paths, and in its text each of
// them with counts, rates and one exemplar; an endpoint with nothing compared and no error is
// <skipped/>. Attributes follow the common JUnit schema (tests, failures, errors, skipped,
// time); time is the sum of the target's latencies for the endpoint, in seconds, so the
// document depends on the report only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "report/report.h"

namespace doppel::report {

struct JUnitOptions {
  size_t max_paths_in_message = 3;
  size_t max_fields_in_text = 10;
};

std::string RenderJUnit(const Report& report, const JUnitOptions& options = {});

// Escapes `text` for XML 1.0 character data, or an attribute value when `attribute`:
// & < > " ' as entities; in attributes also tab, CR and LF as character references (so they
// survive attribute-value normalization); CR as &#13; in text. Characters XML 1.0 forbids
// even as references (C0 controls other than tab/CR/LF, U+FFFE, U+FFFF) and invalid UTF-8
// are replaced: controls by the visible text "\xNN", the others by U+FFFD.
std::string XmlEscape(std::string_view text, bool attribute);

}  // namespace doppel::report
