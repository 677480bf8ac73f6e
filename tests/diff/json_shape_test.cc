// diff::JsonShapeHash is a hand-written scanner (diff/request_class.cc). Request classes are
// stored in sessions and matched across them (class history, reweighting), so its hash and
// what it accepts must stay what they were when Boost.JSON's SAX parser computed them: this
// test keeps that implementation as the reference and compares the two on edge cases and on
// many mutated documents.
#include <gtest/gtest.h>

#include <boost/json/basic_parser_impl.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/stable_hash.h"
#include "diff/request_class.h"

namespace doppel::diff {
namespace {

namespace json = boost::json;

uint64_t Mix(uint64_t v) {
  return StableHash64(std::string_view(reinterpret_cast<const char*>(&v), sizeof v));
}

// The reference: the structural hash built from Boost.JSON's SAX events.
class ShapeHandler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  uint64_t result() const { return result_; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return Open(true); }
  bool on_array_begin(json::error_code&) { return Open(false); }
  bool on_object_end(std::size_t, json::error_code&) { return Close(); }
  bool on_array_end(std::size_t, json::error_code&) { return Close(); }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    frames_.back().key = StableHash64(key_);
    key_.clear();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return Value(1); }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(int64_t, json::string_view, json::error_code&) { return Value(2); }
  bool on_uint64(uint64_t, json::string_view, json::error_code&) { return Value(2); }
  bool on_double(double, json::string_view, json::error_code&) { return Value(2); }
  bool on_bool(bool, json::error_code&) { return Value(3); }
  bool on_null(json::error_code&) { return Value(4); }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  struct Frame {
    bool object;
    uint64_t key = 0;
    uint64_t sum = 0;
    std::vector<uint64_t> seen;
  };
  bool Open(bool object) {
    if (frames_.size() >= 64) return false;
    frames_.push_back(Frame{object, 0, 0, {}});
    return true;
  }
  bool Close() {
    Frame& f = frames_.back();
    uint64_t h;
    if (f.object) {
      h = Mix(f.sum ^ 5);
    } else {
      uint64_t sum = 0;
      for (uint64_t e : f.seen) sum += e;
      h = Mix(sum ^ 6);
    }
    frames_.pop_back();
    return Value(h);
  }
  bool Value(uint64_t shape) {
    if (frames_.empty()) {
      result_ = shape;
      return true;
    }
    Frame& f = frames_.back();
    if (f.object) {
      f.sum += Mix(f.key ^ Mix(shape));
    } else if (f.seen.size() < 32 &&
               std::find(f.seen.begin(), f.seen.end(), shape) == f.seen.end()) {
      f.seen.push_back(shape);
    }
    return true;
  }
  std::vector<Frame> frames_;
  std::string key_;
  uint64_t result_ = 0;
};

std::optional<uint32_t> Reference(std::string_view body) {
  json::parse_options opts;
  opts.max_depth = 64;
  json::basic_parser<ShapeHandler> parser(opts);
  json::error_code ec;
  const size_t used = parser.write_some(false, body.data(), body.size(), ec);
  if (ec || !parser.done()) return std::nullopt;
  for (size_t i = used; i < body.size(); ++i) {
    const char c = body[i];
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return std::nullopt;
  }
  const uint64_t h = parser.handler().result();
  return static_cast<uint32_t>(h ^ (h >> 32));
}

void ExpectSame(const std::string& body) {
  EXPECT_EQ(JsonShapeHash(body), Reference(body)) << "body: " << ::testing::PrintToString(body);
}

TEST(JsonShapeTest, EdgeCasesAgreeWithTheBoostJsonReference) {
  const std::vector<std::string> cases = {
      "{}",
      "[]",
      " [ ] ",
      "0",
      "-0",
      "01",
      "-",
      "1.",
      ".5",
      "+1",
      "1e5",
      "1E+5",
      "1e-5",
      "1.e5",
      "1.5e+",
      "1e400",
      "1e2147483647",
      "1e2147483648",
      "1e99999999999",
      "1e-99999999999",
      "18446744073709551616",
      "-9223372036854775809",
      "123456789012345678901234567890e-10",
      "true",
      "false",
      "null",
      "tru",
      "nul",
      "truex",
      "[true,false,null]",
      "[1,]",
      "[,1]",
      "{\"a\":1,}",
      "{,}",
      "{\"a\" 1}",
      "{\"a\":}",
      "{1:2}",
      "{\"a\":1 \"b\":2}",
      "\"\\ud800\"",
      "\"\\ud800\\udc00\"",
      "\"\\udc00\"",
      "\"\\ud800x\"",
      "\"\\ud800\\u0041\"",
      "\"\\ud800\\ud800\"",
      "\"\\u0000\"",
      "\"\\uD83D\\uDE00\"",
      "\"\\u00e9\"",
      "\"\\u12\"",
      "\"\\x\"",
      "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
      "\"\t\"",
      "\"\x01\"",
      "\"\x7f\"",
      "\"\xff\"",
      "\"\xc0\x80\"",
      "\"\xed\xa0\x80\"",
      "\"\xf4\x90\x80\x80\"",
      "\"\xc3\xa9\"",
      "\"\xe2\x82\xac\"",
      "\"\xf0\x9f\x98\x80\"",
      "\"\xe2\x82\"",
      "\"abc",
      "[1 2]",
      "{\"a\":{\"b\":[1,{\"c\":null}]}}",
      "{\"k\\u0065y\":1}",
      "{\"key\":1}",
      "{\"a\\nb\":[]}",
      "[1]\n",
      "[1] x",
      "[1]]",
      "\xef\xbb\xbf{}",
      "/* c */ {}",
      "{} // c",
      "[1,[2,[3]]]",
      "{\"a\":1,\"a\":2}",
      std::string("{\"a\":1}\0", 8),
      std::string(64, '[') + std::string(64, ']'),
      std::string(65, '[') + std::string(65, ']'),
      std::string(63, '[') + "{}" + std::string(63, ']'),
      std::string(63, '[') + "{\"a\":[]}" + std::string(63, ']')};
  for (const std::string& c : cases) ExpectSame(c);
  // Unescaped and escaped keys hash alike, as Boost.JSON hands the handler unescaped keys.
  EXPECT_EQ(JsonShapeHash("{\"k\\u0065y\":1}"), JsonShapeHash("{\"key\":2}"));
  // Arrays keep at most 32 distinct element shapes.
  std::string many = "[";
  for (int i = 0; i < 40; ++i) many += (i ? ",{\"k" : "{\"k") + std::to_string(i) + "\":1}";
  ExpectSame(many + "]");
}

TEST(JsonShapeTest, MutatedDocumentsAgreeWithTheBoostJsonReference) {
  const std::vector<std::string> seeds = {
      R"({"id":7,"sku":"SKU-00007","name":"Ultra Walnut Knife","price":8.99,"in_stock":true,)"
      R"("tags":["walnut","knife"],"dimensions":{"width_cm":37,"weight_kg":11.4},"ref":null})",
      R"([{"a":1,"b":[1,2,{"c":"\u00e9\n"}]},{"a":-0.5e-3,"b":[]},"x\ud83d\ude00",true,false])",
      R"({"error":{"code":"not_found","message":"no such endpoint: /","details":[{"k":"v"}]}})",
      "{\"\xc3\xa9t\xc3\xa9\":\"\xe2\x82\xac\",\"n\":[1e10,2E-2,0,-1]}"};
  const std::string alphabet =
      "{}[]\":,\\u0123456789abcdefABCDEF.eE+-tfn \t\r\n\x01\x7f\xc3\xa9\xff";
  std::mt19937_64 rng(19);
  size_t valid = 0;
  for (int round = 0; round < 100000; ++round) {
    std::string doc = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !doc.empty(); ++e) {
      const size_t at = rng() % doc.size();
      switch (rng() % 4) {
        case 0:
          doc.erase(at, 1 + rng() % 3);
          break;
        case 1:
          doc.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        case 2:
          doc[at] = alphabet[rng() % alphabet.size()];
          break;
        default:  // a slice of the document repeated (nesting, duplicated members)
          doc.insert(at, doc.substr(rng() % doc.size(), 1 + rng() % 12));
          break;
      }
    }
    const auto got = JsonShapeHash(doc);
    ASSERT_EQ(got, Reference(doc)) << "body: " << ::testing::PrintToString(doc);
    valid += got.has_value();
  }
  // The mutations must leave both valid and invalid documents, or this compared little.
  EXPECT_GT(valid, 500u);
  EXPECT_LT(valid, 99000u);
}

// Stored class labels ("json:XXXXXXXX" in envelopes, session counts and class history) must
// mean the same in every version: a faster scanner or hash has to give these values.
TEST(JsonShapeTest, HashesAreTheOnesStoredLabelsCarry) {
  const std::vector<std::pair<std::string, uint32_t>> pinned = {
      {R"({"id":7,"sku":"SKU-00007","name":"Ultra Walnut Knife","category":"kitchen",)"
       R"("price":8.99,"currency":"EUR","in_stock":true,"stock":42,"rating":3.9,"reviews":1892,)"
       R"("tags":["walnut","knife","kitchen"],"dimensions":{"width_cm":37,"height_cm":44,)"
       R"("depth_cm":8,"weight_kg":11.4},"supplier":{"id":6,"name":"Alpenhof AG","country":"AT"},)"
       R"("created_at":"2024-08-07T13:28:38Z"})",
       0xfc8c014c},
      {R"([1,"a",null,true,{"k\u00e9y":[[],{}]}])", 0x3283d1da},
      {R"( {"a" : 1 , "b":[ 1 , 2 ] } )", 0x2a012844},
      {"\"x\"", 0x00000001},
      {"0", 0x00000002},
      {"[]", 0x82901393},
      {"{}", 0x295a5c7e}};
  for (const auto& [doc, hash] : pinned) EXPECT_EQ(JsonShapeHash(doc), hash) << doc;
}

}  // namespace
}  // namespace doppel::diff
