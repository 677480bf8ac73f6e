// Configuration files users write by hand (match rules files): JSON or YAML, read into one
// JSON value with the source position of every key, and checked against the schema of a
// proto message, so both formats are held to the same schema and every error names a line.
//
//   auto doc = LoadConfigFile("rules.yaml");          // by extension: .yaml/.yml, else JSON
//   Status st = CheckAgainstSchema(*doc, *v1::MatchRulesFile::descriptor());
//   // "rules.yaml: line 4, column 5: rules[0].urii: unknown field (expected one of: ...)"
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "base/status.h"

namespace google::protobuf {
class Descriptor;
class FieldDescriptor;
}  // namespace google::protobuf

namespace doppel::net {

enum class ConfigFormat { kJson, kYaml };

// ".yaml" / ".yml" (any case) is YAML; everything else JSON.
ConfigFormat FormatForPath(std::string_view path);

struct ConfigDoc {
  boost::json::value value;
  // "rules[1].uri.prefix" -> (line, column), 1-based: where each object key starts (YAML:
  // also each sequence item).
  std::map<std::string, std::pair<size_t, size_t>> positions;

  // "line L, column C: " for the deepest known prefix of `path`, or "" when none is known.
  std::string Where(const std::string& path) const;
  // kInvalidArgument "line L, column C: PATH: WHAT".
  Status Error(const std::string& path, const std::string& what) const;
};

// Parses JSON or YAML (YAML 1.2 core scalars: true/false are booleans, null/~ is null,
// numbers stay numbers, everything else — quoted or not — is a string). Errors name the
// line and column. Anchors/aliases are expanded; a document over `max_bytes` is refused.
Result<ConfigDoc> ParseConfig(std::string_view text, ConfigFormat format,
                              size_t max_bytes = 16 << 20);
// Reads and parses `path`; errors are prefixed with the path.
Result<ConfigDoc> LoadConfigFile(const std::string& path);

// Checks `doc.value` against message `type`: every object key must be a field (its proto
// name or JSON name), values must have the field's JSON type (string, bool, number,
// object for messages and maps, array for repeated fields), recursively. `shorthand` may
// accept a value the schema does not describe (e.g. a bare string for a match message); it
// is asked before the type check of a message-typed value.
using SchemaShorthand =
    std::function<bool(const google::protobuf::FieldDescriptor& field, const boost::json::value&)>;
Status CheckAgainstSchema(const ConfigDoc& doc, const google::protobuf::Descriptor& type,
                          const SchemaShorthand& shorthand = {});

}  // namespace doppel::net
