#include "tether/common/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tether::metrics {
namespace {

TEST(MetricsTest, CounterFamilyRendersExactExpositionText) {
  Registry r;
  auto& requests = r.counter("tether_proxy_requests_total", "Requests answered, by status code.", {"code"});
  requests.with({"200"}).inc();
  requests.with({"200"}).inc(2);
  requests.with({"499"}).inc();
  requests.with({"404"}).inc(-5);  // ignored: counters only go up
  EXPECT_EQ(r.render(),
            "# HELP tether_proxy_requests_total Requests answered, by status code.\n"
            "# TYPE tether_proxy_requests_total counter\n"
            "tether_proxy_requests_total{code=\"200\"} 3\n"
            "tether_proxy_requests_total{code=\"404\"} 0\n"
            "tether_proxy_requests_total{code=\"499\"} 1\n");
}

TEST(MetricsTest, WithReturnsAStableReference) {
  Registry r;
  auto& family = r.counter("c_total", "c", {"a", "b"});
  Counter& first = family.with({"x", "y"});
  for (int i = 0; i < 1000; ++i) family.with({"k" + std::to_string(i), "v"}).inc();
  EXPECT_EQ(&first, &family.with({"x", "y"}));
  EXPECT_EQ(&family, &r.counter("c_total", "c", {"a", "b"})) << "registering again returns the family";
}

TEST(MetricsTest, GaugeWithoutLabelsAndCallbackGauges) {
  Registry r;
  auto& open = r.gauge("tether_proxy_open_connections", "Open client connections.").get();
  open.inc();
  open.inc();
  open.dec();
  double queued = 7;
  r.callbackGauge("solverd_jobs_queued", "Jobs waiting for a worker.", [&] { return queued; });
  r.callbackFamily(Type::Counter, "solverd_job_cpu_seconds_total", "CPU time of jobs.", {"status"}, [] {
    return std::vector<Sample>{{{"optimal"}, 1.5}, {{"interrupted"}, 0.25}};
  });
  queued = 9;
  EXPECT_EQ(r.render(),
            "# HELP tether_proxy_open_connections Open client connections.\n"
            "# TYPE tether_proxy_open_connections gauge\n"
            "tether_proxy_open_connections 1\n"
            "# HELP solverd_jobs_queued Jobs waiting for a worker.\n"
            "# TYPE solverd_jobs_queued gauge\n"
            "solverd_jobs_queued 9\n"
            "# HELP solverd_job_cpu_seconds_total CPU time of jobs.\n"
            "# TYPE solverd_job_cpu_seconds_total counter\n"
            "solverd_job_cpu_seconds_total{status=\"interrupted\"} 0.25\n"
            "solverd_job_cpu_seconds_total{status=\"optimal\"} 1.5\n");
}

TEST(MetricsTest, HistogramRendersCumulativeBucketsSumAndCount) {
  Registry r;
  auto& h = r.histogram("solverd_cancel_to_exit_seconds", "Cancel to worker exit.", {}, {0.001, 0.01, 0.1});
  h.get().observe(0.0005);
  h.get().observe(0.001);  // on a bound: counted in that bucket (le)
  h.get().observe(0.05);
  h.get().observe(3);
  EXPECT_EQ(r.render(),
            "# HELP solverd_cancel_to_exit_seconds Cancel to worker exit.\n"
            "# TYPE solverd_cancel_to_exit_seconds histogram\n"
            "solverd_cancel_to_exit_seconds_bucket{le=\"0.001\"} 2\n"
            "solverd_cancel_to_exit_seconds_bucket{le=\"0.01\"} 2\n"
            "solverd_cancel_to_exit_seconds_bucket{le=\"0.1\"} 3\n"
            "solverd_cancel_to_exit_seconds_bucket{le=\"+Inf\"} 4\n"
            "solverd_cancel_to_exit_seconds_sum 3.0515\n"
            "solverd_cancel_to_exit_seconds_count 4\n");
}

TEST(MetricsTest, DefaultLatencyBucketsStartAt50MicrosecondsAndEndAt60Seconds) {
  const auto& b = defaultLatencyBuckets();
  ASSERT_EQ(b.size(), 19u);
  EXPECT_DOUBLE_EQ(b.front(), 50e-6);
  EXPECT_DOUBLE_EQ(b.back(), 60);
  Registry r;
  auto& h = r.histogram("lat_seconds", "l", {"action"});
  h.with({"kill"}).observe(0.00003);
  const std::string text = r.render();
  EXPECT_NE(text.find("lat_seconds_bucket{action=\"kill\",le=\"5e-05\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{action=\"kill\",le=\"2.5\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{action=\"kill\",le=\"60\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{action=\"kill\",le=\"+Inf\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  Registry r;
  r.counter("odd_total", "Help with \\ and\nnewline.", {"v"}).with({"a\"b\\c\nd"}).inc();
  EXPECT_EQ(r.render(),
            "# HELP odd_total Help with \\\\ and\\nnewline.\n"
            "# TYPE odd_total counter\n"
            "odd_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, ValuesFormatAsPrometheusReadsThem) {
  EXPECT_EQ(formatValue(0), "0");
  EXPECT_EQ(formatValue(42), "42");
  EXPECT_EQ(formatValue(-3), "-3");
  EXPECT_EQ(formatValue(0.1), "0.1");
  EXPECT_EQ(formatValue(1e-9), "1e-09");
  EXPECT_EQ(formatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(formatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(formatValue(std::nan("")), "NaN");
  EXPECT_EQ(formatValue(1e300), "1e+300");
}

TEST(MetricsDeathTest, WrongLabelCountIsAProgrammingError) {
  Registry r;
  auto& f = r.counter("x_total", "x", {"a"});
  EXPECT_DEATH(f.with({"1", "2"}), "1 labels was given 2 values");
  EXPECT_DEATH(r.gauge("x_total", "x", {"a"}), "different types");
  EXPECT_DEATH(r.counter("bad-name", "x"), "invalid metric name");
}

}  // namespace
}  // namespace tether::metrics
