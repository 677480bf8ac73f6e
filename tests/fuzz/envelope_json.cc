// Fuzz target: EnvelopeFromJson (interop/envelope_json.h) on arbitrary text, one JSON
// object per line as a JSON Lines import reads it.
//
// Properties: no crash; a line that is not an object, or an object with a wrong field, is
// a clean error naming the problem; an envelope that is accepted can be stored and read
// back (protobuf and codec round trip; proto3 `string` fields must stay valid UTF-8), and
// exporting it again (EnvelopeToJson, serialize, parse, EnvelopeFromJson) gives the same
// envelope.
#include "interop/envelope_json.h"

#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"

namespace {

namespace json = boost::json;
using doppel::v1::Envelope;

void CheckLine(std::string_view line) {
  json::parse_options options;
  options.max_depth = 64;
  boost::system::error_code ec;
  json::value v = json::parse(line, ec, {}, options);
  if (ec || !v.is_object()) return;
  Envelope e;
  doppel::Status s = doppel::interop::EnvelopeFromJson(v.get_object(), &e);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "error without a message");
    return;
  }
  doppel::fuzz::CheckStorable(e, "an imported envelope");
  const std::string exported = json::serialize(doppel::interop::EnvelopeToJson(e));
  json::value again = json::parse(exported, ec);
  FUZZ_CHECK(!ec && again.is_object(),
             "the export of an imported envelope is not JSON: " + exported.substr(0, 200));
  Envelope back;
  s = doppel::interop::EnvelopeFromJson(again.get_object(), &back);
  FUZZ_CHECK(s.ok(), "the export of an imported envelope does not import: " + s.message());
  FUZZ_CHECK(back.SerializeAsString() == e.SerializeAsString(),
             "export and re-import changed the envelope: " + exported.substr(0, 200));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    CheckLine(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return 0;
}
