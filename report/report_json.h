// Report <-> JSON, schema "doppel.report/v1" (docs/report-format.md documents every member).
// The conversion is protobuf's JSON mapping of doppel.v1.Report (proto/doppel/v1/report.proto)
// with a thin adapter: 64-bit integers are written as JSON numbers (protobuf writes strings)
// and map members in key order. The writer is deterministic: same Report, same bytes, and
// ReportToJson(ReportFromJson(ReportToJson(r))) == ReportToJson(r).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "report/report.h"

namespace doppel::report {

// Two-space indented JSON, ending with a newline. Every member is written, 0, false and ""
// included, except run_id, session and generated_at when they are not set.
std::string ReportToJson(const Report& report);

// Parses a doppel.report/v1 document. A document with another "schema" is kUnsupported;
// anything else wrong is kInvalidArgument naming the member
// ("targets[0].endpoints[2].fields[1].verdict: unknown verdict ..."). Members this version
// does not know are ignored, so a later v1 writer may add some; members that are missing
// read as 0, false, "" or empty.
Result<Report> ReportFromJson(std::string_view json);

}  // namespace doppel::report
