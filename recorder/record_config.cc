#include "recorder/record_config.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>

#include "base/utf8.h"
#include "doppel/v1/config.pb.h"

namespace doppel::recorder {
namespace {

namespace pb = google::protobuf;

#define DOPPEL_CONFIG_FIELD(path, flag, live, member)                               \
  RecordConfigField {                                                               \
    path, flag, live, [](SessionOptions& o) -> ConfigFieldRef { return &o.member; } \
  }

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string_view::npos; start = dot + 1) {
    out.push_back(path.substr(start, dot - start));
  }
  out.push_back(path.substr(start));
  return out;
}

// The value at `path` of a document that passed the schema check (a key is the field's proto
// name or its JSON name), or null.
const boost::json::value* Find(const boost::json::value& root, std::string_view path) {
  const boost::json::value* v = &root;
  const pb::Descriptor* type = v1::RecordConfig::descriptor();
  for (std::string_view seg : Segments(path)) {
    const boost::json::object* obj = v->if_object();
    const pb::FieldDescriptor* f = type ? type->FindFieldByName(std::string(seg)) : nullptr;
    if (obj == nullptr || f == nullptr) return nullptr;
    v = obj->if_contains(f->name());
    if (v == nullptr) v = obj->if_contains(f->json_name());
    if (v == nullptr || v->is_null()) return nullptr;
    type = f->message_type();
  }
  return v;
}

template <typename Int>
Status ReadInteger(const net::ConfigDoc& doc, const std::string& path, const boost::json::value& v,
                   Int* out) {
  double d = 0;
  if (v.is_int64()) {
    d = static_cast<double>(v.as_int64());
  } else if (v.is_uint64()) {
    d = static_cast<double>(v.as_uint64());
  } else {
    d = v.as_double();
  }
  if (d != std::floor(d) || d < static_cast<double>(std::numeric_limits<Int>::min()) ||
      d > static_cast<double>(std::numeric_limits<Int>::max())) {
    return doc.Error(path, "expected a whole number between " +
                               std::to_string(std::numeric_limits<Int>::min()) + " and " +
                               std::to_string(std::numeric_limits<Int>::max()));
  }
  if (v.is_int64()) {
    *out = static_cast<Int>(v.as_int64());
  } else if (v.is_uint64()) {
    *out = static_cast<Int>(v.as_uint64());
  } else {
    *out = static_cast<Int>(d);
  }
  return Status::Ok();
}

// Sets the field from a value whose JSON type the schema check already vouched for.
Status Read(const net::ConfigDoc& doc, const RecordConfigField& field, const boost::json::value& v,
            SessionOptions* out) {
  const std::string path(field.path);
  return std::visit(
      [&](auto* member) -> Status {
        using T = std::remove_pointer_t<decltype(member)>;
        // The schema check vouched for the JSON types; checked again here all the same, so
        // that what it lets through (a null list item, say) is an error, never a throw.
        if constexpr (std::is_same_v<T, std::string>) {
          if (!v.is_string()) return doc.Error(path, "expected a string");
          if (!IsValidUtf8(v.as_string())) return doc.Error(path, "not valid UTF-8 text");
          *member = std::string(v.as_string());
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!v.is_bool()) return doc.Error(path, "expected true or false");
          *member = v.as_bool();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!v.is_number()) return doc.Error(path, "expected a number");
          if (!std::isfinite(v.to_number<double>()))
            return doc.Error(path, "expected a finite number");
          *member = v.to_number<double>();
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          member->clear();
          if (!v.is_array()) return doc.Error(path, "expected a list");
          const boost::json::array& items = v.as_array();
          for (size_t i = 0; i < items.size(); ++i) {
            if (!items[i].is_string()) {
              return doc.Error(path + "[" + std::to_string(i) + "]", "expected a string");
            }
            if (!IsValidUtf8(items[i].as_string())) {
              return doc.Error(path + "[" + std::to_string(i) + "]", "not valid UTF-8 text");
            }
            member->emplace_back(items[i].as_string());
          }
        } else {
          if (!v.is_number()) return doc.Error(path, "expected a whole number");
          return ReadInteger(doc, path, v, member);
        }
        return Status::Ok();
      },
      field.member(*out));
}

boost::json::value ToJson(const RecordConfigField& field, const SessionOptions& options) {
  return std::visit(
      [](auto* member) -> boost::json::value {
        using T = std::remove_pointer_t<decltype(member)>;
        if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          boost::json::array items;
          for (const std::string& s : *member) items.emplace_back(s);
          return items;
        } else {
          return boost::json::value(*member);
        }
      },
      field.member(const_cast<SessionOptions&>(options)));
}

void Copy(const RecordConfigField& field, const SessionOptions& from, SessionOptions* to) {
  std::visit(
      [&](auto* dst) {
        *dst = *std::get<decltype(dst)>(field.member(const_cast<SessionOptions&>(from)));
      },
      field.member(*to));
}

bool Given(const RecordConfigSource& src, std::string_view path) {
  return std::find(src.given.begin(), src.given.end(), path) != src.given.end();
}

}  // namespace

const std::vector<RecordConfigField>& RecordConfigFields() {
  static const std::vector<RecordConfigField> fields = {
      DOPPEL_CONFIG_FIELD("session", "--session", false, name),
      DOPPEL_CONFIG_FIELD("listener.listen", "--listen", false, listen),
      DOPPEL_CONFIG_FIELD("listener.threads", "--threads", false, threads),
      DOPPEL_CONFIG_FIELD("listener.max_connections", "--max-connections", false, max_connections),
      DOPPEL_CONFIG_FIELD("listener.idle_timeout", "--idle-timeout", false, idle_timeout),
      DOPPEL_CONFIG_FIELD("listener.request_timeout", "--request-timeout", false, request_timeout),
      DOPPEL_CONFIG_FIELD("listener.max_request_body", "--max-request-body", false,
                          max_request_body),
      DOPPEL_CONFIG_FIELD("listener.request_buffer", "--request-buffer", false, request_buffer),
      DOPPEL_CONFIG_FIELD("listener.max_header_size", "--max-header-size", false, max_header_size),
      DOPPEL_CONFIG_FIELD("listener.h2_max_concurrent_streams", "--h2-max-concurrent-streams",
                          false, h2_max_concurrent_streams),
      DOPPEL_CONFIG_FIELD("listener.drain_timeout", "--drain-timeout", false, drain_timeout),
      DOPPEL_CONFIG_FIELD("listener.tls.cert", "--tls-cert", false, tls_cert),
      DOPPEL_CONFIG_FIELD("listener.tls.key", "--tls-key", false, tls_key),
      DOPPEL_CONFIG_FIELD("listener.tls.client_ca", "--tls-client-ca", false, tls_client_ca),
      DOPPEL_CONFIG_FIELD("upstream.url", "--upstream", false, upstream),
      DOPPEL_CONFIG_FIELD("upstream.ca", "--upstream-ca", false, upstream_ca),
      DOPPEL_CONFIG_FIELD("upstream.cert", "--upstream-cert", false, upstream_cert),
      DOPPEL_CONFIG_FIELD("upstream.key", "--upstream-key", false, upstream_key),
      DOPPEL_CONFIG_FIELD("upstream.insecure", "--upstream-insecure", false, upstream_insecure),
      DOPPEL_CONFIG_FIELD("upstream.connect_timeout", "--upstream-connect-timeout", false,
                          upstream_connect_timeout),
      DOPPEL_CONFIG_FIELD("upstream.idle_timeout", "--upstream-idle-timeout", false,
                          upstream_idle_timeout),
      DOPPEL_CONFIG_FIELD("upstream.timeout", "--upstream-timeout", false, upstream_timeout),
      DOPPEL_CONFIG_FIELD("sampling.percent", "--sample", true, sample),
      DOPPEL_CONFIG_FIELD("sampling.key", "--sample-key", true, sample_key),
      DOPPEL_CONFIG_FIELD("sampling.mode", "--sample-mode", false, sample_mode),
      DOPPEL_CONFIG_FIELD("sampling.budget", "--sample-budget", false, sample_budget),
      DOPPEL_CONFIG_FIELD("sampling.per_class_min", "--per-class-min", false, per_class_min),
      DOPPEL_CONFIG_FIELD("sampling.no_class_history", "--no-class-history", false,
                          no_class_history),
      DOPPEL_CONFIG_FIELD("sampling.class_rules", "--class-rules", false, class_rules),
      DOPPEL_CONFIG_FIELD("capture.match", "--match", true, match),
      DOPPEL_CONFIG_FIELD("capture.rules_file", "--rules", true, rules_file),
      DOPPEL_CONFIG_FIELD("capture.body_limit", "--capture-body-limit", false, capture_body_limit),
      DOPPEL_CONFIG_FIELD("capture.log_bodies", "--log-bodies", false, log_bodies),
      DOPPEL_CONFIG_FIELD("capture.queue_size", "--queue-size", false, queue_size),
      DOPPEL_CONFIG_FIELD("capture.sync", "--sync", false, sync),
      DOPPEL_CONFIG_FIELD("capture.redact.headers", "--redact-header", false, redact.headers),
      DOPPEL_CONFIG_FIELD("capture.redact.query", "--redact-query", false, redact.query_params),
      DOPPEL_CONFIG_FIELD("capture.redact.json_paths", "--redact-json-path", false,
                          redact.json_paths),
      DOPPEL_CONFIG_FIELD("capture.redact.off", "--no-redact", false, redact.off),
      DOPPEL_CONFIG_FIELD("sinks.urls", "--sink", false, sinks),
      DOPPEL_CONFIG_FIELD("sinks.recorder_id", "--recorder-id", false, recorder_id),
      DOPPEL_CONFIG_FIELD("sinks.maxlen", "--sink-maxlen", false, sink_maxlen),
      DOPPEL_CONFIG_FIELD("sinks.shards", "--sink-shards", false, sink_shards),
      DOPPEL_CONFIG_FIELD("sinks.optional", "--sink-optional", false, sink_optional),
      DOPPEL_CONFIG_FIELD("mirroring.mirrors", "--mirror", true, mirrors),
      DOPPEL_CONFIG_FIELD("mirroring.no_shadow_suffix", "--no-shadow-suffix", true,
                          no_shadow_suffix),
      DOPPEL_CONFIG_FIELD("mirroring.same_sample", "--mirror-same-sample", true,
                          mirror_same_sample),
      DOPPEL_CONFIG_FIELD("mirroring.max_inflight_bytes", "--mirror-max-inflight-bytes", true,
                          mirror_max_inflight_bytes),
      DOPPEL_CONFIG_FIELD("mirroring.diff", "--mirror-diff", true, mirror_diff),
      DOPPEL_CONFIG_FIELD("mirroring.diff_rules", "--mirror-diff-rules", true, mirror_diff_rules),
      DOPPEL_CONFIG_FIELD("mirroring.proto_set", "--mirror-proto-set", true, mirror_proto_set),
      DOPPEL_CONFIG_FIELD("mirroring.set_headers", "--mirror-set-header", true, mirror_set_headers),
      DOPPEL_CONFIG_FIELD("mirroring.remove_headers", "--mirror-remove-header", true,
                          mirror_remove_headers),
      DOPPEL_CONFIG_FIELD("mirroring.match", "--mirror-match", true, mirror_match),
      DOPPEL_CONFIG_FIELD("mirroring.rules_file", "--mirror-rules", true, mirror_rules_file),
      DOPPEL_CONFIG_FIELD("mirroring.budget", "--mirror-budget", true, mirror_budget),
      DOPPEL_CONFIG_FIELD("faults.spec", "--fault", true, fault),
      DOPPEL_CONFIG_FIELD("faults.rule", "--fault-rule", true, fault_rule),
      DOPPEL_CONFIG_FIELD("faults.headers", "--fault-headers", true, fault_headers),
      DOPPEL_CONFIG_FIELD("faults.seed", "--fault-seed", true, fault_seed),
      DOPPEL_CONFIG_FIELD("faults.max_active", "--max-active-faults", true, max_active_faults),
      DOPPEL_CONFIG_FIELD("admin.listen", "--admin", false, admin),
      DOPPEL_CONFIG_FIELD("admin.allow_remote", "--admin-allow-remote", false, admin_allow_remote),
  };
  return fields;
}

#undef DOPPEL_CONFIG_FIELD

namespace {

// `doc`'s fields over `*out`, but for the flags given. `prefix` starts every error message.
Status Overlay(const RecordConfigSource& src, const net::ConfigDoc& doc, const std::string& prefix,
               SessionOptions* out) {
  if (!doc.value.is_object()) {
    return Status::InvalidArgument(prefix +
                                   "the configuration must be an object of sections (listener, "
                                   "upstream, sampling, capture, sinks, mirroring, faults, admin)");
  }
  if (Status st = net::CheckAgainstSchema(doc, *v1::RecordConfig::descriptor()); !st.ok()) {
    return Status::InvalidArgument(prefix + st.message());
  }
  for (const RecordConfigField& f : RecordConfigFields()) {
    if (Given(src, f.path)) continue;
    const boost::json::value* v = Find(doc.value, f.path);
    if (v == nullptr) continue;
    if (Status st = Read(doc, f, *v, out); !st.ok()) {
      return Status::InvalidArgument(prefix + st.message());
    }
  }
  return Status::Ok();
}

}  // namespace

Result<SessionOptions> ResolveRecordConfig(const RecordConfigSource& src) {
  SessionOptions out = src.flags;
  for (const RecordConfigField& f : RecordConfigFields()) {
    if (!Given(src, f.path)) Copy(f, src.defaults, &out);
  }
  if (src.file.empty()) return out;
  DOPPEL_ASSIGN_OR_RETURN(net::ConfigDoc doc, net::LoadConfigFile(src.file));
  DOPPEL_RETURN_IF_ERROR(Overlay(src, doc, src.file + ": ", &out));
  return out;
}

Result<SessionOptions> ApplyRecordConfig(const RecordConfigSource& src, const SessionOptions& base,
                                         const net::ConfigDoc& doc) {
  SessionOptions out = base;
  DOPPEL_RETURN_IF_ERROR(Overlay(src, doc, "", &out));
  return out;
}

boost::json::object RecordConfigJson(const SessionOptions& options) {
  boost::json::object root;
  for (const RecordConfigField& f : RecordConfigFields()) {
    const std::vector<std::string_view> segs = Segments(f.path);
    boost::json::object* obj = &root;
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
      boost::json::value& next = (*obj)[segs[i]];
      if (!next.is_object()) next = boost::json::object();
      obj = &next.as_object();
    }
    (*obj)[segs.back()] = ToJson(f, options);
  }
  return root;
}

std::vector<const RecordConfigField*> ChangedRecordConfigFields(const SessionOptions& a,
                                                                const SessionOptions& b) {
  std::vector<const RecordConfigField*> changed;
  for (const RecordConfigField& f : RecordConfigFields()) {
    if (ToJson(f, a) != ToJson(f, b)) changed.push_back(&f);
  }
  return changed;
}

std::string RecordConfigValueText(const RecordConfigField& field, const SessionOptions& options) {
  const boost::json::value v = ToJson(field, options);
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.15g", v.as_double());
    return buf;
  }
  return boost::json::serialize(v);
}

}  // namespace doppel::recorder
