#include "recorder/redactor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace doppel::recorder {
namespace {

std::string TempDir() {
  std::string t = std::filesystem::temp_directory_path() / "doppel-redactor-XXXXXX";
  return mkdtemp(t.data());
}

TEST(RedactorTest, KeyFileIsCreatedOnceWithMode0600) {
  const std::string dir = TempDir();
  auto k1 = Redactor::LoadOrCreateKey(dir);
  ASSERT_TRUE(k1.ok()) << k1.status().ToString();
  EXPECT_EQ(k1->size(), 32u);
  struct stat st;
  ASSERT_EQ(::stat((dir + "/redaction.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto k2 = Redactor::LoadOrCreateKey(dir);
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k1.value(), k2.value());
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(Redactor::LoadOrCreateKey(dir).ok());  // directory gone
}

TEST(RedactorTest, HashIsKeyedAndStable) {
  Redactor a("key-a-0123456789abcdef", {});
  Redactor b("key-b-0123456789abcdef", {});
  const std::string h = a.Hash("Bearer s3cr3t");
  EXPECT_EQ(h.rfind("hmac:", 0), 0u);
  EXPECT_EQ(h.size(), 5u + 64u);
  EXPECT_EQ(h, a.Hash("Bearer s3cr3t"));
  EXPECT_NE(h, a.Hash("Bearer other"));
  EXPECT_NE(h, b.Hash("Bearer s3cr3t"));
  EXPECT_EQ(h.find("s3cr3t"), std::string::npos);
}

TEST(RedactorTest, RedactsDefaultAndExtraHeadersOnly) {
  Redactor r("0123456789abcdef0123456789abcdef", {"X-Tenant-Token"});
  doppel::v1::Envelope e;
  auto add = [](auto* headers, const char* n, const char* v) {
    auto* h = headers->Add();
    h->set_name(n);
    h->set_value(v);
  };
  add(e.mutable_request()->mutable_headers(), "authorization", "Bearer s3cr3t");
  add(e.mutable_request()->mutable_headers(), "Cookie", "sid=abc");
  add(e.mutable_request()->mutable_headers(), "X-API-KEY", "k1");
  add(e.mutable_request()->mutable_headers(), "x-tenant-token", "t1");
  add(e.mutable_request()->mutable_headers(), "Accept", "*/*");
  add(e.mutable_response()->mutable_headers(), "Set-Cookie", "sid=def");
  add(e.mutable_response()->mutable_headers(), "Content-Type", "text/plain");
  r.Redact(&e);
  const auto& rq = e.request().headers();
  EXPECT_EQ(rq[0].value(), r.Hash("Bearer s3cr3t"));
  EXPECT_EQ(rq[1].value(), r.Hash("sid=abc"));
  EXPECT_EQ(rq[2].value(), r.Hash("k1"));
  EXPECT_EQ(rq[3].value(), r.Hash("t1"));
  EXPECT_EQ(rq[4].value(), "*/*");
  EXPECT_EQ(e.response().headers(0).value(), r.Hash("sid=def"));
  EXPECT_EQ(e.response().headers(1).value(), "text/plain");
  EXPECT_EQ(rq[0].name(), "authorization");  // names stay
}

}  // namespace
}  // namespace doppel::recorder
