#include "net/fault.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <string>
#include <vector>

namespace doppel::net {
namespace {

RequestView View(std::string_view method, std::string_view target,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  return {method, target, [headers](std::string_view name) -> std::optional<std::string_view> {
            for (const auto& [n, v] : headers) {
              if (n == name) return std::string_view(v);
            }
            return std::nullopt;
          }};
}

FaultInjector::Options Spec(std::string_view text, uint64_t seed = 1) {
  auto spec = ParseFaultSpec(text);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  FaultInjector::Options o;
  o.spec = spec.value();
  o.seed = seed;
  return o;
}

TEST(FaultSpecTest, ParsesEveryKind) {
  auto spec =
      ParseFaultSpec("delay:200ms:10%+abort:503:5%+reset:1%+bandwidth:64KiB:100%+truncate:2.5%");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  ASSERT_EQ(spec->faults.size(), 5u);
  EXPECT_EQ(spec->faults[0].kind, FaultKind::kDelay);
  EXPECT_EQ(spec->faults[0].delay, std::chrono::milliseconds(200));
  EXPECT_DOUBLE_EQ(spec->faults[0].percent, 10);
  EXPECT_EQ(spec->faults[1].http_status, 503u);
  EXPECT_EQ(spec->faults[1].grpc_status, -1);
  EXPECT_EQ(spec->faults[2].kind, FaultKind::kReset);
  EXPECT_EQ(spec->faults[3].bytes_per_second, 64u * 1024);
  EXPECT_DOUBLE_EQ(spec->faults[4].percent, 2.5);
  EXPECT_TRUE(spec->Has(FaultKind::kTruncate));

  auto grpc = ParseFaultSpec("abort:grpc=14:5%");
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->faults[0].grpc_status, 14);
  EXPECT_EQ(grpc->faults[0].http_status, 200u);
}

TEST(FaultSpecTest, ErrorsNameTheItemAndTheGrammar) {
  struct Case {
    const char* spec;
    const char* says;
  };
  for (const Case& c :
       {Case{"", "empty fault spec"}, Case{"slow:1s:5%", "unknown fault kind \"slow\""},
        Case{"delay:200ms:10", "write it with %"}, Case{"delay:200ms:101%", "from 0% to 100%"},
        Case{"delay:10%", "takes an argument and a percentage"},
        Case{"delay:fast:10%", "must be a duration"}, Case{"abort:700:5%", "not an HTTP status"},
        Case{"abort:grpc=0:5%", "not a gRPC status code"},
        Case{"abort:grpc=17:5%", "not a gRPC status code"},
        Case{"reset:5:1%", "takes a percentage"}, Case{"bandwidth:0:100%", "at least 1 byte"},
        Case{"delay:1s:5%+delay:2s:5%", "names delay twice"}}) {
    auto spec = ParseFaultSpec(c.spec);
    ASSERT_FALSE(spec.ok()) << c.spec;
    EXPECT_NE(spec.status().message().find(c.says), std::string::npos)
        << c.spec << ": " << spec.status().message();
  }
  // Item errors carry the grammar, so the user sees what is expected.
  EXPECT_NE(ParseFaultSpec("slow:1s:5%").status().message().find("delay:200ms:10%"),
            std::string::npos);
}

TEST(FaultInjectorTest, SameSeedSameDraws) {
  FaultInjector a(Spec("delay:10ms:30%+abort:503:20%", 42), "primary", nullptr);
  FaultInjector b(Spec("delay:10ms:30%+abort:503:20%", 42), "primary", nullptr);
  FaultInjector c(Spec("delay:10ms:30%+abort:503:20%", 43), "primary", nullptr);
  std::string sa, sb, sc;
  for (int i = 0; i < 200; ++i) {
    auto draw = [](FaultInjector& f) {
      FaultPlan p = f.Draw(View("GET", "/"));
      return std::string(p.delay ? "d" : "-") + (p.abort_status ? "a" : "-");
    };
    sa += draw(a);
    sb += draw(b);
    sc += draw(c);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(FaultInjectorTest, RatesFollowThePercentages) {
  FaultInjector f(Spec("delay:10ms:30%+abort:503:5%+truncate:100%"), "primary", nullptr);
  for (int i = 0; i < 20000; ++i) (void)f.Draw(View("GET", "/"));
  // Deterministic for the seed; the bounds are those of a fair draw (±5 sigma).
  EXPECT_NEAR(static_cast<double>(f.injected(FaultKind::kDelay)), 6000, 330);
  EXPECT_NEAR(static_cast<double>(f.injected(FaultKind::kAbort)), 1000, 160);
  // An abort leaves no body to cut: truncate is counted only for the others.
  EXPECT_EQ(f.injected(FaultKind::kTruncate), 20000 - f.injected(FaultKind::kAbort));
  EXPECT_EQ(f.injected(FaultKind::kReset), 0u);

  FaultInjector never(Spec("reset:0%"), "primary", nullptr);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(never.Draw(View("GET", "/")).any());
}

TEST(FaultInjectorTest, ResetWinsOverAbortAndAbortOverBodyFaults) {
  FaultInjector f(Spec("abort:503:100%+reset:100%+bandwidth:1KiB:100%"), "primary", nullptr);
  FaultPlan p = f.Draw(View("GET", "/"));
  EXPECT_TRUE(p.reset);
  EXPECT_EQ(p.abort_status, 0u);
  EXPECT_EQ(p.bandwidth, 0u);
  EXPECT_TRUE(p.replaces_response());
  EXPECT_EQ(f.injected(FaultKind::kReset), 1u);
  EXPECT_EQ(f.injected(FaultKind::kAbort), 0u);
  EXPECT_EQ(f.injected(FaultKind::kBandwidth), 0u);
}

TEST(FaultInjectorTest, PlanKindsNameWhatWasDrawnInKindOrder) {
  EXPECT_EQ(FaultPlan().Kinds(), "");
  FaultInjector both(Spec("abort:503:100%+delay:50ms:100%"), "replay", nullptr);
  EXPECT_EQ(both.Draw(View("GET", "/")).Kinds(), "delay+abort");
  FaultInjector shaped(Spec("truncate:100%+bandwidth:1KiB:100%"), "replay", nullptr);
  EXPECT_EQ(shaped.Draw(View("POST", "/")).Kinds(), "bandwidth+truncate");
  FaultInjector reset(Spec("reset:100%+abort:503:100%"), "replay", nullptr);
  EXPECT_EQ(reset.Draw(View("GET", "/")).Kinds(), "reset");  // a reset wins over an abort
}

// The replay's mapping from the spec to plans: `abort:503:50%+delay:50ms:20%` with a seed
// gives each kind about its share, the same requests every time.
TEST(FaultInjectorTest, ReplaySpecDrawsItsSharesRepeatably) {
  auto draw = [](uint64_t seed) {
    FaultInjector f(Spec("abort:503:50%+delay:50ms:20%", seed), "replay", nullptr);
    std::vector<std::string> kinds;
    for (int i = 0; i < 2000; ++i) kinds.push_back(f.Draw(View("GET", "/")).Kinds());
    return kinds;
  };
  const std::vector<std::string> first = draw(7);
  EXPECT_EQ(first, draw(7));
  EXPECT_NE(first, draw(8));
  size_t aborts = 0, delays = 0;
  for (const std::string& k : first) {
    aborts += k.find("abort") != std::string::npos;
    delays += k.find("delay") != std::string::npos;
  }
  EXPECT_GT(aborts, 850u);  // 50% of 2000, within a wide margin
  EXPECT_LT(aborts, 1150u);
  EXPECT_GT(delays, 300u);  // 20%
  EXPECT_LT(delays, 500u);
}

TEST(FaultInjectorTest, MaxActiveCapsFaultedRequestsInFlight) {
  FaultInjector::Options o = Spec("delay:10ms:100%");
  o.max_active = 2;
  FaultInjector f(o, "primary", nullptr);
  FaultPlan a = f.Draw(View("GET", "/"));
  FaultPlan b = f.Draw(View("GET", "/"));
  FaultPlan c = f.Draw(View("GET", "/"));
  EXPECT_TRUE(a.any());
  EXPECT_TRUE(b.any());
  EXPECT_FALSE(c.any());  // over the cap: goes through unfaulted
  EXPECT_EQ(f.skipped(), 1u);
  EXPECT_EQ(f.active(), 2u);
  FaultPlan copy = a;  // copies share the slot
  a = {};
  EXPECT_EQ(f.active(), 2u);
  copy.active.reset();
  EXPECT_EQ(f.active(), 1u);
  EXPECT_TRUE(f.Draw(View("GET", "/")).any());
  EXPECT_EQ(f.injected(FaultKind::kDelay), 3u);
}

TEST(FaultInjectorTest, RuleScopesTheFaults) {
  auto rules = MatchRules::FromFlags({"name=api,uri^=/api"});
  ASSERT_TRUE(rules.ok());
  FaultInjector::Options o = Spec("abort:500:100%");
  o.rule = &rules->blocks()[0];
  FaultInjector f(o, "primary", nullptr);
  EXPECT_FALSE(f.Draw(View("GET", "/health")).any());
  EXPECT_EQ(f.Draw(View("GET", "/api/items")).abort_status, 500u);
}

TEST(FaultInjectorTest, HeadersAskForFaults) {
  FaultInjector::Options o;
  o.from_headers = true;
  FaultInjector f(o, "primary", nullptr);
  FaultPlan p = f.Draw(
      View("GET", "/",
           {{std::string(kFaultDelayHeader), "250"}, {std::string(kFaultAbortHeader), "418"}}));
  ASSERT_TRUE(p.delay);
  EXPECT_EQ(*p.delay, std::chrono::milliseconds(250));
  EXPECT_EQ(p.abort_status, 418u);
  FaultPlan grpc = f.Draw(View("POST", "/x", {{std::string(kFaultAbortHeader), "grpc=14"}}));
  EXPECT_EQ(grpc.abort_status, 200u);
  EXPECT_EQ(grpc.abort_grpc, 14);
  // Values that do not parse are ignored, not half-applied.
  EXPECT_FALSE(f.Draw(View("GET", "/",
                           {{std::string(kFaultDelayHeader), "soon"},
                            {std::string(kFaultAbortHeader), "99"}}))
                   .any());
  EXPECT_FALSE(f.Draw(View("GET", "/")).any());
  EXPECT_EQ(f.injected(FaultKind::kAbort), 2u);
}

TEST(FaultInjectorTest, MetricsCountByKindAndPlace) {
  MetricsRegistry registry;
  FaultInjector f(Spec("abort:503:100%"), "primary", &registry);
  for (int i = 0; i < 3; ++i) (void)f.Draw(View("GET", "/"));
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("doppel_faults_injected_total{kind=\"abort\",where=\"primary\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("doppel_faults_injected_total{kind=\"delay\",where=\"primary\"} 0"),
            std::string::npos);
  const boost::json::object status = f.StatusJson();
  EXPECT_EQ(status.at("injected").at("abort").as_uint64(), 3u);
  EXPECT_EQ(status.at("spec").as_string(), "abort:503:100%");
}

// A body reader over fixed pieces, answering on `io` as real readers do.
class PiecesReader : public BodyReader {
 public:
  PiecesReader(boost::asio::io_context& io, std::vector<std::string> pieces)
      : io_(io), pieces_(std::move(pieces)) {}
  void ReadSome(Callback done) override {
    boost::asio::post(io_, [this, done = std::move(done)] {
      const bool end = next_ + 1 >= pieces_.size();
      done(ClientError::kNone, "", pieces_[next_++], end);
    });
  }
  uint64_t latency_us() const override { return 7; }
  const boost::beast::http::fields& trailers() const override { return trailers_; }
  bool ready() const override { return false; }

 private:
  boost::asio::io_context& io_;
  std::vector<std::string> pieces_;
  size_t next_ = 0;
  boost::beast::http::fields trailers_;
};

struct Drained {
  std::vector<std::string> pieces;
  ClientError error = ClientError::kNone;
  std::string detail;
  bool ended = false;
};

// Reads `reader` to its end or error, checking no callback runs inside ReadSome.
Drained Drain(boost::asio::io_context& io, BodyReader& reader) {
  Drained out;
  bool inside = false;
  std::function<void()> next = [&] {
    inside = true;
    reader.ReadSome([&](ClientError error, std::string detail, std::string_view piece, bool end) {
      EXPECT_FALSE(inside) << "callback ran inside ReadSome";
      out.error = error;
      out.detail = detail;
      if (error != ClientError::kNone) return;
      out.pieces.emplace_back(piece);
      if (end) {
        out.ended = true;
        return;
      }
      next();
    });
    inside = false;
  };
  next();
  io.run();
  io.restart();
  return out;
}

std::string Joined(const Drained& d) {
  std::string all;
  for (const auto& p : d.pieces) all += p;
  return all;
}

TEST(FaultBodyTest, TruncateRelaysTheAllowanceThenFails) {
  boost::asio::io_context io;
  auto body = TruncateBody(
      std::make_unique<PiecesReader>(io, std::vector<std::string>{"aaaa", "bbbb", "cccc", "dddd"}),
      6, io.get_executor());
  Drained d = Drain(io, *body);
  EXPECT_EQ(Joined(d), "aaaabb");
  EXPECT_FALSE(d.ended);
  EXPECT_EQ(d.error, ClientError::kReset);
  EXPECT_EQ(d.detail, kTruncatedByFault);
  EXPECT_EQ(body->latency_us(), 7u);

  // Unknown length: half of the first piece.
  auto unknown = TruncateBody(
      std::make_unique<PiecesReader>(io, std::vector<std::string>{"0123456789", "rest"}),
      std::nullopt, io.get_executor());
  Drained u = Drain(io, *unknown);
  EXPECT_EQ(Joined(u), "01234");
  EXPECT_EQ(u.error, ClientError::kReset);
}

TEST(FaultBodyTest, ThrottleSlicesAndKeepsEveryByte) {
  boost::asio::io_context io;
  const std::string big(5000, 'x');
  // 100 KB/s: slices of 10 KB, so the 5000-byte piece goes whole; at 20 KB/s, 2 KB slices.
  auto body =
      ThrottleBody(std::make_unique<PiecesReader>(io, std::vector<std::string>{big, "tail"}), 20000,
                   io.get_executor());
  Drained d = Drain(io, *body);
  EXPECT_TRUE(d.ended);
  EXPECT_EQ(Joined(d), big + "tail");
  for (const auto& p : d.pieces) EXPECT_LE(p.size(), 2000u);
  EXPECT_GE(d.pieces.size(), 4u);
}

TEST(FaultBodyTest, AbortAnswersWithTheStatusOrAGrpcTrailersOnlyAnswer) {
  boost::asio::io_context io;
  FaultPlan plan;
  plan.abort_status = 503;
  FaultAbort a = MakeFaultAbort(plan, io.get_executor());
  EXPECT_EQ(a.head.result_int(), 503u);
  Drained d = Drain(io, *a.body);
  EXPECT_TRUE(d.ended);
  EXPECT_EQ(std::to_string(Joined(d).size()), std::string(a.head["Content-Length"]));
  EXPECT_NE(Joined(d).find("fault injected"), std::string::npos);
  EXPECT_FALSE(a.body->ended_with_head());

  plan.abort_status = 200;
  plan.abort_grpc = 14;
  FaultAbort g = MakeFaultAbort(plan, io.get_executor());
  EXPECT_EQ(g.head.result_int(), 200u);
  EXPECT_EQ(g.head["grpc-status"], "14");
  EXPECT_EQ(g.head["content-type"], "application/grpc");
  EXPECT_TRUE(g.body->ended_with_head());
}

}  // namespace
}  // namespace doppel::net
