#include "diff/request_class.h"

#include <gtest/gtest.h>

#include <string>

namespace doppel::diff {
namespace {

std::string Shape(std::string_view body, std::string_view type = "application/json") {
  return ResponseShape(type, "", body, /*body_complete=*/true);
}

TEST(RequestClassTest, JsonShapeIgnoresValuesKeyOrderAndArrayLengths) {
  const std::string a = Shape(R"({"id":1,"name":"ann","tags":["x","y"],"ok":true})");
  EXPECT_EQ(a.substr(0, 5), "json:");
  EXPECT_EQ(a.size(), 13u);
  EXPECT_EQ(a, Shape(R"({"ok":false,"tags":["z"],"name":"bob","id":2.5})"));
  EXPECT_EQ(a, Shape(R"( {"name":"", "id":-7, "ok":true, "tags":["q","r","s"]} )"));
  // An empty array has no element shapes: not the shape of an array of strings.
  EXPECT_NE(a, Shape(R"({"id":1,"name":"ann","tags":[],"ok":true})"));
}

TEST(RequestClassTest, JsonShapeSeesKeysTypesAndNesting) {
  const std::string base = Shape(R"({"id":1,"user":{"name":"a"}})");
  EXPECT_NE(base, Shape(R"({"id":1,"user":{"name":"a","admin":true}})"));  // a key more
  EXPECT_NE(base, Shape(R"({"id":"1","user":{"name":"a"}})"));             // string, not number
  EXPECT_NE(base, Shape(R"({"id":1,"user":{"nick":"a"}})"));               // another key
  EXPECT_NE(base, Shape(R"({"id":1,"user":[{"name":"a"}]})"));             // wrapped in an array
  EXPECT_NE(base, Shape(R"({"id":null,"user":{"name":"a"}})"));
  // Arrays are the set of their element shapes: order and repetition do not count.
  EXPECT_EQ(Shape(R"([1,"a",1,1])"), Shape(R"(["a",2])"));
  EXPECT_NE(Shape(R"([1,"a"])"), Shape(R"([1])"));
  // Objects in arrays: the same keys give the same shape whatever the values.
  EXPECT_EQ(Shape(R"({"items":[{"sku":"a","n":1},{"sku":"b","n":2}]})"),
            Shape(R"({"items":[{"n":9,"sku":"c"}]})"));
  // Which key holds which type matters, not just the sets of keys and of types.
  EXPECT_NE(Shape(R"({"a":1,"b":"x"})"), Shape(R"({"a":"x","b":1})"));
}

TEST(RequestClassTest, OtherBodiesAreTheirMediaType) {
  EXPECT_EQ(Shape("<html></html>", "Text/HTML; charset=UTF-8"), "type:text/html");
  EXPECT_EQ(Shape("\x89PNG", "image/png"), "type:image/png");
  EXPECT_EQ(Shape("abc", ""), "type:none");
  EXPECT_EQ(ResponseShape("text/plain", "", "", true), "empty");
  // JSON that does not parse, or was cut by --capture-body-limit, is only its type.
  EXPECT_EQ(Shape(R"({"id":)"), "type:application/json");
  EXPECT_EQ(Shape(R"({"id":1} trailing)"), "type:application/json");
  EXPECT_EQ(ResponseShape("application/json", "", R"({"id":1})", /*body_complete=*/false),
            "type:application/json");
  // +json media types are JSON.
  EXPECT_EQ(Shape(R"({"type":"about:blank"})", "application/problem+json").substr(0, 5), "json:");
  // A content coding: the body is not decoded on the proxy thread.
  EXPECT_EQ(ResponseShape("application/json", "gzip", "\x1f\x8b", true),
            "type:application/json;gzip");
  EXPECT_EQ(ResponseShape("application/json", "identity", "{}", true).substr(0, 5), "json:");
}

TEST(RequestClassTest, HostileBodiesGiveAShapeAndNoCrash) {
  EXPECT_FALSE(JsonShapeHash(std::string(10000, '[')).has_value());  // deeper than 64
  EXPECT_FALSE(JsonShapeHash(std::string(100, '[') + std::string(100, ']')).has_value());
  EXPECT_TRUE(JsonShapeHash(std::string(60, '[') + std::string(60, ']')).has_value());
  EXPECT_FALSE(JsonShapeHash("").has_value());
  EXPECT_FALSE(JsonShapeHash(std::string("\0\xff\xfe", 3)).has_value());
  // Control bytes and spaces in a Content-Type do not reach the label.
  EXPECT_EQ(Shape("x", "text/pl ain\r\n; q"), "type:text/plain");
}

TEST(RequestClassTest, LabelTemplatesTheEndpoint) {
  const EndpointNamer namer;
  EXPECT_EQ(ClassLabel(namer, "GET", "/users/42/orders?page=2", 200, "json:0000abcd"),
            "GET /users/{id}/orders 200 json:0000abcd");
  EXPECT_EQ(ClassLabel(namer, "", "", 400, "error:bad_request"), "- - 400 error:bad_request");
  auto pattern = EndpointTemplate::Parse("GET /files/{name}");
  ASSERT_TRUE(pattern.ok());
  const EndpointNamer explicit_namer({pattern.value()});
  EXPECT_EQ(ClassLabel(explicit_namer, "GET", "/files/report.pdf", 404, "empty"),
            "GET /files/{name} 404 empty");
}

TEST(RequestClassTest, ClassOfAnEnvelope) {
  const EndpointNamer namer;
  doppel::v1::Envelope e;
  e.mutable_request()->set_method("GET");
  e.mutable_request()->set_target("/orders/77");
  e.mutable_response()->set_status(200);
  auto* h = e.mutable_response()->add_headers();
  h->set_name("Content-Type");
  h->set_value("application/json");
  e.mutable_response()->set_body(R"({"id":77})");
  const std::string computed = ClassOf(e, namer);
  EXPECT_EQ(computed, "GET /orders/{id} 200 " + Shape(R"({"id":1})"));
  // The recorder's stored label wins.
  e.set_sample_class("stored");
  EXPECT_EQ(ClassOf(e, namer), "stored");
  EXPECT_EQ(ComputeClass(e, namer), computed);
  // The proxy answered itself: the error names the shape, the answer the status.
  doppel::v1::Envelope failed;
  failed.mutable_request()->set_method("POST");
  failed.mutable_request()->set_target("/pay");
  failed.set_error(doppel::v1::PROXY_ERROR_UPSTREAM_TIMEOUT);
  EXPECT_EQ(ClassOf(failed, namer), "POST /pay 504 error:upstream_timeout");
}

}  // namespace
}  // namespace doppel::diff
