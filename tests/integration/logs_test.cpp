// dispatchd's log under a hostile device (issue 14): JSON lines with ids as fields, and a flood of
// malformed replies bounded to a burst per window plus "N similar suppressed" lines that account for
// every dropped message.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/daemon_fixture.h"

using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

struct FloodLog {
  int written = 0;              // "dropping a malformed reply" lines
  std::int64_t suppressed = 0;  // summed over the reply.malformed "similar suppressed" lines
  int suppressed_lines = 0;
  int unparsable = 0;     // lines that are not one JSON object
  bool fields_ok = true;  // every written line names the device as a field, not in the message
};

FloodLog read_flood(const std::string& log) {
  FloodLog f;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_object()) {
      ++f.unparsable;
      continue;
    }
    const std::string msg = j.value("msg", "");
    if (msg.rfind("dropping a malformed reply", 0) == 0) {
      ++f.written;
      if (j.value("hardware_id", "") != "dev-flood" || msg.find("dev-flood") != std::string::npos) {
        f.fields_ok = false;
      }
    } else if (j.value("suppressed_key", "") == "reply.malformed") {
      ++f.suppressed_lines;
      f.suppressed += std::stoll(msg);  // "N similar suppressed"
    }
  }
  return f;
}

}  // namespace

TEST_CASE("a device flooding malformed replies gets a bounded number of log lines", "[integration][logs]") {
  Broker broker;
  Daemon daemon(broker,
                {"--log.format", "json", "--log.rate_limit_burst", "5", "--log.rate_limit_window_s", "1"});
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));

  auto device = connected_client(broker, 64);
  constexpr int k_flood = 2000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < k_flood; ++i) {
    // A reply line whose status is neither s nor f, with a quote and a control character in it.
    REQUIRE(device->publish("esthesis/command/reply/dev-flood", "abc x \"bad\x01" + std::to_string(i), 1));
  }

  // Every message is accounted for once the last window has ended and the timer reported it.
  FloodLog f;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    f = read_flood(daemon.log());
    if (f.written + f.suppressed >= k_flood) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "log flood: %d messages, %d lines written, %lld suppressed in %d lines, %lld s\n",
               k_flood, f.written, static_cast<long long>(f.suppressed), f.suppressed_lines,
               static_cast<long long>(seconds));
  INFO("flood and report took " << seconds << " s; log tail:\n" << daemon.log_tail());
  CHECK(f.unparsable == 0);
  CHECK(f.fields_ok);
  CHECK(f.written + f.suppressed == k_flood);
  CHECK(f.suppressed_lines >= 1);
  // At most the burst per 1 s window that the flood and the report spanned.
  CHECK(f.written <= 5 * (seconds + 2));
  CHECK(f.written < 200);
}

TEST_CASE("warnings suppressed in the last window are reported when the service stops",
          "[integration][logs]") {
  Broker broker;
  Daemon daemon(broker,
                {"--log.format", "json", "--log.rate_limit_burst", "2", "--log.rate_limit_window_s", "3600"});
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  auto device = connected_client(broker);
  for (int i = 0; i < 50; ++i) {
    REQUIRE(device->publish("esthesis/command/reply/dev-flood", "abc x " + std::to_string(i), 1));
  }
  // The same client's request after the replies: answered once they were handled.
  REQUIRE(device->request("esthesis/api/v1/devices/list", R"({"limit":1})", 10000));
  CHECK(read_flood(daemon.log()).suppressed == 0);  // the hour-long window has not ended
  REQUIRE(daemon.terminate() == 0);
  FloodLog f = read_flood(daemon.log());
  INFO(daemon.log_tail());
  CHECK(f.written == 2);
  CHECK(f.suppressed == 48);
  CHECK(f.suppressed_lines == 1);
}
