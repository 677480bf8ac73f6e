#include "interop/bundle.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/base/temp_dir.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::interop {
namespace {

using storage::Store;
using storage::StoreOptions;

using google::protobuf::util::MessageDifferencer;
using storage::testing::MakeEnvelope;

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = doppel::testing::MakeTempDir("bundle");
    ASSERT_TRUE(Store::Open(StoreOptions(), dir_ + "/src", &src_).ok());
    v1::SessionInfo info;
    info.set_name("prod-sample");
    info.set_upstream("http://127.0.0.1:9000");
    ASSERT_TRUE(src_->CreateSession(info).ok());
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < 2500; ++i) batch.push_back(MakeEnvelope(10'000'000 + i * 100, i, i));
    ASSERT_TRUE(src_->Append("prod-sample", batch).ok());
    ASSERT_TRUE(src_->CloseSession("prod-sample", v1::SessionCounts()).ok());
    path_ = dir_ + "/s.dpl";
    BundleStats stats;
    ASSERT_TRUE(ExportBundle(*src_, "prod-sample", path_, &stats).ok());
    EXPECT_EQ(stats.envelopes, 2500u);
    EXPECT_EQ(stats.bytes, std::filesystem::file_size(path_));
    ASSERT_TRUE(Store::Open(StoreOptions(), dir_ + "/dst", &dst_).ok());
  }
  void TearDown() override {
    src_.reset();
    dst_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string ReadFile() {
    std::ifstream f(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  void WriteFile(const std::string& bytes) {
    std::ofstream f(path_, std::ios::binary | std::ios::trunc);
    f << bytes;
  }
  void ExpectRefusedAndNothingImported(const std::string& want_in_message) {
    auto r = ImportBundle(*dst_, path_, "");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find(want_in_message), std::string::npos)
        << r.status().message();
    EXPECT_TRUE(dst_->ListSessions()->empty());
  }

  std::string dir_, path_;
  std::unique_ptr<Store> src_, dst_;
};

TEST_F(BundleTest, RoundTrip) {
  auto r = ImportBundle(*dst_, path_, "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name(), "prod-sample");
  EXPECT_EQ(r->state(), v1::SESSION_STATE_IMPORTED);
  EXPECT_EQ(r->counts().envelopes(), 2500u);
  EXPECT_EQ(r->upstream(), "http://127.0.0.1:9000");
  auto a = src_->Scan("prod-sample");
  auto b = dst_->Scan("prod-sample");
  int n = 0;
  for (; (*a)->Valid(); (*a)->Next(), (*b)->Next(), ++n) {
    ASSERT_TRUE((*b)->Valid());
    ASSERT_TRUE(MessageDifferencer::Equals((*a)->envelope(), (*b)->envelope())) << "at " << n;
  }
  EXPECT_FALSE((*b)->Valid());
  EXPECT_EQ(n, 2500);
  // Importing again under the same name is refused; under a new name it works.
  EXPECT_EQ(ImportBundle(*dst_, path_, "").status().code(), Status::Code::kAlreadyExists);
  EXPECT_TRUE(ImportBundle(*dst_, path_, "copy").ok());
  EXPECT_EQ(dst_->ListSessions()->size(), 2u);
}

TEST_F(BundleTest, StreamingReaderVerifiesAtTheEnd) {
  auto r = BundleReader::Open(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->session().name(), "prod-sample");
  v1::Envelope e;
  uint64_t prev = 0, n = 0;
  while ((*r)->Next(&e)) {
    EXPECT_GE(e.arrival_us(), prev);
    prev = e.arrival_us();
    ++n;
  }
  EXPECT_TRUE((*r)->status().ok()) << (*r)->status().ToString();
  EXPECT_EQ(n, 2500u);
}

TEST_F(BundleTest, TruncatedIsRefused) {
  std::string bytes = ReadFile();
  for (size_t cut : {bytes.size() - 1, bytes.size() - 40, bytes.size() / 2, size_t{30}}) {
    WriteFile(bytes.substr(0, cut));
    ExpectRefusedAndNothingImported("truncated");
  }
}

TEST_F(BundleTest, FlippedByteIsRefused) {
  std::string bytes = ReadFile();
  bytes[bytes.size() / 2] ^= 0x20;
  WriteFile(bytes);
  auto r = ImportBundle(*dst_, path_, "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("record"), std::string::npos) << r.status().message();
  EXPECT_TRUE(dst_->ListSessions()->empty());
}

TEST_F(BundleTest, ChecksumCatchesASilentChange) {
  // Change a byte inside the session record's upstream URL: every record still parses,
  // only the checksum can tell.
  std::string bytes = ReadFile();
  size_t pos = bytes.find("127.0.0.1:9000");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos] = '8';
  WriteFile(bytes);
  ExpectRefusedAndNothingImported("checksum");
}

TEST_F(BundleTest, TrailingGarbageAndBadMagicAreRefused) {
  std::string bytes = ReadFile();
  WriteFile(bytes + "x");
  ExpectRefusedAndNothingImported("after the trailer");
  WriteFile("GIF89a" + bytes);
  ExpectRefusedAndNothingImported("not a doppel bundle");
  std::string future = bytes;
  future[11] = 9;  // format version 9
  WriteFile(future);
  ExpectRefusedAndNothingImported("upgrade doppel");
}

TEST_F(BundleTest, HugeRecordLengthDoesNotAllocate) {
  std::string bytes = ReadFile();
  // The first record header starts at byte 12: type, then a 4-byte length.
  bytes[13] = '\x7f';
  WriteFile(bytes);
  ExpectRefusedAndNothingImported("impossibly large");
}

TEST_F(BundleTest, ExportOfMissingSessionFailsWithoutFile) {
  std::string out = dir_ + "/none.dpl";
  Status s = ExportBundle(*src_, "nope", out, nullptr);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
}

}  // namespace
}  // namespace doppel::interop
