// The operators' endpoints (PROTOCOL §6, http.ops_listen) of a real dispatchd against a real mosquitto,
// over real HTTP: /metrics counts what the service did by the exact amounts and parses as the Prometheus
// text format, /healthz and /readyz follow the loop and the broker, the Grafana dashboard names only
// exported metrics.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "protocol/core/signature.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/support/prom_text.h"

using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

const std::string k_dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
};

HttpAnswer http_get(int port, const std::string& path, const std::string& method = "GET") {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(15, 0);
  auto r = method == "POST" ? c.Post(path.c_str(), "", "text/plain") : c.Get(path.c_str());
  if (!r) return {};
  return {r->status, r->body};
}

PromText scrape(const Daemon& d) {
  auto a = http_get(d.ops_port(), "/metrics");
  REQUIRE(a.status == 200);
  auto parsed = parse_prom_text(a.body);
  INFO(a.body);
  for (const auto& e : parsed.errors) FAIL_CHECK(e);
  return parsed;
}

// Polls /metrics until `done` holds (false on timeout): the test waits on what the service reports.
bool wait_metrics(const Daemon& d, const std::function<bool(const PromText&)>& done, int timeout_ms = 10000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done(scrape(d))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::set<std::string> exported_series() {
  TempDir dir;
  Process p({k_dispatchd, "--print-metrics"}, {}, dir.path() + "/out.txt");
  REQUIRE(p.wait(10000) == 0);
  std::set<std::string> names;
  std::istringstream in(read_file(dir.path() + "/out.txt"));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) names.insert(line);
  }
  return names;
}

std::string public_pem() {
  static const std::string pem =
      dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  return pem;
}

}  // namespace

TEST_CASE("/metrics counts a command fan-out, its replies and refused input by the exact amounts",
          "[integration][ops]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  for (const char* hw : {"dev-1", "dev-2", "dev-3"}) {
    auto r = api(*platform, "devices/register", {{"hardware_id", hw}, {"public_key", public_pem()}});
    REQUIRE(r.value("hardware_id", "") == hw);
  }
  auto devices = connected_client(broker);
  REQUIRE(devices->subscribe("esthesis/command/request/+", 1));

  const PromText before = scrape(daemon);
  auto delta = [&](const PromText& after, const std::string& name,
                   std::vector<std::pair<std::string, std::string>> labels = {}) {
    return after.value_or_zero(name, labels) - before.value_or_zero(name, labels);
  };

  // Two API requests: a good send to three devices and a malformed one.
  auto sent =
      api(*platform, "commands/send", {{"type", "ping"}, {"hardware_ids", {"dev-1", "dev-2", "dev-3"}}});
  REQUIRE(sent.contains("command_id"));
  const std::string id = sent["command_id"];
  auto bad = platform->request("esthesis/api/v1/commands/send", "{not json", 10000);
  REQUIRE(bad);
  CHECK_THAT(*bad, Catch::Contains("bad_request"));

  // Three command lines; three replies: one valid (dev-1), one for an id never sent, one malformed.
  std::set<std::string> got;
  for (int i = 0; i < 3; ++i) {
    auto line = devices->next(10000);
    REQUIRE(line);
    got.insert(line->topic);
    CHECK(line->payload == id + " ps");
  }
  CHECK(got.size() == 3);
  REQUIRE(devices->publish("esthesis/command/reply/dev-1", id + " s pong", 1));
  REQUIRE(devices->publish("esthesis/command/reply/dev-2", "01ARZ3NDEKTSV4RRFFQ69G5FAV s pong", 1));
  REQUIRE(devices->publish("esthesis/command/reply/dev-3", "no-flag-here", 1));

  double replies = 0, acked = 0, sent_now = 0;
  const bool settled = wait_metrics(daemon, [&](const PromText& m) {
    replies = delta(m, "dispatch_inbound_messages_total", {{"kind", "command_reply"}});
    acked = delta(m, "dispatch_outbox_acknowledged_total");
    sent_now = delta(m, "dispatch_deliveries", {{"state", "sent"}});
    return replies == 3 && acked == 3 && sent_now == 2;
  });
  const double queued_now = delta(scrape(daemon), "dispatch_deliveries", {{"state", "queued"}});
  CAPTURE(replies, acked, sent_now, queued_now);
  REQUIRE(settled);
  const PromText after = scrape(daemon);
  CHECK(delta(after, "dispatch_inbound_messages_total", {{"kind", "api"}}) == 2);
  CHECK(delta(after, "dispatch_inbound_messages_total", {{"kind", "command_reply"}}) == 3);
  CHECK(delta(after, "dispatch_api_requests_total", {{"route", "commands/send"}, {"outcome", "ok"}}) == 1);
  CHECK(delta(after, "dispatch_api_requests_total",
              {{"route", "commands/send"}, {"outcome", "bad_request"}}) == 1);
  CHECK(delta(after, "dispatch_api_request_duration_seconds_count", {{"route", "commands/send"}}) == 2);
  CHECK(delta(after, "dispatch_dropped_messages_total", {{"reason", "reply_unknown"}}) == 1);
  CHECK(delta(after, "dispatch_dropped_messages_total", {{"reason", "reply_malformed"}}) == 1);
  CHECK(delta(after, "dispatch_dropped_messages_total", {{"reason", "reply_duplicate"}}) == 0);
  CHECK(delta(after, "dispatch_command_deliveries_enqueued_total") == 3);
  CHECK(delta(after, "dispatch_outbox_published_total") == 3);
  CHECK(delta(after, "dispatch_outbox_acknowledged_total") == 3);
  CHECK(delta(after, "dispatch_campaign_sends_total") == 0);
  CHECK(delta(after, "dispatch_commands") == 1);
  CHECK(delta(after, "dispatch_deliveries", {{"state", "succeeded"}}) == 1);
  CHECK(delta(after, "dispatch_deliveries", {{"state", "sent"}}) == 2);
  CHECK(delta(after, "dispatch_deliveries", {{"state", "queued"}}) == 0);
  CHECK(delta(after, "dispatch_command_reply_seconds_count", {{"outcome", "succeeded"}}) == 1);
  CHECK(delta(after, "dispatch_batch_duration_seconds_count") >= 1);
  CHECK(after.value("dispatch_mqtt_connected") == 1);
  CHECK(after.value("dispatch_outbox_waiting") == 0);
  CHECK(after.value("dispatch_outbox_in_flight") == 0);
  // The publish window is the fixture broker's Receive Maximum (max_inflight_messages 20, mqtt.max_inflight
  // 0).
  CHECK(after.value("dispatch_mqtt_inflight_max") == 20);
  CHECK(after.value("dispatch_event_queue_depth").has_value());

  // Bounded labels: no hardware id or command id in any series; every name is ours and exported.
  const std::set<std::string> exported = exported_series();
  for (const auto& [series, value] : after.series) {
    INFO(series);
    CHECK(series.rfind("dispatch_", 0) == 0);
    CHECK(series.find("dev-") == std::string::npos);
    CHECK(series.find(id) == std::string::npos);
    CHECK(exported.count(series.substr(0, series.find('{'))) == 1);
  }
}

TEST_CASE("dispatchd runs on the allocator it was built with and names it in its start-up log",
          "[integration][ops]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  // The libraries mapped into the running process.
  const std::string maps = read_file("/proc/" + std::to_string(daemon.process().pid()) + "/maps");
  REQUIRE_FALSE(maps.empty());
#ifdef DISPATCH_EXPECT_JEMALLOC
  CHECK(maps.find("libjemalloc") != std::string::npos);
  CHECK_THAT(daemon.log(), Catch::Contains("(memory allocator: jemalloc 5."));
#else
  CHECK(maps.find("libjemalloc") == std::string::npos);
  CHECK_THAT(daemon.log(), Catch::Contains("(memory allocator: glibc malloc)"));
#endif
}

TEST_CASE("/healthz answers while the loop runs, /readyz follows the broker with the reason",
          "[integration][ops]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  platform->disconnect();

  auto health = http_get(daemon.ops_port(), "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  auto ready = http_get(daemon.ops_port(), "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.body == "ready\n");

  broker.stop();
  HttpAnswer down;
  for (int i = 0; i < 200 && down.status != 503; ++i) {
    down = http_get(daemon.ops_port(), "/readyz");
    if (down.status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(down.status == 503);
  CHECK_THAT(down.body, Catch::StartsWith("mqtt: disconnected"));
  // The loop still runs: healthy, not ready; the gauge says why.
  CHECK(http_get(daemon.ops_port(), "/healthz").status == 200);
  CHECK(scrape(daemon).value("dispatch_mqtt_connected") == 0);

  broker.start();
  HttpAnswer up;
  for (int i = 0; i < 600 && up.status != 200; ++i) {
    up = http_get(daemon.ops_port(), "/readyz");
    if (up.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(up.status == 200);
  CHECK(up.body == "ready\n");
}

TEST_CASE("/readyz says why before the broker ever answered, other paths 404, other methods 405",
          "[integration][ops]") {
  Broker broker;
  broker.stop();
  Daemon daemon(broker);
  HttpAnswer first;
  for (int i = 0; i < 200 && first.status == 0; ++i) {
    first = http_get(daemon.ops_port(), "/readyz");
    if (first.status == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(first.status == 503);
  CHECK_THAT(first.body, Catch::StartsWith("mqtt: disconnected"));
  CHECK(http_get(daemon.ops_port(), "/healthz").status == 200);
  CHECK(http_get(daemon.ops_port(), "/nope").status == 404);
  CHECK(http_get(daemon.ops_port(), "/metrics", "POST").status == 405);
  // Metrics are served before the broker connects, too.
  CHECK(scrape(daemon).value("dispatch_mqtt_connected") == 0);
  broker.start();
}

TEST_CASE("every metric the Grafana dashboard names is exported by dispatchd", "[integration][ops]") {
  const std::set<std::string> exported = exported_series();
  REQUIRE(exported.count("dispatch_inbound_messages_total") == 1);
  std::ifstream in(std::string(DISPATCH_SOURCE_DIR) + "/contrib/grafana/dispatch.json");
  REQUIRE(in);
  const json dashboard = json::parse(in, nullptr, false);
  REQUIRE_FALSE(dashboard.is_discarded());
  // Panel queries ("expr") and template variable queries ("query", "definition").
  std::vector<std::string> exprs, others;
  std::function<void(const json&)> walk = [&](const json& j) {
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it->is_string() && it.key() == "expr") exprs.push_back(it->get<std::string>());
        if (it->is_string() && (it.key() == "query" || it.key() == "definition"))
          others.push_back(it->get<std::string>());
        walk(*it);
      }
    } else if (j.is_array()) {
      for (const auto& e : j) walk(e);
    }
  };
  walk(dashboard);
  REQUIRE(exprs.size() >= 6);
  const std::regex metric("dispatch_[a-zA-Z0-9_:]+");
  for (const auto& e : exprs) {
    INFO(e);
    int named = 0;
    for (std::sregex_iterator m(e.begin(), e.end(), metric), end; m != end; ++m) {
      ++named;
      CHECK(exported.count(m->str()) == 1);
    }
    CHECK(named >= 1);
  }
  for (const auto& e : others) {
    INFO(e);
    for (std::sregex_iterator m(e.begin(), e.end(), metric), end; m != end; ++m)
      CHECK(exported.count(m->str()) == 1);
  }
}
