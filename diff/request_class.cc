#include "diff/request_class.h"

#include <boost/json/basic_parser_impl.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "base/stable_hash.h"
#include "base/strings.h"
#include "net/proto_headers.h"

namespace doppel::diff {
namespace {

namespace json = boost::json;

constexpr size_t kMaxDepth = 64;
constexpr size_t kMaxDistinctElements = 32;  // element shapes remembered per array

uint64_t Mix(uint64_t v) {
  return StableHash64(std::string_view(reinterpret_cast<const char*>(&v), sizeof v));
}

enum : uint64_t { kString = 1, kNumber = 2, kBool = 3, kNull = 4, kObject = 5, kArray = 6 };

// Builds the structural hash bottom-up: each open object or array is a frame; a finished
// value's shape is added to its parent. Object members are summed (key order does not
// matter); array elements are kept as a small set (length and order do not matter).
class ShapeHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  uint64_t result() const { return result_; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return Open(true); }
  bool on_array_begin(json::error_code&) { return Open(false); }
  bool on_object_end(std::size_t, json::error_code&) { return Close(); }
  bool on_array_end(std::size_t, json::error_code&) { return Close(); }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    frames_.back().key = StableHash64(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return Value(kString); }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code&) { return Value(kNumber); }
  bool on_uint64(uint64_t, json::string_view, json::error_code&) { return Value(kNumber); }
  bool on_double(double, json::string_view, json::error_code&) { return Value(kNumber); }
  bool on_bool(bool, json::error_code&) { return Value(kBool); }
  bool on_null(json::error_code&) { return Value(kNull); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  struct Frame {
    bool object;
    uint64_t key = 0;            // objects: the member being read
    uint64_t sum = 0;            // objects: members' hashes summed
    std::vector<uint64_t> seen;  // arrays: distinct element shapes
  };

  bool Open(bool object) {
    if (frames_.size() >= kMaxDepth) return false;
    frames_.push_back(Frame{object});
    return true;
  }
  bool Close() {
    Frame& f = frames_.back();
    uint64_t h;
    if (f.object) {
      h = Mix(f.sum ^ kObject);
    } else {
      uint64_t sum = 0;
      for (uint64_t e : f.seen) sum += e;
      h = Mix(sum ^ kArray);
    }
    frames_.pop_back();
    return Value(h);
  }
  bool Value(uint64_t shape) {
    if (frames_.empty()) {
      result_ = shape;
      return true;
    }
    Frame& f = frames_.back();
    if (f.object) {
      f.sum += Mix(f.key ^ Mix(shape));
    } else if (f.seen.size() < kMaxDistinctElements &&
               std::find(f.seen.begin(), f.seen.end(), shape) == f.seen.end()) {
      f.seen.push_back(shape);
    }
    return true;
  }

  std::vector<Frame> frames_;
  std::string key_;
  uint64_t result_ = 0;
};

// "application/json" from "Application/JSON; charset=utf-8".
std::string MediaType(std::string_view content_type) {
  const size_t semi = content_type.find(';');
  std::string_view t = content_type.substr(0, semi);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  std::string out;
  out.reserve(t.size());
  for (char c : t) {
    // Keep the label printable and free of the separators it is built with.
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7f) continue;
    out.push_back(static_cast<char>(std::tolower(u)));
  }
  return out;
}

bool IsJsonMediaType(std::string_view media) {
  return media == "application/json" ||
         (media.size() > 5 && media.substr(media.size() - 5) == "+json");
}

}  // namespace

std::optional<uint32_t> JsonShapeHash(std::string_view body) {
  json::parse_options opts;
  opts.max_depth = kMaxDepth;
  json::basic_parser<ShapeHandler> parser(opts);
  json::error_code ec;
  const size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || !parser.done()) return std::nullopt;
  for (size_t i = used; i < body.size(); ++i) {
    const char c = body[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return std::nullopt;
  }
  const uint64_t h = parser.handler().result();
  return static_cast<uint32_t>(h ^ (h >> 32));
}

std::string ResponseShape(std::string_view content_type, std::string_view content_encoding,
                          std::string_view body, bool body_complete) {
  if (body.empty() && body_complete) return "empty";
  std::string media = MediaType(content_type);
  if (media.empty()) media = "none";
  const std::string coding = MediaType(content_encoding);
  if (!coding.empty() && coding != "identity") return "type:" + media + ";" + coding;
  if (body_complete && IsJsonMediaType(media)) {
    if (auto h = JsonShapeHash(body)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%08x", *h);
      return std::string("json:") + buf;
    }
  }
  return "type:" + media;
}

std::string ClassLabel(const EndpointNamer& namer, std::string_view method, std::string_view target,
                       unsigned status, std::string_view shape) {
  // A request the proxy could not read (a malformed head) has no method or target.
  std::string out;
  if (method.empty() || target.empty()) {
    out = std::string(method.empty() ? "-" : method) + " -";
  } else {
    out = namer.Name(method, target);
  }
  out.push_back(' ');
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(shape);
  return out;
}

std::string ComputeClass(const doppel::v1::Envelope& e, const EndpointNamer& namer) {
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
    const std::string* type = net::FindHeader(res.headers(), "content-type");
    const std::string* coding = net::FindHeader(res.headers(), "content-encoding");
    shape = ResponseShape(type ? std::string_view(*type) : std::string_view(),
                          coding ? std::string_view(*coding) : std::string_view(), res.body(),
                          !res.body_truncated());
  }
  return ClassLabel(namer, req.method(), req.target(), status, shape);
}

std::string ClassOf(const doppel::v1::Envelope& e, const EndpointNamer& namer) {
  if (!e.sample_class().empty()) return e.sample_class();
  return ComputeClass(e, namer);
}

}  // namespace doppel::diff
