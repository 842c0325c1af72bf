// Logging: spdlog to stdout, plain text or JSON lines. Callers never pass a token, a key or a signature.
//
// Ids travel as structured fields, not as words in the message: in JSON they are top-level keys
// (`hardware_id`, `command_id`, `campaign_id`, `package_id`, `request_id`, `correlation_id`), in text they
// follow the message as `key=value`. Every value and the message are escaped: a device-controlled string
// can neither break a JSON line nor start a new line in text mode.
//
// Levels: info is what an operator acts on (start and stop, the broker link, campaign state changes,
// packages); a per-device event (a reply recorded, a token served, a device registered) is debug.
//
// Flood bound: a warning a remote party can trigger is logged through log_limited() with a key naming
// its kind (one per call site or reason, never per device). At most log.rate_limit_burst lines per key are
// written per log.rate_limit_window_s (defaults 10 per 10 s); the rest are counted and reported as one "N
// similar suppressed" line when the window has ended (flush_log_suppressions(), called by the service loop's
// timer) or before the key's next line.
#pragma once

#include <fmt/format.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace dispatch::service {

// One structured field; a field with an empty value is left out of the line (an absent optional id).
// The views must outlive the log call (a call's temporaries do).
struct LogField {
  std::string_view key;
  std::string_view value;
};
using LogFields = std::initializer_list<LogField>;

// format: "text" | "json"; level: trace debug info warn error; the bound of log_limited().
void setup_logging(const std::string& format, const std::string& level, int burst = 10,
                   std::int64_t window_ms = 10'000);

// A sink writing the format's lines to `write` (stdout when empty); for setup_logging and tests.
std::shared_ptr<spdlog::sinks::sink> make_log_sink(const std::string& format,
                                                   std::function<void(std::string_view line)> write = {});

// Text-mode escaping: control characters (newline, carriage return, tab, the rest of C0, DEL) become
// \n \r \t \xNN and a backslash becomes \\. escape_text_value() also quotes a value that is empty or
// holds a space, '"' or '=' so that `key=value` pairs split unambiguously.
std::string escape_text(std::string_view s);
std::string escape_text_value(std::string_view s);

// Per-key rate limit of log lines with an injectable clock (milliseconds, any monotonic origin).
// Thread-safe: Paho's and the HTTP listener's threads log too.
class LogRateLimiter {
 public:
  using Clock = std::function<std::int64_t()>;
  LogRateLimiter(int burst, std::int64_t window_ms, Clock clock);

  struct Admission {
    bool write = false;            // write this line
    std::uint64_t suppressed = 0;  // lines of this key suppressed before it, to report first
  };
  // The first `burst` lines of a key within a window are written; later ones are counted. A window
  // starts with the first line after the previous one ended.
  Admission admit(std::string_view key);
  // New limits for the windows that start from now on.
  void set_limits(int burst, std::int64_t window_ms);
  // Keys whose window has ended with lines suppressed, with their counts; those counts are reset.
  std::vector<std::pair<std::string, std::uint64_t>> take_expired();

 private:
  struct Window {
    std::int64_t start = 0;
    int written = 0;
    std::uint64_t suppressed = 0;
  };
  Clock clock_;
  std::mutex mu_;
  int burst_;                                           // guarded by mu_
  std::int64_t window_ms_;                              // guarded by mu_
  std::map<std::string, Window, std::less<>> windows_;  // guarded by mu_; one entry per call-site key
};

namespace detail {
// Writes one line with fields through the default logger (the sinks read the fields of this thread).
void write_log(spdlog::level::level_enum level, LogFields fields, std::string_view message);
LogRateLimiter& log_limiter();
// "N similar suppressed" at warn, with the key as field `suppressed_key`.
void write_suppressed(std::string_view key, std::uint64_t n);
}  // namespace detail

template <typename... Args>
void log(spdlog::level::level_enum level, LogFields fields, fmt::format_string<Args...> f, Args&&... args) {
  if (!spdlog::default_logger_raw()->should_log(level)) return;
  detail::write_log(level, fields, fmt::format(f, std::forward<Args>(args)...));
}

// Rate limited by `key` (see above).
template <typename... Args>
void log_limited(spdlog::level::level_enum level, std::string_view key, LogFields fields,
                 fmt::format_string<Args...> f, Args&&... args) {
  if (!spdlog::default_logger_raw()->should_log(level)) return;
  auto a = detail::log_limiter().admit(key);
  if (a.suppressed > 0) detail::write_suppressed(key, a.suppressed);
  if (!a.write) return;
  detail::write_log(level, fields, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
void log_debug(LogFields fields, fmt::format_string<Args...> f, Args&&... args) {
  log(spdlog::level::debug, fields, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_info(LogFields fields, fmt::format_string<Args...> f, Args&&... args) {
  log(spdlog::level::info, fields, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_warn(LogFields fields, fmt::format_string<Args...> f, Args&&... args) {
  log(spdlog::level::warn, fields, f, std::forward<Args>(args)...);
}
template <typename... Args>
void log_error(LogFields fields, fmt::format_string<Args...> f, Args&&... args) {
  log(spdlog::level::err, fields, f, std::forward<Args>(args)...);
}

// Writes the "N similar suppressed" lines of the windows that have ended. Called by the service loop.
void flush_log_suppressions();

}  // namespace dispatch::service
