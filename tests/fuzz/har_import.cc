// Fuzz target: the HAR 1.2 importer (interop/interop.h ReadHar, `doppel import x.har`) on
// arbitrary file contents, plain or gzip. Properties: import_check.h.
#include <cstdint>
#include <string_view>

#include "tests/fuzz/import_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  doppel::fuzz::CheckImport(&doppel::interop::ReadHar, {reinterpret_cast<const char*>(data), size});
  return 0;
}
