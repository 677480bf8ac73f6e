#include "report/report_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <vector>

#include "report/excerpt.h"

namespace doppel::report {
namespace json = boost::json;
namespace pb = google::protobuf;
namespace {

// Sets every singular message field of `message` (but `optional` ones), recursively, so protobuf's
// JSON printer writes each documented object even where the report left it empty ("status": {...}
// of a target that got no response).
void SetSubmessages(pb::Message* message) {
  const pb::Reflection* reflection = message->GetReflection();
  const pb::Descriptor* descriptor = message->GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || field->is_map()) continue;
    // An `optional` message field is a section that is absent when not set (correlation).
    if (field->has_optional_keyword() && !reflection->HasField(*message, field)) continue;
    if (field->is_repeated()) {
      for (int j = 0; j < reflection->FieldSize(*message, field); ++j) {
        SetSubmessages(reflection->MutableRepeatedMessage(message, field, j));
      }
    } else {
      SetSubmessages(reflection->MutableMessage(message, field));
    }
  }
}

bool Is64Bit(const pb::FieldDescriptor* field) {
  return field->cpp_type() == pb::FieldDescriptor::CPPTYPE_INT64 ||
         field->cpp_type() == pb::FieldDescriptor::CPPTYPE_UINT64;
}

// Protobuf writes 64-bit integers as JSON strings ("12"); doppel.report/v1 has them as
// numbers. `value` is such a string: make it the number it holds.
void ToNumber(json::value* value) {
  if (!value->is_string()) return;
  const json::string& s = value->get_string();
  uint64_t u = 0;
  if (std::from_chars(s.data(), s.data() + s.size(), u).ec == std::errc()) {
    *value = u;
    return;
  }
  int64_t i = 0;
  if (std::from_chars(s.data(), s.data() + s.size(), i).ec == std::errc()) *value = i;
}

void Adapt(const pb::Descriptor* descriptor, json::object* object);

// `value` is the JSON of `field` (one element of it when repeated).
void AdaptValue(const pb::FieldDescriptor* field, json::value* value) {
  if (Is64Bit(field)) {
    ToNumber(value);
  } else if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE && value->is_object()) {
    Adapt(field->message_type(), &value->get_object());
  }
}

// The thin adapter between protobuf's JSON mapping and doppel.report/v1: 64-bit integers
// become numbers, members follow the fields' declaration order (protobuf 3.21 writes proto3
// `optional` fields last) and map members are sorted by key. The rest is protobuf's output.
void Adapt(const pb::Descriptor* descriptor, json::object* object) {
  json::object ordered;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    json::value* value = object->if_contains(field->json_name());
    if (value == nullptr) continue;
    if (field->is_map() && value->is_object()) {
      const pb::FieldDescriptor* map_value = field->message_type()->map_value();
      std::vector<std::pair<std::string, json::value>> members;
      for (auto& m : value->get_object()) members.emplace_back(m.key(), std::move(m.value()));
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      json::object sorted;
      for (auto& [key, v] : members) {
        AdaptValue(map_value, &v);
        sorted[key] = std::move(v);
      }
      *value = std::move(sorted);
    } else if (field->is_repeated() && value->is_array()) {
      for (json::value& element : value->get_array()) AdaptValue(field, &element);
    } else {
      AdaptValue(field, value);
    }
    ordered[field->json_name()] = std::move(*value);
  }
  *object = std::move(ordered);
}

// The names protobuf reads as plain strings but the renderers compare against: an unknown
// verdict would silently render as "ok". Errors name the member, like protobuf's.
Status CheckNames(const Report& report) {
  auto check = [](const std::string& where, const auto& parsed) {
    return parsed.ok() ? Status::Ok()
                       : Status::InvalidArgument(where + ": " + parsed.status().message());
  };
  if (!report.settings().fail_on().empty()) {  // "" only in a Report built by hand
    DOPPEL_RETURN_IF_ERROR(check("settings.fail_on", ParseSeverity(report.settings().fail_on())));
  }
  auto check_exemplars = [&](const std::string& at, const auto& exemplars) -> Status {
    for (int x = 0; x < exemplars.size(); ++x) {
      std::string where = at + "[" + std::to_string(x) + "]";
      DOPPEL_RETURN_IF_ERROR(check(where + ".kind", ParseKind(exemplars[x].kind())));
      DOPPEL_RETURN_IF_ERROR(check(where + ".severity", ParseSeverity(exemplars[x].severity())));
    }
    return Status::Ok();
  };
  for (int t = 0; t < report.targets_size(); ++t) {
    const TargetReport& target = report.targets(t);
    for (int e = 0; e < target.endpoints_size(); ++e) {
      const EndpointReport& endpoint = target.endpoints(e);
      for (int f = 0; f < endpoint.fields_size(); ++f) {
        const FieldReport& field = endpoint.fields(f);
        std::string at = "targets[" + std::to_string(t) + "].endpoints[" + std::to_string(e) +
                         "].fields[" + std::to_string(f) + "]";
        DOPPEL_RETURN_IF_ERROR(check(at + ".verdict", ParseVerdict(field.verdict())));
        DOPPEL_RETURN_IF_ERROR(check(at + ".severity", ParseSeverity(field.severity())));
        for (int k = 0; k < field.kinds_size(); ++k) {
          DOPPEL_RETURN_IF_ERROR(
              check(at + ".kinds[" + std::to_string(k) + "]", ParseKind(field.kinds(k))));
        }
        DOPPEL_RETURN_IF_ERROR(check_exemplars(at + ".exemplars", field.exemplars()));
        DOPPEL_RETURN_IF_ERROR(check_exemplars(at + ".noise_exemplars", field.noise_exemplars()));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

std::string ReportToJson(const Report& report) {
  Report full = report;
  full.set_schema(std::string(kReportSchema));
  SetSubmessages(&full);
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;  // 0, false and "" are written, as documented
  std::string text;
  // Fails only for what has no JSON form (an Any of an unknown type): a Report holds none, so
  // the checks below are for a broken protobuf library, not for data.
  auto printed = pb::util::MessageToJsonString(full, &text, options);
  json::error_code ec;
  json::value doc = json::parse(text, ec);
  if (!printed.ok() || ec || !doc.is_object()) return text + "\n";
  Adapt(Report::descriptor(), &doc.get_object());
  return PrettyJson(json::serialize(doc)) + "\n";
}

Result<Report> ReportFromJson(std::string_view text) {
  // The schema is checked before the members: a document of another schema gets "not
  // supported", not an error about a member this version reads differently.
  json::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) return Status::InvalidArgument("report is not valid JSON: " + ec.message());
  if (!doc.is_object()) return Status::InvalidArgument("report: expected a JSON object");
  const json::value* schema = doc.get_object().if_contains("schema");
  if (schema == nullptr) return Status::InvalidArgument("report: schema: missing");
  if (!schema->is_string()) return Status::InvalidArgument("report: schema: expected a string");
  if (schema->get_string() != kReportSchema) {
    return Status::Unsupported("report schema \"" + std::string(schema->get_string()) +
                               "\" is not supported (this doppel reads \"" +
                               std::string(kReportSchema) + "\")");
  }
  Report report;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a later v1 writer may add members
  auto status =
      pb::util::JsonStringToMessage(pb::StringPiece(text.data(), text.size()), &report, options);
  if (!status.ok()) {
    // protobuf names the member: "(targets[0].endpoints[0].requests): invalid value ...".
    return Status::InvalidArgument("report: " + std::string(status.message()));
  }
  if (Status names = CheckNames(report); !names.ok()) {
    return Status::InvalidArgument("report: " + names.message());
  }
  return report;
}

}  // namespace doppel::report
