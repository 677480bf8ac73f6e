// The configuration of `doppel record` as a document (`--config FILE`, SIGHUP, POST /config):
// one table maps every field of the schema doppel.v1.RecordConfig (proto/doppel/v1/config.proto)
// to the flag that says the same and to the SessionOptions member both set, so the file, the
// flags, --print-config and a reload's "what changed" can never disagree.
//
//   RecordConfigSource src{.file = "record.yaml", .defaults = d, .flags = f, .given = {...}};
//   auto options = ResolveRecordConfig(src);  // defaults < file < flags given
//   // "record.yaml: line 4, column 3: sampling.percnt: unknown field (expected one of: ...)"
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"
#include "net/rules_file.h"
#include "recorder/session.h"

namespace doppel::recorder {

// A SessionOptions member of one of the types flags and the schema have.
using ConfigFieldRef = std::variant<std::string*, double*, int*, uint32_t*, uint64_t*, bool*,
                                    std::vector<std::string>*>;

struct RecordConfigField {
  std::string_view path;  // in the document: "upstream.url"
  std::string_view flag;  // the flag that sets the same: "--upstream"
  // A reload may change it on a running recorder (sampling, capture rules, mirrors, faults);
  // the others need a restart.
  bool live;
  ConfigFieldRef (*member)(SessionOptions&);
};

// Every field, in schema order. Every field of doppel.v1.RecordConfig has a row, and every
// row a field (tests/recorder/record_config_test.cc checks both, and that every flag of
// `record` but --config and --print-config has a row).
const std::vector<RecordConfigField>& RecordConfigFields();

// Where a record's configuration comes from: the defaults, the file, the flags the command
// line gave (they win over the file). Kept by the session so that a reload resolves the
// same way.
struct RecordConfigSource {
  std::string file;                // --config FILE; "" = none
  SessionOptions defaults;         // the value of a field nobody set
  SessionOptions flags;            // the command line's values (and store_path)
  std::vector<std::string> given;  // RecordConfigField::path of every flag the command line set
};

// defaults < `src.file` (read anew; nothing when there is none) < the flags given. Errors
// name the file, line, column and field path; unknown fields and wrong types are refused.
Result<SessionOptions> ResolveRecordConfig(const RecordConfigSource& src);

// `base` < `doc` < the flags given: a document that names only some fields (POST /config)
// changes those and leaves the rest as in `base`; a list given replaces the whole list.
// Errors as above, without a file name.
Result<SessionOptions> ApplyRecordConfig(const RecordConfigSource& src, const SessionOptions& base,
                                         const net::ConfigDoc& doc);

// The effective configuration as a document of the schema (every field, defaults included):
// what --print-config writes, and what --config reads back.
boost::json::object RecordConfigJson(const SessionOptions& options);

// The fields whose values differ, by path.
std::vector<const RecordConfigField*> ChangedRecordConfigFields(const SessionOptions& a,
                                                                const SessionOptions& b);

// A field's value as text, for messages ("10", "true", "[a, b]").
std::string RecordConfigValueText(const RecordConfigField& field, const SessionOptions& options);

}  // namespace doppel::recorder
