// HTTP content codings (RFC 9110 §8.4.1): gzip, deflate, zstd, br and identity, encoded and
// decoded in one place. Every part of doppel that compresses or decompresses a body or a
// file goes through here: the diff engine, HAR import and export, GoReplay/JSONL file
// reading, doppel-echo and the benchmarks.
//
// Decoding is bounded: output beyond `max_output_bytes` is an error (kResourceExhausted),
// never an allocation of whatever a hostile stream claims, so a decompression bomb costs at
// most the limit; zstd frames that ask for a window over 128 MiB are refused.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace doppel::net {

enum class Coding { kIdentity, kGzip, kDeflate, kZstd, kBrotli };

// The coding a Content-Encoding token names: "identity" (or empty), "gzip", "x-gzip",
// "deflate", "zstd", "br"; case-insensitive, surrounding spaces ignored. nullopt otherwise.
std::optional<Coding> ParseCoding(std::string_view token);

// Undoes the codings named by a Content-Encoding value. A list ("gzip, br") names the codings
// in the order they were applied (RFC 9110 §8.4), so they are undone last to first. Names as
// for ParseCoding; an empty value means identity; an empty body stays empty whatever the
// header says. "deflate" accepts zlib-wrapped (RFC 1950, what the RFC says) and raw (RFC 1951,
// what some servers send) streams, as browsers do. Concatenated gzip members are decoded as
// one body; bytes after the end of a complete stream are ignored (servers pad).
// Errors: kUnsupported for an unknown coding, kCorruption for a bad or truncated stream,
// kResourceExhausted when any step's output would exceed max_output_bytes.
Result<std::string> DecodeContent(std::string_view body, std::string_view content_encoding,
                                  size_t max_output_bytes);

// Applies the codings named by a Content-Encoding value, first to last ("gzip, br": gzip, then
// br), so that DecodeContent(EncodeContent(b, v), v) == b. "deflate" writes the zlib-wrapped
// form. The output is deterministic: the gzip header carries no time stamp or file name.
// Errors: kUnsupported for an unknown coding, kInternal if a library fails.
Result<std::string> EncodeContent(std::string_view body, std::string_view content_encoding);

// A gzip compressor that keeps its zlib state between messages (for servers that compress
// every response: no allocation per message). Not thread-safe; one per thread.
class GzipEncoder {
 public:
  GzipEncoder();
  ~GzipEncoder();
  GzipEncoder(const GzipEncoder&) = delete;
  GzipEncoder& operator=(const GzipEncoder&) = delete;

  // Replaces *out with one gzip member holding `in`. False if zlib failed.
  bool Compress(std::string_view in, std::string* out);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// True when the input starts with the gzip magic bytes (1f 8b).
bool IsGzipMagic(std::string_view bytes);

// A streaming gzip decoder for input that does not fit in memory (a `.gor.gz` file): feed it
// compressed bytes, take decompressed bytes. Several members back to back (`cat a.gz b.gz`)
// are one stream; anything else after a member's end is an error. Not thread-safe.
class GzipStreamDecoder {
 public:
  GzipStreamDecoder();
  ~GzipStreamDecoder();
  GzipStreamDecoder(const GzipStreamDecoder&) = delete;
  GzipStreamDecoder& operator=(const GzipStreamDecoder&) = delete;

  // Decodes from the front of *in (consumed bytes are removed from it) into out[0, capacity).
  // Returns the bytes written; 0 with *in empty means "give me more input" (or, at the end of
  // the input, check member_done()). 0 with *in not empty happens only when a member has just
  // ended and fewer than two bytes follow: append more input (the next member's magic) first.
  // Errors: kCorruption for a damaged stream or bytes after a member that are not gzip.
  Result<size_t> Decode(std::string_view* in, char* out, size_t capacity);

  // True when the input so far ends exactly at the end of a member (a complete file).
  bool member_done() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// permessage-deflate (RFC 7692 7.2.2): decompresses the compressed messages of one direction
// of a WebSocket connection, one after another in the order they went. The LZ77 window is
// kept from message to message, as context takeover needs; a peer that negotiated
// no_context_takeover never refers back, so the same decoder serves it, and any
// max_window_bits fits in the 15-bit window. Not thread-safe; one per direction.
class WebSocketInflater {
 public:
  WebSocketInflater();
  ~WebSocketInflater();
  WebSocketInflater(const WebSocketInflater&) = delete;
  WebSocketInflater& operator=(const WebSocketInflater&) = delete;

  // The payload of the next compressed message, decompressed. Errors: kCorruption for a
  // payload that is not the next part of the direction's DEFLATE stream, kResourceExhausted
  // past max_output_bytes; the inflater is of no use after either.
  Result<std::string> Inflate(std::string_view payload, size_t max_output_bytes);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace doppel::net
