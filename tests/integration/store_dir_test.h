// A test fixture with a fresh directory of its own, named after the test, and a store path in
// it (not created: `doppel` or Store::Open creates it). The directory is removed afterwards.
// Fixtures that add to SetUp call StoreDirTest::SetUp() first.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/integration/child_process.h"

namespace doppel::testing {

class StoreDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_ = dir_ + "/store";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_, store_;
};

}  // namespace doppel::testing
