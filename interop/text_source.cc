#include "interop/text_source.h"

#include <zlib.h>

#include <cstring>
#include <fstream>

namespace doppel::interop {
namespace {
constexpr size_t kChunk = 64 << 10;

bool IsGzipMagic(std::string_view s) {
  return s.size() >= 2 && static_cast<unsigned char>(s[0]) == 0x1f &&
         static_cast<unsigned char>(s[1]) == 0x8b;
}
}  // namespace

struct TextSource::Inflater {
  z_stream z{};
  bool ready = false;
  bool member_done = false;  // the last gzip member ended cleanly
  ~Inflater() {
    if (ready) inflateEnd(&z);
  }
};

TextSource::TextSource(std::istream& in, std::string label) : in_(in), label_(std::move(label)) {}

TextSource::~TextSource() = default;

size_t TextSource::ReadRaw(char* buf, size_t n) {
  in_.read(buf, static_cast<std::streamsize>(n));
  size_t got = static_cast<size_t>(in_.gcount());
  if (got == 0 && in_.bad()) status_ = Status::IoError(label_ + ": read error");
  return got;
}

bool TextSource::Fill() {
  buf_.clear();
  pos_ = 0;
  if (!status_.ok() || eof_) return false;
  if (!started_) {
    started_ = true;
    raw_.resize(kChunk);
    raw_.resize(ReadRaw(raw_.data(), raw_.size()));
    if (raw_.size() == 1) {  // one byte: maybe the start of a gzip magic
      char c;
      if (ReadRaw(&c, 1) == 1) raw_.push_back(c);
    }
    gzip_ = IsGzipMagic(raw_);
    if (gzip_) {
      z_ = std::make_unique<Inflater>();
      if (inflateInit2(&z_->z, 15 + 16) != Z_OK) {
        status_ = Status::Internal(label_ + ": cannot initialize zlib");
        return false;
      }
      z_->ready = true;
      z_->z.next_in = reinterpret_cast<Bytef*>(raw_.data());
      z_->z.avail_in = static_cast<uInt>(raw_.size());
    }
  }
  if (!gzip_) {
    if (!raw_.empty()) {
      buf_.swap(raw_);
      raw_.clear();
    } else {
      buf_.resize(kChunk);
      buf_.resize(ReadRaw(buf_.data(), buf_.size()));
    }
    if (buf_.empty()) eof_ = true;
    return !buf_.empty();
  }
  z_stream& z = z_->z;
  buf_.resize(kChunk);
  while (true) {
    if (z.avail_in == 0) {
      raw_.resize(kChunk);
      raw_.resize(ReadRaw(raw_.data(), raw_.size()));
      if (!status_.ok()) return false;
      if (raw_.empty()) {
        eof_ = true;
        if (!z_->member_done && allow_truncated_) {
          truncated_ = true;
        } else if (!z_->member_done) {
          status_ =
              Status::Corruption(label_ + ": the gzip stream ends early (truncated file) at " +
                                 std::to_string(offset_) + " decompressed bytes");
          buf_.clear();
          return false;
        }
        buf_.clear();
        return false;
      }
      z.next_in = reinterpret_cast<Bytef*>(raw_.data());
      z.avail_in = static_cast<uInt>(raw_.size());
    }
    if (z_->member_done) {
      // Another gzip member may follow (`cat a.gz b.gz`); anything else is damage.
      if (z.avail_in < 2) {
        // Need two bytes to check the magic: keep the one byte and read more.
        std::string keep(reinterpret_cast<char*>(z.next_in), z.avail_in);
        char more[1];
        if (ReadRaw(more, 1) == 1) keep.push_back(more[0]);
        raw_ = keep;
        z.next_in = reinterpret_cast<Bytef*>(raw_.data());
        z.avail_in = static_cast<uInt>(raw_.size());
      }
      if (!IsGzipMagic(std::string_view(reinterpret_cast<char*>(z.next_in), z.avail_in))) {
        status_ = Status::Corruption(label_ + ": bytes after the end of the gzip stream");
        buf_.clear();
        return false;
      }
      inflateReset(&z);
      z_->member_done = false;
    }
    z.next_out = reinterpret_cast<Bytef*>(buf_.data());
    z.avail_out = static_cast<uInt>(buf_.size());
    int ret = inflate(&z, Z_NO_FLUSH);
    size_t produced = buf_.size() - z.avail_out;
    if (ret == Z_STREAM_END) {
      z_->member_done = true;
    } else if (ret != Z_OK && !(ret == Z_BUF_ERROR && produced == 0 && z.avail_in == 0)) {
      status_ = Status::Corruption(
          label_ + ": not a valid gzip stream (" +
          (z.msg ? std::string(z.msg) : "zlib error " + std::to_string(ret)) + ") after " +
          std::to_string(offset_ + produced) + " decompressed bytes");
      buf_.clear();
      return false;
    }
    if (produced > 0) {
      buf_.resize(produced);
      return true;
    }
  }
}

size_t TextSource::Read(char* out, size_t n) {
  if (pos_ == buf_.size() && !Fill()) return 0;
  size_t k = std::min(n, buf_.size() - pos_);
  std::memcpy(out, buf_.data() + pos_, k);
  pos_ += k;
  offset_ += k;
  return k;
}

bool TextSource::ReadLine(std::string* line, size_t max_bytes) {
  line->clear();
  terminated_ = false;
  bool any = false;
  while (true) {
    if (pos_ == buf_.size() && !Fill()) break;
    any = true;
    const char* start = buf_.data() + pos_;
    size_t avail = buf_.size() - pos_;
    const void* nl = std::memchr(start, '\n', avail);
    size_t take = nl ? static_cast<size_t>(static_cast<const char*>(nl) - start) : avail;
    if (line->size() + take > max_bytes) {
      status_ = Status::ResourceExhausted(label_ + ": a line is longer than " +
                                          std::to_string(max_bytes) + " bytes");
      return false;
    }
    line->append(start, take);
    pos_ += take + (nl ? 1 : 0);
    offset_ += take + (nl ? 1 : 0);
    if (nl) {
      terminated_ = true;
      break;
    }
  }
  if (!status_.ok()) return false;
  return any && (terminated_ || !line->empty());
}

Result<std::string> PeekContent(const std::string& path, size_t n) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("cannot open '" + path + "': " + std::strerror(errno));
  TextSource src(f, path);
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    size_t k = src.Read(out.data() + got, n - got);
    if (k == 0) break;
    got += k;
  }
  out.resize(got);
  return out;
}

}  // namespace doppel::interop
