#include "replay/time_shift.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace doppel::replay {
namespace {

constexpr int64_t kDay = 86400LL * 1000000;
// The recording: 2026-01-10, 10:00 to 11:00 UTC.
constexpr uint64_t kFrom = 1768039200ull * 1000000, kTo = kFrom + 3600ull * 1000000;

TimeShifter Shifter(int64_t delta_us, std::vector<std::string> headers = {}) {
  TimeShiftOptions o;
  o.delta_us = delta_us;
  o.recorded_from_us = kFrom;
  o.recorded_to_us = kTo;
  o.headers = std::move(headers);
  return TimeShifter(o);
}

TEST(TimeShiftTest, MovesEachFormOfTimestampAndKeepsItsForm) {
  const TimeShifter shift = Shifter(2 * kDay + 1500);  // two days and 1.5 ms
  struct Case {
    const char* in;
    const char* out;  // nullptr: not a timestamp, left alone
  };
  const Case cases[] = {
      {"2026-01-09T00:00:00Z", "2026-01-11T00:00:00Z"},
      {"2026-01-09T00:00:00.000Z", "2026-01-11T00:00:00.001Z"},
      {"2026-01-09T02:00:00+02:00", "2026-01-11T02:00:00+02:00"},
      {"2020-06-01T00:00:00Z", "2020-06-03T00:00:00Z"},  // RFC 3339 moves whatever its year
      {"1768039200", "1768212000"},                      // epoch seconds near the recording
      {"1768039200000", "1768212000001"},                // epoch milliseconds near it
      {"1700000000", nullptr},                           // 2023: not near the recording
      {"1234567890", nullptr},                           // an id that looks like 2009
      {"176803920", nullptr},                            // nine digits
      {"-768039200", nullptr},
      {"2026-01-09", nullptr},  // a date alone
      {"yesterday", nullptr},
  };
  for (const Case& c : cases) {
    std::string v = c.in;
    EXPECT_EQ(shift.ShiftValue(&v), c.out != nullptr) << c.in;
    EXPECT_EQ(v, c.out != nullptr ? c.out : c.in) << c.in;
  }
}

TEST(TimeShiftTest, MovesQueryValuesPlainAndPercentEncoded) {
  const TimeShifter shift = Shifter(kDay);
  OutgoingRequest r;
  r.target =
      "/orders?since=2026-01-09T10%3A00%3A00%2B01%3A00&until=2026-01-10T10:00:00Z&page=1768039200"
      "&id=1234567890&flag";
  EXPECT_EQ(shift.Shift(&r), 3u);
  EXPECT_EQ(r.target,
            "/orders?since=2026-01-10T10%3A00%3A00%2B01%3A00&until=2026-01-11T10:00:00Z&page="
            "1768125600&id=1234567890&flag");
  OutgoingRequest none;
  none.target = "/orders?id=7";
  EXPECT_EQ(shift.Shift(&none), 0u);
  EXPECT_EQ(none.target, "/orders?id=7");
}

TEST(TimeShiftTest, MovesJsonBodyValuesAtAnyDepthButNotUnderAContentEncoding) {
  const TimeShifter shift = Shifter(-kDay);
  OutgoingRequest r;
  r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
  r.body =
      R"({"from":"2026-01-10T00:00:00Z","window":{"ts":[1768039200000,5]},"price":1768039200.5,)"
      R"("note":"2026-01-10T00:00:00Z is when"})";
  EXPECT_EQ(shift.Shift(&r), 2u);
  const boost::json::value doc = boost::json::parse(r.body);
  EXPECT_EQ(doc.at("from").as_string(), "2026-01-09T00:00:00Z");
  EXPECT_EQ(doc.at("window").at("ts").at(0).to_number<int64_t>(), 1767952800000);
  EXPECT_EQ(doc.at("window").at("ts").at(1).to_number<int64_t>(), 5);
  EXPECT_EQ(doc.at("note").as_string(), "2026-01-10T00:00:00Z is when");  // not a whole value

  OutgoingRequest gzipped = r;
  gzipped.headers.emplace_back("Content-Encoding", "gzip");
  const std::string before = gzipped.body;
  EXPECT_EQ(shift.Shift(&gzipped), 0u);
  EXPECT_EQ(gzipped.body, before);

  OutgoingRequest text;
  text.headers = {{"Content-Type", "text/plain"}};
  text.body = "2026-01-10T00:00:00Z";
  EXPECT_EQ(shift.Shift(&text), 0u);
}

TEST(TimeShiftTest, MovesOnlyTheHeadersItIsGiven) {
  const TimeShifter shift = Shifter(kDay, {"x-since"});
  OutgoingRequest r;
  r.headers = {{"X-Since", "2026-01-10T00:00:00Z"}, {"X-Other", "2026-01-10T00:00:00Z"}};
  EXPECT_EQ(shift.Shift(&r), 1u);
  EXPECT_EQ(r.headers[0].second, "2026-01-11T00:00:00Z");
  EXPECT_EQ(r.headers[1].second, "2026-01-10T00:00:00Z");
}

}  // namespace
}  // namespace doppel::replay
