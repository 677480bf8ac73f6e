#include "bench/corpus/corpus.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "bench/corpus/goreplay_text.h"

namespace doppel::bench {
namespace {

using doppel::v1::Envelope;

std::string Serialized(const Envelope& e) {
  std::string s;
  EXPECT_TRUE(e.SerializeToString(&s));
  return s;
}

std::string_view HeaderValue(const google::protobuf::RepeatedPtrField<doppel::v1::Header>& hs,
                             std::string_view name) {
  for (const auto& h : hs) {
    if (h.name() == name) return h.value();
  }
  return {};
}

// "/api/v1/products/12345?x=1" -> "GET /api/v1/products/{id}".
std::string Endpoint(const Envelope& e) {
  std::string path = e.request().target().substr(0, e.request().target().find('?'));
  std::string out;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start + 1);
    if (end == std::string::npos) end = path.size();
    std::string segment = path.substr(start, end - start);
    const bool id = segment.size() > 1 &&
                    segment.find_first_not_of("/0123456789abcdef-") == std::string::npos &&
                    segment.find_first_of("0123456789") != std::string::npos;
    out += id ? "/{id}" : segment;
    start = end;
  }
  return e.request().method() + " " + out;
}

TEST(CorpusTest, SameSeedGivesIdenticalEnvelopes) {
  const auto a = GenerateCorpus(500, 42);
  CorpusGenerator streaming(42);
  Envelope e;
  for (size_t i = 0; i < a.size(); ++i) {
    streaming.Next(&e);
    ASSERT_EQ(Serialized(a[i]), Serialized(e)) << "envelope " << i;
  }
  EXPECT_EQ(streaming.count(), 500u);
  const auto b = GenerateCorpus(500, 42);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(Serialized(a[i]), Serialized(b[i]));
}

TEST(CorpusTest, DifferentSeedsDiffer) {
  const auto a = GenerateCorpus(200, 1);
  const auto b = GenerateCorpus(200, 2);
  size_t equal = 0;
  for (size_t i = 0; i < a.size(); ++i) equal += Serialized(a[i]) == Serialized(b[i]);
  EXPECT_EQ(equal, 0u);
}

// Pins the stream: if this changes, benchmark results stop being comparable with earlier
// runs, so the change must be deliberate (update bench/RESULTS.md along with it).
TEST(CorpusTest, FirstEnvelopeIsStable) {
  const auto c = GenerateCorpus(1, 1);
  EXPECT_EQ(c[0].arrival_us() / 1000000, kCorpusStartUs / 1000000);
  EXPECT_EQ(c[0].seq(), 0u);
}

TEST(CorpusTest, LooksLikeAJsonApi) {
  const auto corpus = GenerateCorpus(20000, 7);
  std::set<std::string> methods, endpoints;
  std::map<uint32_t, int> statuses;
  uint64_t previous_arrival = 0;
  uint64_t body_bytes = 0;
  size_t success = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const Envelope& e = corpus[i];
    SCOPED_TRACE("envelope " + std::to_string(i) + " " + e.request().target());
    EXPECT_GT(e.arrival_us(), previous_arrival);
    previous_arrival = e.arrival_us();
    EXPECT_EQ(e.seq(), i);
    EXPECT_FALSE(e.client_addr().empty());
    methods.insert(e.request().method());
    endpoints.insert(Endpoint(e));
    ++statuses[e.response().status()];

    const auto& rq = e.request().headers();
    EXPECT_EQ(HeaderValue(rq, "Host"), "api.shop.example.com");
    EXPECT_FALSE(HeaderValue(rq, "User-Agent").empty());
    const std::string_view auth = HeaderValue(rq, "Authorization");
    ASSERT_EQ(auth.size(), 5u + 64u);
    EXPECT_EQ(auth.substr(0, 5), "hmac:");
    EXPECT_EQ(auth.find_first_not_of("0123456789abcdef", 5), std::string_view::npos);
    EXPECT_EQ(HeaderValue(rq, "X-Request-Id"), HeaderValue(e.response().headers(), "X-Request-Id"));

    const std::string& body = e.response().body();
    EXPECT_EQ(HeaderValue(e.response().headers(), "Content-Length"), std::to_string(body.size()));
    EXPECT_EQ(e.response().body_size(), body.size());
    EXPECT_GT(e.response().latency_us(), 0u);
    boost::system::error_code ec;
    const boost::json::value json = boost::json::parse(body, ec);
    ASSERT_FALSE(ec) << ec.message() << ": " << body;
    EXPECT_TRUE(json.is_object());
    if (e.request().method() == "POST") {
      ASSERT_FALSE(boost::json::parse(e.request().body(), ec).is_null());
      ASSERT_FALSE(ec) << e.request().body();
      EXPECT_EQ(HeaderValue(rq, "Content-Length"), std::to_string(e.request().body().size()));
    } else {
      EXPECT_TRUE(e.request().body().empty());
    }
    EXPECT_LE(body.size(), 4096u);
    if (e.response().status() < 300) {
      EXPECT_GE(body.size(), 40u);
      body_bytes += body.size();
      ++success;
    }
  }
  // Successful JSON bodies average 0.5-2 KB.
  EXPECT_GE(body_bytes / success, 500u);
  EXPECT_LE(body_bytes / success, 2048u);

  EXPECT_EQ(methods, (std::set<std::string>{"GET", "POST"}));
  for (const char* endpoint :
       {"GET /api/v1/products", "GET /api/v1/products/{id}", "GET /api/v1/orders/{id}",
        "GET /api/v1/search", "GET /api/v1/users/{id}", "GET /api/v1/cart",
        "POST /api/v1/orders"}) {
    EXPECT_TRUE(endpoints.count(endpoint)) << endpoint;
  }
  EXPECT_EQ(endpoints.size(), 7u);
  for (uint32_t status : {200, 201, 401, 404, 422, 500, 503}) {
    EXPECT_GT(statuses[status], 0) << status;
  }
  EXPECT_GT(statuses[200], static_cast<int>(corpus.size() * 8 / 10));
}

TEST(CorpusTest, TimestampsAreRfc3339) {
  const auto corpus = GenerateCorpus(300, 3);
  size_t seen = 0;
  for (const Envelope& e : corpus) {
    const std::string& body = e.response().body();
    for (size_t at = body.find("_at\":\""); at != std::string::npos;
         at = body.find("_at\":\"", at + 1)) {
      const std::string ts = body.substr(at + 6, body.find('"', at + 6) - at - 6);
      // 2026-11-27T00:00:01Z or 2026-11-27T00:00:01.234Z
      ASSERT_TRUE(ts.size() == 20 || ts.size() == 24) << ts;
      EXPECT_EQ(ts[4], '-');
      EXPECT_EQ(ts[10], 'T');
      EXPECT_EQ(ts.back(), 'Z');
      ++seen;
    }
  }
  EXPECT_GT(seen, 100u);
}

TEST(GoReplayTextTest, OneRequestAndOneResponseRecordPerEnvelope) {
  const auto corpus = GenerateCorpus(1000, 5);
  std::string text;
  for (const Envelope& e : corpus) AppendGoReplayRecords(e, &text);

  size_t requests = 0, responses = 0, start = 0;
  std::string last_request_id;
  while (start < text.size()) {
    const size_t end = text.find(kGoReplaySeparator, start);
    ASSERT_NE(end, std::string::npos);
    const std::string_view record(text.data() + start, end - start);
    const size_t line_end = record.find('\n');
    const std::string_view header = record.substr(0, line_end);
    const std::string_view payload = record.substr(line_end + 1);
    const size_t sp1 = header.find(' ');
    const size_t sp2 = header.find(' ', sp1 + 1);
    const std::string_view id = header.substr(sp1 + 1, sp2 - sp1 - 1);
    EXPECT_EQ(id.size(), 24u);
    const auto& e = corpus[requests - (header[0] == '2')];
    if (header[0] == '1') {
      EXPECT_EQ(requests, responses);
      EXPECT_TRUE(
          payload.starts_with(e.request().method() + " " + e.request().target() + " HTTP/1.1\r\n"));
      last_request_id = id;
      ++requests;
    } else {
      ASSERT_EQ(header[0], '2');
      EXPECT_EQ(id, last_request_id);
      EXPECT_TRUE(payload.starts_with("HTTP/1.1 " + std::to_string(e.response().status())));
      EXPECT_TRUE(payload.ends_with(e.response().body()));
      ++responses;
    }
    start = end + kGoReplaySeparator.size();
  }
  EXPECT_EQ(requests, corpus.size());
  EXPECT_EQ(responses, corpus.size());
}

}  // namespace
}  // namespace doppel::bench
