// Metrics: a small registry of counters, gauges and histograms and their rendering in the Prometheus text
// exposition format 0.0.4 (what GET /metrics on http.ops_listen answers, PROTOCOL §6).
//
// Used from the service loop thread only: no atomics, no locks. A metric is a family (name, help, type)
// and one sample per label set; asking for the same name and labels again returns the same sample, so a
// module can keep the reference. Label cardinality is the caller's contract: label values must come from
// a small fixed set (a topic kind, an error code, a state), never from a hardware, command or campaign id.
//
// Contracts (programming errors, thrown as std::logic_error at registration, never at render): names
// match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and not "le" or a "__" prefix; one
// name has one type and one help text; histogram bounds are finite and strictly increasing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dispatch::service::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Monotonic. `set` mirrors a count kept elsewhere (a module's own counter struct); it must not go down.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { value_ += n; }
  void set(std::uint64_t v) { value_ = v; }
  std::uint64_t value() const { return value_; }

 private:
  std::uint64_t value_ = 0;
};

class Gauge {
 public:
  void set(double v) { value_ = v; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

// Observations counted into buckets with upper bounds `bounds` (le) plus +Inf. Rendered cumulative.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per bucket, not cumulative; one more than bounds() (the last is the +Inf bucket).
  const std::vector<std::uint64_t>& buckets() const { return buckets_; }
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

// Bounds for durations in seconds: 0.5 ms .. 10 s.
std::vector<double> latency_buckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  enum class Type { counter, gauge, histogram };
  // Declares a family without a sample (rendered with # HELP and # TYPE only until a sample exists), so
  // that every family a scrape can contain is known from the start (dispatchd --print-metrics).
  void describe(std::string_view name, std::string_view help, Type type,
                const std::vector<double>& bounds = {});

  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // `bounds` of a family's first histogram apply to all its label sets.
  Histogram& histogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                       const Labels& labels = {});

  // The text format: families in registration order, each with # HELP and # TYPE, samples in the order
  // their label sets were first asked for. Ends with a newline.
  std::string render() const;
  // Every family name, in registration order.
  std::vector<std::string> names() const;
  // Every sample name a scrape can contain: a counter's or gauge's family name; a histogram's
  // <name>_bucket, <name>_sum and <name>_count.
  std::vector<std::string> series_names() const;

 private:
  struct Sample {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    Type type;
    std::vector<double> bounds;
    std::vector<Sample> samples;
  };

  Family& family(std::string_view name, std::string_view help, Type type, const std::vector<double>* bounds);
  Sample& sample(std::string_view name, std::string_view help, Type type, const Labels& labels,
                 const std::vector<double>* bounds);

  std::vector<Family> families_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
};

// The text format's escaping: label values escape backslash, double quote and newline; help texts
// backslash and newline.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// A sample value: integers without a fraction, "+Inf", "-Inf", "NaN", else the shortest round-trip form.
std::string format_value(double v);

}  // namespace dispatch::service::metrics
