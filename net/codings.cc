#include "net/codings.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "base/strings.h"

namespace doppel::net {
namespace {

constexpr size_t kChunk = 64 * 1024;

Status TooLarge(size_t limit) {
  return Status::ResourceExhausted("decoded body exceeds the limit of " + std::to_string(limit) +
                                   " bytes");
}

Bytef* In(std::string_view s) { return reinterpret_cast<Bytef*>(const_cast<char*>(s.data())); }

// window_bits as for inflateInit2: 15 + 16 = gzip, 15 = zlib, -15 = raw deflate.
Result<std::string> Inflate(std::string_view in, int window_bits, size_t limit,
                            std::string_view name) {
  if (in.size() > UINT_MAX) return TooLarge(limit);
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return Status::Internal("inflateInit2 failed");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  std::string out;
  zs.next_in = In(in);
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[kChunk];
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    int rc = inflate(&zs, Z_NO_FLUSH);
    size_t produced = sizeof(buf) - zs.avail_out;
    if (out.size() + produced > limit) return TooLarge(limit);
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back; anything else after the end is padding
      // we tolerate, as browsers do.
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
  // One decompression context per thread, reused.
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

Result<std::string> Unbrotli(std::string_view in, size_t limit) {
  std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> dec(
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance);
  if (!dec) return Status::Internal("BrotliDecoderCreateInstance failed");
  std::string out;
  size_t avail_in = in.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
  uint8_t buf[kChunk];
  while (true) {
    size_t avail_out = sizeof(buf);
    uint8_t* next_out = buf;
    BrotliDecoderResult rc = BrotliDecoderDecompressStream(dec.get(), &avail_in, &next_in,
                                                           &avail_out, &next_out, nullptr);
    size_t produced = sizeof(buf) - avail_out;
    if (out.size() + produced > limit) return TooLarge(limit);
    out.append(reinterpret_cast<char*>(buf), produced);
    if (rc == BROTLI_DECODER_RESULT_SUCCESS) return out;
    if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
      return Status::Corruption("br stream is truncated");
    }
    if (rc == BROTLI_DECODER_RESULT_ERROR) {
      return Status::Corruption(std::string("bad br stream: ") +
                                BrotliDecoderErrorString(BrotliDecoderGetErrorCode(dec.get())));
    }
    // BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT: loop with a fresh buffer.
  }
}

Result<std::string> Deflate(std::string_view in, int window_bits) {
  if (in.size() > UINT_MAX) return Status::InvalidArgument("body too large to compress");
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::Internal("deflateInit2 failed");
  }
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, deflateEnd);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = In(in);
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) return Status::Internal("deflate failed");
  out.resize(zs.total_out);
  return out;
}

Result<std::string> Zstd(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  if (ZSTD_isError(n)) return Status::Internal(std::string("zstd: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> Brotli(std::string_view in) {
  size_t n = BrotliEncoderMaxCompressedSize(in.size());
  if (n == 0) return Status::InvalidArgument("body too large to compress");
  std::string out(n, '\0');
  // Quality 5: close to 11's ratio on JSON at a fraction of its time (what CDNs use on the fly).
  if (!BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, in.size(),
                             reinterpret_cast<const uint8_t*>(in.data()), &n,
                             reinterpret_cast<uint8_t*>(out.data()))) {
    return Status::Internal("brotli compression failed");
  }
  out.resize(n);
  return out;
}

// The non-empty tokens of a Content-Encoding value, in order; Unsupported for an unknown one.
Status ParseList(std::string_view value, std::vector<Coding>* codings) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view token = TrimSpaces(value.substr(start, comma - start));
    start = comma + 1;
    if (token.empty()) continue;
    std::optional<Coding> c = ParseCoding(token);
    if (!c) {
      return Status::Unsupported("unsupported Content-Encoding \"" + std::string(token) +
                                 "\" (supported: gzip, deflate, zstd, br, identity)");
    }
    codings->push_back(*c);
  }
  return Status::Ok();
}

Result<std::string> DecodeOne(std::string_view body, Coding c, size_t limit) {
  switch (c) {
    case Coding::kIdentity:
      break;
    case Coding::kGzip:
      return Inflate(body, 15 + 16, limit, "gzip");
    case Coding::kDeflate:
      if (LooksLikeZlibHeader(body)) {
        Result<std::string> r = Inflate(body, 15, limit, "deflate");
        if (r.ok() || r.status().code() == Status::Code::kResourceExhausted) return r;
      }
      return Inflate(body, -15, limit, "deflate");
    case Coding::kZstd:
      return Unzstd(body, limit);
    case Coding::kBrotli:
      return Unbrotli(body, limit);
  }
  if (body.size() > limit) return TooLarge(limit);
  return std::string(body);
}

}  // namespace

std::optional<Coding> ParseCoding(std::string_view token) {
  std::string c = AsciiLower(TrimSpaces(token));
  if (c.empty() || c == "identity") return Coding::kIdentity;
  if (c == "gzip" || c == "x-gzip") return Coding::kGzip;
  if (c == "deflate") return Coding::kDeflate;
  if (c == "zstd") return Coding::kZstd;
  if (c == "br") return Coding::kBrotli;
  return std::nullopt;
}

Result<std::string> DecodeContent(std::string_view body, std::string_view content_encoding,
                                  size_t max_output_bytes) {
  // An empty body stays empty whatever its header claims (204, HEAD-like answers).
  if (body.empty()) return std::string();
  std::vector<Coding> codings;
  DOPPEL_RETURN_IF_ERROR(ParseList(content_encoding, &codings));
  std::string current(body);
  if (codings.empty()) return DecodeOne(current, Coding::kIdentity, max_output_bytes);
  for (auto it = codings.rbegin(); it != codings.rend(); ++it) {
    Result<std::string> r = DecodeOne(current, *it, max_output_bytes);
    if (!r.ok()) return r;
    current = std::move(r).value();
    if (current.empty()) break;
  }
  return current;
}

Result<std::string> EncodeContent(std::string_view body, std::string_view content_encoding) {
  std::vector<Coding> codings;
  DOPPEL_RETURN_IF_ERROR(ParseList(content_encoding, &codings));
  std::string current(body);
  for (Coding c : codings) {
    Result<std::string> r = std::string();
    switch (c) {
      case Coding::kIdentity:
        continue;
      case Coding::kGzip:
        r = Deflate(current, 15 + 16);
        break;
      case Coding::kDeflate:
        r = Deflate(current, 15);
        break;
      case Coding::kZstd:
        r = Zstd(current);
        break;
      case Coding::kBrotli:
        r = Brotli(current);
        break;
    }
    if (!r.ok()) return r;
    current = std::move(r).value();
  }
  return current;
}

// ---------------------------------------------------------------------------------------

struct GzipEncoder::State {
  z_stream zs{};
  bool ok = false;
  ~State() {
    if (ok) deflateEnd(&zs);
  }
};

GzipEncoder::GzipEncoder() : state_(std::make_unique<State>()) {
  state_->ok = deflateInit2(&state_->zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
}

GzipEncoder::~GzipEncoder() = default;

bool GzipEncoder::Compress(std::string_view in, std::string* out) {
  z_stream& zs = state_->zs;
  if (!state_->ok || in.size() > UINT_MAX || deflateReset(&zs) != Z_OK) return false;
  out->resize(deflateBound(&zs, in.size()) + 32);
  zs.next_in = In(in);
  zs.avail_in = static_cast<uInt>(in.size());
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(out->data() + zs.total_out);
    zs.avail_out = static_cast<uInt>(out->size() - zs.total_out);
    int rc = deflate(&zs, Z_FINISH);
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    out->resize(out->size() * 2);
  }
  out->resize(zs.total_out);
  return true;
}

// ---------------------------------------------------------------------------------------

bool IsGzipMagic(std::string_view s) {
  return s.size() >= 2 && static_cast<unsigned char>(s[0]) == 0x1f &&
         static_cast<unsigned char>(s[1]) == 0x8b;
}

struct GzipStreamDecoder::State {
  z_stream zs{};
  bool ok = false;
  bool member_done = false;  // the last member ended cleanly
  ~State() {
    if (ok) inflateEnd(&zs);
  }
};

GzipStreamDecoder::GzipStreamDecoder() : state_(std::make_unique<State>()) {
  state_->ok = inflateInit2(&state_->zs, 15 + 16) == Z_OK;
}

GzipStreamDecoder::~GzipStreamDecoder() = default;

bool GzipStreamDecoder::member_done() const { return state_->member_done; }

Result<size_t> GzipStreamDecoder::Decode(std::string_view* in, char* out, size_t capacity) {
  if (!state_->ok) return Status::Internal("cannot initialize zlib");
  z_stream& zs = state_->zs;
  while (!in->empty()) {
    if (state_->member_done) {
      // Another gzip member may follow (`cat a.gz b.gz`); anything else is damage.
      if (in->size() < 2) return size_t{0};  // need two bytes to check the magic
      if (!IsGzipMagic(*in)) return Status::Corruption("bytes after the end of the gzip stream");
      if (inflateReset(&zs) != Z_OK) return Status::Internal("inflateReset failed");
      state_->member_done = false;
    }
    size_t take = std::min<size_t>(in->size(), UINT_MAX);
    zs.next_in = In(*in);
    zs.avail_in = static_cast<uInt>(take);
    zs.next_out = reinterpret_cast<Bytef*>(out);
    zs.avail_out = static_cast<uInt>(std::min<size_t>(capacity, UINT_MAX));
    uInt avail_out = zs.avail_out;
    int rc = inflate(&zs, Z_NO_FLUSH);
    in->remove_prefix(take - zs.avail_in);
    size_t produced = avail_out - zs.avail_out;
    if (rc == Z_STREAM_END) {
      state_->member_done = true;
    } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && produced == 0 && zs.avail_in == 0)) {
      return Status::Corruption(
          "not a valid gzip stream (" +
          (zs.msg ? std::string(zs.msg) : "zlib error " + std::to_string(rc)) + ")");
    }
    if (produced > 0) return produced;
  }
  return size_t{0};
}

// ---------------------------------------------------------------------------------------

struct WebSocketInflater::State {
  z_stream zs{};
  bool ok = false;      // initialized: inflateEnd() is owed
  bool broken = false;  // a message failed: the stream cannot go on
  ~State() {
    if (ok) inflateEnd(&zs);
  }
};

WebSocketInflater::WebSocketInflater() : state_(std::make_unique<State>()) {
  state_->ok = inflateInit2(&state_->zs, -15) == Z_OK;
}

WebSocketInflater::~WebSocketInflater() = default;

Result<std::string> WebSocketInflater::Inflate(std::string_view payload, size_t max_output_bytes) {
  if (!state_->ok) return Status::Internal("cannot initialize zlib");
  if (state_->broken) return Status::Corruption("an earlier message did not decompress");
  if (payload.size() > UINT_MAX - 4) return TooLarge(max_output_bytes);
  // The sender took off the empty stored block a sync flush ends with (RFC 7692 7.2.1).
  std::string in(payload);
  in.append("\x00\x00\xff\xff", 4);
  z_stream& zs = state_->zs;
  zs.next_in = In(in);
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[kChunk];
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    const int rc = inflate(&zs, Z_SYNC_FLUSH);
    const size_t produced = sizeof(buf) - zs.avail_out;
    if (out.size() + produced > max_output_bytes) {
      state_->broken = true;
      return TooLarge(max_output_bytes);
    }
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      // A sender may end a message with a final block (7.2.3.4): the next one starts a new
      // stream.
      if (inflateReset(&zs) != Z_OK) return Status::Internal("inflateReset failed");
      return out;
    }
    if (rc == Z_OK || rc == Z_BUF_ERROR) {
      if (zs.avail_in == 0 && zs.avail_out != 0) return out;  // all read, all out
      if (rc == Z_OK) continue;
    }
    state_->broken = true;
    return Status::Corruption("bad permessage-deflate message" +
                              (zs.msg ? std::string(": ") + zs.msg : std::string()));
  }
}

}  // namespace doppel::net
