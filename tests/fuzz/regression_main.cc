// The `main` of a fuzz target in the normal (non-libFuzzer) build: runs every file of the
// directories (or files) named on the command line through LLVMFuzzerTestOneInput once, in
// name order. So the seed corpus and every input that ever crashed run in each test pass.
//
//   fuzz_json_diff tests/fuzz/corpus/json_diff tests/fuzz/regressions/json_diff
//
// A missing directory is skipped (a target may have no regressions yet); running no input
// at all is an error, so a misspelled path cannot pass silently. A property violation
// aborts, which fails the test.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  size_t ran = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code ec;
    std::vector<fs::path> files;
    if (fs::is_directory(arg, ec)) {
      for (const auto& entry : fs::directory_iterator(arg, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
    } else if (fs::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else {
      std::printf("skipping %s: not found\n", arg.c_str());
      continue;
    }
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::string data((std::istreambuf_iterator<char>(in)), {});
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
      }
      std::printf("running %s (%zu bytes)\n", file.c_str(), data.size());
      std::fflush(stdout);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
      ++ran;
    }
  }
  if (ran == 0) {
    std::fprintf(stderr, "no input found: pass the seed corpus directory (tests/fuzz/corpus/T)\n");
    return 1;
  }
  std::printf("%zu inputs ran without a crash or a violated property\n", ran);
  return 0;
}
