#include "diff/endpoint.h"

#include <gtest/gtest.h>

namespace doppel::diff {
namespace {

TEST(EndpointTest, TemplatesIdSegmentsAndDropsTheQuery) {
  EXPECT_EQ(TemplateEndpoint("GET", "/users/42/orders?page=2"), "GET /users/{id}/orders");
  EXPECT_EQ(TemplateEndpoint("GET", "/u/123e4567-e89b-12d3-a456-426614174000"), "GET /u/{id}");
  EXPECT_EQ(TemplateEndpoint("GET", "/o/01ARZ3NDEKTSV4RRFFQ69G5FAV"), "GET /o/{id}");
  EXPECT_EQ(TemplateEndpoint("GET", "/c/5f3a9c1e77"), "GET /c/{id}");
  EXPECT_EQ(TemplateEndpoint("PUT", "/a/b#frag"), "PUT /a/b");
  EXPECT_EQ(TemplateEndpoint("GET", "http://host:8080/v1/items/7?x"), "GET /v1/items/{id}");
  EXPECT_EQ(TemplateEndpoint("GET", ""), "GET /");
  EXPECT_EQ(TemplateEndpoint("OPTIONS", "*"), "OPTIONS *");
}

TEST(EndpointTest, WordsAndShortHexAreNotIds) {
  EXPECT_FALSE(IsIdSegment("deadbeef"));  // no digit: a word
  EXPECT_FALSE(IsIdSegment("abc123"));    // too short for hex
  EXPECT_FALSE(IsIdSegment("users"));
  EXPECT_FALSE(IsIdSegment("v1"));
  EXPECT_FALSE(IsIdSegment(""));
  EXPECT_TRUE(IsIdSegment("0"));
  EXPECT_TRUE(IsIdSegment("deadbee1"));
  EXPECT_EQ(TemplateEndpoint("GET", "/api/v1/users"), "GET /api/v1/users");
}

TEST(EndpointTest, ExplicitPatternsWin) {
  Result<EndpointTemplate> by_name = EndpointTemplate::Parse("GET /users/{name}/profile");
  Result<EndpointTemplate> any_method = EndpointTemplate::Parse("/files/{path}");
  ASSERT_TRUE(by_name.ok());
  ASSERT_TRUE(any_method.ok());
  EndpointNamer namer({by_name.value(), any_method.value()});
  EXPECT_EQ(namer.Name("GET", "/users/alice/profile?x=1"), "GET /users/{name}/profile");
  EXPECT_EQ(namer.Name("get", "/users/alice/profile"), "GET /users/{name}/profile");
  EXPECT_EQ(namer.Name("POST", "/users/alice/profile"), "POST /users/alice/profile");
  EXPECT_EQ(namer.Name("DELETE", "/files/readme"), "DELETE /files/{path}");
  EXPECT_EQ(namer.Name("GET", "/files/a/b"), "GET /files/a/b");  // one segment only
  EXPECT_EQ(namer.Name("GET", "/files/"), "GET /files/");        // empty segment: no match
  EXPECT_EQ(namer.Name("GET", "/users/42"), "GET /users/{id}");  // automatic
}

TEST(EndpointTest, BadPatternsAreRejected) {
  EXPECT_FALSE(EndpointTemplate::Parse("users/{id}").ok());
  EXPECT_FALSE(EndpointTemplate::Parse("GET /a?b=1").ok());
  EXPECT_FALSE(EndpointTemplate::Parse("G(T /a").ok());
  EXPECT_TRUE(EndpointTemplate::Parse("* /a").ok());
}

}  // namespace
}  // namespace doppel::diff
