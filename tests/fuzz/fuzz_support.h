// Shared by the fuzz targets (tests/fuzz/README.md): the oracle macro, a fast temp file, and
// the deterministic sample envelopes and dictionary that envelope_decode loads and
// make_seeds.cc compresses the seeds with.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/v1/envelope.pb.h"

// A property every input must keep. A violation prints why and aborts, which libFuzzer
// reports as a crash (and saves the input) and the regression runner as a failed test.
#define FUZZ_CHECK(cond, what)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   std::string(what).c_str());                                                    \
      std::abort();                                                                               \
    }                                                                                             \
  } while (0)

namespace doppel::fuzz {

// A per-process file path on tmpfs (/dev/shm when it exists, else $TMPDIR or /tmp), for
// APIs that read a path. `name` tells the targets apart.
// Whether a Transfer-Encoding field of `head` (an HTTP message head's raw bytes) has a tab in
// its value, on its line or on a line folded into it (obs-fold: a line that starts with SP or
// HTAB continues the field, RFC 9112 5.2; "Transfer-Encoding: \r\n chunked\t" is " chunked\t"
// unfolded). The smuggling targets' allowance for http-parser 2.9.4, which ends a coding name
// at a space only and refuses "chunked<HTAB>" (RFC 9110 5.5: OWS, SP or HTAB, is not part of
// a field value).
bool TransferEncodingHasTab(std::string_view head);

std::string TempFilePath(std::string_view name);

// Writes `data` to `path` (truncating); false on error.
bool WriteFile(const std::string& path, std::string_view data);

// Checks that `envelope` survives the store: it serializes and parses back (proto3 string
// fields must be valid UTF-8, or the parse fails) and encodes and decodes through the store's
// codec unchanged. `what` names its origin in the violation message. Thread-safe.
void CheckStorable(const doppel::v1::Envelope& envelope, std::string_view what);

// `n` plausible JSON API envelopes, the same on every run.
std::vector<doppel::v1::Envelope> SampleEnvelopes(int n);

// A zstd dictionary trained on SampleEnvelopes (the same bytes, and so the same dictionary
// id, on every run with the same zstd). Computed once.
const std::string& SampleDictionary();

}  // namespace doppel::fuzz
