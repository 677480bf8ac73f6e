// Fuzz target: a bundle file with arbitrary contents (interop/bundle.h), read the two ways
// doppel reads one: VerifyBundle (`doppel import`, `doppel replay --from`) and a streaming
// BundleReader. The input is written to a tmpfs file because both take a path.
//
// Properties: no crash, no allocation beyond the record limit; every error names what
// broke; the reader and VerifyBundle agree (same verdict, same envelope count); the reader
// stops for good after its end.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "interop/bundle.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string* path = [] {
    auto* p = new std::string(doppel::fuzz::TempFilePath("bundle"));
    std::atexit([] { ::unlink(doppel::fuzz::TempFilePath("bundle").c_str()); });
    return p;
  }();
  FUZZ_CHECK(doppel::fuzz::WriteFile(*path, {reinterpret_cast<const char*>(data), size}),
             "cannot write " + *path);

  const doppel::Result<uint64_t> verified = doppel::interop::VerifyBundle(*path);
  if (!verified.ok()) FUZZ_CHECK(!verified.status().message().empty(), "error without a message");

  auto reader = doppel::interop::BundleReader::Open(*path);
  if (!reader.ok()) {
    FUZZ_CHECK(!verified.ok(), "VerifyBundle accepted a file Open refuses");
    FUZZ_CHECK(!reader.status().message().empty(), "Open error without a message");
    return 0;
  }
  doppel::v1::Envelope envelope;
  uint64_t n = 0;
  while ((*reader)->Next(&envelope)) {
    ++n;
    (void)envelope.ByteSizeLong();
  }
  FUZZ_CHECK(!(*reader)->Next(&envelope), "Next() yields an envelope after the end");
  FUZZ_CHECK(n == (*reader)->envelopes_read(), "envelopes_read() disagrees with Next()");
  const doppel::Status& status = (*reader)->status();
  FUZZ_CHECK(status.ok() == verified.ok(),
             "reader and VerifyBundle disagree: " + status.ToString() + " vs " +
                 verified.status().ToString());
  if (status.ok()) {
    FUZZ_CHECK(verified.value() == n, "VerifyBundle counted a different number of envelopes");
  } else {
    FUZZ_CHECK(!status.message().empty(), "reader error without a message");
  }
  return 0;
}
