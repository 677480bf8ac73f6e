// doppel-echo's JSON rendering. Boost.JSON 1.81 prints doubles as "1.299E1"; an API prints
// "12.99", so bodies are written with this small streaming writer (money is kept in integer
// cents). Header-only: every member is small and on the response path.
#pragma once

#include <boost/json/value.hpp>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace doppel::echo {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }

  JsonWriter& Key(std::string_view key) {
    Separate();
    AppendQuoted(key);
    out_->push_back(':');
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(std::string_view s) {
    Separate();
    AppendQuoted(s);
    return *this;
  }
  JsonWriter& Int(int64_t v) {
    Separate();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_->append(buf, r.ptr);
    return *this;
  }
  JsonWriter& Double(double v) {
    Separate();
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
    out_->append(buf, r.ptr);
    return *this;
  }
  // Prints cents as a decimal with two places: 1299 → 12.99.
  JsonWriter& Money(int64_t cents) { return Fixed(cents, 100, 2); }
  // Prints tenths with one place: 43 → 4.3.
  JsonWriter& Tenths(int64_t tenths) { return Fixed(tenths, 10, 1); }
  JsonWriter& Bool(bool v) {
    Separate();
    out_->append(v ? "true" : "false");
    return *this;
  }
  JsonWriter& Null() {
    Separate();
    out_->append("null");
    return *this;
  }

  // Writes any parsed JSON value (used to echo POSTed bodies).
  JsonWriter& Value(const boost::json::value& v) {
    namespace json = boost::json;
    switch (v.kind()) {
      case json::kind::null:
        return Null();
      case json::kind::bool_:
        return Bool(v.get_bool());
      case json::kind::int64:
        return Int(v.get_int64());
      case json::kind::uint64: {
        Separate();
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
        out_->append(buf, r.ptr);
        return *this;
      }
      case json::kind::double_:
        return Double(v.get_double());
      case json::kind::string:
        return String(v.get_string());
      case json::kind::array:
        BeginArray();
        for (const auto& e : v.get_array()) Value(e);
        return EndArray();
      case json::kind::object:
        BeginObject();
        for (const auto& kv : v.get_object()) {
          Key(kv.key());
          Value(kv.value());
        }
        return EndObject();
    }
    return *this;
  }

 private:
  JsonWriter& Open(char c) {
    Separate();
    out_->push_back(c);
    need_comma_.push_back(false);
    return *this;
  }
  JsonWriter& Close(char c) {
    need_comma_.pop_back();
    out_->push_back(c);
    return *this;
  }
  JsonWriter& Fixed(int64_t v, int64_t scale, int places) {
    Separate();
    if (v < 0) {
      out_->push_back('-');
      v = -v;
    }
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v / scale);
    out_->append(buf, r.ptr);
    out_->push_back('.');
    int64_t frac = v % scale;
    if (places == 2 && frac < 10) out_->push_back('0');
    r = std::to_chars(buf, buf + sizeof buf, frac);
    out_->append(buf, r.ptr);
    return *this;
  }
  // Emits the comma between siblings; a value right after its key needs none.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (need_comma_.empty()) return;
    if (need_comma_.back()) out_->push_back(',');
    need_comma_.back() = true;
  }
  void AppendQuoted(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_->push_back('"');
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_->push_back('\\');
        out_->push_back(c);
      } else if (u < 0x20) {
        out_->append("\\u00");
        out_->push_back(kHex[u >> 4]);
        out_->push_back(kHex[u & 15]);
      } else {
        out_->push_back(c);  // UTF-8 passes through unchanged
      }
    }
    out_->push_back('"');
  }

  std::string* out_;
  std::vector<bool> need_comma_;  // per open container: has it a member already?
  bool after_key_ = false;
};

}  // namespace doppel::echo
