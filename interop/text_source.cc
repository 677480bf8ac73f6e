#include "interop/text_source.h"

#include <cstring>
#include <fstream>

#include "net/codings.h"

namespace doppel::interop {
namespace {
constexpr size_t kChunk = 64 << 10;
}  // namespace

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
    gzip_ = net::IsGzipMagic(raw_);
    if (gzip_) gunzip_ = std::make_unique<net::GzipStreamDecoder>();
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
  buf_.resize(kChunk);
  while (true) {
    std::string_view in(raw_.data() + raw_pos_, raw_.size() - raw_pos_);
    Result<size_t> got = gunzip_->Decode(&in, buf_.data(), buf_.size());
    raw_pos_ = raw_.size() - in.size();
    if (!got.ok()) {
      status_ = Status::Corruption(label_ + ": " + got.status().message() + " after " +
                                   std::to_string(offset_) + " decompressed bytes");
      buf_.clear();
      return false;
    }
    if (got.value() > 0) {
      buf_.resize(got.value());
      return true;
    }
    // The decoder wants more input: keep what it left (at most one byte after a member).
    raw_.erase(0, raw_pos_);
    raw_pos_ = 0;
    size_t kept = raw_.size();
    raw_.resize(kept + kChunk);
    raw_.resize(kept + ReadRaw(raw_.data() + kept, kChunk));
    if (!status_.ok()) return false;
    if (raw_.size() == kept) {  // end of the file
      eof_ = true;
      buf_.clear();
      if (kept > 0 || !gunzip_->member_done()) {
        if (kept == 0 && allow_truncated_) {
          truncated_ = true;
          return false;
        }
        status_ = Status::Corruption(
            label_ + (kept > 0 ? ": bytes after the end of the gzip stream"
                               : ": the gzip stream ends early (truncated file) at " +
                                     std::to_string(offset_) + " decompressed bytes"));
      }
      return false;
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
