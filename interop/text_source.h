// TextSource: the bytes of an imported text file (HAR, JSON Lines, GoReplay), read in chunks
// from a stream and inflated on the fly when they start with the gzip magic (1f 8b), so a
// `.gor.gz` or `.jsonl.gz` file is read like its plain copy and never held whole in memory.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::net {
class GzipStreamDecoder;  // net/codings.h
}  // namespace doppel::net

namespace doppel::interop {

class TextSource {
 public:
  // `in` must outlive the source. `label` names the input in errors ("GoReplay 'a.gor'").
  TextSource(std::istream& in, std::string label);
  ~TextSource();
  TextSource(const TextSource&) = delete;
  TextSource& operator=(const TextSource&) = delete;

  // Reads up to `n` bytes of (decompressed) content into `buf`. Returns 0 at the end or on an
  // error; status() tells which. A gzip stream that is damaged or ends early is an error.
  size_t Read(char* buf, size_t n);
  const Status& status() const { return status_; }
  // With this set, a gzip stream that stops early (a writer killed before it closed the
  // file) ends the content cleanly and truncated_gzip() says so, instead of an error.
  void set_allow_truncated_gzip(bool allow) { allow_truncated_ = allow; }
  bool truncated_gzip() const { return truncated_; }
  bool gzip() const { return gzip_; }
  // Decompressed bytes returned so far.
  uint64_t offset() const { return offset_; }

  // Reads one line without its '\n' (a '\r' before it is kept). Returns false at the end
  // of input (or on an error, see status()). A line longer than `max_bytes` is an error.
  bool ReadLine(std::string* line, size_t max_bytes);
  // True when the last ReadLine() returned a line that was ended by '\n' (false for a last
  // line without one).
  bool last_line_terminated() const { return terminated_; }

 private:
  bool Fill();  // refills buf_ from the (inflated) stream; false at the end or on error
  size_t ReadRaw(char* buf, size_t n);

  std::istream& in_;
  std::string label_;
  Status status_;
  bool started_ = false, gzip_ = false, eof_ = false, terminated_ = false;
  bool allow_truncated_ = false, truncated_ = false;
  std::unique_ptr<net::GzipStreamDecoder> gunzip_;
  std::string raw_;     // compressed bytes waiting for the decoder
  size_t raw_pos_ = 0;  // consumed prefix of raw_
  std::string buf_;     // decompressed bytes not yet consumed
  size_t pos_ = 0;      // consumed prefix of buf_
  uint64_t offset_ = 0;
};

// Reads the first up-to-`n` content bytes of `path` (gunzipped if it is gzip), for format
// detection. Returns the bytes read; errors only when the file cannot be opened.
Result<std::string> PeekContent(const std::string& path, size_t n);

}  // namespace doppel::interop
