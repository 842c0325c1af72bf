// Every command type through commands/send, end to end (PROTOCOL §1.1, §3): the line an esthesis agent
// receives for shutdown and for firmware with and without a package id, and the reply completing it.
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "protocol/core/signature.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

std::unique_ptr<MqttClient> connect_device(const Broker& b) {
  ClientOptions o;
  o.uri = b.uri();
  o.mqtt_version = 4;  // esthesis agents speak MQTT 3.1.1
  auto c = std::make_unique<MqttClient>(o);
  REQUIRE(c->connect(10000));
  return c;
}

json wait_for_state(MqttClient& c, const std::string& command_id, const std::string& state,
                    int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = api(c, "commands/get", {{"command_id", command_id}});
    const auto& devices = last.value("devices", json::array());
    if (!devices.empty() && devices[0].value("state", "") == state) return devices[0];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

}  // namespace

TEST_CASE("shutdown and firmware (with and without a package id) reach the device as esthesis lines",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  auto reg = api(*platform, "devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}});
  REQUIRE(reg.value("hardware_id", "") == "dev-1");
  // An external package is ready at once (nothing to upload).
  auto pkg = api(*platform, "packages/create",
                 {{"name", "fw"},
                  {"version", "2.0.0"},
                  {"type", "external"},
                  {"url", "https://example.com/fw-2.0.0.bin"},
                  {"available", true}});
  REQUIRE(pkg.contains("id"));
  const std::string package_id = pkg["id"];

  auto device = connect_device(broker);
  REQUIRE(device->subscribe("esthesis/command/request/dev-1", 1));

  struct {
    const char* rule;
    json request;
    std::string line_after_id;  // what follows "<id> " on the wire
  } cases[] = {
      {"shutdown, sync by default", {{"type", "shutdown"}}, "ss"},
      {"shutdown async", {{"type", "shutdown"}, {"execution", "async"}}, "sa"},
      {"firmware with a package id", {{"type", "firmware"}, {"package_id", package_id}}, "fs " + package_id},
      {"firmware with a package id, async",
       {{"type", "firmware"}, {"package_id", package_id}, {"execution", "async"}},
       "fa " + package_id},
      {"firmware latest (no package id), sync by default", {{"type", "firmware"}}, "fs"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    json body = c.request;
    body["hardware_ids"] = {"dev-1"};
    auto sent = api(*platform, "commands/send", body);
    REQUIRE(sent.contains("command_id"));
    CHECK(sent["devices_scheduled"] == 1);
    const std::string id = sent["command_id"];
    auto line = device->next(5000);
    REQUIRE(line);
    CHECK(line->topic == "esthesis/command/request/dev-1");
    CHECK(line->payload == id + " " + c.line_after_id);
    REQUIRE(device->publish("esthesis/command/reply/dev-1", id + " s done", 1));
    auto d = wait_for_state(*platform, id, "succeeded");
    CHECK(d.value("state", "") == "succeeded");
    CHECK(d.value("output", "") == "done");
  }

  // A package id that does not exist is refused before anything is stored or sent.
  auto missing =
      api(*platform, "commands/send",
          {{"type", "firmware"}, {"package_id", "01NOPACKAGE0000000000000000"}, {"hardware_ids", {"dev-1"}}});
  CHECK(missing["error"]["code"] == "not_found");
}

TEST_CASE(
    "an exec command devices could not split back is refused alike by commands/send and campaigns/create",
    "[integration][commands][campaigns]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  REQUIRE(api(*platform, "devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}})
              .value("hardware_id", "") == "dev-1");
  struct {
    const char* rule;
    std::string command;
    std::vector<std::string> arguments;
    std::string message;
  } cases[] = {
      {"empty argument", "echo", {"a", ""}, "argument 2 is empty"},
      {"tab in an argument", "echo", {"a\tb"}, "argument 1 must not contain a control character"},
      {"newline in the command", "ls\n", {}, "command must not contain a control character"},
      {"space in an argument", "echo", {"a b"}, "argument 1 must not contain a space"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto sent = api(
        *platform, "commands/send",
        {{"type", "exec"}, {"command", c.command}, {"arguments", c.arguments}, {"hardware_ids", {"dev-1"}}});
    CHECK(sent["error"]["code"] == "bad_request");
    CHECK(sent["error"]["message"] == c.message);
    auto created = api(*platform, "campaigns/create",
                       {{"name", "bad exec"},
                        {"type", "exec"},
                        {"command", c.command},
                        {"arguments", c.arguments},
                        {"groups", {{{"hardware_ids", {"dev-1"}}}}}});
    CHECK(created["error"]["code"] == "bad_request");
    CHECK(created["error"]["message"] == c.message);
  }
  CHECK(api(*platform, "campaigns/list", json::object())["campaigns"].empty());
}
