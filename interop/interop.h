// Interop with other tools: sessions come in from browser devtools (HAR 1.2), GoReplay
// (.gor, plain or gzip) and scripts (JSON Lines), and go out as HAR, JSON Lines or a `curl`
// command for one envelope. The doppel bundle (bundle.h) is the fourth, lossless format.
//
// How each format maps onto envelopes is written down in docs/interop.md; the JSON Lines
// schema (also what `doppel cat` prints) in docs/jsonl-format.md.
//
// Readers stream: they hold one record at a time (GoReplay: plus requests still waiting for
// their response, bounded), so a multi-GB file never sits in memory. Errors name the format,
// the file, the record (line, entry or GoReplay payload number) and what was wrong.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "base/status.h"
#include "doppel/v1/envelope.pb.h"
#include "doppel/v1/session.pb.h"
#include "redact/redactor.h"
#include "storage/store.h"

namespace doppel::interop {

enum class InteropFormat { kBundle, kHar, kJsonl, kGor, kCurl, kMaxValue = kCurl };

// "bundle", "har", "jsonl" (or "ndjson"), "gor" (or "goreplay"), "curl".
Result<InteropFormat> ParseInteropFormat(std::string_view name);
// For messages: "bundle", "HAR", "JSON Lines", "GoReplay", "curl".
std::string_view InteropFormatName(InteropFormat format);

// The format of a file to import: the bundle magic; else the extension (.dpl, .har,
// .jsonl/.ndjson, .gor; a trailing .gz is looked through); else the content after gunzip
// ('{' followed by "log" = HAR, '{' = JSON Lines, a GoReplay header line "1 ID TIMESTAMP").
// InvalidArgument when none of these tells.
Result<InteropFormat> DetectImportFormat(const std::string& path);
// The format an export file name asks for: .har -> HAR, .jsonl/.ndjson -> JSON Lines,
// anything else (and "-") -> bundle.
InteropFormat ExportFormatForPath(std::string_view path);
// The default session name for an imported file: its name without directories and
// extensions ("/x/traffic.gor.gz" -> "traffic").
std::string SessionNameForPath(std::string_view path);

// ---- import ----

struct ImportOptions {
  // Skip records that do not parse (counted in ImportStats::skipped) instead of failing.
  // Damage to the file's framing (HAR JSON syntax, a broken gzip stream) still fails.
  bool skip_bad = false;
  // Runs on every envelope before it is stored, as `doppel record` does (HAR files from
  // browser devtools carry Cookie and Authorization). Null: stored verbatim (--no-redact).
  // Bundles are imported as they were exported: their store redacted them, with its own key.
  const redact::Redactor* redactor = nullptr;
};

struct ImportStats {
  uint64_t records = 0;           // lines, HAR entries, GoReplay payloads read
  uint64_t envelopes = 0;         // envelopes produced
  uint64_t skipped = 0;           // bad records skipped (ImportOptions::skip_bad)
  std::string first_skipped;      // why the first skipped record was bad
  uint64_t without_response = 0;  // envelopes with no response: unpaired GoReplay requests,
                                  // HAR entries with status 0 (failed in the browser)
  uint64_t ignored = 0;           // GoReplay replayed responses (type 3) and responses whose
                                  // request is not in the file
  uint64_t decoded_bodies = 0;    // HAR response bodies stored decoded because their
                                  // Content-Encoding (e.g. br) cannot be redone
  uint64_t redaction_dropped_bodies = 0;  // bodies dropped because a --redact-json-path
                                          // could not be applied (redact/redactor.h)
};

// Receives each parsed envelope; a non-OK status stops the reader and is returned.
using EnvelopeSink = std::function<Status(doppel::v1::Envelope&&)>;

// Streaming readers. gzip input is recognized by its magic and inflated on the fly.
// `source` names the input in messages (usually the path); `stats` is required.
//
// HAR: arrival_us from startedDateTime, seq = entry index (or the `_doppel` extension's
// values, see docs/interop.md). JSON Lines: exactly the envelopes `doppel cat` printed.
// GoReplay: requests (type 1) and original responses (type 2) paired by ID; arrival_us from
// the request's timestamp, seq = order of the request in the file.
Status ReadHar(std::istream& in, const std::string& source, const ImportOptions& options,
               const EnvelopeSink& sink, ImportStats* stats);
Status ReadJsonl(std::istream& in, const std::string& source, const ImportOptions& options,
                 const EnvelopeSink& sink, ImportStats* stats);
Status ReadGor(std::istream& in, const std::string& source, const ImportOptions& options,
               const EnvelopeSink& sink, ImportStats* stats);

// Imports `path` (format: bundle, HAR, JSON Lines or GoReplay) as session `as_name` (empty:
// a bundle's own name, or SessionNameForPath for the others). Imports under a hidden name and
// renames at the end (session_import.h): any failure leaves nothing behind. Each HAR, JSON
// Lines or GoReplay envelope goes through `options.redactor` (if set) before it is stored.
// `stats` (may be null) says what was skipped, unpaired, ignored or dropped by redaction, for
// the caller to report.
Result<doppel::v1::SessionInfo> ImportFile(storage::Store& store, const std::string& path,
                                           InteropFormat format, const std::string& as_name,
                                           const ImportOptions& options, ImportStats* stats);

// ---- export ----

struct ExportStats {
  uint64_t envelopes = 0;
  uint64_t bytes = 0;
  uint64_t refused = 0;  // HAR: envelopes left out because the proxy refused them
};

// Stream session `session` of `store` to `out`. JSON Lines lines are exactly `doppel cat`'s.
// HAR is HAR 1.2 (what Chrome, Firefox and HAR validators read): response bodies are
// Content-Encoding-decoded text, or base64 ("encoding": "base64") when not UTF-8; what HAR
// cannot say (seq, client address, truncation, proxy errors) goes into `_doppel` fields.
// HAR leaves out the envelopes the proxy refused (ProxyRefused, storage/proxy_error.h): HAR
// files get replayed by other tools, and those requests never reached the primary. JSON Lines
// (like bundles) keeps every envelope.
Status WriteHar(storage::Store& store, const std::string& session, std::ostream& out,
                ExportStats* stats);
Status WriteJsonl(storage::Store& store, const std::string& session, std::ostream& out,
                  ExportStats* stats);

// Writes what `write` produces to `path` via `path.tmp` and a rename, created readable by its
// owner only (exports hold recorded traffic), or to stdout for "-". On failure no file is left.
Status WriteTextFile(const std::string& path, const std::function<Status(std::ostream&)>& write);

// Writes session `session` in `format` (bundle, HAR or JSON Lines) to `path`: via
// `path.tmp` and a rename, so a failed export leaves no half-written file; "-" writes text
// formats to stdout.
Status ExportFile(storage::Store& store, const std::string& session, InteropFormat format,
                  const std::string& path, ExportStats* stats);

// ---- one envelope as a curl command ----

// An envelope's id: "ARRIVAL_US.SEQ", the arrival_us and seq that `doppel cat` prints. A bare
// "ARRIVAL_US" names the first envelope with that arrival time.
struct EnvelopeId {
  uint64_t arrival_us = 0;
  std::optional<uint32_t> seq;
};
Result<EnvelopeId> ParseEnvelopeId(std::string_view text);
std::string FormatEnvelopeId(const doppel::v1::Envelope& envelope);
// NotFound (naming the session and id) when there is no such envelope.
Result<doppel::v1::Envelope> FindEnvelope(storage::Store& store, const std::string& session,
                                          const EnvelopeId& id);

struct CurlOptions {
  // Base URL to send to ("http://host:port[/base]"); empty: the recorded scheme (default
  // http) and Host header.
  std::string target;
};

// A copy-pasteable bash command that sends the envelope's request with curl: method, target,
// headers in order, body byte for byte. Every argument is shell-quoted (single quotes, or
// $'...' when it holds control characters); a body that is not UTF-8 or holds NUL comes
// through `base64 -d` from a here-document. Headers recorded redacted ("hmac:...") are left
// out, with a comment naming them; Host, Content-Length and Transfer-Encoding come from curl.
// InvalidArgument when there is no host to send to (no Host header and no target), or when
// the proxy refused the request (ProxyRefused): it never reached the primary.
Result<std::string> CurlCommand(const doppel::v1::Envelope& envelope, const CurlOptions& options);

// Quotes `s` as one shell word for bash: '...' when that is exact and readable, else $'...'.
// REQUIRES: `s` holds no NUL byte (no shell argument can).
std::string ShellQuote(std::string_view s);

}  // namespace doppel::interop
