// Fuzz target: HTTP/2 frames from a client socket into the capture proxy's HTTP/2 session
// (recorder/h2_session.cc), in process: the http_request harness (its recorders, upstream and
// properties) with the client preface in front of every input, and the proxy's answer
// required to start with its SETTINGS frame. See http_request.cc.
//
// Structure-aware inputs: when the first byte is 0x80 or above, the rest drives a frame
// generator (H2Frames) instead of being sent as it is. Raw bytes almost never make a frame
// header with a sensible length and stream, let alone a header block that HPACK decodes, so
// they stop at nghttp2's first check. The generator's frames always have a well-formed frame
// header, and its HEADERS carry blocks encoded by nghttp2's own HPACK encoder from fields
// the proxy cares about (pseudo-headers, content-length, te, cookie, gRPC's); what is fuzzed is
// the order, the streams, the flags (END_STREAM, END_HEADERS with CONTINUATION, PADDED,
// PRIORITY), flow control (DATA sizes, WINDOW_UPDATE, SETTINGS values), resets, PINGs,
// GOAWAY and trailers: the session's own logic. Now and then raw bytes are mixed in.
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// Choices read from the fuzzer's bytes; 0 once they run out.
class Choices {
 public:
  explicit Choices(std::string_view data) : data_(data) {}
  bool done() const { return at_ >= data_.size(); }
  uint8_t Byte() { return done() ? 0 : static_cast<uint8_t>(data_[at_++]); }
  uint32_t Below(uint32_t n) { return n <= 1 ? 0 : Byte() % n; }
  template <typename T, size_t N>
  const T& Pick(const T (&options)[N]) {
    return options[Below(N)];
  }
  std::string Bytes(size_t n) {
    std::string out;
    while (n-- > 0 && !done()) out.push_back(static_cast<char>(Byte()));
    return out;
  }

 private:
  std::string_view data_;
  size_t at_ = 0;
};

void Put32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

// RFC 9113 4.1: length (24 bits), type, flags, stream id (31 bits).
std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  Put32(&f, stream & 0x7fffffff);
  f.append(payload);
  return f;
}

// A header block: a request head or trailers, HPACK-encoded by nghttp2 (with its dynamic
// table, as a client keeps one per connection).
std::string HeaderBlock(Choices& c, nghttp2_hd_deflater* deflater, bool trailers) {
  static constexpr const char* kMethods[] = {"GET",     "POST",  "PUT",     "HEAD", "DELETE",
                                             "OPTIONS", "PATCH", "CONNECT", "G T",  ""};
  static constexpr const char* kPaths[] = {"/",
                                           "/api/v1/items?id=7",
                                           "/doppel.demo.v1.Catalog/GetItem",
                                           "*",
                                           "",
                                           "relative",
                                           "/a/../b",
                                           "/%00",
                                           "http://other.test/x"};
  static constexpr const char* kAuthorities[] = {"shop.test", "", "shop.test:8080", "a b",
                                                 "x:99999"};
  static constexpr const char* kNames[] = {"content-length",  "content-type", "te",
                                           "cookie",          "x-user",       "grpc-timeout",
                                           "connection",      "host",         "transfer-encoding",
                                           ":status",         "grpc-status",  "upgrade",
                                           "accept-encoding", ":path",        "x-a"};
  static constexpr const char* kValues[] = {"0",
                                            "5",
                                            "100",
                                            "100000000",
                                            "-1",
                                            "application/grpc",
                                            "application/json",
                                            "trailers",
                                            "gzip",
                                            "a=1; b=2",
                                            "chunked",
                                            "1S",
                                            "close",
                                            ""};
  std::vector<std::pair<std::string, std::string>> fields;
  if (!trailers) {
    const uint32_t omit = c.Below(16);  // now and then a pseudo-header left out
    if (omit != 1) fields.emplace_back(":method", c.Pick(kMethods));
    if (omit != 2) fields.emplace_back(":scheme", c.Below(4) == 0 ? "https" : "http");
    if (omit != 3) fields.emplace_back(":path", c.Pick(kPaths));
    if (omit != 4) fields.emplace_back(":authority", c.Pick(kAuthorities));
  }
  for (uint32_t n = c.Below(5); n > 0; --n) {
    std::string value = c.Below(4) == 0 ? c.Bytes(c.Below(12)) : c.Pick(kValues);
    fields.emplace_back(c.Pick(kNames), std::move(value));
  }
  std::vector<nghttp2_nv> nva;
  for (auto& [name, value] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(name.data()),
                   reinterpret_cast<uint8_t*>(value.data()), name.size(), value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  std::string block(nghttp2_hd_deflate_bound(deflater, nva.data(), nva.size()), '\0');
  const ssize_t n = nghttp2_hd_deflate_hd(deflater, reinterpret_cast<uint8_t*>(block.data()),
                                          block.size(), nva.data(), nva.size());
  block.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return block;
}

// PADDED (RFC 9113 6.1): a pad length, the payload, that many zero bytes.
std::string Padded(Choices& c, std::string payload, uint8_t* flags) {
  if (c.Below(6) != 0) return payload;
  const uint8_t pad = static_cast<uint8_t>(c.Below(20));
  *flags |= NGHTTP2_FLAG_PADDED;
  return std::string(1, static_cast<char>(pad)) + payload + std::string(pad, '\0');
}

// The preface, a SETTINGS frame (mostly), then frames chosen by the input.
std::string H2Frames(std::string_view data) {
  Choices c(data);
  nghttp2_hd_deflater* deflater = nullptr;
  if (nghttp2_hd_deflate_new(&deflater, 4096) != 0) return "";
  std::string out;
  static constexpr uint32_t kStreams[] = {1, 3, 5, 1, 3, 7, 0, 2, 0x7fffffff};
  static constexpr uint32_t kWindows[] = {0, 1, 1024, 65535, 65536, 0x7fffffff, 0x80000000u};
  static constexpr uint32_t kSettingValues[] = {0,     1,        100,        4096,       16384,
                                                65535, 16777215, 0x7fffffff, 0xffffffffu};
  auto settings = [&](bool ack) {
    std::string payload;
    if (!ack) {
      for (uint32_t n = c.Below(4); n > 0; --n) {
        const uint16_t id = static_cast<uint16_t>(c.Below(9) + 1);  // 1..9, 9 unknown
        payload.push_back(static_cast<char>(id >> 8));
        payload.push_back(static_cast<char>(id));
        Put32(&payload, c.Pick(kSettingValues));
      }
    }
    return Frame(NGHTTP2_SETTINGS, ack ? NGHTTP2_FLAG_ACK : 0, 0, payload);
  };
  if (c.Below(8) != 0) out += settings(false);
  for (int frames = 0; frames < 64 && !c.done(); ++frames) {
    const uint32_t stream = c.Pick(kStreams);
    switch (c.Below(16)) {
      case 0:
      case 1:
      case 2:
      case 3: {  // HEADERS, then CONTINUATION when END_HEADERS is not on it
        const bool trailers = c.Below(5) == 0;
        std::string block = HeaderBlock(c, deflater, trailers);
        uint8_t flags = c.Below(3) == 0 ? 0 : NGHTTP2_FLAG_END_STREAM;
        if (trailers) flags |= NGHTTP2_FLAG_END_STREAM;
        std::string prefix;
        if (c.Below(6) == 0) {  // PRIORITY: dependency and weight
          flags |= NGHTTP2_FLAG_PRIORITY;
          Put32(&prefix, c.Below(2) == 0 ? stream : 0);
          prefix.push_back(static_cast<char>(c.Byte()));
        }
        const size_t split =
            c.Below(5) == 0 ? c.Below(static_cast<uint32_t>(block.size()) + 1) : block.size();
        if (split == block.size()) flags |= NGHTTP2_FLAG_END_HEADERS;
        out += Frame(NGHTTP2_HEADERS, flags, stream,
                     Padded(c, prefix + block.substr(0, split), &flags));
        if (split < block.size()) {
          out += Frame(NGHTTP2_CONTINUATION, c.Below(8) == 0 ? 0 : NGHTTP2_FLAG_END_HEADERS,
                       c.Below(8) == 0 ? stream + 2 : stream, block.substr(split));
        }
        break;
      }
      case 4:
      case 5:
      case 6: {  // DATA: small, or now and then more than a window
        const size_t n = c.Below(8) == 0 ? 16384 * (1 + c.Below(6)) : c.Below(200);
        uint8_t flags = c.Below(2) == 0 ? NGHTTP2_FLAG_END_STREAM : 0;
        std::string payload = Padded(c, std::string(n, 'd'), &flags);
        out += Frame(NGHTTP2_DATA, flags, stream, payload);
        break;
      }
      case 7: {
        std::string code;
        Put32(&code, c.Below(16));
        out += Frame(NGHTTP2_RST_STREAM, 0, stream, code);
        break;
      }
      case 8: {
        std::string opaque = c.Bytes(8);
        opaque.resize(8, '\0');
        out += Frame(NGHTTP2_PING, c.Below(4) == 0 ? NGHTTP2_FLAG_ACK : 0, c.Below(8) == 0 ? 1 : 0,
                     opaque);
        break;
      }
      case 9:
      case 10: {
        std::string increment;
        Put32(&increment, c.Pick(kWindows));
        out += Frame(NGHTTP2_WINDOW_UPDATE, 0, c.Below(2) == 0 ? 0 : stream, increment);
        break;
      }
      case 11:
        out += settings(c.Below(4) == 0);
        break;
      case 12: {
        std::string payload;
        Put32(&payload, c.Below(2) == 0 ? stream : 0);
        payload.push_back(static_cast<char>(c.Byte()));
        out += Frame(NGHTTP2_PRIORITY, 0, stream, payload);
        break;
      }
      case 13: {
        std::string payload;
        Put32(&payload, stream);
        Put32(&payload, c.Below(14));
        out += Frame(NGHTTP2_GOAWAY, 0, 0, payload + c.Bytes(c.Below(8)));
        break;
      }
      case 14: {  // a frame with a header block where none belongs, or an unknown type
        const uint8_t type =
            c.Below(2) == 0 ? static_cast<uint8_t>(NGHTTP2_PUSH_PROMISE) : c.Byte();
        out += Frame(type, c.Byte(), stream, c.Bytes(c.Below(24)));
        break;
      }
      default:  // now and then raw bytes, which put every frame after them out of step
        if (c.Below(4) == 0) out += c.Bytes(c.Below(16));
        break;
    }
  }
  nghttp2_hd_deflate_del(deflater);
  return out;
}

// The bytes sent after the client preface.
std::string H2Input(std::string_view data) {
  if (!data.empty() && static_cast<uint8_t>(data[0]) >= 0x80) return H2Frames(data.substr(1));
  return std::string(data);
}

}  // namespace

#define DOPPEL_FUZZ_H2 1
#include "tests/fuzz/http_request.cc"
