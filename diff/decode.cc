#include "diff/decode.h"

#include <zlib.h>

#include <zstd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "base/strings.h"

namespace doppel::diff {
namespace {

constexpr size_t kChunk = 64 * 1024;

Status TooLarge(size_t limit) {
  return Status::ResourceExhausted("decoded body exceeds the limit of " + std::to_string(limit) +
                                   " bytes");
}

// window_bits as for inflateInit2: 15 + 16 = gzip, 15 = zlib, -15 = raw deflate.
Result<std::string> Inflate(std::string_view in, int window_bits, size_t limit,
                            std::string_view name) {
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return Status::Internal("inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  if (in.size() > UINT32_MAX) return TooLarge(limit);
  char buf[kChunk];
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    int rc = inflate(&zs, Z_NO_FLUSH);
    size_t produced = sizeof(buf) - zs.avail_out;
    if (out.size() + produced > limit) return TooLarge(limit);
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back; anything else after the end is garbage
      // we tolerate (servers pad), as browsers do.
      if (window_bits > 15 && zs.avail_in > 0 && zs.next_in[0] == 0x1f) {
        if (inflateReset(&zs) != Z_OK) return Status::Internal("inflateReset failed");
        continue;
      }
      return out;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      return Status::Corruption(std::string(name) + " stream is truncated");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return Status::Corruption("bad " + std::string(name) + " stream" +
                                (zs.msg ? std::string(": ") + zs.msg : std::string()));
    }
  }
}

bool LooksLikeZlibHeader(std::string_view in) {
  if (in.size() < 2) return false;
  unsigned b0 = static_cast<unsigned char>(in[0]);
  unsigned b1 = static_cast<unsigned char>(in[1]);
  return (b0 & 0x0F) == 8 && (b0 >> 4) <= 7 && ((b0 << 8) | b1) % 31 == 0;
}

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

Result<std::string> Unzstd(std::string_view in, size_t limit) {
  // One decompression context per thread, reused (see DESIGN.md build notes).
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return Status::Internal("ZSTD_createDCtx failed");
  ZSTD_DCtx_reset(dctx.get(), ZSTD_reset_session_and_parameters);
  // Refuse frames that need a window over 128 MiB: bounded memory whatever the frame says.
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  std::string out;
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::vector<char> buf(kChunk);
  while (true) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    size_t rc = ZSTD_decompressStream(dctx.get(), &ob, &ib);
    if (ZSTD_isError(rc)) {
      return Status::Corruption(std::string("bad zstd stream: ") + ZSTD_getErrorName(rc));
    }
    if (out.size() + ob.pos > limit) return TooLarge(limit);
    out.append(buf.data(), ob.pos);
    if (rc == 0 && ib.pos == ib.size) break;  // every frame complete, all input used
    // Decoder flushed everything it could and still wants input: the stream is cut short.
    if (ib.pos == ib.size && ob.pos < ob.size) {
      return Status::Corruption("zstd stream is truncated");
    }
  }
  return out;
}

Result<std::string> DecodeOne(std::string_view body, std::string_view coding, size_t limit) {
  std::string c = AsciiLower(TrimSpaces(coding));
  // An empty body stays empty whatever its header claims (204, HEAD-like answers).
  if (c.empty() || c == "identity" || body.empty()) {
    if (body.size() > limit) return TooLarge(limit);
    return std::string(body);
  }
  if (c == "gzip" || c == "x-gzip") return Inflate(body, 15 + 16, limit, "gzip");
  if (c == "deflate") {
    if (LooksLikeZlibHeader(body)) {
      Result<std::string> r = Inflate(body, 15, limit, "deflate");
      if (r.ok() || r.status().code() == Status::Code::kResourceExhausted) return r;
    }
    return Inflate(body, -15, limit, "deflate");
  }
  if (c == "zstd") return Unzstd(body, limit);
  return Status::Unsupported("unsupported Content-Encoding \"" + std::string(TrimSpaces(coding)) +
                             "\" (supported: gzip, deflate, zstd, identity)");
}

}  // namespace

Result<std::string> DecodeContent(std::string_view body, std::string_view content_encoding,
                                  size_t max_output_bytes) {
  std::vector<std::string_view> codings;
  size_t start = 0;
  while (start <= content_encoding.size()) {
    size_t comma = content_encoding.find(',', start);
    if (comma == std::string_view::npos) comma = content_encoding.size();
    std::string_view c = TrimSpaces(content_encoding.substr(start, comma - start));
    if (!c.empty()) codings.push_back(c);
    start = comma + 1;
  }
  if (codings.empty()) return DecodeOne(body, "", max_output_bytes);
  std::string current(body);
  for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
    Result<std::string> r = DecodeOne(current, *it, max_output_bytes);
    if (!r.ok()) return r;
    current = std::move(r).value();
  }
  return current;
}

std::string CharsetOf(std::string_view content_type) {
  std::string lower = AsciiLower(content_type);
  size_t pos = 0;
  while ((pos = lower.find(';', pos)) != std::string::npos) {
    ++pos;
    std::string_view param = TrimSpaces(std::string_view(lower).substr(pos));
    if (param.substr(0, 7) != "charset") continue;
    param.remove_prefix(7);
    param = TrimSpaces(param);
    if (param.empty() || param.front() != '=') continue;
    param.remove_prefix(1);
    param = TrimSpaces(param);
    size_t end = param.find(';');
    param = TrimSpaces(param.substr(0, end));
    if (param.size() >= 2 && param.front() == '"' && param.back() == '"') {
      param = param.substr(1, param.size() - 2);
    }
    return std::string(param);
  }
  return {};
}

bool IsLatin1Charset(std::string_view charset) {
  std::string c = AsciiLower(charset);
  return c == "iso-8859-1" || c == "iso_8859-1" || c == "iso8859-1" || c == "latin1" ||
         c == "latin-1" || c == "l1" || c == "iso-ir-100" || c == "cp819" || c == "iso_8859-1:1987";
}

std::string Latin1ToUtf8(std::string_view latin1) {
  std::string out;
  out.reserve(latin1.size() + latin1.size() / 8);
  for (char ch : latin1) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

Result<std::string> DecodeBody(std::string_view body, std::string_view content_encoding,
                               std::string_view content_type, size_t max_output_bytes) {
  Result<std::string> decoded = DecodeContent(body, content_encoding, max_output_bytes);
  if (!decoded.ok()) return decoded;
  if (IsLatin1Charset(CharsetOf(content_type))) return Latin1ToUtf8(decoded.value());
  return decoded;
}

}  // namespace doppel::diff
