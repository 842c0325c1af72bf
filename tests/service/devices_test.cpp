// The devices module on its own: in-memory SQLite, a manual clock, a recording publisher and the router;
// no App, no broker.
#include "service/devices.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "storage/devices.h"
#include "tests/service/module_fixture.h"

using namespace dispatch;
using json = nlohmann::json;
using protocol::TopicKind;

namespace {

class DevicesFixture : public testing::ModuleFixture {
 public:
  DevicesFixture() : devices(config, clock, *db) {
    devices.register_routes(*router);
    router->set_device_hook([this](TopicKind, const std::string& hw) { devices.seen(hw); });
  }
  json register_device(const std::string& hw, json tags = json::array()) {
    return api("devices/register", {{"hardware_id", hw}, {"public_key", pem()}, {"tags", std::move(tags)}});
  }
  service::DevicesModule devices;
};

}  // namespace

TEST_CASE("register creates, then updates, get returns what was stored", "[service][devices]") {
  DevicesFixture f;
  auto a = f.api("devices/register", {{"hardware_id", "dev-1"},
                                      {"public_key", f.pem()},
                                      {"tags", {"b", "a"}},
                                      {"attributes", {{"site", "x"}}},
                                      {"correlation_id", "c-1"}});
  CHECK(a == json{{"hardware_id", "dev-1"}, {"created", true}, {"correlation_id", "c-1"}});
  CHECK(f.register_device("dev-1", {"c"})["created"] == false);
  auto d = f.api("devices/get", {{"hardware_id", "dev-1"}});
  CHECK(d["key_type"] == "ed25519");
  CHECK(d["tags"] == json::array({"c"}));
  CHECK(d["last_seen"].is_null());
  CHECK(f.api("devices/get", {{"hardware_id", "dev-9"}})["error"]["code"] == "not_found");
}

TEST_CASE("bad device requests are answered with bad_request", "[service][devices]") {
  DevicesFixture f;
  struct {
    const char* rule;
    const char* action;
    json body;
  } cases[] = {
      {"reserved name", "devices/register", {{"hardware_id", "dispatchd"}, {"public_key", "x"}}},
      {"bad key", "devices/register", {{"hardware_id", "dev-1"}, {"public_key", "x"}}},
      {"bad id on get", "devices/get", {{"hardware_id", "a/b"}}},
      {"bad cursor on list", "devices/list", {{"after", "a.b"}}},
      {"bad id on delete", "devices/delete", json::object()},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    json body = c.body;
    body["correlation_id"] = "c-7";
    auto a = f.api(c.action, body);
    CHECK(a["error"]["code"] == "bad_request");
    CHECK(a["correlation_id"] == "c-7");
  }
}

TEST_CASE("list pages by hardware id and filters by tag, delete removes", "[service][devices]") {
  DevicesFixture f;
  for (const char* hw : {"dev-1", "dev-2", "dev-3"})
    f.register_device(hw, {std::string(hw) == "dev-2" ? "odd" : "t"});
  auto page = f.api("devices/list", {{"limit", 2}});
  REQUIRE(page["devices"].size() == 2);
  CHECK(page["next_after"] == "dev-2");
  auto rest = f.api("devices/list", {{"limit", 2}, {"after", "dev-2"}});
  REQUIRE(rest["devices"].size() == 1);
  CHECK(rest["devices"][0]["hardware_id"] == "dev-3");
  CHECK_FALSE(rest.contains("next_after"));
  auto tagged = f.api("devices/list", {{"tag", "odd"}});
  REQUIRE(tagged["devices"].size() == 1);
  CHECK(tagged["devices"][0]["hardware_id"] == "dev-2");
  CHECK(f.api("devices/delete", {{"hardware_id", "dev-2"}}) ==
        json{{"hardware_id", "dev-2"}, {"deleted", true}});
  CHECK(f.api("devices/get", {{"hardware_id", "dev-2"}})["error"]["code"] == "not_found");
}

TEST_CASE("metadata merges into the properties and reports the firmware version", "[service][devices]") {
  DevicesFixture f;
  f.register_device("dev-1");
  std::vector<std::string> versions;
  f.devices.set_version_listener(
      [&](const std::string& hw, const std::string& v) { versions.push_back(hw + "@" + v); });
  f.device(TopicKind::metadata, "dev-1", "health firmware='1.2.0',cpu=5");
  f.device(TopicKind::metadata, "dev-1", "net ip='10.0.0.1'");
  auto d = f.api("devices/get", {{"hardware_id", "dev-1"}});
  CHECK(d["properties"]["health.cpu"] == "5");
  CHECK(d["properties"]["net.ip"] == "10.0.0.1");
  CHECK(d["properties"]["health.firmware"] == "1.2.0");
  CHECK(d["reported_version"] == "1.2.0");
  CHECK(versions == std::vector<std::string>{"dev-1@1.2.0"});

  f.device(TopicKind::metadata, "dev-1", "not elp at all =");
  CHECK(f.devices.counters().metadata_malformed == 1);
  f.device(TopicKind::metadata, "dev-9", "health firmware='2.0.0'");  // unregistered: dropped
  CHECK(versions.size() == 1);
}

TEST_CASE("presence is written as last_seen in batches, a read sees every message before it",
          "[service][devices]") {
  DevicesFixture f;
  f.register_device("dev-1");
  storage::DeviceStore store(*f.db);
  f.device(TopicKind::ping, "dev-1", "");
  CHECK_FALSE(store.get("dev-1")->last_seen.has_value());  // batched: not written yet
  // A read forces the batch out, so what it shows does not change when the service stops later.
  CHECK(f.api("devices/get", {{"hardware_id", "dev-1"}})["last_seen"].is_string());
  CHECK(store.get("dev-1")->last_seen.has_value());
  f.register_device("dev-2");
  f.device(TopicKind::ping, "dev-2", "");
  auto listed = f.api("devices/list", nlohmann::json::object())["devices"];
  REQUIRE(listed.size() == 2);
  CHECK(listed[1]["hardware_id"] == "dev-2");
  CHECK(listed[1]["last_seen"].is_string());
}

TEST_CASE("metadata properties stop at devices.max_properties, the rest is dropped and counted",
          "[service][devices]") {
  DevicesFixture f;
  f.config.devices_max_properties = 10;
  f.register_device("dev-1");
  for (int m = 0; m < 3; ++m) {
    std::string line = "health ";
    for (int i = 0; i < 8; ++i) line += (i ? "," : "") + fmt::format("p{}_{}={}", m, i, i);
    f.device(TopicKind::metadata, "dev-1", line);
  }
  auto d = f.api("devices/get", {{"hardware_id", "dev-1"}});
  CHECK(d["properties"].size() == 10);
  CHECK(f.devices.counters().properties_dropped == 14);
  // Known names are still updated past the bound.
  f.device(TopicKind::metadata, "dev-1", "health p0_0=updated");
  CHECK(f.api("devices/get", {{"hardware_id", "dev-1"}})["properties"]["health.p0_0"] == "updated");
  // The byte bound: a value that would pass it is dropped, the old value stays.
  f.config.devices_max_properties_bytes = 1024;
  f.device(TopicKind::metadata, "dev-1", "health p0_1=" + std::string(2000, 'v'));
  CHECK(f.api("devices/get", {{"hardware_id", "dev-1"}})["properties"]["health.p0_1"] == "1");
  CHECK(f.devices.counters().properties_dropped == 15);
}
