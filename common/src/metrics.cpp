#include "tether/common/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tether::metrics {

const std::vector<double>& defaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};
  return kBuckets;
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), counts_(bounds->size() + 1, 0) {}

void Histogram::observe(double value) {
  // Bucket i counts values <= bounds[i] (Prometheus `le`); the last one is +Inf.
  const auto it = std::lower_bound(bounds_->begin(), bounds_->end(), value);
  ++counts_[static_cast<size_t>(it - bounds_->begin())];
  ++count_;
  sum_ += value;
}

void labelCountMismatch(size_t expected, size_t got) {
  std::fprintf(stderr, "metrics: a family with %zu labels was given %zu values\n", expected, got);
  std::abort();
}

namespace {

[[noreturn]] void badRegistration(std::string_view name, const char* what) {
  std::fprintf(stderr, "metrics: %.*s: %s\n", static_cast<int>(name.size()), name.data(), what);
  std::abort();
}

bool validName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                       (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

std::string escapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

const char* typeName(Type type) {
  switch (type) {
    case Type::Counter: return "counter";
    case Type::Gauge: return "gauge";
    case Type::Histogram: return "histogram";
  }
  return "untyped";
}

// `{a="x",b="y"}` with an optional extra label (histogram `le`); empty when there are none.
void appendLabels(std::string& out, const std::vector<std::string>& names,
                  const LabelValues& values, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void appendSample(std::string& out, std::string_view name, std::string_view suffix,
                  const std::vector<std::string>& label_names, const LabelValues& values,
                  double value, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  appendLabels(out, label_names, values, extra_name, extra_value);
  out += ' ';
  out += formatValue(value);
  out += '\n';
}

void appendHistogram(std::string& out, std::string_view name,
                     const std::vector<std::string>& label_names, const LabelValues& values,
                     const Histogram& h) {
  uint64_t cumulative = 0;
  const auto& counts = h.bucketCounts();
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    cumulative += counts[i];
    appendSample(out, name, "_bucket", label_names, values, static_cast<double>(cumulative), "le",
                 formatValue(h.bounds()[i]));
  }
  cumulative += counts.back();
  appendSample(out, name, "_bucket", label_names, values, static_cast<double>(cumulative), "le",
               "+Inf");
  appendSample(out, name, "_sum", label_names, values, h.sum());
  appendSample(out, name, "_count", label_names, values, static_cast<double>(h.count()));
}

}  // namespace

struct Registry::Entry {
  std::string name;
  std::string help;
  Type type = Type::Counter;
  std::vector<std::string> label_names;
  std::unique_ptr<Family<Counter>> counters;
  std::unique_ptr<Family<Gauge>> gauges;
  std::unique_ptr<Family<Histogram>> histograms;
  std::function<std::vector<Sample>()> callback;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::entry(std::string_view name, std::string_view help, Type type,
                                 const std::vector<std::string>& label_names) {
  for (auto& e : entries_) {
    if (e->name != name) continue;
    if (e->type != type) badRegistration(name, "registered twice with different types");
    if (e->label_names != label_names) badRegistration(name, "registered twice with other labels");
    return *e;
  }
  if (!validName(name, true)) badRegistration(name, "invalid metric name");
  for (const auto& label : label_names) {
    if (!validName(label, false) || label.rfind("__", 0) == 0 || label == "le") {
      badRegistration(name, "invalid label name");
    }
  }
  auto e = std::make_unique<Entry>();
  e->name = std::string(name);
  e->help = std::string(help);
  e->type = type;
  e->label_names = label_names;
  entries_.push_back(std::move(e));
  return *entries_.back();
}

Family<Counter>& Registry::counter(std::string_view name, std::string_view help,
                                   std::vector<std::string> label_names) {
  Entry& e = entry(name, help, Type::Counter, label_names);
  if (e.callback) badRegistration(name, "already a callback family");
  if (!e.counters) e.counters = std::make_unique<Family<Counter>>(std::move(label_names), std::vector<double>{});
  return *e.counters;
}

Family<Gauge>& Registry::gauge(std::string_view name, std::string_view help,
                               std::vector<std::string> label_names) {
  Entry& e = entry(name, help, Type::Gauge, label_names);
  if (e.callback) badRegistration(name, "already a callback family");
  if (!e.gauges) e.gauges = std::make_unique<Family<Gauge>>(std::move(label_names), std::vector<double>{});
  return *e.gauges;
}

Family<Histogram>& Registry::histogram(std::string_view name, std::string_view help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> buckets) {
  if (!std::is_sorted(buckets.begin(), buckets.end()) ||
      std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end()) {
    badRegistration(name, "histogram buckets must increase");
  }
  Entry& e = entry(name, help, Type::Histogram, label_names);
  if (!e.histograms) {
    e.histograms = std::make_unique<Family<Histogram>>(std::move(label_names), std::move(buckets));
  }
  return *e.histograms;
}

void Registry::callbackFamily(Type type, std::string_view name, std::string_view help,
                              std::vector<std::string> label_names,
                              std::function<std::vector<Sample>()> samples) {
  if (type == Type::Histogram) badRegistration(name, "a callback family cannot be a histogram");
  Entry& e = entry(name, help, type, label_names);
  if (e.counters || e.gauges) badRegistration(name, "already a family with stored values");
  e.callback = std::move(samples);
}

void Registry::callbackGauge(std::string_view name, std::string_view help,
                             std::function<double()> value) {
  callbackFamily(Type::Gauge, name, help, {},
                 [fn = std::move(value)] { return std::vector<Sample>{{{}, fn()}}; });
}

void Registry::callbackCounter(std::string_view name, std::string_view help,
                               std::function<double()> value) {
  callbackFamily(Type::Counter, name, help, {},
                 [fn = std::move(value)] { return std::vector<Sample>{{{}, fn()}}; });
}

std::string Registry::render() const {
  std::string out;
  out.reserve(4096);
  for (const auto& e : entries_) {
    out += "# HELP ";
    out += e->name;
    out += ' ';
    out += escapeHelp(e->help);
    out += "\n# TYPE ";
    out += e->name;
    out += ' ';
    out += typeName(e->type);
    out += '\n';
    if (e->callback) {
      std::vector<Sample> samples = e->callback();
      std::sort(samples.begin(), samples.end(),
                [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
      for (const auto& s : samples) {
        if (s.labels.size() != e->label_names.size()) {
          labelCountMismatch(e->label_names.size(), s.labels.size());
        }
        appendSample(out, e->name, {}, e->label_names, s.labels, s.value);
      }
    } else if (e->counters) {
      for (const auto& [values, c] : e->counters->series()) {
        appendSample(out, e->name, {}, e->label_names, values, c->value());
      }
    } else if (e->gauges) {
      for (const auto& [values, g] : e->gauges->series()) {
        appendSample(out, e->name, {}, e->label_names, values, g->value());
      }
    } else if (e->histograms) {
      for (const auto& [values, h] : e->histograms->series()) {
        appendHistogram(out, e->name, e->label_names, values, *h);
      }
    }
  }
  return out;
}

std::string formatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Integral values (counts) print without exponent or point, up to 2^53 where doubles are exact.
  if (value == std::trunc(value) && std::fabs(value) < 9007199254740992.0) {
    return std::to_string(static_cast<long long>(value));
  }
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc{}) return "NaN";
  return std::string(buf, end);
}

std::string escapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace tether::metrics
