#include "service/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dispatch::service::metrics {

namespace {

bool valid_name(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

std::string render_labels(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && !le) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (le) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
  // The first bucket whose upper bound is >= v (le is inclusive); past the last bound: +Inf.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  ++buckets_[static_cast<std::size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += v;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
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

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<std::int64_t>(v));
  return fmt::format("{}", v);
}

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type,
                                   const std::vector<double>* bounds) {
  if (!valid_name(name, true)) throw std::logic_error(fmt::format("invalid metric name '{}'", name));
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    if (bounds) {
      for (std::size_t i = 0; i < bounds->size(); ++i) {
        if (!std::isfinite((*bounds)[i]) || (i > 0 && (*bounds)[i] <= (*bounds)[i - 1]))
          throw std::logic_error(fmt::format("histogram {}: bounds must be finite and increasing", name));
      }
    }
    Family f{std::string(name), std::string(help), type, bounds ? *bounds : std::vector<double>{}, {}};
    families_.push_back(std::move(f));
    it = by_name_.emplace(std::string(name), families_.size() - 1).first;
  }
  Family& f = families_[it->second];
  if (f.type != type || f.help != help)
    throw std::logic_error(fmt::format("metric {} registered twice with a different type or help", name));
  return f;
}

void Registry::describe(std::string_view name, std::string_view help, Type type,
                        const std::vector<double>& bounds) {
  (void)family(name, help, type, type == Type::histogram ? &bounds : nullptr);
}

Registry::Sample& Registry::sample(std::string_view name, std::string_view help, Type type,
                                   const Labels& labels, const std::vector<double>* bounds) {
  for (const auto& [k, v] : labels) {
    if (!valid_name(k, false) || k == "le" || k.rfind("__", 0) == 0)
      throw std::logic_error(fmt::format("invalid label name '{}' on {}", k, name));
  }
  Family& f = family(name, help, type, bounds);
  for (auto& s : f.samples) {
    if (s.labels == labels) return s;
  }
  Sample s;
  s.labels = labels;
  switch (type) {
    case Type::counter:
      s.counter = std::make_unique<Counter>();
      break;
    case Type::gauge:
      s.gauge = std::make_unique<Gauge>();
      break;
    case Type::histogram:
      s.histogram = std::make_unique<Histogram>(f.bounds);
      break;
  }
  f.samples.push_back(std::move(s));
  return f.samples.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
  return *sample(name, help, Type::counter, labels, nullptr).counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return *sample(name, help, Type::gauge, labels, nullptr).gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               const std::vector<double>& bounds, const Labels& labels) {
  return *sample(name, help, Type::histogram, labels, &bounds).histogram;
}

std::string Registry::render() const {
  std::string out;
  out.reserve(families_.size() * 256);
  for (const auto& f : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help), f.name,
                       f.type == Type::counter ? "counter"
                       : f.type == Type::gauge ? "gauge"
                                               : "histogram");
    for (const auto& s : f.samples) {
      if (s.counter) {
        out += fmt::format("{}{} {}\n", f.name, render_labels(s.labels), s.counter->value());
      } else if (s.gauge) {
        out += fmt::format("{}{} {}\n", f.name, render_labels(s.labels), format_value(s.gauge->value()));
      } else {
        const Histogram& h = *s.histogram;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.bounds().size(); ++i) {
          cumulative += h.buckets()[i];
          const std::string le = format_value(h.bounds()[i]);
          out += fmt::format("{}_bucket{} {}\n", f.name, render_labels(s.labels, &le), cumulative);
        }
        const std::string inf = "+Inf";
        out += fmt::format("{}_bucket{} {}\n", f.name, render_labels(s.labels, &inf), h.count());
        out += fmt::format("{}_sum{} {}\n", f.name, render_labels(s.labels), format_value(h.sum()));
        out += fmt::format("{}_count{} {}\n", f.name, render_labels(s.labels), h.count());
      }
    }
  }
  return out;
}

std::vector<std::string> Registry::series_names() const {
  std::vector<std::string> out;
  for (const auto& f : families_) {
    if (f.type == Type::histogram) {
      out.push_back(f.name + "_bucket");
      out.push_back(f.name + "_sum");
      out.push_back(f.name + "_count");
    } else {
      out.push_back(f.name);
    }
  }
  return out;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  out.reserve(families_.size());
  for (const auto& f : families_) out.push_back(f.name);
  return out;
}

}  // namespace dispatch::service::metrics
