// Logging: structured fields in JSON and text, escaping of device-controlled strings, and the per-key
// rate limit of log_limited() (with an injected clock).
#include "service/logging.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

using namespace dispatch;
using service::LogRateLimiter;

namespace {

// Installs a logger writing the format's lines into `lines` for the test's lifetime.
struct CapturedLog {
  std::vector<std::string> lines;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();

  explicit CapturedLog(const std::string& format, spdlog::level::level_enum level = spdlog::level::debug) {
    auto sink = service::make_log_sink(format, [this](std::string_view l) { lines.emplace_back(l); });
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(level);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
};

}  // namespace

TEST_CASE("json log lines carry the ids as fields, not in the message") {
  CapturedLog log("json");
  service::log_info({{"hardware_id", "dev-1"},
                     {"command_id", "c-42"},
                     {"campaign_id", "k-1"},
                     {"package_id", "p-1"},
                     {"request_id", "r-1"},
                     {"correlation_id", "x-1"}},
                    "command scheduled for {} devices", 3);
  REQUIRE(log.lines.size() == 1);
  REQUIRE(log.lines[0].back() == '\n');
  auto j = nlohmann::json::parse(log.lines[0]);
  CHECK(j["level"] == "info");
  CHECK(j["msg"] == "command scheduled for 3 devices");
  CHECK(j["hardware_id"] == "dev-1");
  CHECK(j["command_id"] == "c-42");
  CHECK(j["campaign_id"] == "k-1");
  CHECK(j["package_id"] == "p-1");
  CHECK(j["request_id"] == "r-1");
  CHECK(j["correlation_id"] == "x-1");
  CHECK(j.contains("time"));
}

TEST_CASE("an empty field is left out and a field cannot replace time, level or msg") {
  CapturedLog log("json");
  service::log_warn({{"request_id", ""}, {"msg", "forged"}, {"level", "debug"}}, "real");
  auto j = nlohmann::json::parse(log.lines.at(0));
  CHECK_FALSE(j.contains("request_id"));
  CHECK(j["msg"] == "real");
  CHECK(j["level"] == "warning");
  CHECK(j["field_msg"] == "forged");
  CHECK(j["field_level"] == "debug");
}

TEST_CASE("json escaping keeps one valid line whatever a device sends") {
  CapturedLog log("json");
  const std::string hostile = std::string("a\"b\\c\nd\re\tf\x01g\x7fh") + "\xff\xfe" + "}{";
  service::log_warn({{"hardware_id", hostile}}, "dropping: {}", hostile);
  REQUIRE(log.lines.size() == 1);
  const std::string& line = log.lines[0];
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find('\r') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  const std::string hw = j["hardware_id"];
  CHECK(hw.substr(0, 13) == std::string("a\"b\\c\nd\re\tf\x01g"));
}

TEST_CASE("text log lines put the fields after the message as key=value") {
  CapturedLog log("text");
  service::log_info({{"campaign_id", "k-1"}, {"hardware_id", "dev 2"}, {"command_id", ""}},
                    "campaign started");
  REQUIRE(log.lines.size() == 1);
  const std::string& line = log.lines[0];
  CHECK(line.find(" info campaign started campaign_id=k-1 hardware_id=\"dev 2\"\n") != std::string::npos);
  CHECK(line.find("command_id") == std::string::npos);
}

TEST_CASE("text escaping: no device string starts a new line or splits a field") {
  struct {
    const char* rule;
    std::string in;
    std::string message;  // escape_text
    std::string value;    // escape_text_value
  } cases[] = {
      {"plain text is unchanged", "dev-1", "dev-1", "dev-1"},
      {"newline and carriage return", "a\nb\rc", "a\\nb\\rc", "a\\nb\\rc"},
      {"tab", "a\tb", "a\\tb", "a\\tb"},
      {"other control characters and DEL", std::string("a\x01\x1b\x7f", 4), "a\\x01\\x1b\\x7f",
       "a\\x01\\x1b\\x7f"},
      {"backslash", "a\\b", "a\\\\b", "a\\\\b"},
      {"a space quotes a value", "a b", "a b", "\"a b\""},
      {"a quote is escaped inside quotes", "a\"b", "a\"b", "\"a\\\"b\""},
      {"an equals sign quotes a value", "k=v", "k=v", "\"k=v\""},
      {"an empty value is quoted", "", "", "\"\""},
      {"a forged field with a newline", "x\n2026-01-01T00:00:00.000Z error forged",
       "x\\n2026-01-01T00:00:00.000Z error forged", "\"x\\n2026-01-01T00:00:00.000Z error forged\""},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(service::escape_text(c.in) == c.message);
    CHECK(service::escape_text_value(c.in) == c.value);
  }

  CapturedLog log("text");
  service::log_warn({{"hardware_id", "evil\nfake line"}}, "bad {}", "reply\r\n");
  REQUIRE(log.lines.size() == 1);
  CHECK(log.lines[0].find('\n') == log.lines[0].size() - 1);
  CHECK(log.lines[0].find("bad reply\\r\\n hardware_id=\"evil\\nfake line\"") != std::string::npos);
}

TEST_CASE("the rate limiter writes a burst per key and window, then counts") {
  std::int64_t now = 1000;
  LogRateLimiter limiter(3, 10'000, [&] { return now; });
  int written = 0;
  for (int i = 0; i < 10; ++i) {
    auto a = limiter.admit("reply.malformed");
    CHECK(a.suppressed == 0);
    written += a.write ? 1 : 0;
  }
  CHECK(written == 3);
  // Another key has its own budget.
  CHECK(limiter.admit("metadata.malformed").write);
  // Nothing is reported while the window lasts.
  now += 9'999;
  CHECK(limiter.take_expired().empty());
  CHECK_FALSE(limiter.admit("reply.malformed").write);
  // The window has ended: the next line of the key first reports what was suppressed.
  now += 1;
  auto a = limiter.admit("reply.malformed");
  CHECK(a.write);
  CHECK(a.suppressed == 8);
  CHECK(limiter.take_expired().empty());
}

TEST_CASE("the rate limiter reports a window's suppressed count when the window ends") {
  std::int64_t now = 0;
  LogRateLimiter limiter(2, 1'000, [&] { return now; });
  for (int i = 0; i < 2002; ++i) (void)limiter.admit("flood");
  (void)limiter.admit("quiet");
  now = 1'000;
  auto expired = limiter.take_expired();
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].first == "flood");
  CHECK(expired[0].second == 2000);
  // Reported once: the count was reset, and the next line of the key reports nothing more.
  CHECK(limiter.take_expired().empty());
  auto a = limiter.admit("flood");
  CHECK(a.write);
  CHECK(a.suppressed == 0);
}

TEST_CASE("log_limited writes at most the burst of a key per window") {
  CapturedLog log("json");
  for (int i = 0; i < 100; ++i) {
    service::log_limited(spdlog::level::warn, "test.flood", {{"hardware_id", "dev-" + std::to_string(i)}},
                         "dropping a malformed reply");
  }
  CHECK(log.lines.size() == 10u);  // the default burst
  // A line under the logger's level is neither written nor counted.
  auto logger = spdlog::default_logger();
  logger->set_level(spdlog::level::err);
  service::log_limited(spdlog::level::warn, "test.flood", {}, "not written");
  logger->set_level(spdlog::level::debug);
  CHECK(log.lines.size() == 10u);  // the default burst
}
