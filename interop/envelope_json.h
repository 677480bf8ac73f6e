// Envelope <-> JSON object, the line format of `doppel cat` and JSON Lines export/import
// (docs/jsonl-format.md). Bodies and header values are JSON strings when they are valid
// UTF-8; otherwise they are base64 and the object says so ("body_encoding": "base64",
// header "value_base64").
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/utf8.h"  // IsValidUtf8, used with these
#include "doppel/v1/envelope.pb.h"

namespace doppel::interop {

std::string Base64Encode(std::string_view in);
// Returns false on characters outside the base64 alphabet.
bool Base64Decode(std::string_view in, std::string* out);

boost::json::object EnvelopeToJson(const doppel::v1::Envelope& envelope);
// Inverse of EnvelopeToJson. Missing fields take their defaults; fields of the wrong type
// are an error naming the field.
Status EnvelopeFromJson(const boost::json::object& object, doppel::v1::Envelope* envelope);

}  // namespace doppel::interop
