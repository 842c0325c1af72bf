// The production broker deployment (scripts/broker/: mosquitto.conf, acl, mint-certs) under test: a real
// mosquitto started with that very configuration (only port and paths rewritten), clients with the
// minted certificates, and the access matrix of docs/security.md checked message by message.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "protocol/core/signature.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/support/process.h"

using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

// mosquitto with scripts/broker/mosquitto.conf and acl on a free loopback port, certificates minted by
// scripts/broker/mint-certs. mosquitto started as root runs as user mosquitto: everything it reads is
// world-readable and its persistence folder world-writable.
class TlsBroker {
 public:
  TlsBroker() : port_(free_port()) {
    namespace fs = std::filesystem;
    const std::string src = std::string(DISPATCH_SOURCE_DIR) + "/scripts/broker";
    const std::string etc = dir_.path() + "/etc";
    const std::string var = dir_.path() + "/var";
    fs::create_directories(var);
    Process mint({"/bin/bash", src + "/mint-certs", etc, "dev-1", "dev-2"}, {}, dir_.path() + "/mint.log");
    if (mint.wait(60000) != 0) FAIL("mint-certs failed: " << read_file(dir_.path() + "/mint.log"));
    fs::copy_file(src + "/acl", etc + "/acl");

    std::string conf = read_file(src + "/mosquitto.conf");
    REQUIRE(conf.find("listener 8883\n") != std::string::npos);
    conf = replace_all(conf, "listener 8883\n", "listener " + std::to_string(port_) + " 127.0.0.1\n");
    conf = replace_all(conf, "/etc/mosquitto/dispatch/", etc + "/");
    conf = replace_all(conf, "/var/lib/mosquitto/", var + "/");
    conf_path_ = dir_.path() + "/mosquitto.conf";
    std::ofstream(conf_path_) << conf;

    const auto all_read = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                          fs::perms::others_read | fs::perms::others_exec;
    fs::permissions(dir_.path(), all_read);
    fs::permissions(etc, all_read);
    fs::permissions(var, fs::perms::all);
    fs::permissions(conf_path_, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                    fs::perms::others_read);
    fs::permissions(etc + "/acl", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);

    proc_ = std::make_unique<Process>(std::vector<std::string>{"/usr/sbin/mosquitto", "-c", conf_path_},
                                      std::vector<std::string>{}, dir_.path() + "/mosquitto.log");
    if (!wait_for_port(port_, 10000)) FAIL("mosquitto did not start: " << log());
  }

  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  std::string cert_dir() const { return dir_.path() + "/etc"; }
  std::string log() const { return read_file(dir_.path() + "/mosquitto.log"); }

  // Options of a client presenting <cert>.crt/<cert>.key ("" = no client certificate).
  ClientOptions client(const std::string& cert, int mqtt_version = 5) const {
    ClientOptions o;
    o.uri = uri();
    o.mqtt_version = mqtt_version;
    o.ca_file = cert_dir() + "/ca.crt";
    if (!cert.empty()) {
      o.cert_file = cert_dir() + "/" + cert + ".crt";
      o.key_file = cert_dir() + "/" + cert + ".key";
    }
    return o;
  }

 private:
  TempDir dir_;
  int port_;
  std::string conf_path_;
  std::unique_ptr<Process> proc_;
};

std::unique_ptr<MqttClient> connect_as(const TlsBroker& broker, const std::string& cert, int version = 5) {
  auto c = std::make_unique<MqttClient>(broker.client(cert, version));
  auto st = c->connect(10000);
  INFO("connect as " << cert << ": " << (st ? "ok" : st.error().message) << "\n" << broker.log());
  REQUIRE(st);
  return c;
}

// Every payload that reaches `client` within `ms`.
std::multiset<std::string> drain(MqttClient& client, int ms) {
  std::multiset<std::string> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto m = client.next(50)) got.insert(m->topic + " " + m->payload);
  }
  return got;
}

}  // namespace

TEST_CASE("broker ACL: each identity publishes and reads exactly its topics", "[integration][acl]") {
  TlsBroker broker;
  std::map<std::string, std::unique_ptr<MqttClient>> clients;
  for (const char* who : {"dispatchd", "platform", "device-dev-1", "device-dev-2"}) {
    clients[who] = connect_as(broker, who, std::string(who).rfind("device-", 0) == 0 ? 4 : 5);
  }
  // Watchers: the service role sees everything devices and the platform may send it; the platform
  // sees events and API answers; each device subscribes to its own command topic and tries others'.
  for (const char* f :
       {"esthesis/command/reply/+", "esthesis/command/pending/+", "esthesis/provisioning/request/+",
        "esthesis/provisioning/download/+", "esthesis/metadata/+", "esthesis/ping/+", "esthesis/api/#"}) {
    REQUIRE(clients["dispatchd"]->subscribe(f, 1));
  }
  for (const char* f : {"esthesis/events/#", "dispatch/reply/#"})
    REQUIRE(clients["platform"]->subscribe(f, 1));
  // Refused subscriptions may answer with a failure code; the deliveries below are what counts.
  (void)clients["platform"]->subscribe("esthesis/command/request/+", 1);
  (void)clients["device-dev-1"]->subscribe("esthesis/command/request/dev-1", 1);
  (void)clients["device-dev-1"]->subscribe("esthesis/command/request/dev-2", 1);
  (void)clients["device-dev-1"]->subscribe("esthesis/provisioning/data/dev-2", 1);
  (void)clients["device-dev-1"]->subscribe("esthesis/#", 1);
  (void)clients["device-dev-2"]->subscribe("esthesis/command/request/dev-2", 1);

  struct {
    const char* rule;
    const char* publisher;
    const char* topic;
    const char* watcher;  // who would receive it if the broker let it through
    bool delivered;
    bool may_publish = delivered;  // false: the publish itself is refused (not just the read)
  } cases[] = {
      {"a device replies on its own reply topic", "device-dev-1", "esthesis/command/reply/dev-1", "dispatchd",
       true},
      {"a device queries on its own provisioning topic", "device-dev-1",
       "esthesis/provisioning/request/dev-1", "dispatchd", true},
      {"a device reports its own metadata", "device-dev-1", "esthesis/metadata/dev-1", "dispatchd", true},
      {"a device cannot reply for another device", "device-dev-1", "esthesis/command/reply/dev-2",
       "dispatchd", false},
      {"a device cannot query for another device", "device-dev-1", "esthesis/provisioning/request/dev-2",
       "dispatchd", false},
      {"a device cannot download for another device", "device-dev-1", "esthesis/provisioning/download/dev-2",
       "dispatchd", false},
      {"a device cannot ask another device's pending commands", "device-dev-1",
       "esthesis/command/pending/dev-2", "dispatchd", false},
      {"a device cannot report another device's metadata", "device-dev-1", "esthesis/metadata/dev-2",
       "dispatchd", false},
      {"a device cannot call the platform API", "device-dev-1", "esthesis/api/v1/commands/send", "dispatchd",
       false},
      {"a device cannot publish events", "device-dev-1", "esthesis/events/v1/commands/c1", "platform", false},
      {"a device cannot answer API callers", "device-dev-1", "dispatch/reply/x", "platform", false},
      {"a device cannot command another device", "device-dev-1", "esthesis/command/request/dev-2",
       "device-dev-2", false},
      {"the platform calls the API", "platform", "esthesis/api/v1/devices/list", "dispatchd", true},
      {"the platform cannot act as a device", "platform", "esthesis/command/reply/dev-1", "dispatchd", false},
      {"the platform cannot query as a device", "platform", "esthesis/provisioning/request/dev-1",
       "dispatchd", false},
      {"the platform cannot forge events", "platform", "esthesis/events/v1/commands/c2", "platform", false},
      {"the platform cannot command a device directly", "platform", "esthesis/command/request/dev-2",
       "device-dev-2", false},
      {"the service publishes events", "dispatchd", "esthesis/events/v1/commands/c3", "platform", true},
      {"the service answers API callers under dispatch/reply", "dispatchd", "dispatch/reply/p1", "platform",
       true},
      {"the service commands a device", "dispatchd", "esthesis/command/request/dev-2", "device-dev-2", true},
      {"the service cannot pose as a device", "dispatchd", "esthesis/command/reply/dev-1", "dispatchd",
       false},
      {"a device reads only its own command topic", "dispatchd", "esthesis/command/request/dev-1",
       "device-dev-1", true},
      {"a device cannot read another device's chunks", "dispatchd", "esthesis/provisioning/data/dev-2",
       "device-dev-1", false, true},
  };
  std::map<std::string, std::multiset<std::string>> expected;
  int n = 0;
  for (const auto& c : cases) {
    const std::string payload = "row-" + std::to_string(++n);
    INFO(c.rule);
    auto st = clients[c.publisher]->publish(c.topic, payload, 1, false, {}, {}, true);
    // mosquitto answers a refused QoS 1 publish with PUBACK 0x87 (not authorized) under MQTT 5 and with
    // a plain PUBACK under 3.1.1 (the devices here): either way the message must not be delivered.
    const bool mqtt5 = clients[c.publisher]->mqtt_version() == 5;
    CHECK(st.ok() == (c.may_publish || !mqtt5));
    if (c.delivered) expected[c.watcher].insert(std::string(c.topic) + " " + payload);
  }
  // The last publish of each identity is acknowledged; give the broker time to route everything.
  std::map<std::string, std::multiset<std::string>> got;
  for (auto& [who, client] : clients) got[who] = drain(*client, who == "dispatchd" ? 1500 : 300);
  for (auto& [who, client] : clients) {
    INFO("messages received by " << who);
    CHECK(got[who] == expected[who]);
  }
}

TEST_CASE("broker TLS: clients without a certificate of our CA are refused at connect",
          "[integration][acl]") {
  TlsBroker broker;
  struct {
    const char* rule;
    ClientOptions options;
  } cases[] = {
      {"no client certificate", broker.client("")},
      {"a certificate from another CA", broker.client("other")},
      {"an expired certificate of our CA", broker.client("expired")},
      {"plain MQTT on the TLS port",
       [&] {
         auto o = broker.client("device-dev-1");
         o.uri = "tcp://127.0.0.1:" + broker.uri().substr(broker.uri().rfind(':') + 1);
         return o;
       }()},
  };
  for (auto& c : cases) {
    INFO(c.rule);
    MqttClient client(c.options);
    auto st = client.connect(5000);
    REQUIRE_FALSE(st);
    CHECK(st.error().code == dispatch::core::ErrorCode::unavailable);
    CHECK_FALSE(client.connected());
  }
  // Control: the same broker accepts a device of our CA.
  MqttClient ok(broker.client("device-dev-1"));
  CHECK(ok.connect(5000));
}

TEST_CASE("broker TLS: a device cannot take over another device's session by its client id",
          "[integration][acl]") {
  TlsBroker broker;
  auto victim = connect_as(broker, "device-dev-2");
  auto options = broker.client("device-dev-1");
  options.client_id = "dev-2";
  MqttClient spoofer(options);
  REQUIRE(spoofer.connect(5000));
  // use_username_as_clientid: the broker renames the spoofer to its certificate's CN. Barriers: the
  // broker logs a takeover before the new client's connect line, and the victim's SUBSCRIBE round trip
  // starts after the spoofer's CONNACK, so a taken-over victim could not get its SUBACK.
  std::string log;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    log = broker.log();
    if (log.find("as dev-1 (") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  INFO(log);
  REQUIRE(log.find("as dev-1 (") != std::string::npos);
  CHECK(victim->subscribe("esthesis/command/request/dev-2", 1));
  CHECK(broker.log().find("Client dev-2 already connected") == std::string::npos);
  CHECK(victim->connected());
}

TEST_CASE("broker ACL: dispatchd does all of its work over TLS with the service certificate",
          "[integration][acl]") {
  TlsBroker broker;
  TempDir dir;
  const std::string certs = broker.cert_dir();
  Process daemon({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.uri", broker.uri(),
                  "--mqtt.ca_file", certs + "/ca.crt", "--mqtt.cert_file", certs + "/dispatchd.crt",
                  "--mqtt.key_file", certs + "/dispatchd.key", "--storage.path", dir.path() + "/dispatch.db",
                  "--storage.data_dir", dir.path() + "/packages"},
                 {}, dir.path() + "/dispatchd.log");
  auto platform = connect_as(broker, "platform");
  auto device = connect_as(broker, "device-dev-1", 4);
  REQUIRE(device->subscribe("esthesis/command/request/dev-1", 1));

  bool ready = false;
  for (int i = 0; i < 40 && !ready && daemon.running(); ++i) {
    ready = static_cast<bool>(platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 500));
  }
  INFO("dispatchd log:\n" << read_file(dir.path() + "/dispatchd.log") << "\nbroker log:\n" << broker.log());
  REQUIRE(ready);

  auto pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  auto reg = api(*platform, "devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}});
  REQUIRE(reg.value("hardware_id", "") == "dev-1");

  auto sent =
      api(*platform, "commands/send",
          {{"type", "exec"}, {"execution", "sync"}, {"command", "uptime"}, {"hardware_ids", {"dev-1"}}});
  REQUIRE(sent.contains("command_id"));
  const std::string id = sent["command_id"];

  auto line = device->next(10000);
  REQUIRE(line);
  CHECK(line->topic == "esthesis/command/request/dev-1");
  CHECK(line->payload == id + " es uptime");
  REQUIRE(device->publish("esthesis/command/reply/dev-1", id + " s up 3 days", 1, false, {}, {}, true));

  json device_row;
  for (int i = 0; i < 100; ++i) {
    auto got = api(*platform, "commands/get", {{"command_id", id}});
    if (got.contains("devices") && !got["devices"].empty() && got["devices"][0]["state"] == "succeeded") {
      device_row = got["devices"][0];
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(device_row.is_object());
  CHECK(device_row["hardware_id"] == "dev-1");
  CHECK(device_row["output"] == "up 3 days");
  CHECK(daemon.terminate(15000) == 0);  // a clean stop (a sanitized build checks for leaks at exit)
}
