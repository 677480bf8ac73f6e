#include "diff/json_diff.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/enum_names.h"
#include "diff/path.h"

namespace doppel::diff {
namespace {

namespace json = boost::json;

enum class Family { kIgnore, kTolerance, kArray };

bool InFamily(RuleAction a, Family f) {
  switch (f) {
    case Family::kIgnore:
      return a == RuleAction::kIgnore || a == RuleAction::kIgnoreIfValue ||
             a == RuleAction::kPresenceOnly;
    case Family::kTolerance:
      return a == RuleAction::kTolerance;
    case Family::kArray:
      return a == RuleAction::kUnordered || a == RuleAction::kUnorderedByKey;
  }
  return false;
}

enum class JsonType { kNull, kBool, kNumber, kString, kArray, kObject, kMaxValue = kObject };
constexpr EnumNames<JsonType, 6> kJsonTypeNames{
    {"null", "boolean", "number", "string", "array", "object"}};

JsonType TypeOf(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return JsonType::kNull;
    case json::kind::bool_:
      return JsonType::kBool;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return JsonType::kNumber;
    case json::kind::string:
      return JsonType::kString;
    case json::kind::array:
      return JsonType::kArray;
    case json::kind::object:
      return JsonType::kObject;
  }
  return JsonType::kNull;
}

bool DoubleEqualsInt(double d, int64_t i) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::trunc(d)) {
    return false;
  }
  return static_cast<int64_t>(d) == i;
}

bool DoubleEqualsUint(double d, uint64_t u) {
  if (!(d >= 0 && d < 18446744073709551616.0) || d != std::trunc(d)) return false;
  return static_cast<uint64_t>(d) == u;
}

// The value of a parsed JSON double. Boost.JSON 1.81 parses a zero whose exponent is past the
// double range ("0e400") as NaN (0 × inf), which would differ from itself; JSON has no NaN, so
// a NaN is always that zero.
double DoubleOf(const json::value& v) {
  const double d = v.get_double();
  return std::isnan(d) ? 0.0 : d;
}

// Exact numeric equality by value across representations.
bool NumbersEqual(const json::value& a, const json::value& b) {
  using json::kind;
  switch (a.kind()) {
    case kind::int64:
      if (b.is_int64()) return a.get_int64() == b.get_int64();
      if (b.is_uint64())
        return a.get_int64() >= 0 && static_cast<uint64_t>(a.get_int64()) == b.get_uint64();
      return DoubleEqualsInt(DoubleOf(b), a.get_int64());
    case kind::uint64:
      if (b.is_uint64()) return a.get_uint64() == b.get_uint64();
      if (b.is_int64())
        return b.get_int64() >= 0 && static_cast<uint64_t>(b.get_int64()) == a.get_uint64();
      return DoubleEqualsUint(DoubleOf(b), a.get_uint64());
    default:
      if (b.is_double()) return DoubleOf(a) == DoubleOf(b);
      if (b.is_int64()) return DoubleEqualsInt(DoubleOf(a), b.get_int64());
      return DoubleEqualsUint(DoubleOf(a), b.get_uint64());
  }
}

double AsDouble(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  return DoubleOf(v);
}

// Structural equality with numbers by value; no rules, no normalizers. Recursion is bounded
// by the parser's max_depth.
bool Equal(const json::value& a, const json::value& b) {
  JsonType t = TypeOf(a);
  if (t != TypeOf(b)) return false;
  switch (t) {
    case JsonType::kNull:
      return true;
    case JsonType::kBool:
      return a.get_bool() == b.get_bool();
    case JsonType::kNumber:
      return NumbersEqual(a, b);
    case JsonType::kString:
      return a.get_string() == b.get_string();
    case JsonType::kArray: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i])) return false;
      }
      return true;
    }
    case JsonType::kObject: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& m : x) {
        const json::value* other = y.if_contains(m.key());
        if (!other || !Equal(m.value(), *other)) return false;
      }
      return true;
    }
  }
  return false;
}

bool Same(const json::value* a, const json::value* b) {
  if (!a || !b) return a == b;
  return Equal(*a, *b);
}

// A hash consistent with Equal: numbers hash by their double value, object members
// order-independently.
size_t Hash(const json::value& v) {
  constexpr size_t kMix = 0x9e3779b97f4a7c15ull;
  switch (TypeOf(v)) {
    case JsonType::kNull:
      return 0x6e756c6c;
    case JsonType::kBool:
      return v.get_bool() ? 0x74727565 : 0x66616c73;
    case JsonType::kNumber: {
      double d = AsDouble(v);
      if (d == 0) d = 0;  // -0.0 == 0.0
      return std::hash<double>()(d) ^ 0x6e756d;
    }
    case JsonType::kString:
      return std::hash<std::string_view>()(std::string_view(v.get_string()));
    case JsonType::kArray: {
      size_t h = 0x617272;
      for (const json::value& e : v.get_array()) h = (h ^ Hash(e)) * kMix + 1;
      return h;
    }
    case JsonType::kObject: {
      size_t h = 0x6f626a;
      for (const auto& m : v.get_object()) {
        h += (std::hash<std::string_view>()(std::string_view(m.key())) * 31) ^ Hash(m.value());
      }
      return h;
    }
  }
  return 0;
}

// Scalars as a person writes them: doubles in their shortest round-trip form ("10.5", where
// Boost.JSON's serializer would write "1.05E1"), strings raw.
std::string ScalarText(const json::value& v) {
  switch (v.kind()) {
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_: {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, DoubleOf(v));
      return ec == std::errc() ? std::string(buf, end) : json::serialize(v);
    }
    case json::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case json::kind::null:
      return "null";
    case json::kind::string:
      return std::string(v.get_string());
    default:
      return json::serialize(v);
  }
}

// A bounded rendering for FieldDiff::expected/actual: strings JSON-quoted (so "1" and 1
// differ visibly), containers serialized up to the bound.
std::string Render(const json::value* v, size_t max_bytes) {
  if (!v) return {};
  if (v->is_number() || v->is_bool() || v->is_null()) return ScalarText(*v);
  json::serializer sr;
  sr.reset(v);
  std::string buf(max_bytes + 1, '\0');
  std::string_view out = sr.read(buf.data(), buf.size());
  return Abbreviate(out, max_bytes);
}

// The text a regex of an ignore-if-value rule sees: scalars as ScalarText; containers never
// match.
bool ScalarMatches(const CompiledRule& rule, const json::value& v) {
  if (v.is_array() || v.is_object()) return false;
  return rule.ValueMatches(ScalarText(v));
}

class Walker {
 public:
  Walker(std::string_view root, std::span<const CompiledRule* const> rules,
         const JsonDiffOptions& options, DiffSink* sink)
      : root_(root), rules_(rules), options_(options), sink_(sink) {}

  void Compare(const json::value* e, const json::value* a) {
    if (probe_ && found_) return;
    if (const CompiledRule* rule = Find(Family::kIgnore)) {
      switch (rule->action) {
        case RuleAction::kIgnore:
          if (!Same(e, a)) Ignored();
          return;
        case RuleAction::kPresenceOnly:
          if (e && a) {
            if (!Same(e, a)) Ignored();
            return;
          }
          break;
        case RuleAction::kIgnoreIfValue:
          if ((!e || ScalarMatches(*rule, *e)) && (!a || ScalarMatches(*rule, *a))) {
            if (!Same(e, a)) Ignored();
            return;
          }
          break;
        default:
          break;
      }
    }
    if (!a) return Report(DiffKind::kMissing, e, a);
    if (!e) return Report(DiffKind::kExtra, e, a);
    JsonType te = TypeOf(*e), ta = TypeOf(*a);
    if (te != ta) {
      return Report(
          DiffKind::kType, e, a,
          std::string(kJsonTypeNames.Name(te)) + " -> " + std::string(kJsonTypeNames.Name(ta)));
    }
    switch (te) {
      case JsonType::kNull:
        return;
      case JsonType::kBool:
        if (e->get_bool() != a->get_bool()) Report(DiffKind::kValue, e, a);
        return;
      case JsonType::kNumber:
        return CompareNumbers(*e, *a);
      case JsonType::kString:
        return CompareStrings(*e, *a);
      case JsonType::kObject:
      case JsonType::kArray:
        if (steps_.size() >= options_.max_depth) {
          if (!Equal(*e, *a)) {
            Report(DiffKind::kUncompared, e, a,
                   "nested deeper than " + std::to_string(options_.max_depth) +
                       " levels: compared as a whole, rules not applied");
          }
          return;
        }
        if (te == JsonType::kObject) return CompareObjects(e->get_object(), a->get_object());
        return CompareArrays(e->get_array(), a->get_array());
    }
  }

 private:
  const CompiledRule* Find(Family family) const {
    for (const CompiledRule* r : rules_) {
      if (r->path.depth() == steps_.size() && InFamily(r->action, family) &&
          r->path.Matches(root_, steps_)) {
        return r;
      }
    }
    return nullptr;
  }

  std::string Path() const { return RenderPath(root_, steps_); }

  void Report(DiffKind kind, const json::value* e, const json::value* a, std::string detail = {}) {
    if (probe_) {
      found_ = true;
      return;
    }
    if (sink_->full()) return sink_->Omit();  // skip rendering what will not be kept
    sink_->Add(FieldDiff{Path(), kind, DefaultSeverity(kind),
                         Render(e, options_.max_rendered_bytes),
                         Render(a, options_.max_rendered_bytes), std::move(detail)});
  }
  void Ignored() {
    if (!probe_) sink_->Ignored(Path());
  }
  void Normalized() {
    if (!probe_) sink_->Normalized(Path());
  }

  void CompareNumbers(const json::value& e, const json::value& a) {
    if (NumbersEqual(e, a)) return;
    double de = AsDouble(e), da = AsDouble(a);
    if (const CompiledRule* rule = Find(Family::kTolerance)) {
      if (rule->WithinTolerance(de, da)) return;
    }
    if (!NormalizeNumbers(de, da, options_.normalizers).empty()) return Normalized();
    Report(DiffKind::kValue, &e, &a);
  }

  void CompareStrings(const json::value& e, const json::value& a) {
    std::string_view se = e.get_string(), sa = a.get_string();
    if (se == sa) return;
    if (!NormalizeStrings(se, sa, options_.normalizers).empty()) return Normalized();
    Report(DiffKind::kValue, &e, &a);
  }

  void CompareObjects(const json::object& e, const json::object& a) {
    for (const auto& m : e) {
      steps_.push_back(PathStep::Key(m.key()));
      Compare(&m.value(), a.if_contains(m.key()));
      steps_.pop_back();
      if (probe_ && found_) return;
    }
    for (const auto& m : a) {
      if (e.contains(m.key())) continue;
      steps_.push_back(PathStep::Key(m.key()));
      Compare(nullptr, &m.value());
      steps_.pop_back();
      if (probe_ && found_) return;
    }
  }

  void CompareElement(const json::value* e, size_t index, const json::value* a) {
    steps_.push_back(PathStep::Index(index));
    Compare(e, a);
    steps_.pop_back();
  }

  // True when the pair would produce no difference under the rules.
  bool ProbeEqual(const json::value& e, size_t index, const json::value& a) {
    bool saved_probe = probe_, saved_found = found_;
    probe_ = true;
    found_ = false;
    CompareElement(&e, index, &a);
    bool equal = !found_;
    probe_ = saved_probe;
    found_ = saved_found;
    return equal;
  }

  void CompareArrays(const json::array& e, const json::array& a) {
    if (const CompiledRule* rule = Find(Family::kArray)) {
      std::vector<size_t> ei(e.size()), ai(a.size());
      for (size_t i = 0; i < ei.size(); ++i) ei[i] = i;
      for (size_t i = 0; i < ai.size(); ++i) ai[i] = i;
      if (rule->action == RuleAction::kUnordered) return CompareUnordered(e, a, ei, ai);
      return CompareByKey(e, a, rule->key);
    }
    size_t common = std::min(e.size(), a.size());
    if (e.size() == a.size() && AllEqual(e, a)) return;  // nothing to report or list
    if (e.size() == a.size() && !probe_ && IsMultisetEqual(e, a)) {
      // Walk into a scratch result: if anything differs by index the verdict is "order";
      // if rules make it equal after all, keep what was normalized or ignored on the way.
      DiffResult scratch;
      DiffSink scratch_sink(&scratch, 0, SIZE_MAX);
      DiffSink* saved = sink_;
      sink_ = &scratch_sink;
      for (size_t i = 0; i < common; ++i) CompareElement(&e[i], i, &a[i]);
      sink_ = saved;
      if (!scratch.match) {
        Report(DiffKind::kOrder, nullptr, nullptr,
               "same " + std::to_string(e.size()) + " elements in a different order");
        return;
      }
      for (std::string& p : scratch.normalized) sink_->Normalized(std::move(p));
      for (std::string& p : scratch.ignored) sink_->Ignored(std::move(p));
      return;
    }
    for (size_t i = 0; i < common; ++i) {
      CompareElement(&e[i], i, &a[i]);
      if (probe_ && found_) return;
    }
    if (e.size() == a.size()) return;
    // Surplus elements: reported once as array-size, unless rules ignore each of them.
    size_t unignored = 0;
    const json::array& longer = e.size() > a.size() ? e : a;
    for (size_t i = common; i < longer.size(); ++i) {
      steps_.push_back(PathStep::Index(i));
      const CompiledRule* rule = Find(Family::kIgnore);
      bool ignored =
          rule && (rule->action == RuleAction::kIgnore ||
                   (rule->action == RuleAction::kIgnoreIfValue && ScalarMatches(*rule, longer[i])));
      if (ignored) Ignored();
      steps_.pop_back();
      if (!ignored) ++unignored;
    }
    if (unignored == 0) return;
    bool shrunk = a.size() < e.size();
    if (probe_) {
      found_ = true;
      return;
    }
    sink_->Add(FieldDiff{Path(),
                         DiffKind::kArraySize,
                         shrunk ? Severity::kHigh : Severity::kLow,
                         std::to_string(e.size()) + " elements",
                         std::to_string(a.size()) + " elements",
                         {}});
  }

  static bool AllEqual(const json::array& e, const json::array& a) {
    for (size_t i = 0; i < e.size(); ++i) {
      if (!Equal(e[i], a[i])) return false;
    }
    return true;
  }

  // Same length and the same elements, counted with multiplicity.
  static bool IsMultisetEqual(const json::array& e, const json::array& a) {
    std::unordered_multimap<size_t, size_t> buckets;
    for (size_t j = 0; j < a.size(); ++j) buckets.emplace(Hash(a[j]), j);
    std::vector<bool> used(a.size());
    for (const json::value& x : e) {
      auto [lo, hi] = buckets.equal_range(Hash(x));
      bool found = false;
      for (auto it = lo; it != hi; ++it) {
        if (!used[it->second] && Equal(x, a[it->second])) {
          used[it->second] = true;
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }

  // Pairs elements e[ei...] with a[ai...] regardless of order: exact matches first (hashed),
  // then pairs that are equal under rules and normalizers (probed, within budget). Unpaired
  // expected elements are missing, unpaired actual ones extra, each at its own index.
  void CompareUnordered(const json::array& e, const json::array& a, std::vector<size_t> ei,
                        std::vector<size_t> ai) {
    std::unordered_multimap<size_t, size_t> buckets;
    for (size_t j : ai) buckets.emplace(Hash(a[j]), j);
    std::vector<bool> used(a.size());
    std::vector<size_t> left_e;
    for (size_t i : ei) {
      auto [lo, hi] = buckets.equal_range(Hash(e[i]));
      bool found = false;
      for (auto it = lo; it != hi; ++it) {
        if (!used[it->second] && Equal(e[i], a[it->second])) {
          used[it->second] = true;
          found = true;
          break;
        }
      }
      if (!found) left_e.push_back(i);
    }
    std::vector<size_t> left_a;
    for (size_t j : ai) {
      if (!used[j]) left_a.push_back(j);
    }
    size_t budget = options_.max_unordered_probes;
    std::vector<size_t> unpaired_e;
    for (size_t i : left_e) {
      bool paired = false;
      for (size_t j : left_a) {
        if (used[j] || budget == 0) continue;
        --budget;
        if (ProbeEqual(e[i], i, a[j])) {
          used[j] = true;
          paired = true;
          CompareElement(&e[i], i, &a[j]);  // records what was normalized or ignored
          break;
        }
      }
      if (!paired) unpaired_e.push_back(i);
    }
    for (size_t i : unpaired_e) {
      CompareElement(&e[i], i, nullptr);
      if (probe_ && found_) return;
    }
    for (size_t j : left_a) {
      if (!used[j]) CompareElement(nullptr, j, &a[j]);
      if (probe_ && found_) return;
    }
  }

  // Pairs object elements by the value of member `key`; elements without a scalar key are
  // paired as `unordered`. Paths use the expected index (the actual index for extras).
  void CompareByKey(const json::array& e, const json::array& a, const std::string& key) {
    auto KeyOf = [&key](const json::value& v) -> std::string {
      if (!v.is_object()) return {};
      const json::value* k = v.get_object().if_contains(key);
      if (!k) return {};
      switch (TypeOf(*k)) {
        case JsonType::kString:
          return "s" + std::string(k->get_string());
        case JsonType::kNumber: {
          // Numbers by value: 1 and 1.0 name the same element.
          char buf[40];
          int n = std::snprintf(buf, sizeof buf, "n%.17g", AsDouble(*k));
          return std::string(buf, static_cast<size_t>(std::max(n, 0)));
        }
        case JsonType::kBool:
          return k->get_bool() ? "btrue" : "bfalse";
        case JsonType::kNull:
          return "z";
        default:
          return {};
      }
    };
    std::unordered_multimap<std::string, size_t> by_key;
    std::vector<size_t> keyless_e, keyless_a;
    for (size_t j = 0; j < a.size(); ++j) {
      std::string k = KeyOf(a[j]);
      if (k.empty())
        keyless_a.push_back(j);
      else
        by_key.emplace(std::move(k), j);
    }
    std::vector<bool> used(a.size());
    for (size_t i = 0; i < e.size(); ++i) {
      std::string k = KeyOf(e[i]);
      if (k.empty()) {
        keyless_e.push_back(i);
        continue;
      }
      auto [lo, hi] = by_key.equal_range(k);
      const json::value* match = nullptr;
      // equal_range order is unspecified; take the lowest unused actual index.
      size_t best = SIZE_MAX;
      for (auto it = lo; it != hi; ++it) {
        if (!used[it->second] && it->second < best) best = it->second;
      }
      if (best != SIZE_MAX) {
        used[best] = true;
        match = &a[best];
      }
      CompareElement(&e[i], i, match);
      if (probe_ && found_) return;
    }
    for (size_t j = 0; j < a.size(); ++j) {
      if (used[j] || KeyOf(a[j]).empty()) continue;
      CompareElement(nullptr, j, &a[j]);
      if (probe_ && found_) return;
    }
    if (!keyless_e.empty() || !keyless_a.empty()) {
      CompareUnordered(e, a, std::move(keyless_e), std::move(keyless_a));
    }
  }

  std::string_view root_;
  std::span<const CompiledRule* const> rules_;
  const JsonDiffOptions& options_;
  DiffSink* sink_;
  std::vector<PathStep> steps_;
  bool probe_ = false;  // only find out whether anything differs; report nothing
  bool found_ = false;
};

Result<json::value> ParseText(std::string_view text, const JsonDiffOptions& options,
                              json::storage_ptr storage, std::string_view side) {
  json::parse_options po;
  po.max_depth = options.max_parse_depth;
  boost::system::error_code ec;
  json::value v = json::parse(text, ec, std::move(storage), po);
  if (ec) {
    return Status::InvalidArgument(std::string(side) + " body is not JSON: " + ec.message());
  }
  return v;
}

}  // namespace

Result<JsonDocument> JsonDocument::Parse(std::string_view text, const JsonDiffOptions& options,
                                         std::string_view side) {
  auto storage = std::make_unique<json::monotonic_resource>();
  Result<json::value> v = ParseText(text, options, storage.get(), side);
  if (!v.ok()) return v.status();
  // Moving a json::value keeps its storage pointer; the resource itself never moves.
  return JsonDocument(std::move(storage), std::move(v).value());
}

Status DiffJson(std::string_view expected, std::string_view actual, std::string_view root,
                std::span<const CompiledRule* const> rules, const JsonDiffOptions& options,
                DiffSink* sink) {
  Result<JsonDocument> e = JsonDocument::Parse(expected, options, "expected");
  if (!e.ok()) return e.status();
  return DiffJson(e.value(), actual, root, rules, options, sink);
}

Status DiffJson(const JsonDocument& expected, std::string_view actual, std::string_view root,
                std::span<const CompiledRule* const> rules, const JsonDiffOptions& options,
                DiffSink* sink) {
  // Monotonic storage, freed at once (see JsonDocument).
  json::monotonic_resource resource;
  Result<json::value> a = ParseText(actual, options, &resource, "actual");
  if (!a.ok()) return a.status();
  Walker walker(root, rules, options, sink);
  walker.Compare(&expected.value(), &a.value());
  return Status::Ok();
}

}  // namespace doppel::diff
