#include "redact/redactor.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace doppel::redact {
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

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

// RedactOptions with these lists (designated initializers would leave fields out, which
// -Wextra warns about).
RedactOptions Options(std::vector<std::string> query, std::vector<std::string> paths,
                      std::vector<std::string> headers = {}, bool off = false) {
  RedactOptions o;
  o.off = off;
  o.headers = std::move(headers);
  o.query_params = std::move(query);
  o.json_paths = std::move(paths);
  return o;
}

std::unique_ptr<Redactor> Make(const RedactOptions& options) {
  auto r = Redactor::WithKey(kKey, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r.value());
}

void AddHeader(doppel::v1::HttpResponse* m, const char* name, const char* value) {
  auto* h = m->add_headers();
  h->set_name(name);
  h->set_value(value);
}

// {"password":"hunter2","n":1}, gzip-compressed (Python: gzip.compress(body, mtime=0)).
const std::string kGzippedLogin(
    "\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xab\x56\x2a\x48\x2c\x2e\x2e\xcf\x2f\x4a\x51\xb2"
    "\x52\xca\x28\xcd\x2b\x49\x2d\x32\x52\xd2\x51\xca\x53\xb2\x32\xac\x05\x00\x57\xf4\x59\x7c"
    "\x1c\x00\x00\x00",
    48);

TEST(RedactorTest, QueryParametersNamedAreHashedOthersKept) {
  auto r = Make(Options({"token", "sig"}, {}));
  doppel::v1::Envelope e;
  e.mutable_request()->set_target("/a/b?x=1&token=s3cr3t&tokens=keep&sig=&flag&token=two");
  r->Redact(&e);
  EXPECT_EQ(e.request().target(), "/a/b?x=1&token=" + r->Hash("s3cr3t") + "&tokens=keep&sig=" +
                                      r->Hash("") + "&flag&token=" + r->Hash("two"));
  e.mutable_request()->set_target("/no/query");
  r->Redact(&e);
  EXPECT_EQ(e.request().target(), "/no/query");
  // Empty items, a fragment and an absolute-form target are kept as they are.
  e.mutable_request()->set_target("http://h:1/p?&token=t&&x#frag");
  r->Redact(&e);
  EXPECT_EQ(e.request().target(), "http://h:1/p?&token=" + r->Hash("t") + "&&x#frag");
  // A query Boost.URL refuses (a bad escape, a raw '|') is still redacted.
  e.mutable_request()->set_target("/p?q=%zz|a&token=t|b");
  r->Redact(&e);
  EXPECT_EQ(e.request().target(), "/p?q=%zz|a&token=" + r->Hash("t|b"));
}

TEST(RedactorTest, JsonPathsNestedAndInArraysInRequestAndResponse) {
  auto r = Make(Options({}, {"body.user.ssn", "body.items[*].card", "body.password"}));
  doppel::v1::Envelope e;
  e.mutable_request()->set_body(R"({"password":"hunter2","user":{"name":"a"}})");
  e.mutable_response()->set_body(
      R"({"user":{"ssn":"123-45-6789","name":"ann"},"items":[{"card":4111,"n":1},)"
      R"({"card":{"no":"5500"}},{"n":3}],"ssn":"top-level stays"})");
  AddHeader(e.mutable_response(), "Content-Type", "application/json");
  AddHeader(e.mutable_response(), "Content-Length", "999");
  RedactCounts counts = r->Redact(&e);
  EXPECT_EQ(counts.dropped_bodies, 0u);
  EXPECT_EQ(e.request().body(),
            R"({"password":")" + r->Hash("hunter2") + R"(","user":{"name":"a"}})");
  EXPECT_EQ(e.response().body(), R"({"user":{"ssn":")" + r->Hash("123-45-6789") +
                                     R"(","name":"ann"},"items":[{"card":")" + r->Hash("4111") +
                                     R"(","n":1},{"card":")" + r->Hash(R"({"no":"5500"})") +
                                     R"("},{"n":3}],"ssn":"top-level stays"})");
  EXPECT_EQ(e.response().body_size(), e.response().body().size());
  EXPECT_EQ(e.response().headers(1).value(), std::to_string(e.response().body().size()));
}

TEST(RedactorTest, MissingPathsAndNonJsonBodiesAreLeftByteForByte) {
  auto r = Make(Options({}, {"body.password"}));
  doppel::v1::Envelope e;
  const std::string spaced = "{ \"user\" : 1 }";  // no match: not even re-serialized
  e.mutable_request()->set_body(spaced);
  e.mutable_response()->set_body("<html>password</html>");
  AddHeader(e.mutable_response(), "Content-Type", "text/html");
  EXPECT_EQ(r->Redact(&e).dropped_bodies, 0u);
  EXPECT_EQ(e.request().body(), spaced);
  EXPECT_EQ(e.response().body(), "<html>password</html>");
}

TEST(RedactorTest, JsonThatDoesNotParseIsDroppedNotStoredInTheClear) {
  auto r = Make(Options({}, {"body.password"}));
  doppel::v1::Envelope e;
  e.mutable_request()->set_body(R"({"password":"hunter2",)");  // truncated, no Content-Type
  e.mutable_request()->set_body_size(40);
  e.mutable_request()->set_body_truncated(true);
  e.mutable_response()->set_body("password=hunter2");
  AddHeader(e.mutable_response(), "Content-Type", "application/json; charset=utf-8");
  EXPECT_EQ(r->Redact(&e).dropped_bodies, 2u);
  EXPECT_EQ(e.request().body(), "");
  EXPECT_TRUE(e.request().body_truncated());
  EXPECT_EQ(e.request().body_size(), 40u);
  EXPECT_EQ(e.response().body(), "");
  EXPECT_TRUE(e.response().body_truncated());
  EXPECT_EQ(e.response().body_size(), 16u);
}

TEST(RedactorTest, GzipBodyIsDecodedRedactedAndStoredDecoded) {
  auto r = Make(Options({}, {"body.password"}));
  doppel::v1::Envelope e;
  e.mutable_response()->set_body(kGzippedLogin);
  AddHeader(e.mutable_response(), "Content-Encoding", "gzip");
  AddHeader(e.mutable_response(), "Content-Type", "application/json");
  EXPECT_EQ(r->Redact(&e).dropped_bodies, 0u);
  EXPECT_EQ(e.response().body(), R"({"password":")" + r->Hash("hunter2") + R"(","n":1})");
  ASSERT_EQ(e.response().headers_size(), 1);  // Content-Encoding removed: the body is plain
  EXPECT_EQ(e.response().headers(0).name(), "Content-Type");
}

TEST(RedactorTest, BodyThatCannotBeDecodedIsDropped) {
  auto r = Make(Options({}, {"body.password"}));
  doppel::v1::Envelope e;
  e.mutable_response()->set_body("\x1f\x8b not really gzip");
  AddHeader(e.mutable_response(), "Content-Encoding", "gzip");
  EXPECT_EQ(r->Redact(&e).dropped_bodies, 1u);
  EXPECT_EQ(e.response().body(), "");
  EXPECT_TRUE(e.response().body_truncated());
}

TEST(RedactorTest, EqualValuesHashEquallyAcrossHeadersQueryAndBodies) {
  auto r = Make(Options({"token"}, {"body.t"}, {"X-Token"}));
  doppel::v1::Envelope e;
  e.mutable_request()->set_target("/?token=abc");
  e.mutable_request()->set_body(R"({"t":"abc"})");
  auto* h = e.mutable_request()->add_headers();
  h->set_name("x-token");
  h->set_value("abc");
  r->Redact(&e);
  EXPECT_EQ(e.request().target(), "/?token=" + r->Hash("abc"));
  EXPECT_EQ(e.request().body(), R"({"t":")" + r->Hash("abc") + R"("})");
  EXPECT_EQ(e.request().headers(0).value(), r->Hash("abc"));
}

TEST(RedactorTest, RedactingTwiceChangesNothing) {
  auto r = Make(Options({"token"}, {"body.t"}));
  doppel::v1::Envelope e;
  e.mutable_request()->set_target("/?token=abc");
  e.mutable_request()->set_body(R"({"t":"abc"})");
  AddHeader(e.mutable_response(), "Set-Cookie", "sid=1");
  r->Redact(&e);
  const std::string once = e.SerializeAsString();
  r->Redact(&e);
  EXPECT_EQ(e.SerializeAsString(), once);
}

TEST(RedactorTest, BadOptionsAreRefusedWithWhatToDo) {
  auto not_body = Redactor::WithKey(kKey, Options({}, {"headers.x"}));
  ASSERT_FALSE(not_body.ok());
  EXPECT_NE(not_body.status().message().find("starts with 'body.'"), std::string::npos);
  auto bad = Redactor::WithKey(kKey, Options({}, {"body.items[x"}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("body.items[x"), std::string::npos);
  EXPECT_FALSE(Redactor::WithKey(kKey, Options({""}, {})).ok());
  const std::string dir = TempDir();
  auto off = Redactor::ForStore(dir, Options({}, {}, {}, true));
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->get(), nullptr);
  EXPECT_FALSE(std::filesystem::exists(dir + "/redaction.key"));
  EXPECT_FALSE(Redactor::ForStore(dir, Options({"token"}, {}, {}, true)).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace doppel::redact
