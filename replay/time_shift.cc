#include "replay/time_shift.h"

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cctype>
#include <charconv>
#include <optional>

#include "base/strings.h"
#include "base/time_format.h"
#include "net/url.h"

namespace doppel::replay {
namespace {

namespace json = boost::json;

constexpr int64_t kWindowUs = 366LL * 86400 * 1000000;
constexpr size_t kMaxJsonBody = 8u << 20;

std::optional<std::string_view> HeaderValue(const OutgoingRequest& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (EqualsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

// application/json, application/problem+json, text/json and the like.
bool IsJsonType(std::string_view type) {
  std::string lower(type.substr(0, type.find(';')));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("json") != std::string::npos;
}

int DigitsOf(int64_t v) {
  if (v >= 1'000'000'000LL && v < 10'000'000'000LL) return 10;
  if (v >= 1'000'000'000'000LL && v < 10'000'000'000'000LL) return 13;
  return 0;
}

}  // namespace

TimeShifter::TimeShifter(TimeShiftOptions options)
    : opts_(std::move(options)),
      window_from_us_(static_cast<int64_t>(opts_.recorded_from_us) - kWindowUs),
      window_to_us_(static_cast<int64_t>(opts_.recorded_to_us) + kWindowUs) {}

bool TimeShifter::ShiftEpoch(int64_t* number, int digits) const {
  const int64_t unit_us = digits == 10 ? 1000000 : digits == 13 ? 1000 : 0;
  if (unit_us == 0) return false;
  const int64_t us = *number * unit_us;
  if (us < window_from_us_ || us > window_to_us_) return false;
  const int64_t moved = *number + opts_.delta_us / unit_us;
  if (DigitsOf(moved) != digits) return false;  // would change form: left as it was
  *number = moved;
  return true;
}

bool TimeShifter::ShiftValue(std::string* value) const {
  if (std::optional<DateTime> t = ParseDateTime(*value)) {
    t->unix_us += opts_.delta_us;
    if (t->unix_us < 0) return false;
    *value = FormatDateTime(*t);
    return true;
  }
  const size_t n = value->size();
  if (n != 10 && n != 13) return false;
  int64_t number = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + n, number);
  if (ec != std::errc() || end != value->data() + n || (*value)[0] == '-') return false;
  if (!ShiftEpoch(&number, static_cast<int>(n))) return false;
  *value = std::to_string(number);
  return true;
}

uint64_t TimeShifter::ShiftQuery(std::string* target) const {
  const net::TargetParts parts = net::SplitTarget(*target);
  if (!parts.query || parts.query->empty()) return 0;
  uint64_t moved = 0;
  std::string query;
  const std::vector<net::EncodedQueryItem> items = net::SplitQuery(*parts.query);
  for (size_t i = 0; i < items.size(); ++i) {
    const net::EncodedQueryItem& item = items[i];
    std::string value(item.value);
    if (item.has_value && item.value.find('%') != std::string_view::npos) {
      // Percent-encoded: decoded to be read, encoded again after the move.
      if (auto pct = boost::urls::make_pct_string_view(item.value)) {
        std::string decoded = pct->decode();
        if (ShiftValue(&decoded)) {
          value = boost::urls::encode(decoded, boost::urls::unreserved_chars);
          ++moved;
        }
      }
    } else if (item.has_value && ShiftValue(&value)) {
      ++moved;
    }
    if (i > 0) query += '&';
    query.append(item.key);
    if (item.has_value) query += "=" + value;
  }
  if (moved == 0) return 0;
  // What comes before the query (path, or scheme, authority and path) and after it is kept.
  const size_t query_start = static_cast<size_t>(parts.query->data() - target->data());
  *target =
      target->substr(0, query_start) + query + target->substr(query_start + parts.query->size());
  return moved;
}

uint64_t TimeShifter::ShiftJsonBody(std::string* body) const {
  if (body->empty() || body->size() > kMaxJsonBody) return 0;
  boost::system::error_code ec;
  json::value doc = json::parse(*body, ec);
  if (ec) return 0;
  uint64_t moved = 0;
  std::vector<json::value*> stack = {&doc};
  while (!stack.empty()) {
    json::value* v = stack.back();
    stack.pop_back();
    if (v->is_object()) {
      for (auto& member : v->get_object()) stack.push_back(&member.value());
    } else if (v->is_array()) {
      for (json::value& e : v->get_array()) stack.push_back(&e);
    } else if (v->is_string()) {
      std::string s(v->get_string());
      if (ShiftValue(&s)) {
        *v = s;
        ++moved;
      }
    } else if (v->is_int64() || v->is_uint64()) {
      if (v->is_uint64() && v->get_uint64() > static_cast<uint64_t>(INT64_MAX)) continue;
      int64_t n = v->is_int64() ? v->get_int64() : static_cast<int64_t>(v->get_uint64());
      if (ShiftEpoch(&n, DigitsOf(n))) {
        *v = n;
        ++moved;
      }
    }
  }
  if (moved > 0) *body = json::serialize(doc);
  return moved;
}

uint64_t TimeShifter::Shift(OutgoingRequest* r) const {
  uint64_t moved = ShiftQuery(&r->target);
  const auto type = HeaderValue(*r, "Content-Type");
  const auto coding = HeaderValue(*r, "Content-Encoding");
  if (type && IsJsonType(*type) && (!coding || EqualsIgnoreCase(*coding, "identity"))) {
    moved += ShiftJsonBody(&r->body);
  }
  for (auto& [name, value] : r->headers) {
    for (const std::string& wanted : opts_.headers) {
      if (EqualsIgnoreCase(name, wanted) && ShiftValue(&value)) ++moved;
    }
  }
  return moved;
}

}  // namespace doppel::replay
