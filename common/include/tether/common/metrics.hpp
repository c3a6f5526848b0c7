#pragma once
// A Prometheus text-format metrics registry (exposition format 0.0.4), single-threaded: every
// update and render() happens on the event loop, so there are no atomics or locks.
//
//   metrics::Registry registry;
//   auto& requests = registry.counter("tether_proxy_requests_total", "Requests answered.", {"code"});
//   requests.with({"200"}).inc();
//   auto& latency = registry.histogram("solverd_cancel_to_exit_seconds", "Cancel to exit.");
//   latency.with({}).observe(0.0012);
//   registry.callbackGauge("solverd_jobs_running", "Jobs running.", [&] { return running; });
//   std::string text = registry.render();   // served at GET /metrics
//
// References returned by counter()/gauge()/histogram() and Family::with() stay valid for the life
// of the registry, so hot paths look a series up once and keep the reference.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tether::metrics {

// The values of a family's labels, in the order of its label names.
using LabelValues = std::vector<std::string>;

// Buckets in seconds: 50µs .. 60s (DESIGN.md "Histogram buckets start at 50µs").
const std::vector<double>& defaultLatencyBuckets();

// Content-Type of render()'s output, for the /metrics response.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  // A counter only goes up; a negative delta is ignored.
  void inc(double delta = 1.0) {
    if (delta > 0) value_ += delta;
  }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Gauge {
 public:
  void set(double value) { value_ = value; }
  void inc(double delta = 1.0) { value_ += delta; }
  void dec(double delta = 1.0) { value_ -= delta; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Histogram {
 public:
  // `bounds` are the upper bounds in increasing order, without +Inf.
  explicit Histogram(const std::vector<double>* bounds);
  // Adds one observation (seconds for latency histograms).
  void observe(double value);
  const std::vector<double>& bounds() const { return *bounds_; }
  // Per-bucket (not cumulative) counts; one more than bounds(): the last is the +Inf bucket.
  const std::vector<uint64_t>& bucketCounts() const { return counts_; }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  const std::vector<double>* bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

enum class Type { Counter, Gauge, Histogram };

// One metric name with its label names; a series per distinct set of label values.
template <typename Metric>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::vector<double> buckets)
      : label_names_(std::move(label_names)), buckets_(std::move(buckets)) {}

  // The series with these label values, created at zero on first use. The reference is stable.
  // Crashes if the number of values differs from the number of label names: a programming error.
  Metric& with(const LabelValues& values);
  Metric& with(std::initializer_list<std::string_view> values) {
    return with(LabelValues(values.begin(), values.end()));
  }
  // The series of a family without labels.
  Metric& get() { return with(LabelValues{}); }

  const std::vector<std::string>& labelNames() const { return label_names_; }
  // Every series, ordered by label values (render() output is deterministic).
  const std::map<LabelValues, std::unique_ptr<Metric>>& series() const { return series_; }

 private:
  std::vector<std::string> label_names_;
  std::vector<double> buckets_;  // histograms only
  std::map<LabelValues, std::unique_ptr<Metric>> series_;
};

// A sample produced by a callback family at render time.
struct Sample {
  LabelValues labels;
  double value = 0;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers a family, or returns the existing one of that name. Names and label names must be
  // valid Prometheus names ([a-zA-Z_:][a-zA-Z0-9_:]*, labels without ':'); registering a name
  // twice with another type or other labels crashes: both are programming errors found at start-up.
  Family<Counter>& counter(std::string_view name, std::string_view help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string_view name, std::string_view help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string_view name, std::string_view help,
                               std::vector<std::string> label_names = {},
                               std::vector<double> buckets = defaultLatencyBuckets());

  // A gauge (or counter) whose value is read from `value` at every render(): for numbers the
  // daemon already keeps (queue length, open connections). Replaces an earlier callback of the
  // same name.
  void callbackGauge(std::string_view name, std::string_view help, std::function<double()> value);
  void callbackCounter(std::string_view name, std::string_view help,
                       std::function<double()> value);
  // A labelled callback family: `samples` returns one Sample per series.
  void callbackFamily(Type type, std::string_view name, std::string_view help,
                      std::vector<std::string> label_names,
                      std::function<std::vector<Sample>()> samples);

  // The exposition text of every family in registration order: # HELP, # TYPE, then the series
  // (histograms as _bucket{le=...} cumulative with +Inf, _sum, _count). Ends with a newline.
  std::string render() const;

 private:
  struct Entry;
  Entry& entry(std::string_view name, std::string_view help, Type type,
               const std::vector<std::string>& label_names);
  std::vector<std::unique_ptr<Entry>> entries_;
};

// Text helpers, exposed for the tests and for daemons that print metric-like lines.
// Formats a sample value: integers without a decimal point, "+Inf", "-Inf", "NaN", otherwise
// the shortest text that reads back to the same double.
std::string formatValue(double value);
// Escapes a label value: backslash, double quote and newline (exposition format).
std::string escapeLabelValue(std::string_view value);

[[noreturn]] void labelCountMismatch(size_t expected, size_t got);

template <typename Metric>
Metric& Family<Metric>::with(const LabelValues& values) {
  auto it = series_.find(values);
  if (it != series_.end()) return *it->second;
  if (values.size() != label_names_.size()) labelCountMismatch(label_names_.size(), values.size());
  std::unique_ptr<Metric> metric;
  if constexpr (std::is_same_v<Metric, Histogram>) {
    metric = std::make_unique<Histogram>(&buckets_);
  } else {
    metric = std::make_unique<Metric>();
  }
  return *series_.emplace(values, std::move(metric)).first->second;
}

}  // namespace tether::metrics
