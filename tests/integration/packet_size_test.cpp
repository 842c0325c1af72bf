// No answer exceeds the broker's Maximum Packet Size (issue #15): a real mosquitto with a small
// max_packet_size, which it announces in the MQTT 5 CONNACK and enforces by dropping the connection of a
// client that sends a larger packet (then Paho would resend it after every reconnect, and the caller
// would never get an answer). Devices reply with outputs the broker still accepts; the answers about
// them must arrive, each within the limit, and the service must stay connected throughout.
#include <catch2/catch.hpp>
#include <chrono>
#include <set>
#include <string>

#include "protocol/core/signature.h"
#include "tests/integration/daemon_fixture.h"

using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

constexpr std::size_t k_max_packet = 64 * 1024;
constexpr std::size_t k_output = 60 * 1024;  // one reply line fits the broker's limit

std::string public_pem() {
  static const std::string pem =
      dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  return pem;
}

// An API call whose answer must arrive within the limit: the parsed answer, after checking the size of
// what the broker delivered (payload and topic; the packet's header and properties come on top).
json api_within_limit(const Daemon& d, dispatch::service::MqttClient& c, const std::string& route,
                      const json& body) {
  auto r = c.request("esthesis/api/v1/" + route, body.dump(), 10000);
  INFO(route << " " << body.dump());
  INFO(d.log_tail());
  REQUIRE(r);
  CHECK(r->size() + std::string("dispatch/reply/").size() < k_max_packet);
  json j = json::parse(*r, nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

}  // namespace

TEST_CASE(
    "under a small broker max_packet_size every answer arrives within it and the service stays "
    "connected",
    "[integration][commands][bounds]") {
  Broker broker("max_packet_size " + std::to_string(k_max_packet) + "\n");
  Daemon daemon(broker);
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  const std::vector<std::string> hws = {"dev-1", "dev-2", "dev-3", "dev-4"};
  for (const auto& hw : hws) {
    auto r = api(*platform, "devices/register", {{"hardware_id", hw}, {"public_key", public_pem()}});
    REQUIRE(r.value("hardware_id", "") == hw);
  }
  auto devices = connected_client(broker);
  REQUIRE(devices->subscribe("esthesis/command/request/+", 1));

  // Four devices answer one command with 60 KiB each: 240 KiB of output behind one commands/get.
  auto sent = api(*platform, "commands/send", {{"type", "exec"}, {"command", "cat"}, {"hardware_ids", hws}});
  REQUIRE(sent.contains("command_id"));
  const std::string id = sent["command_id"];
  for (std::size_t i = 0; i < hws.size(); ++i) {
    auto line = devices->next(10000);
    REQUIRE(line);
    const std::string hw = line->topic.substr(line->topic.rfind('/') + 1);
    REQUIRE(devices->publish("esthesis/command/reply/" + hw, id + " s " + std::string(k_output, 'x'), 1));
  }
  // Every device answered (commands/get's counts, read through a page of one device).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  json one;
  while (std::chrono::steady_clock::now() < deadline) {
    one = api_within_limit(daemon, *platform, "commands/get", {{"command_id", id}, {"limit", 1}});
    if (one.contains("command") && one["command"]["counts"]["succeeded"] == hws.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(one.dump().substr(0, 2000));
  REQUIRE(one["command"]["counts"]["succeeded"] == hws.size());

  SECTION("commands/get of every device: one answer within the limit, output cut short, sizes told") {
    auto all = api_within_limit(daemon, *platform, "commands/get", {{"command_id", id}});
    REQUIRE(all.contains("devices"));
    REQUIRE(all["devices"].size() == hws.size());
    bool partial = false;
    for (const auto& d : all["devices"]) {
      CHECK(d["output_bytes"] == k_output);
      partial = partial || d["output_partial"] == true;
    }
    CHECK(partial);
  }
  SECTION("commands/get paged one device at a time: every page within the limit, every device once") {
    std::set<std::string> seen;
    json page = api_within_limit(daemon, *platform, "commands/get", {{"command_id", id}, {"limit", 1}});
    for (int n = 0; n < 10; ++n) {
      REQUIRE(page.contains("devices"));
      for (const auto& d : page["devices"]) seen.insert(d["hardware_id"].get<std::string>());
      if (!page.contains("next_after")) break;
      page = api_within_limit(daemon, *platform, "commands/get",
                              {{"command_id", id}, {"limit", 1}, {"after", page["next_after"]}});
    }
    CHECK(seen == std::set<std::string>(hws.begin(), hws.end()));
  }
  SECTION("commands/list of commands too large together: too_large within the limit, one page fits") {
    // Three commands of 40 KiB of arguments each: their list is 120 KiB.
    for (int i = 0; i < 3; ++i) {
      auto r = api(*platform, "commands/send",
                   {{"type", "exec"},
                    {"command", "echo"},
                    {"arguments", {std::string(40 * 1024, static_cast<char>('a' + i))}},
                    {"hardware_ids", {"dev-1"}}});
      REQUIRE(r.contains("command_id"));
    }
    auto list = api_within_limit(daemon, *platform, "commands/list", {{"limit", 10}});
    REQUIRE(list.contains("error"));
    CHECK(list["error"]["code"] == "too_large");
    auto page = api_within_limit(daemon, *platform, "commands/list", {{"limit", 1}});
    CHECK(page["commands"].size() == 1);
    CHECK(page.contains("next_after"));
  }

  // Never disconnected: a later request is answered at once, and the service never lost its link.
  const auto asked = std::chrono::steady_clock::now();
  auto later = api_within_limit(daemon, *platform, "devices/list", {{"limit", 1}});
  CHECK(later.contains("devices"));
  CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(2));
  INFO(daemon.log_tail());
  CHECK(daemon.log().find("MQTT link lost") == std::string::npos);
}
