#include "service/logging.h"

#include <fmt/chrono.h>
#include <spdlog/sinks/base_sink.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "protocol/core/time.h"

namespace dispatch::service {

namespace {

// The fields of the line being written on this thread. spdlog's logger is synchronous: the sink runs
// inside the log call, on the caller's thread, so the fields need not be copied into the message.
thread_local const LogFields* t_fields = nullptr;

using Write = std::function<void(std::string_view)>;

void write_stdout(std::string_view line) { std::fwrite(line.data(), 1, line.size(), stdout); }

std::string level_name(spdlog::level::level_enum l) {
  auto v = spdlog::level::to_string_view(l);
  return std::string(v.data(), v.size());
}

// One JSON object per line; nlohmann does the escaping (invalid UTF-8 is replaced) so any message or field
// stays valid JSON. Fields cannot replace time, level or msg.
class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JsonSink(Write w) : write_(std::move(w)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
    nlohmann::json j;
    j["time"] = core::format_rfc3339(ms);
    j["level"] = level_name(msg.level);
    j["msg"] = std::string(msg.payload.data(), msg.payload.size());
    if (t_fields != nullptr) {
      for (const auto& f : *t_fields) {
        if (f.value.empty()) continue;
        std::string key(f.key);
        if (key == "time" || key == "level" || key == "msg") key = "field_" + key;
        j[key] = std::string(f.value);
      }
    }
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    write_(line);
  }
  void flush_() override { std::fflush(stdout); }

 private:
  Write write_;
};

// "<time> <level> <message> key=value ...", one line whatever the message holds.
class TextSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit TextSink(Write w) : write_(std::move(w)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto since = msg.time.time_since_epoch();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
    std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::string line = fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z {} ", tm, ms, level_name(msg.level));
    line += escape_text(std::string_view(msg.payload.data(), msg.payload.size()));
    if (t_fields != nullptr) {
      for (const auto& f : *t_fields) {
        if (f.value.empty()) continue;
        line += ' ';
        line += escape_text(f.key);
        line += '=';
        line += escape_text_value(f.value);
      }
    }
    line += '\n';
    write_(line);
  }
  void flush_() override { std::fflush(stdout); }

 private:
  Write write_;
};

void append_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += fmt::format("\\x{:02x}", u);
        } else {
          out += c;
        }
    }
  }
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string escape_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_escaped(out, s);
  return out;
}

std::string escape_text_value(std::string_view s) {
  const bool quote = s.empty() || s.find_first_of(" \"=") != std::string_view::npos;
  if (!quote) return escape_text(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else {
      append_escaped(out, std::string_view(&c, 1));
    }
  }
  out += '"';
  return out;
}

std::shared_ptr<spdlog::sinks::sink> make_log_sink(const std::string& format, Write write) {
  if (!write) write = write_stdout;
  if (format == "json") return std::make_shared<JsonSink>(std::move(write));
  return std::make_shared<TextSink>(std::move(write));
}

void setup_logging(const std::string& format, const std::string& level, int burst, std::int64_t window_ms) {
  detail::log_limiter().set_limits(burst, window_ms);
  auto logger = std::make_shared<spdlog::logger>("dispatchd", make_log_sink(format));
  logger->set_level(spdlog::level::from_str(level));
  // Every written line is flushed: a debug line must not wait in stdio's buffer for the next info line
  // (a log file or pipe is fully buffered), and log_limited() keeps the number of lines bounded.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

LogRateLimiter::LogRateLimiter(int burst, std::int64_t window_ms, Clock clock)
    : clock_(std::move(clock)), burst_(burst), window_ms_(window_ms) {}

void LogRateLimiter::set_limits(int burst, std::int64_t window_ms) {
  std::lock_guard lock(mu_);
  burst_ = burst;
  window_ms_ = window_ms;
}

LogRateLimiter::Admission LogRateLimiter::admit(std::string_view key) {
  const std::int64_t now = clock_();
  std::lock_guard lock(mu_);
  auto it = windows_.find(key);
  if (it == windows_.end()) it = windows_.emplace(std::string(key), Window{now, 0, 0}).first;
  Window& w = it->second;
  Admission a;
  if (now - w.start >= window_ms_) {
    a.suppressed = w.suppressed;
    w = Window{now, 0, 0};
  }
  if (w.written < burst_) {
    ++w.written;
    a.write = true;
  } else {
    ++w.suppressed;
  }
  return a;
}

std::vector<std::pair<std::string, std::uint64_t>> LogRateLimiter::take_expired() {
  const std::int64_t now = clock_();
  std::vector<std::pair<std::string, std::uint64_t>> out;
  std::lock_guard lock(mu_);
  for (auto& [key, w] : windows_) {
    if (w.suppressed == 0 || now - w.start < window_ms_) continue;
    out.emplace_back(key, w.suppressed);
    w.suppressed = 0;
  }
  return out;
}

namespace detail {

void write_log(spdlog::level::level_enum level, LogFields fields, std::string_view message) {
  const LogFields* saved = t_fields;
  t_fields = &fields;
  spdlog::default_logger_raw()->log(level, "{}", message);
  t_fields = saved;
}

LogRateLimiter& log_limiter() {
  static LogRateLimiter limiter(10, 10'000, steady_ms);
  return limiter;
}

void write_suppressed(std::string_view key, std::uint64_t n) {
  write_log(spdlog::level::warn, {{"suppressed_key", key}}, fmt::format("{} similar suppressed", n));
}

}  // namespace detail

void flush_log_suppressions() {
  for (const auto& [key, n] : detail::log_limiter().take_expired()) detail::write_suppressed(key, n);
}

}  // namespace dispatch::service
