#include "net/metrics.h"

#include <gtest/gtest.h>

namespace doppel::net {
namespace {

TEST(MetricsTest, RendersCountersGaugesHistograms) {
  MetricsRegistry r;
  Counter* ok = r.AddCounter("doppel_requests_total", "Requests.", "class=\"2xx\"");
  Counter* err = r.AddCounter("doppel_requests_total", "Requests.", "class=\"5xx\"");
  Gauge* g = r.AddGauge("doppel_connections_active", "Open connections.");
  r.AddGaugeFunction("doppel_queue_depth", "Depth.", [] { return 7.0; });
  Histogram* h = r.AddHistogram("doppel_latency_seconds", "Latency.", {1000, 10000});
  ok->Inc(3);
  err->Inc();
  g->Add(2);
  g->Add(-1);
  h->ObserveUs(500);
  h->ObserveUs(1000);  // on the bound: le is inclusive
  h->ObserveUs(5000);
  h->ObserveUs(20000);
  const std::string text = r.RenderPrometheus();
  EXPECT_EQ(text,
            "# HELP doppel_requests_total Requests.\n"
            "# TYPE doppel_requests_total counter\n"
            "doppel_requests_total{class=\"2xx\"} 3\n"
            "doppel_requests_total{class=\"5xx\"} 1\n"
            "# HELP doppel_connections_active Open connections.\n"
            "# TYPE doppel_connections_active gauge\n"
            "doppel_connections_active 1\n"
            "# HELP doppel_queue_depth Depth.\n"
            "# TYPE doppel_queue_depth gauge\n"
            "doppel_queue_depth 7\n"
            "# HELP doppel_latency_seconds Latency.\n"
            "# TYPE doppel_latency_seconds histogram\n"
            "doppel_latency_seconds_bucket{le=\"0.001\"} 2\n"
            "doppel_latency_seconds_bucket{le=\"0.01\"} 3\n"
            "doppel_latency_seconds_bucket{le=\"+Inf\"} 4\n"
            "doppel_latency_seconds_sum 0.0265\n"
            "doppel_latency_seconds_count 4\n");
}

TEST(MetricsTest, QuantileIsBucketBound) {
  Histogram h(Histogram::DefaultLatencyBoundsUs());
  EXPECT_EQ(h.ApproximateQuantileUs(0.5), 0u);
  for (int i = 0; i < 90; ++i) h.ObserveUs(80);    // <= 100 µs bucket
  for (int i = 0; i < 10; ++i) h.ObserveUs(3000);  // <= 5 ms bucket
  EXPECT_EQ(h.ApproximateQuantileUs(0.5), 100u);
  EXPECT_EQ(h.ApproximateQuantileUs(0.99), 5000u);
  EXPECT_EQ(h.count(), 100u);
}

}  // namespace
}  // namespace doppel::net
