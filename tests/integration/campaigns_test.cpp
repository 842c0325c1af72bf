// Campaigns end to end (PROTOCOL §4): a real mosquitto, a real dispatchd and a simulated fleet in this
// process that answers every command request on the device topics.
#include "storage/campaigns.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "protocol/core/signature.h"
#include "storage/database.h"
#include "tests/integration/command_fleet.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::service::ClientOptions;
using dispatch::service::InboundMessage;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

// Registers devices from a few clients at once (each request is one transaction in the service).
void register_devices(const Broker& b, const std::vector<std::pair<std::string, std::string>>& hw_and_tag) {
  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  constexpr int k_threads = 4;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      ClientOptions o;
      o.uri = b.uri();
      MqttClient c(o);
      if (!c.connect(10000)) {
        ++failures;
        return;
      }
      for (size_t i = t; i < hw_and_tag.size(); i += k_threads) {
        auto r = api(
            c, "devices/register",
            {{"hardware_id", hw_and_tag[i].first}, {"public_key", pem}, {"tags", {hw_and_tag[i].second}}});
        if (r.value("hardware_id", "") != hw_and_tag[i].first) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(failures == 0);
}

// Polls campaigns/get until `done` holds (or the timeout passes); returns the last answer.
json wait_campaign(MqttClient& c, const std::string& id, const std::function<bool(const json&)>& done,
                   int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = api(c, "campaigns/get", {{"id", id}}, 2000);
    if (last.is_object() && last.contains("state") && done(last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  return last;
}

bool is_state(const json& j, const char* s) { return j.value("state", "") == s; }

json counters(const json& stats) {
  json c = stats;
  c.erase("rate_per_minute");
  c.erase("eta_s");
  return c;
}

json expected(int members, int succeeded, int failed, int missing = 0) {
  auto pct = [](int part, int whole) {
    return whole == 0 ? 0.0 : std::round(10000.0 * part / whole) / 100.0;
  };
  return json{{"members", members},
              {"queued", 0},
              {"sent", 0},
              {"succeeded", succeeded},
              {"failed", failed},
              {"timed_out", 0},
              {"canceled", 0},
              {"missing", missing},
              {"success_percent", pct(succeeded, members)},
              {"progress_percent", members == 0 ? 0.0 : 100.0}};
}

std::string hw_name(const char* group, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s-%05d", group, i);
  return buf;
}

}  // namespace

TEST_CASE("a 3-group campaign of 2,100 devices with 2% failures completes with exact statistics",
          "[integration][campaigns]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  const int sizes[] = {100, 500, 1500};
  const char* names[] = {"ga", "gb", "gc"};
  std::vector<std::pair<std::string, std::string>> devices;
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < sizes[g]; ++i) devices.emplace_back(hw_name(names[g], i), names[g]);
  }
  register_devices(broker, devices);
  // Every 50th device fails: exactly 2 % of each group.
  CommandFleet fleet(broker, [](const std::string& hw) { return std::stoi(hw.substr(3)) % 50 == 7; });

  auto created =
      api(*platform, "campaigns/create",
          {{"name", "exec rollout"},
           {"type", "exec"},
           {"command", "true"},
           {"groups",
            {{{"tags", {"ga"}}, {"hardware_ids", {"ghost-01"}}}, {{"tags", {"gb"}}}, {{"tags", {"gc"}}}}},
           {"rate", {{"per_minute", 600000}}},
           {"batch_size", 400},
           {"success", {{"threshold_percent", 95}}},
           {"reply_timeout_s", 60}});
  REQUIRE(created.contains("id"));
  const std::string id = created["id"];
  auto started = api(*platform, "campaigns/start", {{"id", id}});
  REQUIRE(started.value("state", "") == "scheduled");

  json done = wait_campaign(
      *platform, id, [](const json& j) { return is_state(j, "completed"); }, 90000);
  REQUIRE(done.value("state", "") == "completed");
  CHECK(done["reason"] == "completed");
  CHECK(counters(done["stats"]) == expected(2100, 2058, 42, 1));
  CHECK(counters(done["groups"][0]["stats"]) == expected(100, 98, 2, 1));
  CHECK(counters(done["groups"][1]["stats"]) == expected(500, 490, 10));
  CHECK(counters(done["groups"][2]["stats"]) == expected(1500, 1470, 30));
  auto ids = fleet.ids();
  CHECK(ids.size() == 2100);
  for (const auto& [hw, v] : ids) CHECK(v.size() == 1);

  // The retained event holds the final document.
  auto watcher = connected_client(broker);
  REQUIRE(watcher->subscribe("esthesis/events/v1/campaigns/" + id, 1));
  auto ev = watcher->next(5000);
  REQUIRE(ev.has_value());
  json event = json::parse(ev->payload);
  CHECK(event["state"] == "completed");
  CHECK(counters(event["stats"]) == counters(done["stats"]));
}

TEST_CASE("a group under its threshold pauses the campaign before the next group, resume finishes it",
          "[integration][campaigns]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  std::vector<std::pair<std::string, std::string>> devices;
  for (int i = 0; i < 100; ++i) devices.emplace_back(hw_name("ga", i), "ga");
  for (int i = 0; i < 200; ++i) devices.emplace_back(hw_name("gb", i), "gb");
  devices.emplace_back("barrier-01", "barrier");
  register_devices(broker, devices);
  // 10 % of group 1 fails; group 2 would all succeed.
  CommandFleet fleet(broker, [](const std::string& hw) {
    return hw.rfind("ga", 0) == 0 && std::stoi(hw.substr(3)) % 10 == 3;
  });

  auto created = api(*platform, "campaigns/create",
                     {{"name", "gated"},
                      {"type", "reboot"},
                      {"groups", {{{"tags", {"ga"}}}, {{"tags", {"gb"}}}}},
                      {"success", {{"threshold_percent", 95}}}});
  const std::string id = created.value("id", "");
  REQUIRE(api(*platform, "campaigns/start", {{"id", id}}).value("state", "") == "scheduled");
  json paused = wait_campaign(
      *platform, id, [](const json& j) { return is_state(j, "paused_by_workflow"); }, 30000);
  REQUIRE(paused.value("state", "") == "paused_by_workflow");
  CHECK(paused["reason"] == "group 1 success 90.00% below threshold 95%");
  CHECK(counters(paused["groups"][0]["stats"]) == expected(100, 90, 10));
  CHECK(paused["groups"][1]["stats"]["sent"] == 0);
  // Barrier: a second campaign's send goes through the same campaign outbox after anything the paused
  // campaign had queued, and the fleet takes lines in arrival order; once it has the barrier's line, a
  // wrong send to group 2 would already be counted.
  auto barrier =
      api(*platform, "campaigns/create",
          {{"name", "barrier"}, {"type", "ping"}, {"groups", {{{"hardware_ids", {"barrier-01"}}}}}});
  REQUIRE(api(*platform, "campaigns/start", {{"id", barrier.value("id", "")}}).value("state", "") ==
          "scheduled");
  REQUIRE(fleet.wait_contacted("barrier-01", 10000));
  CHECK(fleet.contacted("gb") == 0);
  CHECK(paused["groups"][1]["stats"]["queued"] == 200);

  auto resumed = api(*platform, "campaigns/resume", {{"id", id}});
  CHECK(resumed.value("state", "") == "running");
  json done = wait_campaign(
      *platform, id, [](const json& j) { return is_state(j, "completed"); }, 30000);
  REQUIRE(done.value("state", "") == "completed");
  CHECK(counters(done["stats"]) == expected(300, 290, 10));
  CHECK(fleet.contacted("gb") == 200);
  // Illegal now: a completed campaign cannot be resumed.
  auto again = api(*platform, "campaigns/resume", {{"id", id}});
  CHECK(again["error"]["code"] == "conflict");
}

TEST_CASE("a campaign survives SIGKILL of the service: one command id per device, stats equal a recount",
          "[integration][campaigns]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  constexpr int k_devices = 1500;
  std::vector<std::pair<std::string, std::string>> devices;
  for (int i = 0; i < k_devices; ++i) devices.emplace_back(hw_name("gk", i), "gk");
  register_devices(broker, devices);
  CommandFleet fleet(broker, [](const std::string& hw) { return std::stoi(hw.substr(3)) % 50 == 7; });

  // Slow enough (batches of 25) to be killed in the middle of sending, three times.
  auto created = api(*platform, "campaigns/create",
                     {{"name", "crashy"},
                      {"type", "exec"},
                      {"command", "true"},
                      {"groups", {{{"tags", {"gk"}}}}},
                      {"rate", {{"per_minute", 18000}}},
                      {"batch_size", 25},
                      {"success", {{"threshold_percent", 0}}},
                      {"reply_timeout_s", 4}});
  const std::string id = created.value("id", "");
  REQUIRE(api(*platform, "campaigns/start", {{"id", id}}).value("state", "") == "scheduled");
  // Killed after the devices saw 300, 700 and 1,100 distinct attempts: batch_size bounds the sends
  // ahead of the replies (committed sends <= distinct lines seen + 25), so at each kill at least
  // 1500 - 1125 executions are still queued and the campaign is running, however slow the machine.
  for (int kill = 0; kill < 3; ++kill) {
    REQUIRE(fleet.wait_distinct(300 + 400 * static_cast<size_t>(kill), 60000));
    const json before = api(*platform, "campaigns/get", {{"id", id}});
    WARN("kill " << kill << " at " << before["stats"].dump());
    CHECK(before.value("state", "") == "running");  // killed in the middle of the run
    CHECK(before["stats"].value("queued", 0) > 0);
    daemon.kill9();
    daemon.start();
    REQUIRE(daemon.wait_ready(*platform));
  }
  json done = wait_campaign(
      *platform, id, [](const json& j) { return is_state(j, "completed"); }, 60000);
  REQUIRE(done.value("state", "") == "completed");
  const json& st = done["stats"];
  CHECK(st["members"] == k_devices);
  CHECK(st["succeeded"].get<int>() + st["failed"].get<int>() + st["timed_out"].get<int>() == k_devices);
  CHECK(st["failed"].get<int>() <= 30);  // a failure reply lost in a crash ends as timed_out

  // Every device ran exactly once (no retries were owed), as the devices saw it.
  auto ids = fleet.ids();
  CHECK(ids.size() == static_cast<size_t>(k_devices));
  size_t extra = 0;
  for (const auto& [hw, v] : ids) extra += v.size() - 1;
  CHECK(extra == 0);

  // The database agrees: one attempt per device and the same counts.
  REQUIRE(daemon.terminate() == 0);
  auto db = dispatch::storage::Database::open(daemon.db_path());
  REQUIRE(db.ok());
  dispatch::storage::CampaignStore store(**db);
  auto rows = store.executions(id);
  REQUIRE(rows.ok());
  std::map<std::string, int> recount;
  for (const auto& r : *rows) {
    ++recount[r.state];
    auto attempts = store.attempt_command_ids(id, r.hardware_id);
    REQUIRE(attempts.ok());
    CHECK(attempts->size() == 1);
    CHECK(fleet.ids()[r.hardware_id] == *attempts);
  }
  CHECK(recount["succeeded"] == st["succeeded"].get<int>());
  CHECK(recount["failed"] == st["failed"].get<int>());
  CHECK(recount["timed_out"] == st["timed_out"].get<int>());
}
