// A fresh directory for one test's files, and writing and reading a file.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace doppel::testing {

// An empty directory "doppel-test-NAME-PID" under the temp dir (emptied first if a crashed
// run left it behind). The caller removes it.
inline std::string MakeTempDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("doppel-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The whole file, bytes as they are; "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to `path` (replacing it).
inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace doppel::testing
