#include "report/report_json.h"

#include <boost/json.hpp>
#include <cmath>
#include <limits>

#include "report/excerpt.h"

namespace doppel::report {
namespace json = boost::json;
namespace {

// ---- writing -------------------------------------------------------------------------

// Integral values as JSON integers ("0" rather than "0E0"); the reader accepts either.
json::value Num(double x) {
  if (std::isfinite(x) && x == std::floor(x) && std::fabs(x) < 9.0e15) {
    return json::value(static_cast<int64_t>(x));
  }
  if (!std::isfinite(x)) return json::value(0);
  return json::value(x);
}

double Rate(uint64_t count, uint64_t total) {
  return total == 0 ? 0.0 : static_cast<double>(count) / static_cast<double>(total);
}

json::object CountsObject(const std::vector<NamedCount>& counts) {
  json::object o;
  for (const NamedCount& c : counts) o[c.name] = c.count;
  return o;
}

json::array CountsArray(const std::vector<NamedCount>& counts) {
  json::array a;
  for (const NamedCount& c : counts)
    a.push_back(json::object{{"path", c.name}, {"count", c.count}});
  return a;
}

json::object StatusJson(const StatusCounts& s) {
  return json::object{{"1xx", s.s1xx}, {"2xx", s.s2xx}, {"3xx", s.s3xx},
                      {"4xx", s.s4xx}, {"5xx", s.s5xx}, {"other", s.other}};
}

json::object LatencyJson(const LatencySummary& l) {
  return json::object{{"count", l.count},   {"sum_us", l.sum_us}, {"p50_us", l.p50_us},
                      {"p90_us", l.p90_us}, {"p99_us", l.p99_us}, {"max_us", l.max_us}};
}

json::object ExemplarJson(const Exemplar& e) {
  json::object o;
  o["method"] = e.method;
  o["target"] = e.target;
  o["request_body"] = e.request_body;
  o["path"] = e.path;
  o["kind"] = diff::KindName(e.kind);
  o["severity"] = diff::SeverityName(e.severity);
  o["expected"] = e.expected;
  o["actual"] = e.actual;
  o["detail"] = e.detail;
  o["expected_status"] = e.expected_status;
  o["actual_status"] = e.actual_status;
  o["expected_body"] = e.expected_body;
  o["actual_body"] = e.actual_body;
  return o;
}

json::object FieldJson(const FieldReport& f) {
  json::object o;
  o["path"] = f.path;
  o["verdict"] = VerdictName(f.verdict);
  o["severity"] = diff::SeverityName(f.severity);
  json::array kinds;
  for (diff::DiffKind k : f.kinds) kinds.push_back(json::string(diff::KindName(k)));
  o["kinds"] = std::move(kinds);
  o["mismatches"] = f.mismatches;
  o["compared"] = f.compared;
  o["rate"] = Num(Rate(f.mismatches, f.compared));
  o["masked"] = f.masked;
  o["noise_mismatches"] = f.noise_mismatches;
  o["noise_compared"] = f.noise_compared;
  o["noise_rate"] = Num(Rate(f.noise_mismatches, f.noise_compared));
  o["p_value"] = Num(f.p_value);
  json::array ex, noise;
  for (const Exemplar& e : f.exemplars) ex.push_back(ExemplarJson(e));
  for (const Exemplar& e : f.noise_exemplars) noise.push_back(ExemplarJson(e));
  o["exemplars"] = std::move(ex);
  o["noise_exemplars"] = std::move(noise);
  return o;
}

json::object EndpointJson(const EndpointReport& e) {
  json::object o;
  o["name"] = e.name;
  o["failed"] = e.failed;
  o["regressions"] = e.regressions;
  o["error_rate_exceeded"] = e.error_rate_exceeded;
  o["requests"] = e.requests;
  o["errors"] = e.errors;
  o["errors_by_reason"] = CountsObject(e.errors_by_reason);
  o["status"] = StatusJson(e.status);
  o["compared"] = e.compared;
  o["matched"] = e.matched;
  o["mismatched"] = e.mismatched;
  o["noise_compared"] = e.noise_compared;
  o["untracked_fields"] = e.untracked_fields;
  o["latency"] = LatencyJson(e.latency);
  o["recorded_latency"] = LatencyJson(e.recorded_latency);
  json::array fields;
  for (const FieldReport& f : e.fields) fields.push_back(FieldJson(f));
  o["fields"] = std::move(fields);
  o["normalized"] = CountsArray(e.normalized);
  o["ignored"] = CountsArray(e.ignored);
  return o;
}

json::object TargetJson(const TargetReport& t) {
  json::object o;
  o["index"] = t.index;
  o["name"] = t.name;
  o["failed_endpoints"] = t.failed_endpoints;
  o["regressions"] = t.regressions;
  o["requests"] = t.requests;
  o["errors"] = t.errors;
  o["errors_by_reason"] = CountsObject(t.errors_by_reason);
  o["status"] = StatusJson(t.status);
  o["compared"] = t.compared;
  o["matched"] = t.matched;
  o["mismatched"] = t.mismatched;
  o["latency"] = LatencyJson(t.latency);
  o["recorded_latency"] = LatencyJson(t.recorded_latency);
  json::array endpoints;
  for (const EndpointReport& e : t.endpoints) endpoints.push_back(EndpointJson(e));
  o["endpoints"] = std::move(endpoints);
  return o;
}

// ---- reading -------------------------------------------------------------------------

// Walks a parsed document, remembering the first error with the member path it occurred at.
class Reader {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  void Fail(const std::string& where, const std::string& what) {
    if (error_.empty()) error_ = (where.empty() ? std::string("report") : where) + ": " + what;
  }

  const json::value* Member(const json::object& o, const std::string& where, std::string_view key,
                            bool required = true) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr && required) Fail(Join(where, key), "missing");
    return v;
  }

  static std::string Join(const std::string& where, std::string_view key) {
    return where.empty() ? std::string(key) : where + "." + std::string(key);
  }
  static std::string Index(const std::string& where, size_t i) {
    return where + "[" + std::to_string(i) + "]";
  }

  const json::object* Object(const json::object& o, const std::string& where,
                             std::string_view key) {
    const json::value* v = Member(o, where, key);
    if (v == nullptr) return nullptr;
    if (!v->is_object()) {
      Fail(Join(where, key), "expected an object");
      return nullptr;
    }
    return &v->get_object();
  }
  const json::array* Array(const json::object& o, const std::string& where, std::string_view key) {
    const json::value* v = Member(o, where, key);
    if (v == nullptr) return nullptr;
    if (!v->is_array()) {
      Fail(Join(where, key), "expected an array");
      return nullptr;
    }
    return &v->get_array();
  }

  void String(const json::object& o, const std::string& where, std::string_view key,
              std::string* out, bool required = true) {
    const json::value* v = Member(o, where, key, required);
    if (v == nullptr) return;
    if (!v->is_string()) return Fail(Join(where, key), "expected a string");
    *out = std::string(v->get_string());
  }
  void Bool(const json::object& o, const std::string& where, std::string_view key, bool* out) {
    const json::value* v = Member(o, where, key);
    if (v == nullptr) return;
    if (!v->is_bool()) return Fail(Join(where, key), "expected true or false");
    *out = v->get_bool();
  }
  bool U64Value(const json::value& v, const std::string& where, uint64_t* out) {
    if (v.is_uint64()) {
      *out = v.get_uint64();
    } else if (v.is_int64() && v.get_int64() >= 0) {
      *out = static_cast<uint64_t>(v.get_int64());
    } else {
      Fail(where, "expected a non-negative integer");
      return false;
    }
    return true;
  }
  template <typename T>
  void U64(const json::object& o, const std::string& where, std::string_view key, T* out) {
    const json::value* v = Member(o, where, key);
    uint64_t x = 0;
    if (v == nullptr || !U64Value(*v, Join(where, key), &x)) return;
    if (x > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return Fail(Join(where, key), "out of range");
    }
    *out = static_cast<T>(x);
  }
  void Double(const json::object& o, const std::string& where, std::string_view key, double* out) {
    const json::value* v = Member(o, where, key);
    if (v == nullptr) return;
    if (!v->is_number()) return Fail(Join(where, key), "expected a number");
    *out = v->to_number<double>();
  }
  template <typename T>
  void Enum(const json::object& o, const std::string& where, std::string_view key, T* out,
            Result<T> (*parse)(std::string_view)) {
    std::string name;
    String(o, where, key, &name);
    if (!ok()) return;
    Result<T> r = parse(name);
    if (!r.ok()) return Fail(Join(where, key), r.status().message());
    *out = r.value();
  }

  void Counts(const json::object& o, const std::string& where, std::string_view key,
              std::vector<NamedCount>* out) {
    const json::object* obj = Object(o, where, key);
    if (obj == nullptr) return;
    for (const auto& member : *obj) {
      NamedCount c;
      c.name = std::string(member.key());
      if (!U64Value(member.value(), Join(Join(where, key), c.name), &c.count)) return;
      out->push_back(std::move(c));
    }
  }
  void PathCounts(const json::object& o, const std::string& where, std::string_view key,
                  std::vector<NamedCount>* out) {
    const json::array* a = Array(o, where, key);
    if (a == nullptr) return;
    for (size_t i = 0; i < a->size() && ok(); ++i) {
      std::string at = Index(Join(where, key), i);
      if (!(*a)[i].is_object()) return Fail(at, "expected an object");
      NamedCount c;
      String((*a)[i].get_object(), at, "path", &c.name);
      U64((*a)[i].get_object(), at, "count", &c.count);
      out->push_back(std::move(c));
    }
  }
  void Statuses(const json::object& o, const std::string& where, StatusCounts* s) {
    const json::object* obj = Object(o, where, "status");
    if (obj == nullptr) return;
    std::string at = Join(where, "status");
    U64(*obj, at, "1xx", &s->s1xx);
    U64(*obj, at, "2xx", &s->s2xx);
    U64(*obj, at, "3xx", &s->s3xx);
    U64(*obj, at, "4xx", &s->s4xx);
    U64(*obj, at, "5xx", &s->s5xx);
    U64(*obj, at, "other", &s->other);
  }
  void Latency(const json::object& o, const std::string& where, std::string_view key,
               LatencySummary* l) {
    const json::object* obj = Object(o, where, key);
    if (obj == nullptr) return;
    std::string at = Join(where, key);
    U64(*obj, at, "count", &l->count);
    U64(*obj, at, "sum_us", &l->sum_us);
    U64(*obj, at, "p50_us", &l->p50_us);
    U64(*obj, at, "p90_us", &l->p90_us);
    U64(*obj, at, "p99_us", &l->p99_us);
    U64(*obj, at, "max_us", &l->max_us);
  }

  // Calls each(element_object, element_path) for every element of the array `key`.
  template <typename F>
  void Each(const json::object& o, const std::string& where, std::string_view key, F each) {
    const json::array* a = Array(o, where, key);
    if (a == nullptr) return;
    for (size_t i = 0; i < a->size() && ok(); ++i) {
      std::string at = Index(Join(where, key), i);
      if (!(*a)[i].is_object()) return Fail(at, "expected an object");
      each((*a)[i].get_object(), at);
    }
  }

 private:
  std::string error_;
};

Exemplar ReadExemplar(Reader& r, const json::object& o, const std::string& at) {
  Exemplar e;
  r.String(o, at, "method", &e.method);
  r.String(o, at, "target", &e.target);
  r.String(o, at, "request_body", &e.request_body);
  r.String(o, at, "path", &e.path);
  r.Enum(o, at, "kind", &e.kind, &ParseKind);
  r.Enum(o, at, "severity", &e.severity, &ParseSeverity);
  r.String(o, at, "expected", &e.expected);
  r.String(o, at, "actual", &e.actual);
  r.String(o, at, "detail", &e.detail);
  r.U64(o, at, "expected_status", &e.expected_status);
  r.U64(o, at, "actual_status", &e.actual_status);
  r.String(o, at, "expected_body", &e.expected_body);
  r.String(o, at, "actual_body", &e.actual_body);
  return e;
}

FieldReport ReadField(Reader& r, const json::object& o, const std::string& at) {
  FieldReport f;
  r.String(o, at, "path", &f.path);
  r.Enum(o, at, "verdict", &f.verdict, &ParseVerdict);
  r.Enum(o, at, "severity", &f.severity, &ParseSeverity);
  if (const json::array* kinds = r.Array(o, at, "kinds")) {
    for (size_t i = 0; i < kinds->size() && r.ok(); ++i) {
      std::string where = Reader::Index(Reader::Join(at, "kinds"), i);
      if (!(*kinds)[i].is_string()) {
        r.Fail(where, "expected a string");
        break;
      }
      Result<diff::DiffKind> k = ParseKind((*kinds)[i].get_string());
      if (!k.ok()) {
        r.Fail(where, k.status().message());
        break;
      }
      f.kinds.push_back(k.value());
    }
  }
  r.U64(o, at, "mismatches", &f.mismatches);
  r.U64(o, at, "compared", &f.compared);
  r.U64(o, at, "masked", &f.masked);
  r.U64(o, at, "noise_mismatches", &f.noise_mismatches);
  r.U64(o, at, "noise_compared", &f.noise_compared);
  r.Double(o, at, "p_value", &f.p_value);
  r.Each(o, at, "exemplars", [&](const json::object& e, const std::string& where) {
    f.exemplars.push_back(ReadExemplar(r, e, where));
  });
  r.Each(o, at, "noise_exemplars", [&](const json::object& e, const std::string& where) {
    f.noise_exemplars.push_back(ReadExemplar(r, e, where));
  });
  return f;
}

EndpointReport ReadEndpoint(Reader& r, const json::object& o, const std::string& at) {
  EndpointReport e;
  r.String(o, at, "name", &e.name);
  r.Bool(o, at, "failed", &e.failed);
  r.U64(o, at, "regressions", &e.regressions);
  r.Bool(o, at, "error_rate_exceeded", &e.error_rate_exceeded);
  r.U64(o, at, "requests", &e.requests);
  r.U64(o, at, "errors", &e.errors);
  r.Counts(o, at, "errors_by_reason", &e.errors_by_reason);
  r.Statuses(o, at, &e.status);
  r.U64(o, at, "compared", &e.compared);
  r.U64(o, at, "matched", &e.matched);
  r.U64(o, at, "mismatched", &e.mismatched);
  r.U64(o, at, "noise_compared", &e.noise_compared);
  r.U64(o, at, "untracked_fields", &e.untracked_fields);
  r.Latency(o, at, "latency", &e.latency);
  r.Latency(o, at, "recorded_latency", &e.recorded_latency);
  r.Each(o, at, "fields", [&](const json::object& f, const std::string& where) {
    e.fields.push_back(ReadField(r, f, where));
  });
  r.PathCounts(o, at, "normalized", &e.normalized);
  r.PathCounts(o, at, "ignored", &e.ignored);
  return e;
}

TargetReport ReadTarget(Reader& r, const json::object& o, const std::string& at) {
  TargetReport t;
  r.U64(o, at, "index", &t.index);
  r.String(o, at, "name", &t.name);
  r.U64(o, at, "failed_endpoints", &t.failed_endpoints);
  r.U64(o, at, "regressions", &t.regressions);
  r.U64(o, at, "requests", &t.requests);
  r.U64(o, at, "errors", &t.errors);
  r.Counts(o, at, "errors_by_reason", &t.errors_by_reason);
  r.Statuses(o, at, &t.status);
  r.U64(o, at, "compared", &t.compared);
  r.U64(o, at, "matched", &t.matched);
  r.U64(o, at, "mismatched", &t.mismatched);
  r.Latency(o, at, "latency", &t.latency);
  r.Latency(o, at, "recorded_latency", &t.recorded_latency);
  r.Each(o, at, "endpoints", [&](const json::object& e, const std::string& where) {
    t.endpoints.push_back(ReadEndpoint(r, e, where));
  });
  return t;
}

}  // namespace

std::string ReportToJson(const Report& report) {
  json::object o;
  o["schema"] = kReportSchema;
  if (!report.run_id.empty()) o["run_id"] = report.run_id;
  if (!report.session.empty()) o["session"] = report.session;
  if (!report.generated_at.empty()) o["generated_at"] = report.generated_at;
  o["verdict"] = json::object{{"exit_code", report.exit_code},
                              {"regressions", report.regressions},
                              {"failed_endpoints", report.failed_endpoints}};
  const ReportSettings& s = report.settings;
  o["settings"] = json::object{{"fail_threshold_pct", Num(s.fail_threshold_pct)},
                               {"fail_on", diff::SeverityName(s.fail_on)},
                               {"alpha", Num(s.alpha)},
                               {"min_samples", s.min_samples},
                               {"min_rate_difference", Num(s.min_rate_difference)},
                               {"secondary", s.secondary}};
  json::array targets;
  for (const TargetReport& t : report.targets) targets.push_back(TargetJson(t));
  o["targets"] = std::move(targets);
  return PrettyJson(json::serialize(o)) + "\n";
}

Result<Report> ReportFromJson(std::string_view text) {
  json::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) return Status::InvalidArgument("report is not valid JSON: " + ec.message());
  if (!doc.is_object()) return Status::InvalidArgument("report: expected a JSON object");
  const json::object& o = doc.get_object();
  Reader r;
  Report report;
  std::string schema;
  r.String(o, "", "schema", &schema);
  if (!r.ok()) return Status::InvalidArgument(r.error());
  if (schema != kReportSchema) {
    return Status::Unsupported("report schema \"" + schema +
                               "\" is not supported (this doppel "
                               "reads \"" +
                               std::string(kReportSchema) + "\")");
  }
  r.String(o, "", "run_id", &report.run_id, /*required=*/false);
  r.String(o, "", "session", &report.session, /*required=*/false);
  r.String(o, "", "generated_at", &report.generated_at, /*required=*/false);
  if (const json::object* v = r.Object(o, "", "verdict")) {
    int64_t exit_code = 0;
    const json::value* ev = r.Member(*v, "verdict", "exit_code");
    if (ev != nullptr) {
      if (!ev->is_int64() && !ev->is_uint64()) {
        r.Fail("verdict.exit_code", "expected an integer");
      } else {
        json::error_code number_ec;
        exit_code = ev->to_number<int64_t>(number_ec);
        if (number_ec || exit_code < 0 || exit_code > 255) {
          r.Fail("verdict.exit_code", "out of range");
        }
      }
    }
    report.exit_code = static_cast<int>(exit_code);
    r.U64(*v, "verdict", "regressions", &report.regressions);
    r.U64(*v, "verdict", "failed_endpoints", &report.failed_endpoints);
  }
  if (const json::object* s = r.Object(o, "", "settings")) {
    ReportSettings& st = report.settings;
    r.Double(*s, "settings", "fail_threshold_pct", &st.fail_threshold_pct);
    r.Enum(*s, "settings", "fail_on", &st.fail_on, &ParseSeverity);
    r.Double(*s, "settings", "alpha", &st.alpha);
    r.U64(*s, "settings", "min_samples", &st.min_samples);
    r.Double(*s, "settings", "min_rate_difference", &st.min_rate_difference);
    r.String(*s, "settings", "secondary", &st.secondary);
  }
  r.Each(o, "", "targets", [&](const json::object& t, const std::string& where) {
    report.targets.push_back(ReadTarget(r, t, where));
  });
  if (!r.ok()) return Status::InvalidArgument("report: " + r.error());
  return report;
}

}  // namespace doppel::report
