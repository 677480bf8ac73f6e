// Report <-> JSON, schema "doppel.report/v1" (docs/report-format.md documents every field).
// The writer is deterministic: same Report, same bytes. ReportFromJson(ReportToJson(r)) == r.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "report/report.h"

namespace doppel::report {

// Two-space indented JSON, ending with a newline.
std::string ReportToJson(const Report& report);

// Parses a report written by ReportToJson. Errors (kInvalidArgument) name the offending
// member ("targets[0].endpoints[2].fields[1].verdict: expected a string"); a document with
// another "schema" is kUnsupported. Members this version does not know are ignored, so a
// later v1 writer may add some.
Result<Report> ReportFromJson(std::string_view json);

}  // namespace doppel::report
