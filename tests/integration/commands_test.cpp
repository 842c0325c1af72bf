// Commands end to end through a real mosquitto and a real dispatchd process (PROTOCOL §1, §3).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "protocol/core/signature.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/support/keys.h"

using dispatch::service::ClientOptions;
using dispatch::service::InboundMessage;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

std::string public_pem() {
  static const std::string pem =
      dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  return pem;
}

std::unique_ptr<MqttClient> connect_client(const Broker& b, int version = 5) {
  ClientOptions o;
  o.uri = b.uri();
  o.mqtt_version = version;
  auto c = std::make_unique<MqttClient>(o);
  REQUIRE(c->connect(10000));
  return c;
}

void register_device(MqttClient& c, const std::string& hw, const std::vector<std::string>& tags = {}) {
  auto r = api(c, "devices/register", {{"hardware_id", hw}, {"public_key", public_pem()}, {"tags", tags}});
  REQUIRE(r.value("hardware_id", "") == hw);
}

// Waits for the next command line on a device's request topic.
std::optional<InboundMessage> next_command(MqttClient& dev, int timeout_ms = 5000) {
  return dev.next(timeout_ms);
}

std::string first_word(const std::string& s) { return s.substr(0, s.find(' ')); }

json wait_for_state(MqttClient& c, const std::string& command_id, const std::string& hw,
                    const std::string& state, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = api(c, "commands/get", {{"command_id", command_id}});
    for (const auto& d : last.value("devices", json::array())) {
      if (d["hardware_id"] == hw && d["state"] == state) return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return last;
}

}  // namespace

TEST_CASE("exec to one device: the device gets the esthesis line and its reply completes the delivery",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-1");
  auto device = connect_client(broker, 4);  // esthesis agents speak MQTT 3.1.1
  REQUIRE(device->subscribe("esthesis/command/request/dev-1", 1));
  auto events = connect_client(broker);
  REQUIRE(events->subscribe("esthesis/events/v1/commands/+", 1));

  auto sent = api(*platform, "commands/send",
                  {{"type", "exec"},
                   {"execution", "sync"},
                   {"command", "ls"},
                   {"arguments", {"-la", "/var"}},
                   {"hardware_ids", {"dev-1"}}});
  REQUIRE(sent.contains("command_id"));
  CHECK(sent["devices_matched"] == 1);
  CHECK(sent["devices_scheduled"] == 1);
  const std::string id = sent["command_id"];

  auto line = next_command(*device);
  REQUIRE(line);
  CHECK(line->topic == "esthesis/command/request/dev-1");
  CHECK(line->payload == id + " es ls -la /var");

  // The esthesis agent's reply format, with a multi-line output.
  REQUIRE(device->publish("esthesis/command/reply/dev-1", id + " s total 0\ndrwxr-xr-x root", 0));
  auto d = wait_for_state(*platform, id, "dev-1", "succeeded");
  CHECK(d["state"] == "succeeded");
  CHECK(d["output"] == "total 0\ndrwxr-xr-x root");
  CHECK(d["attempts"] == 1);
  auto ev = events->next(5000);
  REQUIRE(ev);
  CHECK(ev->topic == "esthesis/events/v1/commands/" + id);
  auto evj = json::parse(ev->payload);
  CHECK(evj["hardware_id"] == "dev-1");
  CHECK(evj["state"] == "succeeded");

  // A duplicate reply changes nothing. Barrier: the reply to a second command, published after the
  // duplicate on the same topic at the same QoS, reaches the service after it (MQTT keeps the order of
  // one client's messages on one topic); once the second command shows its reply, the duplicate was
  // handled.
  auto barrier = api(*platform, "commands/send", {{"type", "ping"}, {"hardware_ids", {"dev-1"}}});
  const std::string barrier_id = barrier.value("command_id", "");
  auto barrier_line = next_command(*device);
  REQUIRE(barrier_line);
  REQUIRE(barrier_line->payload == barrier_id + " ps");
  REQUIRE(device->publish("esthesis/command/reply/dev-1", id + " f late failure", 1, false, {}, {}, true));
  REQUIRE(device->publish("esthesis/command/reply/dev-1", barrier_id + " s pong", 1, false, {}, {}, true));
  REQUIRE(wait_for_state(*platform, barrier_id, "dev-1", "succeeded")["state"] == "succeeded");
  auto again = api(*platform, "commands/get", {{"command_id", id}});
  CHECK(again["devices"][0]["state"] == "succeeded");
  CHECK(again["devices"][0]["output"] == "total 0\ndrwxr-xr-x root");
}

TEST_CASE("ping to several devices by tag, failure replies and replies without a trailing space",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-a", {"eu"});
  register_device(*platform, "dev-b", {"eu", "canary"});
  register_device(*platform, "dev-c", {"us"});
  auto fleet = connect_client(broker);
  REQUIRE(fleet->subscribe("esthesis/command/request/+", 1));

  auto sent = api(*platform, "commands/send", {{"type", "ping"}, {"execution", "async"}, {"tags", {"eu"}}});
  REQUIRE(sent["devices_scheduled"] == 2);
  const std::string id = sent["command_id"];
  std::set<std::string> got;
  for (int i = 0; i < 2; ++i) {
    auto m = fleet->next(5000);
    REQUIRE(m);
    CHECK(m->payload == id + " pa");
    got.insert(m->topic);
  }
  CHECK(got == std::set<std::string>{"esthesis/command/request/dev-a", "esthesis/command/request/dev-b"});
  // dev-c (tag us) is not contacted. Barrier: a later command is published after any line of this one.
  auto later = api(*platform, "commands/send", {{"type", "health"}, {"hardware_ids", {"dev-a"}}});
  const std::string later_id = later.value("command_id", "");
  auto m = fleet->next(5000);
  REQUIRE(m);
  CHECK(m->topic == "esthesis/command/request/dev-a");
  CHECK(m->payload == later_id + " hs");

  REQUIRE(fleet->publish("esthesis/command/reply/dev-a", id + " s", 1));  // no trailing space
  REQUIRE(fleet->publish("esthesis/command/reply/dev-b", id + " f no route to host", 1));  // failure
  auto a = wait_for_state(*platform, id, "dev-a", "succeeded");
  CHECK(a["output"] == "");
  auto b = wait_for_state(*platform, id, "dev-b", "failed");
  CHECK(b["output"] == "no route to host");
}

TEST_CASE("a reply for device A's command published on device B's topic does not complete A's delivery",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-a");
  register_device(*platform, "dev-b");
  auto listener = connect_client(broker);
  REQUIRE(listener->subscribe("esthesis/command/request/+", 1));
  auto sent = api(*platform, "commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-a"}}});
  const std::string id = sent["command_id"];
  auto barrier = api(*platform, "commands/send", {{"type", "ping"}, {"hardware_ids", {"dev-b"}}});
  const std::string barrier_id = barrier.value("command_id", "");
  for (int i = 0; i < 2; ++i) REQUIRE(listener->next(5000));  // both lines are out
  REQUIRE(wait_for_state(*platform, id, "dev-a", "sent")["state"] == "sent");
  REQUIRE(wait_for_state(*platform, barrier_id, "dev-b", "sent")["state"] == "sent");
  // Barrier: dev-b's own reply, published after the forged one on the same topic, is handled after it.
  auto intruder = connect_client(broker);
  REQUIRE(intruder->publish("esthesis/command/reply/dev-b", id + " s done", 1, false, {}, {}, true));
  REQUIRE(intruder->publish("esthesis/command/reply/dev-b", barrier_id + " s pong", 1, false, {}, {}, true));
  REQUIRE(wait_for_state(*platform, barrier_id, "dev-b", "succeeded")["state"] == "succeeded");
  auto got = api(*platform, "commands/get", {{"command_id", id}});
  REQUIRE(got["devices"].size() == 1);
  CHECK(got["devices"][0]["hardware_id"] == "dev-a");
  CHECK(got["devices"][0]["state"] == "sent");
  CHECK(got["devices"][0]["output"] == "");
}

TEST_CASE("MQTT 3.1.1 platform clients use reply_to and correlation_id, request_id makes sends idempotent",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker, 4);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-1");
  json body{{"type", "health"}, {"hardware_ids", {"dev-1"}}, {"request_id", "req-42"}};
  auto first = api(*platform, "commands/send", body);
  REQUIRE(first.contains("command_id"));
  CHECK(first.contains("correlation_id"));  // echoed for 3.1.1 clients
  auto second = api(*platform, "commands/send", body);
  CHECK(second["command_id"] == first["command_id"]);
  body["hardware_ids"] = {"dev-1", "dev-2"};
  auto third = api(*platform, "commands/send", body);
  CHECK(third["error"]["code"] == "conflict");
  auto list = api(*platform, "commands/list", json::object());
  CHECK(list["commands"].size() == 1);
}

TEST_CASE("unknown hardware ids are reported, never silently scheduled, pending pull and expiry",
          "[integration][commands]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-1");
  auto sent =
      api(*platform, "commands/send",
          {{"type", "exec"}, {"command", "uptime"}, {"hardware_ids", {"dev-1", "ghost-1"}}, {"ttl_s", 5}});
  CHECK(sent["devices_scheduled"] == 1);
  CHECK(sent["unknown_hardware_ids"] == json::array({"ghost-1"}));
  auto none = api(*platform, "commands/send", {{"type", "ping"}, {"hardware_ids", {"ghost-1"}}});
  CHECK(none["error"]["code"] == "not_found");

  // The device (re)connects and pulls what it missed.
  auto device = connect_client(broker);
  REQUIRE(device->subscribe("esthesis/command/pending-reply/dev-1", 1));
  REQUIRE(device->publish("esthesis/command/pending/dev-1", "{}", 1));
  auto pending = device->next(5000);
  REQUIRE(pending);
  auto pj = json::parse(pending->payload);
  REQUIRE(pj["commands"].size() == 1);
  CHECK(pj["commands"][0] == std::string(sent["command_id"]) + " es uptime");

  // Unanswered past its TTL: expired, and no longer pending.
  auto d = wait_for_state(*platform, sent["command_id"], "dev-1", "expired", 10000);
  CHECK(d["state"] == "expired");
  REQUIRE(device->publish("esthesis/command/pending/dev-1", "{}", 1));
  auto later = device->next(5000);
  REQUIRE(later);
  CHECK(json::parse(later->payload)["commands"].empty());
}

TEST_CASE("hostile inputs on the API and device topics get the right error and change nothing",
          "[integration][commands][hostile]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-1", {"lab"});
  const std::string pem = public_pem();
  auto pem_json = json(pem).dump();
  std::string deep(100, '[');
  deep += std::string(100, ']');
  std::string nested = "{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}";
  std::string oversize = "{\"hardware_id\":\"dev-9\",\"pad\":\"" + std::string(300 * 1024, 'x') + "\"}";
  std::string long_id(129, 'a');
  const std::string rsa1024 = json(rsa_public_pem(1024)).dump();
  struct {
    const char* rule;
    std::string topic;
    std::string payload;
    const char* code;
  } cases[] = {
      {"malformed JSON", "devices/register", "not json", "bad_request"},
      {"empty payload", "devices/register", "", "bad_request"},
      {"array instead of object", "devices/register", "[]", "bad_request"},
      {"deep nesting", "devices/register", deep, "bad_request"},
      {"deep nesting inside an object", "commands/send", nested, "bad_request"},
      {"oversize payload", "devices/register", oversize, "too_large"},
      {"garbage bytes", "commands/send", std::string("\xff\xfe\x00\x01", 4), "bad_request"},
      {"NUL after a valid object", "devices/list", std::string("{}\0{}", 5), "bad_request"},
      {"id with slash", "devices/register", "{\"hardware_id\":\"a/b\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id with plus", "devices/register", "{\"hardware_id\":\"a+b\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id with hash", "devices/register", "{\"hardware_id\":\"a#b\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id with NUL", "devices/register", "{\"hardware_id\":\"ab\\u0000c\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id with space", "devices/register", "{\"hardware_id\":\"a b\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id too short", "devices/register", "{\"hardware_id\":\"ab\",\"public_key\":" + pem_json + "}",
       "bad_request"},
      {"id too long", "devices/register",
       "{\"hardware_id\":\"" + long_id + "\",\"public_key\":" + pem_json + "}", "bad_request"},
      {"id of wrong type", "devices/register", "{\"hardware_id\":42,\"public_key\":" + pem_json + "}",
       "bad_request"},
      // Without a public_key a device is pre-created keyless (registration.mode = id); a key of the wrong
      // type is refused.
      {"public key of wrong type", "devices/register", "{\"hardware_id\":\"dev-9\",\"public_key\":42}",
       "bad_request"},
      {"garbage public key", "devices/register", "{\"hardware_id\":\"dev-9\",\"public_key\":\"xyz\"}",
       "bad_request"},
      {"RSA 1024 refused", "devices/register", "{\"hardware_id\":\"dev-9\",\"public_key\":" + rsa1024 + "}",
       "bad_request"},
      {"tags not an array", "devices/register",
       "{\"hardware_id\":\"dev-9\",\"public_key\":" + pem_json + ",\"tags\":\"x\"}", "bad_request"},
      {"unknown command type", "commands/send", R"({"type":"explode","hardware_ids":["dev-1"]})",
       "bad_request"},
      {"unknown execution mode", "commands/send",
       R"({"type":"ping","execution":"later","hardware_ids":["dev-1"]})", "bad_request"},
      {"exec without command", "commands/send", R"({"type":"exec","hardware_ids":["dev-1"]})", "bad_request"},
      {"argument with a space", "commands/send",
       R"({"type":"exec","command":"echo","arguments":["a b"],"hardware_ids":["dev-1"]})", "bad_request"},
      {"empty argument", "commands/send",
       R"({"type":"exec","command":"echo","arguments":[""],"hardware_ids":["dev-1"]})", "bad_request"},
      {"argument not a string", "commands/send",
       R"({"type":"exec","command":"echo","arguments":[1],"hardware_ids":["dev-1"]})", "bad_request"},
      {"control character in command", "commands/send",
       R"({"type":"exec","command":"ls\n","hardware_ids":["dev-1"]})", "bad_request"},
      {"command with a space", "commands/send",
       R"({"type":"exec","command":"rm -rf","hardware_ids":["dev-1"]})", "bad_request"},
      {"negative ttl", "commands/send", R"({"type":"ping","ttl_s":-5,"hardware_ids":["dev-1"]})",
       "bad_request"},
      {"ttl of wrong type", "commands/send", R"({"type":"ping","ttl_s":"10","hardware_ids":["dev-1"]})",
       "bad_request"},
      {"no targets", "commands/send", R"({"type":"ping"})", "bad_request"},
      {"target id with dots and slash", "commands/send", R"({"type":"ping","hardware_ids":["../x"]})",
       "bad_request"},
      {"target tag with wildcard", "commands/send", R"({"type":"ping","tags":["#"]})", "bad_request"},
      {"reboot with a command", "commands/send",
       R"({"type":"reboot","command":"now","hardware_ids":["dev-1"]})", "bad_request"},
      {"firmware with an unknown package", "commands/send",
       R"({"type":"firmware","package_id":"nope","hardware_ids":["dev-1"]})", "not_found"},
      {"unknown command id", "commands/get", R"({"command_id":"01ZZZZZZZZZZZZZZZZZZZZZZZZ"})", "not_found"},
      {"command id with slash", "commands/get", R"({"command_id":"a/b"})", "bad_request"},
      {"cancel unknown command", "commands/cancel", R"({"command_id":"nope"})", "not_found"},
      {"unknown device", "devices/get", R"({"hardware_id":"dev-404"})", "not_found"},
      {"delete unknown device", "devices/delete", R"({"hardware_id":"dev-404"})", "not_found"},
      {"unknown action", "devices/explode", R"({})", "not_found"},
      {"list limit out of range", "devices/list", R"({"limit":100000})", "bad_request"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = platform->request("esthesis/api/v1/" + c.topic, c.payload, 5000);
    REQUIRE(r);
    auto j = json::parse(*r, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["error"]["code"] == c.code);
    CHECK_FALSE(j["error"]["message"].get<std::string>().empty());
  }
  // Device topics: malformed input is dropped (there is nobody to answer) or answered on the device's
  // own reply topic; the service stays up.
  auto device = connect_client(broker);
  REQUIRE(device->subscribe("esthesis/command/pending-reply/dev-1", 1));
  const std::pair<std::string, std::string> device_inputs[] = {
      {"esthesis/command/reply/dev-1", "garbage"},
      {"esthesis/command/reply/dev-1", "abc x output"},
      {"esthesis/command/reply/dev-1", ""},
      {"esthesis/command/reply/dev-1", std::string("\xff\xfe", 2)},
      {"esthesis/command/reply/x", "abc s"},
      {"esthesis/command/reply/dev-1/extra", "abc s"},
      {"esthesis/metadata/dev-1", "###"},
      {"esthesis/metadata/dev-1", std::string(1000, '=')},
      {"esthesis/ping/dev-1", std::string("\x00\x01", 2)},
      {"esthesis/provisioning/request/dev-1", "not json"},
      {"esthesis/provisioning/download/dev-1", "[]"},
  };
  for (const auto& [topic, payload] : device_inputs) REQUIRE(device->publish(topic, payload, 1));
  REQUIRE(device->publish("esthesis/command/pending/dev-1", "not json", 1));
  auto answer = device->next(5000);
  REQUIRE(answer);
  CHECK(json::parse(answer->payload)["error"]["code"] == "bad_request");

  // No state changed and the service still answers.
  auto devices = api(*platform, "devices/list", json::object());
  REQUIRE(devices["devices"].size() == 1);
  CHECK(devices["devices"][0]["hardware_id"] == "dev-1");
  CHECK(devices["devices"][0]["reported_version"].is_null());
  CHECK(api(*platform, "commands/list", json::object())["commands"].empty());
  CHECK(daemon.running());
}

TEST_CASE("kill -9 mid fan-out of 5,000 deliveries: after restart every device has exactly one command id",
          "[integration][commands][durability]") {
  Broker broker;
  auto daemon = std::make_unique<Daemon>(broker, std::vector<std::string>{}, std::vector<std::string>{});
  auto platform = connect_client(broker);
  REQUIRE(daemon->wait_ready(*platform));
  constexpr int k_devices = 5000;
  for (int i = 0; i < k_devices; ++i) {
    char hw[32];
    std::snprintf(hw, sizeof hw, "fleet-%05d", i);
    register_device(*platform, hw, {"fleet"});
  }
  std::mutex mu;
  std::map<std::string, std::set<std::string>> ids;  // device → command ids received
  size_t received = 0;
  auto fleet = connect_client(broker);
  fleet->set_handler([&](InboundMessage&& m) {
    std::lock_guard lk(mu);
    ids[m.topic.substr(m.topic.rfind('/') + 1)].insert(first_word(m.payload));
    ++received;
  });
  REQUIRE(fleet->subscribe("esthesis/command/request/+", 1));
  auto sent = api(*platform, "commands/send", {{"type", "reboot"}, {"tags", {"fleet"}}});
  REQUIRE(sent["devices_scheduled"] == k_devices);
  // Kill as soon as the fan-out is under way.
  for (int i = 0; i < 2000; ++i) {
    {
      std::lock_guard lk(mu);
      if (received >= 500) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  daemon->kill9();
  size_t before_restart;
  {
    std::lock_guard lk(mu);
    before_restart = ids.size();
  }
  INFO("devices reached before the kill: " << before_restart);
  daemon->start();
  REQUIRE(daemon->wait_ready(*platform));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lk(mu);
      if (ids.size() == static_cast<size_t>(k_devices)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::lock_guard lk(mu);
  REQUIRE(ids.size() == static_cast<size_t>(k_devices));
  for (const auto& [hw, set] : ids) {
    INFO(hw);
    REQUIRE(set.size() == 1);
    REQUIRE(*set.begin() == sent["command_id"]);
  }
}

#ifdef DISPATCH_FAILPOINTS  // a named failpoint kills the service; compiled only into test builds
TEST_CASE("killed right after committing the deliveries, before any publish: restart publishes them all",
          "[integration][commands][durability]") {
  Broker broker;
  auto daemon =
      std::make_unique<Daemon>(broker, std::vector<std::string>{},
                               std::vector<std::string>{"DISPATCH_FAILPOINTS=after_delivery_commit:1"});
  auto platform = connect_client(broker);
  REQUIRE(daemon->wait_ready(*platform));
  for (int i = 0; i < 50; ++i) register_device(*platform, "node-" + std::to_string(100 + i), {"all"});
  auto fleet = connect_client(broker);
  REQUIRE(fleet->subscribe("esthesis/command/request/+", 1));
  // The service dies before it can answer.
  auto r = platform->request("esthesis/api/v1/commands/send", R"({"type":"ping","tags":["all"]})", 2000);
  CHECK_FALSE(r);
  CHECK(daemon->process().wait(5000) == 128 + 9);
  CHECK_FALSE(fleet->next(300));  // nothing was published
  daemon->set_env({});
  daemon->start();
  REQUIRE(daemon->wait_ready(*platform));
  std::map<std::string, std::string> got;
  while (got.size() < 50) {
    auto m = fleet->next(10000);
    REQUIRE(m);
    got[m->topic] = first_word(m->payload);
  }
  std::set<std::string> distinct;
  for (const auto& [topic, id] : got) distinct.insert(id);
  CHECK(distinct.size() == 1);
  auto list = api(*platform, "commands/list", json::object());
  REQUIRE(list["commands"].size() == 1);
  CHECK(list["commands"][0]["command_id"] == *distinct.begin());
}
#endif

TEST_CASE("the service reconnects and re-subscribes when the broker restarts",
          "[integration][commands][reconnect]") {
  Broker broker;
  Daemon daemon(broker);
  {
    auto platform = connect_client(broker);
    REQUIRE(daemon.wait_ready(*platform));
    register_device(*platform, "dev-1");
  }
  broker.restart();  // no persistence: the broker forgets every session and subscription
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform, 30000));
  auto device = connect_client(broker);
  REQUIRE(device->subscribe("esthesis/command/request/dev-1", 1));
  auto sent = api(*platform, "commands/send", {{"type", "ping"}, {"hardware_ids", {"dev-1"}}});
  REQUIRE(sent.contains("command_id"));
  auto m = device->next(5000);
  REQUIRE(m);
  CHECK(m->payload == std::string(sent["command_id"]) + " ps");
  REQUIRE(device->publish("esthesis/command/reply/dev-1", std::string(sent["command_id"]) + " s pong", 1));
  auto d = wait_for_state(*platform, sent["command_id"], "dev-1", "succeeded");
  CHECK(d["state"] == "succeeded");
}

TEST_CASE("SIGTERM stops the service cleanly with exit code 0", "[integration][daemon]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  CHECK(daemon.terminate() == 0);
  CHECK(daemon.log().find("stopped cleanly") != std::string::npos);
}

TEST_CASE("dispatchd refuses a bad configuration with exit code 2 and names the key",
          "[integration][daemon]") {
  TempDir dir;
  Process p({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.max_inflight", "70000"}, {},
            dir.path() + "/out.log");
  CHECK(p.wait(10000) == 2);
  CHECK_THAT(read_file(dir.path() + "/out.log"), Catch::Contains("mqtt.max_inflight"));
  Process v({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--version"}, {},
            dir.path() + "/v.log");
  CHECK(v.wait(10000) == 0);
  CHECK_THAT(read_file(dir.path() + "/v.log"), Catch::Contains("dispatchd"));
}

TEST_CASE("20 metadata messages of 500 distinct properties leave at most devices.max_properties",
          "[integration][devices]") {
  Broker broker;
  Daemon daemon(broker);
  auto platform = connect_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  register_device(*platform, "dev-1");
  auto device = connect_client(broker, 4);
  for (int m = 0; m < 20; ++m) {
    std::string line = "health ";
    for (int i = 0; i < 500; ++i) line += (i ? "," : "") + fmt::format("m{}p{}={}", m, i, i);
    REQUIRE(device->publish("esthesis/metadata/dev-1", line, 1, false, {}, {}, true));
  }
  // A barrier: the service handles one device's messages in order, so this version report arrives after
  // the 20 messages; once it is visible, all 20 were applied.
  REQUIRE(device->publish("esthesis/metadata/dev-1", "health firmware='9.9.9'", 1, false, {}, {}, true));
  json d;
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(std::chrono::milliseconds(50))) {
    d = api(*platform, "devices/get", {{"hardware_id", "dev-1"}});
    if (d.value("reported_version", json()) == "9.9.9") break;
  }
  REQUIRE(d.value("reported_version", json()) == "9.9.9");
  // The default bound is 256 properties; health.firmware was new too and arrived past it: only the
  // reported version (a column of its own) records it.
  CHECK(d["properties"].size() == 256);
  CHECK(d["properties"]["health.m0p0"] == "0");
  CHECK_FALSE(d["properties"].contains("health.m1p0"));
}
