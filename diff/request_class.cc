#include "diff/request_class.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "base/stable_hash.h"
#include "base/strings.h"
#include "base/utf8.h"
#include "net/proto_headers.h"

namespace doppel::diff {
namespace {

constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxDistinctElements = 32;  // element shapes remembered per array

uint64_t Mix(uint64_t v) { return StableHash64(v); }

enum : uint64_t { kString = 1, kNumber = 2, kBool = 3, kNull = 4, kObject = 5, kArray = 6 };

// Mix of a scalar's shape (kString..kNull), computed once: an object member's hash mixes
// its value's shape, and most values are scalars.
const std::array<uint64_t, 5> kMixedScalar = {Mix(0), Mix(kString), Mix(kNumber), Mix(kBool),
                                              Mix(kNull)};

constexpr auto ByteTable(bool (*pred)(int)) {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = pred(c);
  return t;
}
// Bytes a JSON string holds as they are: 0x20-0x7f but '"' and '\\'.
constexpr auto kPlain =
    ByteTable([](int c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; });
constexpr auto kSpace =
    ByteTable([](int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
constexpr auto kDigit = ByteTable([](int c) { return c >= '0' && c <= '9'; });

inline unsigned char Byte(const char* p) { return static_cast<unsigned char>(*p); }

// Checks one JSON document (RFC 8259, as strict as Boost.JSON's parser with its defaults:
// no comments or trailing commas, UTF-8 and UTF-16 surrogates checked, an exponent above
// INT_MAX refused) and builds its structural hash on the way: an object's members' hashes
// are summed (key order does not matter, keys are hashed unescaped), an array keeps the set
// of its elements' shapes (length and order do not matter). A hand-written scanner rather
// than Boost.JSON's SAX parser because it runs on every response the coverage sampler
// classifies, on the proxy thread: it does not convert numbers or copy strings, and hashes a
// key while it scans it. Each step takes the position and returns the one after what it
// read, or nullptr when the document is not JSON. tests/diff/json_shape_test.cc checks it
// against a Boost.JSON reference and pins the hashes stored labels carry.
class ShapeScanner {
 public:
  explicit ShapeScanner(std::string_view s) : begin_(s.data()), end_(s.data() + s.size()) {}

  std::optional<uint64_t> Document() const {
    uint64_t shape = 0;
    const char* p = Value(SkipSpace(begin_), 0, &shape);
    if (p == nullptr || SkipSpace(p) != end_) return std::nullopt;
    return shape;
  }

 private:
  const char* SkipSpace(const char* p) const {
    while (p != end_ && kSpace[Byte(p)]) ++p;
    return p;
  }
  const char* SkipDigits(const char* p) const {
    while (p != end_ && kDigit[Byte(p)]) ++p;
    return p;
  }

  const char* Value(const char* p, size_t depth, uint64_t* shape) const {
    if (p == end_) return nullptr;
    if (*p == '{') return Object(p, depth, shape);
    if (*p == '[') return Array(p, depth, shape);
    return Scalar(p, shape);
  }
  // A value that is not an object or array, at p (not at the end): inlined into the loops
  // of Object and Array, where most values are scalars.
  [[gnu::always_inline]] const char* Scalar(const char* p, uint64_t* shape) const {
    switch (*p) {
      case '"':
        *shape = kString;
        return SkipString(p);
      case 't':
        *shape = kBool;
        return Literal(p, "true");
      case 'f':
        *shape = kBool;
        return Literal(p, "false");
      case 'n':
        *shape = kNull;
        return Literal(p, "null");
      default:
        *shape = kNumber;
        return Number(p);
    }
  }

  const char* Literal(const char* p, std::string_view word) const {
    if (static_cast<size_t>(end_ - p) < word.size() ||
        std::memcmp(p, word.data(), word.size()) != 0) {
      return nullptr;
    }
    return p + word.size();
  }

  const char* Number(const char* p) const {
    if (*p == '-') ++p;
    if (p == end_) return nullptr;
    if (*p == '0') {
      ++p;
    } else if (kDigit[Byte(p)]) {
      p = SkipDigits(p);
    } else {
      return nullptr;
    }
    if (p != end_ && *p == '.') {
      ++p;
      if (p == end_ || !kDigit[Byte(p)]) return nullptr;
      p = SkipDigits(p);
    }
    if (p != end_ && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p != end_ && (*p == '+' || *p == '-')) ++p;
      if (p == end_ || !kDigit[Byte(p)]) return nullptr;
      int64_t exponent = 0;
      for (; p != end_ && kDigit[Byte(p)]; ++p) {
        exponent = exponent * 10 + (*p - '0');
        if (exponent > INT32_MAX) return nullptr;  // Boost.JSON: exponent_overflow
      }
    }
    return p;
  }

  // Eight bytes at a time while none is special (below 0x20, '"', '\\', or 0x80 and up).
  const char* SkipPlainWords(const char* p) const {
    constexpr uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    auto has_zero_byte = [](uint64_t w) { return (w - kOnes) & ~w & kHighs; };
    for (uint64_t w; end_ - p >= 8; p += 8) {
      std::memcpy(&w, p, 8);
      const uint64_t special = ((w - 0x20 * kOnes) & ~w & kHighs) | (w & kHighs) |
                               has_zero_byte(w ^ ('"' * kOnes)) | has_zero_byte(w ^ ('\\' * kOnes));
      if (special != 0) break;
    }
    return p;
  }

  // A UTF-8 sequence (0x80 and up) at p: its end, or nullptr.
  const char* Utf8(const char* p) const {
    const size_t len = Utf8SequenceAt(std::string_view(begin_, end_ - begin_), p - begin_);
    return len == 0 ? nullptr : p + len;
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // The code unit of "\uXXXX" at p, or -1.
  int32_t Utf16At(const char* p) const {
    if (end_ - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
    int32_t v = 0;
    for (size_t k = 2; k < 6; ++k) {
      const int h = Hex(p[k]);
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    return v;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // The escape at p (its backslash): the position after it, its code point in *cp.
  const char* Escape(const char* p, uint32_t* cp) const {
    if (end_ - p < 2) return nullptr;
    const char e = p[1];
    if (e == 'u') {
      const int32_t unit = Utf16At(p);
      if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) return nullptr;
      p += 6;
      *cp = static_cast<uint32_t>(unit);
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        const int32_t low = Utf16At(p);
        if (low < 0xDC00 || low > 0xDFFF) return nullptr;
        p += 6;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + static_cast<uint32_t>(low - 0xDC00);
      }
      return p;
    }
    static constexpr std::string_view kFrom = "\"\\/bfnrt", kTo = "\"\\/\b\f\n\r\t";
    const size_t k = kFrom.find(e);
    if (k == std::string_view::npos) return nullptr;
    *cp = static_cast<unsigned char>(kTo[k]);
    return p + 2;
  }

  // A string value at p (its opening quote): checked, not kept.
  const char* SkipString(const char* p) const {
    ++p;
    for (;;) {
      p = SkipPlainWords(p);
      while (p != end_ && kPlain[Byte(p)]) ++p;
      if (p == end_) return nullptr;
      const unsigned char c = Byte(p);
      if (c == '"') return p + 1;
      if (c < 0x20) return nullptr;
      uint32_t cp;
      p = c >= 0x80 ? Utf8(p) : Escape(p, &cp);
      if (p == nullptr) return nullptr;
    }
  }

  // A key at p (its opening quote): StableHash64 of its unescaped bytes in *hash, computed as
  // it is scanned (keys are short: one pass); a key with an escape or a byte outside
  // printable ASCII is unescaped and checked first (SlowKey).
  const char* Key(const char* p, uint64_t* hash) const {
    const char* const open = p;
    uint64_t h = kStableHashBasis;
    for (++p; p != end_ && kPlain[Byte(p)]; ++p) h = StableHashByte(h, Byte(p));
    if (p == end_) return nullptr;
    if (*p != '"') return SlowKey(open, hash);
    *hash = StableHashFinish(h);
    return p + 1;
  }
  const char* SlowKey(const char* p, uint64_t* hash) const {
    ++p;
    std::string unescaped;
    for (;;) {
      const char* plain = p;
      while (p != end_ && kPlain[Byte(p)]) ++p;
      unescaped.append(plain, p);
      if (p == end_) return nullptr;
      const unsigned char c = Byte(p);
      if (c == '"') break;
      if (c < 0x20) return nullptr;
      if (c >= 0x80) {
        const char* next = Utf8(p);
        if (next == nullptr) return nullptr;
        unescaped.append(p, next);
        p = next;
        continue;
      }
      uint32_t cp;
      p = Escape(p, &cp);
      if (p == nullptr) return nullptr;
      AppendUtf8(cp, &unescaped);
    }
    *hash = StableHash64(unescaped);
    return p + 1;
  }

  const char* Object(const char* p, size_t depth, uint64_t* shape) const {
    if (depth >= kMaxDepth) return nullptr;
    uint64_t sum = 0;
    p = SkipSpace(p + 1);
    if (p != end_ && *p == '}') {
      ++p;
    } else {
      for (;;) {
        uint64_t key = 0, value = 0;
        if (p == end_ || *p != '"') return nullptr;
        p = Key(p, &key);
        if (p == nullptr) return nullptr;
        p = SkipSpace(p);
        if (p == end_ || *p != ':') return nullptr;
        p = SkipSpace(p + 1);
        if (p == end_) return nullptr;
        if (*p == '{' || *p == '[') {
          p = Value(p, depth + 1, &value);
          if (p == nullptr) return nullptr;
          sum += Mix(key ^ Mix(value));
        } else {
          p = Scalar(p, &value);
          if (p == nullptr) return nullptr;
          sum += Mix(key ^ kMixedScalar[value]);
        }
        p = SkipSpace(p);
        if (p == end_) return nullptr;
        if (*p == '}') {
          ++p;
          break;
        }
        if (*p != ',') return nullptr;
        p = SkipSpace(p + 1);
      }
    }
    *shape = Mix(sum ^ kObject);
    return p;
  }

  const char* Array(const char* p, size_t depth, uint64_t* shape) const {
    if (depth >= kMaxDepth) return nullptr;
    uint64_t seen[kMaxDistinctElements];
    size_t distinct = 0;
    p = SkipSpace(p + 1);
    if (p != end_ && *p == ']') {
      ++p;
    } else {
      for (;;) {
        uint64_t value = 0;
        if (p == end_) return nullptr;
        p = *p == '{' || *p == '[' ? Value(p, depth + 1, &value) : Scalar(p, &value);
        if (p == nullptr) return nullptr;
        if (distinct < kMaxDistinctElements &&
            std::find(seen, seen + distinct, value) == seen + distinct) {
          seen[distinct++] = value;
        }
        p = SkipSpace(p);
        if (p == end_) return nullptr;
        if (*p == ']') {
          ++p;
          break;
        }
        if (*p != ',') return nullptr;
        p = SkipSpace(p + 1);
      }
    }
    uint64_t sum = 0;
    for (size_t k = 0; k < distinct; ++k) sum += seen[k];
    *shape = Mix(sum ^ kArray);
    return p;
  }

  const char* const begin_;
  const char* const end_;
};

// A media type or content coding as a label shows it: "application/json" from
// "Application/JSON; charset=utf-8" (lowercase, without parameters, white space or bytes
// outside printable ASCII, which would clash with the separators a label is built with).
// Common ones are held without an allocation: this runs on every classified response.
class LabelToken {
 public:
  explicit LabelToken(std::string_view field) {
    std::string_view t = field.substr(0, field.find(';'));
    if (t.size() > sizeof small_) large_.reserve(t.size());
    for (char c : t) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u <= ' ' || u >= 0x7f) continue;
      const char lower = u >= 'A' && u <= 'Z' ? static_cast<char>(u - 'A' + 'a') : c;
      if (t.size() > sizeof small_) {
        large_.push_back(lower);
      } else {
        small_[size_++] = lower;
      }
    }
  }
  std::string_view view() const {
    return large_.empty() ? std::string_view(small_, size_) : std::string_view(large_);
  }

 private:
  char small_[48];
  size_t size_ = 0;
  std::string large_;
};

bool IsJsonMediaType(std::string_view media) {
  return media == "application/json" ||
         (media.size() > 5 && media.substr(media.size() - 5) == "+json");
}

}  // namespace

std::optional<uint32_t> JsonShapeHash(std::string_view body) {
  const std::optional<uint64_t> h = ShapeScanner(body).Document();
  if (!h) return std::nullopt;
  return static_cast<uint32_t>(*h ^ (*h >> 32));
}

std::string ResponseShape(std::string_view content_type, std::string_view content_encoding,
                          std::string_view body, bool body_complete) {
  if (body.empty() && body_complete) return "empty";
  const LabelToken type(content_type), coding(content_encoding);
  const std::string_view media = type.view().empty() ? "none" : type.view();
  if (!coding.view().empty() && coding.view() != "identity") {
    return std::string("type:").append(media).append(";").append(coding.view());
  }
  if (body_complete && IsJsonMediaType(media)) {
    if (auto h = JsonShapeHash(body)) {
      std::string out = "json:00000000";
      for (size_t i = 0; i < 8; ++i) out[5 + i] = "0123456789abcdef"[(*h >> (28 - 4 * i)) & 0xf];
      return out;
    }
  }
  return std::string("type:").append(media);
}

std::string ClassLabel(const EndpointNamer& namer, std::string_view method, std::string_view target,
                       unsigned status, std::string_view shape) {
  char digits[16];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, status);
  std::string out;
  // Room for the templated path (at most as long as the target, or "{id}" for a shorter id).
  out.reserve(method.size() + target.size() + 16 + (end - digits) + shape.size());
  // A request the proxy could not read (a malformed head) has no method or target.
  if (method.empty() || target.empty()) {
    out.append(method.empty() ? "-" : method).append(" -");
  } else {
    namer.AppendName(method, target, &out);
  }
  out.push_back(' ');
  out.append(digits, end);
  out.push_back(' ');
  out.append(shape);
  return out;
}

std::string ComputeClass(const doppel::v1::Envelope& e, const EndpointNamer& namer) {
  const std::string* type = net::FindHeader(e.response().headers(), "content-type");
  const std::string* coding = net::FindHeader(e.response().headers(), "content-encoding");
  return ComputeClass(e, type ? std::string_view(*type) : std::string_view(),
                      coding ? std::string_view(*coding) : std::string_view(), namer);
}

std::string ComputeClass(const doppel::v1::Envelope& e, std::string_view content_type,
                         std::string_view content_encoding, const EndpointNamer& namer) {
  const auto& req = e.request();
  const auto& res = e.response();
  unsigned status = res.status();
  std::string shape;
  if (e.error() != doppel::v1::PROXY_ERROR_NONE) {
    std::string name = doppel::v1::ProxyError_Name(e.error());
    constexpr std::string_view kPrefix = "PROXY_ERROR_";
    if (name.rfind(kPrefix, 0) == 0) name.erase(0, kPrefix.size());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    shape = "error:" + name;
    if (status == 0) {
      switch (e.error()) {
        case doppel::v1::PROXY_ERROR_BAD_REQUEST:
          status = 400;
          break;
        case doppel::v1::PROXY_ERROR_BODY_TOO_LARGE:
          status = 413;
          break;
        case doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT:
          status = 504;
          break;
        default:
          status = 502;
          break;
      }
    }
  } else {
    shape = ResponseShape(content_type, content_encoding, res.body(), !res.body_truncated());
  }
  return ClassLabel(namer, req.method(), req.target(), status, shape);
}

double InverseProbability(const doppel::v1::Envelope& e) {
  const double p = e.inclusion_probability();
  return p > 0 && p <= 1 ? 1 / p : 1;
}

double ClassRequests(uint64_t envelopes, double inverse_sum, std::optional<uint64_t> counted) {
  if (counted && *counted >= envelopes) return static_cast<double>(*counted);
  return inverse_sum;
}

std::string ClassOf(const doppel::v1::Envelope& e, const EndpointNamer& namer) {
  if (!e.sample_class().empty()) return e.sample_class();
  return ComputeClass(e, namer);
}

}  // namespace doppel::diff
