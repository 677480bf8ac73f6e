// HAR, JSON Lines and GoReplay import, HAR / JSON Lines / curl export (interop/interop.h).
#include "interop/interop.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <stdio.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "interop/envelope_json.h"
#include "interop/raw_http.h"
#include "net/codings.h"
#include "tests/base/temp_dir.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::interop {
namespace {

using storage::Store;
using storage::StoreOptions;

namespace json = boost::json;
using google::protobuf::util::MessageDifferencer;
using v1::Envelope;

constexpr uint64_t kT0Us = 1714558830000000;  // 2024-05-01T10:20:30Z

std::string Fixture(const std::string& name) {
  std::ifstream f(std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/interop/" + name,
                  std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string Gzip(std::string_view in) { return net::EncodeContent(in, "gzip").value(); }

std::string Gunzip(std::string_view in) {
  Result<std::string> out = net::DecodeContent(in, "gzip", 1 << 20);
  return out.ok() ? out.value() : "<not gzip>";
}

using ReaderFn = Status (*)(std::istream&, const std::string&, const ImportOptions&,
                            const EnvelopeSink&, ImportStats*);

struct Parsed {
  Status status;
  std::vector<Envelope> envelopes;
  ImportStats stats;
};

Parsed Read(ReaderFn reader, const std::string& bytes, bool skip_bad = false) {
  Parsed p;
  std::istringstream in(bytes);
  ImportOptions o;
  o.skip_bad = skip_bad;
  p.status = reader(
      in, "test-input", o,
      [&](Envelope&& e) {
        p.envelopes.push_back(std::move(e));
        return Status::Ok();
      },
      &p.stats);
  return p;
}

std::string HeaderValue(const google::protobuf::RepeatedPtrField<v1::Header>& headers,
                        const std::string& name) {
  for (const auto& h : headers)
    if (h.name() == name) return h.value();
  return "<absent>";
}

bool HasHeaderNamed(const google::protobuf::RepeatedPtrField<v1::Header>& headers,
                    const std::string& lower_name) {
  for (const auto& h : headers) {
    std::string n = h.name();
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == lower_name) return true;
  }
  return false;
}

void ExpectError(const Parsed& p, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(p.status.ok());
  for (const auto& part : parts)
    EXPECT_NE(p.status.message().find(part), std::string::npos)
        << "want '" << part << "' in: " << p.status.message();
}

// ---------------------------------------------------------------------------------------
// HAR

TEST(HarImport, BrowserFixture) {
  Parsed p = Read(ReadHar, Fixture("browser.har"));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.envelopes.size(), 6u);
  EXPECT_EQ(p.stats.records, 6u);
  EXPECT_EQ(p.stats.envelopes, 6u);
  EXPECT_EQ(p.stats.without_response, 1u);

  // GET with a query over HTTP/2: pseudo-headers dropped, :authority became Host (first).
  const Envelope& get = p.envelopes[0];
  EXPECT_EQ(get.arrival_us(), kT0Us + 123000);
  EXPECT_EQ(get.seq(), 0u);
  EXPECT_EQ(get.scheme(), "https");
  EXPECT_EQ(get.request().method(), "GET");
  EXPECT_EQ(get.request().target(), "/api/items?page=2&q=red%20shoes");  // fragment dropped
  EXPECT_EQ(get.request().version(), 20u);
  ASSERT_GE(get.request().headers_size(), 3);
  EXPECT_EQ(get.request().headers(0).name(), "Host");
  EXPECT_EQ(get.request().headers(0).value(), "shop.example.com");
  for (const auto& h : get.request().headers()) EXPECT_NE(h.name()[0], ':') << h.name();
  EXPECT_EQ(HeaderValue(get.request().headers(), "cookie"), "session=abc123");
  EXPECT_EQ(get.response().status(), 200u);
  EXPECT_FALSE(HasHeaderNamed(get.response().headers(), ":status"));
  EXPECT_EQ(get.response().body(), "{\"items\":[{\"id\":7,\"name\":\"red shoes\"}]}");
  EXPECT_EQ(get.response().latency_us(), 14000u);  // timings.wait + receive

  // POST JSON, a "+02:00" timestamp, hop-by-hop headers stripped.
  const Envelope& post = p.envelopes[1];
  EXPECT_EQ(post.arrival_us(), kT0Us + 1500000);
  EXPECT_EQ(post.scheme(), "http");
  EXPECT_EQ(post.request().target(), "/api/orders");
  EXPECT_EQ(post.request().body(), "{\"sku\":\"A-1\",\"qty\":2,\"x\":1}");
  EXPECT_EQ(post.request().body_size(), 27u);
  EXPECT_FALSE(HasHeaderNamed(post.request().headers(), "connection"));
  EXPECT_EQ(HeaderValue(post.request().headers(), "Host"), "127.0.0.1:8080");
  int hosts = 0;
  for (const auto& h : post.request().headers()) hosts += h.name() == "Host";
  EXPECT_EQ(hosts, 1);
  EXPECT_EQ(post.response().status(), 201u);
  EXPECT_EQ(post.response().reason(), "Created");
  EXPECT_FALSE(HasHeaderNamed(post.response().headers(), "keep-alive"));
  EXPECT_EQ(post.response().latency_us(), 34000u);

  // A base64 binary response.
  const Envelope& png = p.envelopes[2];
  EXPECT_EQ(png.arrival_us(), kT0Us + 2000001);
  EXPECT_EQ(HeaderValue(png.request().headers(), "Host"), "cdn.example.com:8443");
  const std::string want_png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe\0\x01", 20);
  EXPECT_EQ(png.response().body(), want_png);
  EXPECT_EQ(png.response().body_size(), 20u);

  // A gzip'd response: HAR holds the decoded text; the store holds it gzip'd again, with
  // Content-Length following the new body.
  const Envelope& gz = p.envelopes[3];
  EXPECT_EQ(HeaderValue(gz.response().headers(), "Content-Encoding"), "gzip");
  EXPECT_EQ(Gunzip(gz.response().body()), "{\"report\":\"weekly\",\"rows\":[1,2,3,4,5,6]}");
  EXPECT_EQ(HeaderValue(gz.response().headers(), "Content-Length"),
            std::to_string(gz.response().body().size()));
  EXPECT_EQ(p.stats.decoded_bodies, 0u);

  // Optional fields missing: no timings, no version, no headers, no content.
  const Envelope& bare = p.envelopes[4];
  EXPECT_EQ(bare.request().version(), 11u);
  EXPECT_EQ(HeaderValue(bare.request().headers(), "Host"), "example.org");
  EXPECT_EQ(bare.response().status(), 204u);
  EXPECT_EQ(bare.response().latency_us(), 0u);
  EXPECT_TRUE(bare.response().body().empty());

  // Status 0: the browser got no answer.
  EXPECT_FALSE(p.envelopes[5].has_response());
}

TEST(HarImport, GzipFileReadsTheSame) {
  Parsed plain = Read(ReadHar, Fixture("browser.har"));
  Parsed gz = Read(ReadHar, Gzip(Fixture("browser.har")));
  ASSERT_TRUE(gz.status.ok()) << gz.status.ToString();
  ASSERT_EQ(gz.envelopes.size(), plain.envelopes.size());
  for (size_t i = 0; i < gz.envelopes.size(); ++i)
    EXPECT_TRUE(MessageDifferencer::Equals(gz.envelopes[i], plain.envelopes[i])) << i;
}

std::string Har(const std::string& entries) {
  return "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"t\",\"version\":\"1\"},\"entries\":"
         "[" +
         entries + "]}}";
}
const char kGoodEntry[] =
    R"({"startedDateTime":"2024-05-01T10:20:30Z","request":{"method":"GET","url":"http://h/a"},)"
    R"("response":{"status":200,"content":{"text":"ok"}}})";

TEST(HarImport, MalformedInputNamesTheEntryOrLine) {
  ExpectError(Read(ReadHar, "{\n\"log\": {\n\"entries\": [\n{,}\n]}}"),
              {"HAR 'test-input'", "line 4", "not valid JSON"});
  std::string fixture = Fixture("browser.har");
  ExpectError(Read(ReadHar, fixture.substr(0, fixture.size() / 2)), {"truncated"});
  ExpectError(Read(ReadHar, Har(std::string(kGoodEntry) + "," +
                                R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                                R"("request":{"method":"GET","url":"http://h/b"},)"
                                R"("response":{"status":"200"}})")),
              {"entry 2 (log.entries[1])", "response.status must be a number", "--skip-bad"});
  ExpectError(Read(ReadHar, Har(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                                R"("request":{"method":"GET"}})")),
              {"entry 1", "request.url is missing"});
  ExpectError(Read(ReadHar, Har(R"({"request":{"method":"GET","url":"http://h/"}})")),
              {"entry 1", "startedDateTime is missing"});
  ExpectError(Read(ReadHar, Har(R"({"startedDateTime":"yesterday",)"
                                R"("request":{"method":"GET","url":"http://h/"}})")),
              {"entry 1", "ISO 8601"});
  ExpectError(Read(ReadHar, Har(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                                R"("request":{"method":"GET","url":"h/x"}})")),
              {"entry 1", "not an absolute URL"});
  ExpectError(Read(ReadHar, Har(std::string(kGoodEntry) + ",17")), {"entry 2", "not an object"});
  ExpectError(Read(ReadHar, Har(std::string(kGoodEntry) + ",[1,[2]]")),
              {"entry 2", "not an object"});
  ExpectError(Read(ReadHar, "{\"foo\":1}"), {"not a HAR file"});
  ExpectError(Read(ReadHar, "[1,2]"), {"top level is not an object"});
  ExpectError(Read(ReadHar, "{\"log\":{\"version\":\"1.2\"}}"), {"log.entries is missing"});
  ExpectError(Read(ReadHar, "{\"log\":{\"entries\":{}}}"), {"log.entries must be an array"});
  ExpectError(Read(ReadHar, Har("") + " x"), {"data after the end"});
  ExpectError(Read(ReadHar, std::string("\x1f\x8b\x08\x00garbage-garbage-garbage", 27)),
              {"not a valid gzip stream"});
}

TEST(HarImport, SkipBadCountsAndKeepsTheRest) {
  std::string bad =
      R"({"startedDateTime":"2024-05-01T10:20:30Z","request":{"method":1,"url":"http://h/"}})";
  Parsed p = Read(ReadHar, Har(std::string(kGoodEntry) + "," + bad + ",\"x\"," + kGoodEntry), true);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.envelopes.size(), 2u);
  EXPECT_EQ(p.stats.skipped, 2u);
  EXPECT_NE(p.stats.first_skipped.find("entry 2"), std::string::npos) << p.stats.first_skipped;
  EXPECT_NE(p.stats.first_skipped.find("request.method must be a string"), std::string::npos);
  // Entry indexes (and so seq) follow the file, skipped entries included.
  EXPECT_EQ(p.envelopes[0].seq(), 0u);
  EXPECT_EQ(p.envelopes[1].seq(), 3u);
}

// A HAR entry whose response has `content_encoding` and the decoded text "hello brotli".
std::string EncodedHarEntry(const std::string& content_encoding) {
  return Har(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
             R"("request":{"method":"GET","url":"http://h/a"},)"
             R"("response":{"status":200,"headers":[)"
             R"({"name":"Content-Encoding","value":")" +
             content_encoding +
             R"("},)"
             R"({"name":"Content-Length","value":"3"}],)"
             R"("content":{"text":"hello brotli"}}})");
}

TEST(HarImport, ContentEncodingIsRedoneBrAndStackedToo) {
  for (std::string coding : {"gzip", "deflate", "br", "zstd", "gzip, br"}) {
    Parsed p = Read(ReadHar, EncodedHarEntry(coding));
    ASSERT_TRUE(p.status.ok()) << p.status.ToString();
    const auto& r = p.envelopes[0].response();
    EXPECT_NE(r.body(), "hello brotli") << coding;
    EXPECT_EQ(net::DecodeContent(r.body(), coding, 1024).value(), "hello brotli") << coding;
    EXPECT_EQ(HeaderValue(r.headers(), "Content-Encoding"), coding);
    EXPECT_EQ(HeaderValue(r.headers(), "Content-Length"), std::to_string(r.body().size()));
    EXPECT_EQ(p.stats.decoded_bodies, 0u);
  }
}

TEST(HarImport, ContentEncodingThatCannotBeRedoneIsDroppedAndCounted) {
  Parsed p = Read(ReadHar, EncodedHarEntry("compress"));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  const auto& r = p.envelopes[0].response();
  EXPECT_EQ(r.body(), "hello brotli");
  EXPECT_FALSE(HasHeaderNamed(r.headers(), "content-encoding"));
  EXPECT_EQ(HeaderValue(r.headers(), "Content-Length"), "12");
  EXPECT_EQ(p.stats.decoded_bodies, 1u);
}

TEST(HarImport, BodyTheBrowserDidNotKeepIsFlaggedTruncated) {
  Parsed p =
      Read(ReadHar, Har(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                        R"("request":{"method":"POST","url":"http://h/up","bodySize":5000},)"
                        R"("response":{"status":200,"content":{"size":777,"mimeType":"x"}}})"));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_TRUE(p.envelopes[0].request().body_truncated());
  EXPECT_EQ(p.envelopes[0].request().body_size(), 5000u);
  EXPECT_TRUE(p.envelopes[0].response().body_truncated());
  EXPECT_EQ(p.envelopes[0].response().body_size(), 777u);
}

TEST(HarImport, ByteCountPastWhatCanBeCountedIsAClearError) {
  // Found by fuzz_har_import: a size out of uint64_t's range was cast (undefined behaviour).
  for (const char* size : {"8.88889e+56", "1e300", "18446744073709551616"}) {
    Parsed p = Read(ReadHar, Har(std::string(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                                             R"("request":{"method":"POST","url":"http://h/up",)"
                                             R"("bodySize":)") +
                                 size + R"(},"response":{"status":200,"content":{}}})"));
    ASSERT_FALSE(p.status.ok()) << size;
    EXPECT_NE(p.status.message().find("request.bodySize is"), std::string::npos)
        << p.status.message();
    EXPECT_NE(p.status.message().find("at most 2^53"), std::string::npos) << p.status.message();
  }
  Parsed p = Read(ReadHar, Har(R"({"startedDateTime":"2024-05-01T10:20:30Z",)"
                               R"("request":{"method":"GET","url":"http://h/"},)"
                               R"("response":{"status":200,"content":{"size":1e57}}})"));
  ASSERT_FALSE(p.status.ok());
  EXPECT_NE(p.status.message().find("response.content.size is"), std::string::npos)
      << p.status.message();
}

// Envelopes that use every field, for round trips.
std::vector<Envelope> VariedEnvelopes() {
  std::vector<Envelope> out;
  for (int i = 0; i < 12; ++i)
    out.push_back(storage::testing::MakeEnvelope(kT0Us + i * 1000, i, i));
  out[1].set_scheme("https");
  out[1].set_matched_rule("checkout");
  out[2].mutable_request()->set_body(std::string("\0\x01\x02\xff binary", 11));
  out[2].mutable_request()->set_body_size(11);
  out[2].mutable_response()->set_body(std::string("\x89PNG\0\0\xfe", 7));
  out[2].mutable_response()->set_body_size(7);
  auto* h = out[3].mutable_request()->add_headers();
  h->set_name("X-Latin1");
  h->set_value("caf\xe9");
  out[4].clear_response();
  out[4].set_error(v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  out[4].set_error_detail("no answer in 30s");
  out[5].mutable_response()->set_body("partial");
  out[5].mutable_response()->set_body_truncated(true);
  out[5].mutable_response()->set_body_size(1 << 20);
  out[6].mutable_request()->set_body("cut");
  out[6].mutable_request()->set_body_truncated(true);
  out[6].mutable_request()->set_body_size(4096);
  out[7].mutable_request()->set_version(10);
  out[7].mutable_response()->set_version(10);
  out[7].mutable_response()->set_reason("Not Found");
  out[8].mutable_request()->mutable_headers()->DeleteSubrange(0, 1);  // no Host
  out[9].mutable_request()->set_version(20);
  out[9].mutable_response()->set_version(20);
  out[10].set_seq(7);  // seq need not follow the order
  out[11].set_scheme("");
  out[11].set_client_addr("");
  return out;
}

class InteropStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = doppel::testing::MakeTempDir("interop");
    ASSERT_TRUE(Store::Open(StoreOptions(), dir_ + "/store", &store_).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void MakeSession(const std::string& name, const std::vector<Envelope>& envelopes) {
    v1::SessionInfo info;
    info.set_name(name);
    info.set_upstream("http://upstream.internal:9000");
    ASSERT_TRUE(store_->CreateSession(info).ok());
    ASSERT_TRUE(store_->Append(name, envelopes).ok());
    ASSERT_TRUE(store_->CloseSession(name, v1::SessionCounts()).ok());
  }
  std::vector<Envelope> Scan(const std::string& name) {
    std::vector<Envelope> out;
    auto it = store_->Scan(name);
    EXPECT_TRUE(it.ok());
    for (; (*it)->Valid(); (*it)->Next()) out.push_back((*it)->envelope());
    return out;
  }
  std::string WriteFile(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  void ExpectSameEnvelopes(const std::vector<Envelope>& a, const std::vector<Envelope>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(MessageDifferencer::Equals(a[i], b[i])) << i << ":\n"
                                                          << a[i].DebugString() << "\nvs\n"
                                                          << b[i].DebugString();
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

// The members HAR 1.2 requires (and the har-validator schema checks), entry by entry.
void ExpectValidHar12(const json::value& doc) {
  const auto& log = doc.at("log").as_object();
  EXPECT_EQ(log.at("version").as_string(), "1.2");
  EXPECT_TRUE(log.at("creator").at("name").is_string());
  EXPECT_TRUE(log.at("creator").at("version").is_string());
  for (const auto& v : log.at("entries").as_array()) {
    const auto& e = v.as_object();
    for (const char* k : {"startedDateTime", "time", "request", "response", "cache", "timings"})
      EXPECT_TRUE(e.contains(k)) << k;
    static const std::regex kIso(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$)");
    EXPECT_TRUE(std::regex_match(std::string(e.at("startedDateTime").as_string()), kIso));
    const auto& req = e.at("request").as_object();
    for (const char* k : {"method", "url", "httpVersion", "cookies", "headers", "queryString",
                          "headersSize", "bodySize"})
      EXPECT_TRUE(req.contains(k)) << "request." << k;
    if (req.contains("postData")) {
      EXPECT_TRUE(req.at("postData").as_object().contains("mimeType"));
    }
    const auto& resp = e.at("response").as_object();
    for (const char* k : {"status", "statusText", "httpVersion", "cookies", "headers", "content",
                          "redirectURL", "headersSize", "bodySize"})
      EXPECT_TRUE(resp.contains(k)) << "response." << k;
    EXPECT_TRUE(resp.at("content").at("size").is_number());
    EXPECT_TRUE(resp.at("content").at("mimeType").is_string());
    for (const char* k : {"send", "wait", "receive"})
      EXPECT_TRUE(e.at("timings").at(k).is_number()) << "timings." << k;
    for (const auto& h : req.at("headers").as_array()) {
      EXPECT_TRUE(h.at("name").is_string());
      EXPECT_TRUE(h.at("value").is_string());
    }
  }
}

TEST_F(InteropStoreTest, HarRoundTripKeepsEveryField) {
  std::vector<Envelope> original = VariedEnvelopes();
  MakeSession("s", original);
  std::ostringstream har;
  ExportStats stats;
  ASSERT_TRUE(WriteHar(*store_, "s", har, &stats).ok());
  EXPECT_EQ(stats.envelopes, original.size());
  EXPECT_EQ(stats.bytes, har.str().size());
  json::value doc = json::parse(har.str());
  ExpectValidHar12(doc);
  // Binary bodies are base64 and say so; a request without Host still gets a URL.
  const auto& entries = doc.at("log").at("entries").as_array();
  EXPECT_EQ(entries[2].at("response").at("content").at("encoding").as_string(), "base64");
  EXPECT_EQ(entries[2].at("request").at("postData").at("encoding").as_string(), "base64");
  EXPECT_EQ(std::string(entries[8].at("request").at("url").as_string()).substr(0, 36),
            "http://upstream.internal:9000/api/v1");
  EXPECT_EQ(entries[0].at("request").at("queryString").at(0).at("name").as_string(), "expand");

  Parsed back = Read(ReadHar, har.str());
  ASSERT_TRUE(back.status.ok()) << back.status.ToString();
  ExpectSameEnvelopes(Scan("s"), back.envelopes);
}

TEST_F(InteropStoreTest, HarExportDecodesGzipBodiesAndImportRedoesThem) {
  std::vector<Envelope> original = {storage::testing::MakeEnvelope(kT0Us, 0, 1)};
  auto* resp = original[0].mutable_response();
  const std::string plain = resp->body();
  resp->set_body(Gzip(plain));
  resp->set_body_size(resp->body().size());
  auto* h = resp->add_headers();
  h->set_name("Content-Encoding");
  h->set_value("gzip");
  MakeSession("gz", original);
  std::ostringstream har;
  ASSERT_TRUE(WriteHar(*store_, "gz", har, nullptr).ok());
  json::value doc = json::parse(har.str());
  const auto& content = doc.at("log").at("entries").at(0).at("response").at("content");
  EXPECT_EQ(content.at("text").as_string(), plain);  // what a HAR viewer shows
  EXPECT_EQ(content.at("size").as_int64(), static_cast<int64_t>(plain.size()));
  Parsed back = Read(ReadHar, har.str());
  ASSERT_TRUE(back.status.ok()) << back.status.ToString();
  EXPECT_EQ(Gunzip(back.envelopes[0].response().body()), plain);
  EXPECT_EQ(HeaderValue(back.envelopes[0].response().headers(), "Content-Encoding"), "gzip");
}

// What the proxy refused never reached the primary: HAR (which other tools replay) leaves it
// out and counts it; upstream failures are real requests and stay. JSON Lines keeps all.
TEST_F(InteropStoreTest, HarLeavesOutWhatTheProxyRefused) {
  std::vector<Envelope> original = VariedEnvelopes();  // [4] is an upstream timeout
  Envelope lone_newline;  // what a connection that sent a lone "\n" is stored as
  lone_newline.set_arrival_us(kT0Us + 500);
  lone_newline.set_seq(100);
  lone_newline.set_client_addr("127.0.0.1:50000");
  lone_newline.set_error(v1::PROXY_ERROR_BAD_REQUEST);
  lone_newline.set_error_detail("bad method");
  Envelope too_large = storage::testing::MakeEnvelope(kT0Us + 1500, 101, 5);
  too_large.clear_response();
  too_large.set_error(v1::PROXY_ERROR_BODY_TOO_LARGE);
  std::vector<Envelope> with_refused = original;
  with_refused.push_back(lone_newline);
  with_refused.push_back(too_large);
  MakeSession("s", with_refused);

  std::ostringstream har;
  ExportStats stats;
  ASSERT_TRUE(WriteHar(*store_, "s", har, &stats).ok());
  EXPECT_EQ(stats.envelopes, original.size());
  EXPECT_EQ(stats.refused, 2u);
  json::value doc = json::parse(har.str());
  ExpectValidHar12(doc);
  EXPECT_EQ(doc.at("log").at("entries").as_array().size(), original.size());
  EXPECT_EQ(har.str().find("PROXY_ERROR_BAD_REQUEST"), std::string::npos);
  EXPECT_EQ(har.str().find("PROXY_ERROR_BODY_TOO_LARGE"), std::string::npos);
  EXPECT_NE(har.str().find("PROXY_ERROR_UPSTREAM_TIMEOUT"), std::string::npos);
  Parsed back = Read(ReadHar, har.str());
  ASSERT_TRUE(back.status.ok()) << back.status.ToString();
  EXPECT_EQ(back.envelopes.size(), original.size());

  std::ostringstream jsonl;
  ExportStats jsonl_stats;
  ASSERT_TRUE(WriteJsonl(*store_, "s", jsonl, &jsonl_stats).ok());
  EXPECT_EQ(jsonl_stats.envelopes, with_refused.size());
  EXPECT_EQ(jsonl_stats.refused, 0u);
}

// ---------------------------------------------------------------------------------------
// JSON Lines

TEST(JsonlImport, Fixture) {
  Parsed p = Read(ReadJsonl, Fixture("session.jsonl"));
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.envelopes.size(), 4u);
  EXPECT_EQ(p.envelopes[0].client_addr(), "10.0.0.5:51000");
  EXPECT_EQ(p.envelopes[0].response().latency_us(), 850u);
  EXPECT_EQ(p.envelopes[1].seq(), 1u);
  EXPECT_EQ(p.envelopes[1].matched_rule(), "uploads");
  EXPECT_EQ(p.envelopes[1].request().body(), std::string("\0\x01\x02\xff\0foo", 8));
  EXPECT_EQ(HeaderValue(p.envelopes[1].request().headers(), "X-Raw"), "\xc3\x88");
  EXPECT_EQ(HeaderValue(p.envelopes[1].response().headers(), "X-Trace"), "\xff");
  EXPECT_EQ(p.envelopes[2].error(), v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  EXPECT_FALSE(p.envelopes[2].has_response());
  EXPECT_TRUE(p.envelopes[3].response().body_truncated());
  EXPECT_EQ(p.envelopes[3].response().body_size(), 1048576u);
  EXPECT_EQ(p.envelopes[3].request().version(), 10u);
}

TEST(JsonlImport, MalformedLinesNameLineAndField) {
  std::string good = Fixture("session.jsonl");
  std::string first = good.substr(0, good.find('\n') + 1);
  // The same envelope with another id (arrival_us, seq).
  std::string second = first;
  second.replace(second.find("\"seq\":0"), 7, "\"seq\":7");
  ExpectError(Read(ReadJsonl, first + "\n" + second + "{\"request\":\n"),
              {"JSON Lines 'test-input' line 4", "column", "not valid JSON", "--skip-bad"});
  ExpectError(Read(ReadJsonl, first + R"({"seq":"x","request":{"method":"GET","target":"/"}})"),
              {"line 2", "field 'seq' must be a non-negative integer"});
  ExpectError(Read(ReadJsonl, first + R"({"arrival_us":5})" + "\n"),
              {"line 2", "'request' object is missing"});
  ExpectError(Read(ReadJsonl, "[1,2]\n"), {"line 1", "not a JSON object"});
  ExpectError(Read(ReadJsonl, Gzip(first).substr(0, 20)), {"gzip", "ends early"});
  ExpectError(Read(ReadJsonl, std::string("\x1f\x8b", 2) + std::string(200, 'z')),
              {"not a valid gzip stream"});
  // Blank lines are allowed and still counted.
  Parsed p = Read(ReadJsonl, "\n" + first + "\r\n   \n" + second, false);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.envelopes.size(), 2u);
  Parsed skipped = Read(ReadJsonl, first + "nonsense\n" + second, true);
  ASSERT_TRUE(skipped.status.ok());
  EXPECT_EQ(skipped.envelopes.size(), 2u);
  EXPECT_EQ(skipped.stats.skipped, 1u);
  EXPECT_NE(skipped.stats.first_skipped.find("line 2"), std::string::npos);
}

// (arrival_us, seq) is the key in the store: a repeated pair would overwrite the first
// envelope while the session counted both, so it is a bad record naming both lines.
TEST(JsonlImport, RepeatedIdIsABadRecord) {
  std::string good = Fixture("session.jsonl");
  std::string first = good.substr(0, good.find('\n') + 1);
  std::string same_id = first;
  same_id.replace(same_id.find("/api/"), 5, "/other/");
  ExpectError(Read(ReadJsonl, first + "\n" + same_id),
              {"line 3", "arrival_us 1714558830000000 with seq 0 repeats line 1", "--skip-bad"});
  Parsed skipped = Read(ReadJsonl, first + same_id + good, true);
  ASSERT_TRUE(skipped.status.ok()) << skipped.status.ToString();
  EXPECT_EQ(skipped.stats.skipped, 2u);  // line 2, and line 3 (the fixture's first line)
  EXPECT_EQ(skipped.envelopes.size(), 4u);
  // The first envelope with the id is the one kept.
  EXPECT_EQ(skipped.envelopes[0].request().target(), "/api/items/7?expand=price");
}

TEST_F(InteropStoreTest, JsonlIsWhatCatPrintsAndRoundTrips) {
  std::vector<Envelope> original = VariedEnvelopes();
  MakeSession("s", original);
  std::ostringstream out;
  ASSERT_TRUE(WriteJsonl(*store_, "s", out, nullptr).ok());
  std::string cat;
  for (const auto& e : Scan("s")) cat += json::serialize(EnvelopeToJson(e)) + "\n";
  EXPECT_EQ(out.str(), cat);
  Parsed back = Read(ReadJsonl, out.str());
  ASSERT_TRUE(back.status.ok()) << back.status.ToString();
  ExpectSameEnvelopes(Scan("s"), back.envelopes);
}

// ---------------------------------------------------------------------------------------
// GoReplay

void ExpectGorFixture(const Parsed& p) {
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.stats.records, 8u);
  EXPECT_EQ(p.stats.ignored, 1u);           // the replayed response
  EXPECT_EQ(p.stats.without_response, 1u);  // /api/unanswered
  ASSERT_EQ(p.envelopes.size(), 4u);
  std::map<std::string, const Envelope*> by_target;
  for (const auto& e : p.envelopes) by_target[e.request().target()] = &e;

  const Envelope* get = by_target["/api/items?page=1&q=shoes"];
  ASSERT_TRUE(get);
  EXPECT_EQ(get->arrival_us(), kT0Us);
  EXPECT_EQ(get->scheme(), "http");
  EXPECT_EQ(HeaderValue(get->request().headers(), "Host"), "shop.internal");
  EXPECT_FALSE(HasHeaderNamed(get->request().headers(), "connection"));
  EXPECT_EQ(get->response().status(), 200u);
  EXPECT_EQ(get->response().body(), "{\"items\":[1,2,3]}");
  // Request sent at T0 + 1 µs (its duration), response done at T0 + 2.5 ms.
  EXPECT_EQ(get->response().latency_us(), 2499u);

  const Envelope* post = by_target["/api/orders"];
  ASSERT_TRUE(post);
  EXPECT_EQ(post->request().method(), "POST");
  EXPECT_EQ(post->request().body(), "{\"sku\":\"A-1\",\"qty\":2}");
  EXPECT_EQ(post->response().status(), 201u);
  EXPECT_EQ(post->response().body(), "{\"id\":42}");  // de-chunked
  EXPECT_FALSE(HasHeaderNamed(post->response().headers(), "transfer-encoding"));
  EXPECT_EQ(post->response().latency_us(), 3998u);

  const Envelope* lone = by_target["/api/unanswered"];
  ASSERT_TRUE(lone);
  EXPECT_FALSE(lone->has_response());

  const Envelope* head = by_target["/static/app.js"];
  ASSERT_TRUE(head);
  EXPECT_EQ(head->request().method(), "HEAD");
  EXPECT_TRUE(head->response().body().empty());
  EXPECT_FALSE(head->response().body_truncated());
  EXPECT_EQ(HeaderValue(head->response().headers(), "Content-Length"), "5120");

  std::set<uint32_t> seqs;
  for (const auto& e : p.envelopes) seqs.insert(e.seq());
  EXPECT_EQ(seqs.size(), 4u);
}

TEST(GorImport, PlainAndGzipFixtures) {
  ExpectGorFixture(Read(ReadGor, Fixture("traffic.gor")));
  ExpectGorFixture(Read(ReadGor, Fixture("traffic.gor.gz")));
}

const char kSep[] = "\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n";

TEST(GorImport, ResponseBeforeItsRequestStillPairs) {
  std::string gor =
      std::string("2 abc 2000 10\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno") + kSep +
      "1 abc 1000 0\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n" + kSep;
  Parsed p = Read(ReadGor, gor);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  ASSERT_EQ(p.envelopes.size(), 1u);
  EXPECT_EQ(p.envelopes[0].response().status(), 404u);
  EXPECT_EQ(p.envelopes[0].response().body(), "no");
  EXPECT_EQ(p.stats.without_response, 0u);
}

TEST(GorImport, ConcatenatedCapturesStillPair) {
  // `cat a.gor b.gor`: the second capture's timestamps go back in time, its IDs repeat.
  const std::string gor = Fixture("traffic.gor");
  Parsed p = Read(ReadGor, gor + gor + gor);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.envelopes.size(), 12u);
  EXPECT_EQ(p.stats.without_response, 3u);
  EXPECT_EQ(p.stats.ignored, 3u);
  // A gap of more than the pairing window ends the wait: the request is imported alone and
  // the late response is ignored.
  std::string late = std::string("1 x 1000 0\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n") + kSep +
                     "1 y 90000000000 0\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n" + kSep +
                     "2 x 90000000001 0\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + kSep +
                     "2 y 90000000002 0\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + kSep;
  p = Read(ReadGor, late);
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.envelopes.size(), 2u);
  EXPECT_EQ(p.stats.without_response, 1u);
  EXPECT_EQ(p.stats.ignored, 1u);
}

TEST(GorImport, MalformedRecordsNameTheRecord) {
  std::string fixture = Fixture("traffic.gor");
  // Cut inside the last payload: it has no separator.
  Parsed cut = Read(ReadGor, fixture.substr(0, fixture.size() - 30));
  ExpectError(cut, {"GoReplay 'test-input' record 8", "byte offset", "ends inside the record"});
  Parsed skip = Read(ReadGor, fixture.substr(0, fixture.size() - 30), true);
  ASSERT_TRUE(skip.status.ok()) << skip.status.ToString();
  EXPECT_EQ(skip.stats.skipped, 1u);
  EXPECT_EQ(skip.envelopes.size(), 4u);  // the HEAD request stays, without its response

  ExpectError(Read(ReadGor, std::string("x y z\nGET / HTTP/1.1\r\n\r\n") + kSep),
              {"record 1", "payload type"});
  ExpectError(Read(ReadGor, std::string("1 id notanumber\nGET / HTTP/1.1\r\n\r\n") + kSep),
              {"record 1", "timestamp"});
  ExpectError(Read(ReadGor, std::string("1 id 5 0\nGET / HTTP/1.1\r\n\r\n") + kSep +
                                "1 id2 6 0\nNOT HTTP AT ALL\r\n\r\n" + kSep),
              {"record 2", "request", "request line"});
  ExpectError(Read(ReadGor, std::string("1 id 5 0\nGET / HTTP/1.1\r\nBad Header\r\n\r\n") + kSep),
              {"record 1", "malformed header line"});
  ExpectError(Read(ReadGor, std::string("1 id 5 0\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked"
                                        "\r\n\r\nzz\r\nabc\r\n0\r\n\r\n") +
                                kSep),
              {"record 1", "chunk size"});
  std::string gz = Fixture("traffic.gor.gz");
  ExpectError(Read(ReadGor, gz.substr(0, gz.size() / 2)), {"gzip", "ends early"});
  // A gor killed mid-capture leaves a .gz without its end: --skip-bad imports what is there.
  Parsed tolerant = Read(ReadGor, gz.substr(0, gz.size() * 3 / 4), true);
  ASSERT_TRUE(tolerant.status.ok()) << tolerant.status.ToString();
  EXPECT_EQ(tolerant.stats.skipped, 1u);
  EXPECT_NE(tolerant.stats.first_skipped.find("gzip stream ends early"), std::string::npos)
      << tolerant.stats.first_skipped;
  EXPECT_GE(tolerant.envelopes.size(), 2u);
  std::string damaged = gz;
  damaged[damaged.size() / 2] ^= 0x55;
  damaged[damaged.size() / 2 + 1] ^= 0x55;
  // Damage inside the deflate data: caught by zlib, or by the record it garbles.
  ExpectError(Read(ReadGor, damaged), {"GoReplay 'test-input'"});
  ExpectError(Read(ReadGor, std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) +
                                "definitely not deflate data"),
              {"not a valid gzip stream"});
}

// Every cut of a file is either refused with a message or (GoReplay: cut right after a
// separator) a clean prefix; never a crash or an invented envelope. (Run under ASan by
// tools/test.sh --sanitize.)
TEST(InteropReaders, EveryTruncationIsRefusedOrAPrefix) {
  const std::string har = Fixture("browser.har");
  const size_t doc_end = har.find_last_of('}') + 1;
  for (size_t cut = 0; cut < doc_end; ++cut) {
    Parsed p = Read(ReadHar, har.substr(0, cut));
    ASSERT_FALSE(p.status.ok()) << "cut at " << cut;
    EXPECT_NE(p.status.message().find("HAR 'test-input'"), std::string::npos) << p.status.message();
  }
  const std::string gor = Fixture("traffic.gor");
  for (size_t cut = 0; cut < gor.size(); ++cut) {
    Parsed p = Read(ReadGor, gor.substr(0, cut));
    const size_t n = std::strlen(kSep);
    const bool at_boundary = cut == 0 || (cut >= n && gor.compare(cut - n, n, kSep) == 0);
    EXPECT_EQ(p.status.ok(), at_boundary) << "cut at " << cut << ": " << p.status.ToString();
    EXPECT_LE(p.envelopes.size(), 4u);
  }
  const std::string jsonl = Fixture("session.jsonl");
  for (size_t cut = 0; cut < jsonl.size(); ++cut) {
    Parsed p = Read(ReadJsonl, jsonl.substr(0, cut));
    // A cut just before a '\n' leaves a whole last line.
    const bool at_boundary = cut == 0 || jsonl[cut - 1] == '\n' || jsonl[cut] == '\n';
    EXPECT_EQ(p.status.ok(), at_boundary) << "cut at " << cut << ": " << p.status.ToString();
  }
}

TEST(RawHttp, BodyShorterThanContentLengthIsFlaggedTruncated) {
  v1::HttpRequest r;
  ASSERT_TRUE(
      ParseRawRequest("PUT http://example.com:81/up?x=1 HTTP/1.0\nContent-Length: 10\n\nabc", &r)
          .ok());
  EXPECT_EQ(r.target(), "/up?x=1");
  EXPECT_EQ(r.version(), 10u);
  EXPECT_EQ(HeaderValue(r.headers(), "Host"), "example.com:81");
  EXPECT_EQ(r.body(), "abc");
  EXPECT_TRUE(r.body_truncated());
  EXPECT_EQ(r.body_size(), 10u);
  v1::HttpResponse s;
  ASSERT_TRUE(
      ParseRawResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false, &s).ok());
  EXPECT_FALSE(s.body_truncated());
  EXPECT_FALSE(ParseRawResponse("HTTP/1.1 2x0 OK\r\n\r\n", false, &s).ok());
  EXPECT_FALSE(ParseRawResponse("HTTP/2 200\r\n\r\n", false, &s).ok());
}

// ---------------------------------------------------------------------------------------
// Import into a store: all or nothing; format and name detection.

TEST_F(InteropStoreTest, ImportFileIsAllOrNothing) {
  std::string good = Fixture("session.jsonl");
  std::string path = WriteFile("broken.jsonl", good + "{\"broken\n" + good);
  auto r = ImportFile(*store_, path, InteropFormat::kJsonl, "", ImportOptions(), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 5"), std::string::npos) << r.status().message();
  EXPECT_TRUE(store_->ListSessions()->empty());  // not even a hidden .import.* session

  ImportOptions skip;
  skip.skip_bad = true;
  ImportStats stats;
  r = ImportFile(*store_, path, InteropFormat::kJsonl, "", skip, &stats);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name(), "broken");
  EXPECT_EQ(r->state(), v1::SESSION_STATE_IMPORTED);
  EXPECT_EQ(r->source(), "import:jsonl");
  // Lines 6-9 repeat the ids of lines 1-4: bad records too, skipped, the first kept.
  EXPECT_EQ(Scan("broken").size(), 4u);
  EXPECT_EQ(stats.skipped, 5u);

  // The name is taken: refused, nothing changed.
  r = ImportFile(*store_, path, InteropFormat::kJsonl, "", skip, nullptr);
  EXPECT_EQ(r.status().code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(store_->ListSessions()->size(), 1u);

  std::string all_bad = WriteFile("bad.jsonl", "x\ny\n");
  r = ImportFile(*store_, all_bad, InteropFormat::kJsonl, "", skip, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("all 2 records were bad"), std::string::npos);
  EXPECT_EQ(store_->ListSessions()->size(), 1u);
}

TEST_F(InteropStoreTest, LeftoverOfAKilledImportIsRemoved) {
  MakeSession(".import.traffic.999999", VariedEnvelopes());  // as a killed import leaves it
  std::string path = WriteFile("traffic.gor", Fixture("traffic.gor"));
  auto r = ImportFile(*store_, path, InteropFormat::kGor, "", ImportOptions(), nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto sessions = store_->ListSessions();
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 1u);
  EXPECT_EQ((*sessions)[0].name(), "traffic");
}

TEST_F(InteropStoreTest, GorImportThroughTheStore) {
  std::string path = WriteFile("capture.gor.gz", Fixture("traffic.gor.gz"));
  ImportStats stats;
  auto r = ImportFile(*store_, path, InteropFormat::kGor, "", ImportOptions(), &stats);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name(), "capture");
  EXPECT_EQ(r->counts().envelopes(), 4u);
  EXPECT_EQ(stats.without_response, 1u);
  ExpectGorFixture(Read(ReadGor, Fixture("traffic.gor")));
}

TEST_F(InteropStoreTest, FormatDetection) {
  const std::string har = Fixture("browser.har"), jsonl = Fixture("session.jsonl"),
                    gor = Fixture("traffic.gor");
  auto detect = [&](const std::string& name, const std::string& bytes) {
    auto f = DetectImportFormat(WriteFile(name, bytes));
    EXPECT_TRUE(f.ok()) << name << ": " << f.status().ToString();
    return f.ok() ? *f : InteropFormat::kCurl;
  };
  EXPECT_EQ(detect("a.har", jsonl), InteropFormat::kHar);  // the extension wins
  EXPECT_EQ(detect("a.ndjson", har), InteropFormat::kJsonl);
  EXPECT_EQ(detect("a.gor.gz", Gzip(gor)), InteropFormat::kGor);
  EXPECT_EQ(detect("noext1", har), InteropFormat::kHar);
  EXPECT_EQ(detect("noext2", jsonl), InteropFormat::kJsonl);
  EXPECT_EQ(detect("noext3", gor), InteropFormat::kGor);
  EXPECT_EQ(detect("noext4.gz", Gzip(gor)), InteropFormat::kGor);
  EXPECT_EQ(detect("bundle.bin", std::string("DOPPELB\x01\0\0\0\x01", 12)), InteropFormat::kBundle);
  EXPECT_FALSE(DetectImportFormat(WriteFile("what", "hello world\n")).ok());
  EXPECT_EQ(SessionNameForPath("/x/y/traffic.gor.gz"), "traffic");
  EXPECT_EQ(SessionNameForPath("checkout.har"), "checkout");
  EXPECT_EQ(ExportFormatForPath("out.HAR"), InteropFormat::kHar);
  EXPECT_EQ(ExportFormatForPath("out.jsonl"), InteropFormat::kJsonl);
  EXPECT_EQ(ExportFormatForPath("out.dpl"), InteropFormat::kBundle);
}

TEST_F(InteropStoreTest, ExportFileWritesAtomically) {
  MakeSession("s", VariedEnvelopes());
  std::string path = dir_ + "/out.har";
  ExportStats stats;
  ASSERT_TRUE(ExportFile(*store_, "s", InteropFormat::kHar, path, &stats).ok());
  EXPECT_EQ(stats.bytes, std::filesystem::file_size(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::string missing = dir_ + "/missing.jsonl";
  EXPECT_FALSE(ExportFile(*store_, "nope", InteropFormat::kJsonl, missing, nullptr).ok());
  EXPECT_FALSE(std::filesystem::exists(missing));
  EXPECT_FALSE(std::filesystem::exists(missing + ".tmp"));
  EXPECT_FALSE(ExportFile(*store_, "s", InteropFormat::kGor, dir_ + "/x.gor", nullptr).ok());
}

TEST_F(InteropStoreTest, EnvelopeIds) {
  MakeSession("s", VariedEnvelopes());
  auto id = ParseEnvelopeId("1714558830003000.3");
  ASSERT_TRUE(id.ok());
  auto e = FindEnvelope(*store_, "s", *id);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(FormatEnvelopeId(*e), "1714558830003000.3");
  auto bare = FindEnvelope(*store_, "s", *ParseEnvelopeId("1714558830010000"));
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->seq(), 7u);
  EXPECT_EQ(FindEnvelope(*store_, "s", *ParseEnvelopeId("1714558830003000.4")).status().code(),
            Status::Code::kNotFound);
  for (const char* bad : {"", "x", "12.x", "1.2.3", "99999999999999999999999", "5.99999999999"})
    EXPECT_FALSE(ParseEnvelopeId(bad).ok()) << bad;
}

// ---------------------------------------------------------------------------------------
// curl

// Runs `bash -c SCRIPT` and returns its stdout.
std::string Bash(const std::string& script) {
  std::string path = doppel::testing::MakeTempDir("interop-bash") + "/script.sh";
  std::ofstream(path, std::ios::binary) << script;
  FILE* p = ::popen(("bash " + path).c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
  return out;
}

TEST(Curl, ShellQuoteSurvivesBash) {
  const std::vector<std::string> hostile = {"plain",
                                            "",
                                            "it's",
                                            "\"double\"",
                                            "$HOME and ${PATH} and $(id) and `id`",
                                            "back\\slash",
                                            "line1\nline2",
                                            "cr\rlf\r\n",
                                            "tab\there",
                                            "bang! !! !$",
                                            std::string("ctl\x01\x1f\x7f", 6),
                                            "caf\xc3\xa9 \xe2\x82\xac",
                                            "latin1 caf\xe9",
                                            "; rm -rf / #",
                                            "*.txt ~ {a,b} [x]"};
  std::string script;
  for (const auto& s : hostile) script += "printf '%s\\0' " + ShellQuote(s) + "\n";
  std::string out = Bash(script);
  std::string want;
  for (const auto& s : hostile) want += s + std::string(1, '\0');
  EXPECT_EQ(out, want);
  EXPECT_EQ(ShellQuote("abc-1.2/x"), "abc-1.2/x");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("a\nb"), "'a\nb'");
  EXPECT_EQ(ShellQuote("a\rb"), "$'a\\rb'");
}

TEST(Curl, CommandForAnEnvelope) {
  Envelope e = storage::testing::MakeEnvelope(kT0Us, 3, 5);  // a POST with a JSON body
  auto* h = e.mutable_request()->add_headers();
  h->set_name("Authorization");
  h->set_value("hmac:0123456789abcdef");
  h = e.mutable_request()->add_headers();
  h->set_name("X-Quote");
  h->set_value("it's \"$HOME\" `id`");
  h = e.mutable_request()->add_headers();
  h->set_name("X-Injected");
  h->set_value("a\r\nX-Evil: 1");
  h = e.mutable_request()->add_headers();
  h->set_name("X-Empty");
  h->set_value("");
  auto cmd = CurlCommand(e, CurlOptions());
  ASSERT_TRUE(cmd.ok()) << cmd.status().ToString();
  const std::string& c = *cmd;
  EXPECT_NE(c.find("# doppel envelope 1714558830000000.3"), std::string::npos) << c;
  EXPECT_NE(c.find("curl --globoff --path-as-is -sS"), std::string::npos) << c;
  EXPECT_NE(c.find("'http://shop.internal/api/v1/orders/1005?expand=items'"), std::string::npos)
      << c;
  EXPECT_EQ(c.find("-X POST"), std::string::npos) << c;  // --data-binary implies it
  EXPECT_NE(c.find("--data-binary '{\"sku\":\"A-5\",\"qty\":5}'"), std::string::npos) << c;
  EXPECT_NE(c.find("# Authorization: left out, it was redacted"), std::string::npos) << c;
  EXPECT_EQ(c.find("hmac:"), std::string::npos) << c;
  EXPECT_NE(c.find("-H 'X-Quote: it'\\''s \"$HOME\" `id`'"), std::string::npos) << c;
  EXPECT_NE(c.find("# X-Injected: left out"), std::string::npos) << c;
  EXPECT_EQ(c.find("\nX-Evil"), std::string::npos) << c;  // never a line of its own
  EXPECT_NE(c.find("-H 'X-Empty;'"), std::string::npos) << c;
  EXPECT_NE(c.find("-H 'Content-Type:'"), std::string::npos) << c;  // none recorded
  EXPECT_EQ(c.find("-H Host"), std::string::npos) << c;
  // bash accepts it as a command line.
  EXPECT_EQ(Bash("bash -n <<'EOF'\n" + c + "EOF\necho $?\n"), "0\n");

  // A binary body goes through base64, exactly.
  e.mutable_request()->set_body(std::string("\0\xff\x01'\"$", 6));
  e.mutable_request()->set_method("PUT");
  CurlOptions to;
  to.target = "http://127.0.0.1:9/base";
  cmd = CurlCommand(e, to);
  ASSERT_TRUE(cmd.ok());
  EXPECT_NE(cmd->find("base64 -d <<'DOPPEL_BODY' | curl"), std::string::npos) << *cmd;
  EXPECT_NE(cmd->find("-X PUT"), std::string::npos) << *cmd;
  EXPECT_NE(cmd->find("'http://127.0.0.1:9/base/api/v1/orders/1005?expand=items'"),
            std::string::npos)
      << *cmd;
  EXPECT_NE(cmd->find("# recorded Host: shop.internal"), std::string::npos) << *cmd;
  std::string b64 = cmd->substr(cmd->find("--data-binary @-\n") + 17);
  b64 = b64.substr(0, b64.find("DOPPEL_BODY"));
  std::string decoded;
  ASSERT_TRUE(Base64Decode(b64, &decoded));
  EXPECT_EQ(decoded, e.request().body());

  // What the proxy refused never reached the primary: no command, and the reason why.
  for (auto err : {v1::PROXY_ERROR_BAD_REQUEST, v1::PROXY_ERROR_BODY_TOO_LARGE}) {
    Envelope refused = e;
    refused.set_error(err);
    refused.set_error_detail("over --max-request-body");
    auto no = CurlCommand(refused, CurlOptions());
    ASSERT_FALSE(no.ok());
    EXPECT_EQ(no.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(no.status().message().find("envelope 1714558830000000.3 was refused by the "
                                         "recording proxy (" +
                                         v1::ProxyError_Name(err) +
                                         ": over --max-request-body) and never reached the "
                                         "primary"),
              std::string::npos)
        << no.status().ToString();
  }
  // An upstream failure: the request was complete and went to the primary.
  Envelope timed_out = e;
  timed_out.set_error(v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  timed_out.clear_response();
  EXPECT_TRUE(CurlCommand(timed_out, CurlOptions()).ok());

  // Nowhere to send it.
  e.mutable_request()->mutable_headers()->DeleteSubrange(0, 1);
  EXPECT_EQ(CurlCommand(e, CurlOptions()).status().code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(CurlCommand(e, CurlOptions{"ftp://x"}).ok());
}

}  // namespace
}  // namespace doppel::interop
