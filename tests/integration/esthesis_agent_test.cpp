// Unmodified esthesis agents and the run-once rules of PROTOCOL v1.1: redelivery only to a device that
// missed the line (§1.3) and long replies (§1.2). A real mosquitto, a real dispatchd and the agent
// emulator of tests/support/esthesis_agent.h (QoS 0, clean session, no de-duplication).
#include "tests/support/esthesis_agent.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "protocol/core/signature.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A device registered over the platform API and its agent emulator, pinging every 500 ms.
std::unique_ptr<EsthesisAgent> agent_for(MqttClient& platform, const Broker& broker, const std::string& hw,
                                         const TempDir& dir) {
  const auto key = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::rsa);
  auto reg = api(platform, "devices/register", {{"hardware_id", hw}, {"public_key", key.public_pem()}});
  REQUIRE(reg.value("hardware_id", "") == hw);
  EsthesisAgentOptions o;
  o.hardware_id = hw;
  o.mqtt_server = broker.uri();
  o.private_key_pem = key.private_pem();
  o.ping_interval = 500ms;
  o.version_file = dir.path() + "/" + hw + ".version";
  std::ofstream(o.version_file) << "1.0.0";
  return std::make_unique<EsthesisAgent>(o);
}

json delivery(MqttClient& platform, const std::string& command_id) {
  auto got = api(platform, "commands/get", {{"command_id", command_id}});
  REQUIRE(got.contains("devices"));
  REQUIRE(got["devices"].size() == 1);
  return got["devices"][0];
}

// The delivery once it left `sent` (or as it is after timeout).
json answered(MqttClient& platform, const std::string& command_id, std::chrono::seconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  json d = delivery(platform, command_id);
  while (d["state"] == "sent" && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
    d = delivery(platform, command_id);
  }
  return d;
}

std::string send_exec(MqttClient& platform, const std::string& hw, const std::string& command,
                      const std::vector<std::string>& arguments) {
  auto sent = api(platform, "commands/send",
                  {{"type", "exec"}, {"command", command}, {"arguments", arguments}, {"hardware_ids", {hw}}});
  REQUIRE(sent.contains("command_id"));
  return sent["command_id"];
}

}  // namespace

TEST_CASE("esthesis agent: a long command runs once while the agent keeps pinging", "[integration]") {
  Broker broker;
  // Redelivery as eager as it gets (1 s), a gap of 3 s: the agent pings every 500 ms throughout.
  Daemon daemon(broker, {"--commands.redeliver_interval_s", "1", "--commands.presence_gap_s", "3"});
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  TempDir dir;
  auto agent = agent_for(*platform, broker, "agent-long", dir);
  REQUIRE(agent->start());
  const std::string id = send_exec(*platform, "agent-long", "sleep", {"6"});
  auto reply = agent->wait_for_reply(id, 30s);
  REQUIRE(reply);
  CHECK(*reply == id + " s ");
  const json d = answered(*platform, id, 10s);
  CHECK(d["state"] == "succeeded");
  CHECK(d["attempts"] == 1);  // published once: six seconds of pings never looked like an absence
  CHECK(agent->executions_of(id) == 1);
  CHECK(agent->pings_sent() >= 10);
  CHECK(agent->would_have_crashed() == 0);
}

TEST_CASE("esthesis agent: a command published while the agent is offline runs once when it is back",
          "[integration]") {
  Broker broker;
  Daemon daemon(broker, {"--commands.redeliver_interval_s", "1", "--commands.presence_gap_s", "3"});
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  TempDir dir;
  auto agent = agent_for(*platform, broker, "agent-away", dir);
  REQUIRE(agent->start());
  agent->stop();
  // Published while nobody subscribes: QoS 0 and a clean session, so the broker drops it.
  const std::string id = send_exec(*platform, "agent-away", "echo", {"back"});
  const auto published = std::chrono::steady_clock::now();
  while (delivery(*platform, id)["attempts"] != 1 && std::chrono::steady_clock::now() - published < 10s)
    std::this_thread::sleep_for(50ms);
  // Away for longer than the gap, then back: the service re-publishes it once.
  std::this_thread::sleep_for(4s);
  CHECK(agent->executions_of(id) == 0);
  REQUIRE(agent->start());
  auto reply = agent->wait_for_reply(id, 20s);
  REQUIRE(reply);
  CHECK(*reply == id + " s back");
  const json d = answered(*platform, id, 10s);
  CHECK(d["state"] == "succeeded");
  CHECK(d["output"] == "back");
  // The service re-published it once because the agent had been away. Not read from `attempts`: that
  // counts publishes the broker acknowledged, written in batches after the loop's turn, and on a slow
  // run (the sanitizer build) the second publish's acknowledgement and the agent's reply arrive in the
  // same batch, the reply is recorded first and the acknowledgement then finds the delivery answered:
  // attempts stays 1. The log line is written before the publish the reply depends on.
  CHECK(daemon.log().find("agent-away missed 1 unanswered sends: publishing them again") !=
        std::string::npos);
  CHECK(d["attempts"] >= 1);
  CHECK(d["attempts"] <= 2);
  CHECK(agent->executions_of(id) == 1);
  CHECK(agent->would_have_crashed() == 0);
}

TEST_CASE("esthesis agent: a 1.6 MB reply is recorded trimmed at 1 MiB, a 17 MiB one is dropped and counted",
          "[integration]") {
  Broker broker;
  Daemon daemon(broker);  // the defaults: 1 MiB of output, 16 MiB on the reply topic
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  TempDir dir;
  auto agent = agent_for(*platform, broker, "agent-seq", dir);
  REQUIRE(agent->start());

  const std::string seq = send_exec(*platform, "agent-seq", "seq", {"250000"});
  auto reply = agent->wait_for_reply(seq, 30s);
  REQUIRE(reply);
  CHECK(reply->size() > 1'600'000);
  const json d = answered(*platform, seq, 20s);
  CHECK(d["state"] == "succeeded");
  CHECK(d["trimmed"] == true);
  const std::string output = d["output"];
  CHECK(output.size() == 1024 * 1024);
  CHECK(output.rfind("1\n2\n3\n", 0) == 0);

  // 17 MiB of output: over the reply topic's transport limit, so dropped whole and counted.
  const std::string big = send_exec(*platform, "agent-seq", "yes", {"|", "head", "-c", "17825792"});
  auto big_reply = agent->wait_for_reply(big, 60s);
  REQUIRE(big_reply);
  CHECK(big_reply->size() > 16u * 1024 * 1024);
  std::string log;
  for (int i = 0; i < 200 && log.find("on command_reply from agent-seq") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    log = daemon.log();
  }
  CHECK(log.find("over the limit of 16777216 bytes (oversize device messages dropped: 1)") !=
        std::string::npos);
  const json dropped = delivery(*platform, big);
  CHECK(dropped["state"] == "sent");
  CHECK(dropped["output"] == "");
  CHECK(agent->would_have_crashed() == 0);
}
