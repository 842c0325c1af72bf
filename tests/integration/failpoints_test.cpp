// Walks the command path's failpoints: the service is killed (as by kill -9) at each durability boundary,
// at several hit counts, restarted, and the invariants are checked: every device gets exactly one command
// id per command, the counters equal a recount from the rows, and the database passes integrity_check.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "protocol/core/signature.h"
#include "storage/database.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::service::ClientOptions;
using dispatch::service::InboundMessage;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

constexpr int k_devices = 20;
constexpr int k_commands = 3;

struct Fleet {
  std::mutex mu;
  std::map<std::string, std::set<std::string>> ids;  // device → command ids received
  std::vector<std::pair<std::string, std::string>> to_answer;
};

// extra: more dispatchd arguments (e.g. a small commands.expand_chunk, so that every send is written in
// chunks after its answer).
void run_walk(const std::string& failpoint, int hit, std::vector<std::string> extra = {}) {
  INFO("failpoint " << failpoint << " at hit " << hit);
  Broker broker;
  // Paho acknowledges a message when it hands it to us; one still in our queue when the process dies is
  // gone from the broker. Presence redelivery (here after 1 s) is what recovers it: the device answers
  // the same command id again.
  std::vector<std::string> args = {"--commands.redeliver_interval_s", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  Daemon daemon(broker, args, {"DISPATCH_FAILPOINTS=" + failpoint + ":" + std::to_string(hit)});
  ClientOptions o;
  o.uri = broker.uri();
  MqttClient platform(o);
  REQUIRE(platform.connect(10000));
  REQUIRE(daemon.wait_ready(platform));
  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  int restarts = 0;
  auto restart_if_dead = [&] {
    if (daemon.running()) return;
    ++restarts;
    daemon.set_env({});
    daemon.start();
    REQUIRE(daemon.wait_ready(platform));
  };
  // Every call is retried with the same request_id until answered: what a careful client does.
  auto call = [&](const std::string& action, const json& body) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = platform.request("esthesis/api/v1/" + action, body.dump(), 3000);
      if (r) return json::parse(*r);
      restart_if_dead();
    }
    FAIL("no answer to " << action);
    return json();
  };
  for (int i = 0; i < k_devices; ++i) {
    call("devices/register",
         {{"hardware_id", "fp-" + std::to_string(1000 + i)}, {"public_key", pem}, {"tags", {"fp"}}});
  }
  Fleet fleet;
  MqttClient devices(o);
  REQUIRE(devices.connect(10000));
  devices.set_handler([&](InboundMessage&& m) {
    std::lock_guard lk(fleet.mu);
    auto hw = m.topic.substr(m.topic.rfind('/') + 1);
    auto id = m.payload.substr(0, m.payload.find(' '));
    fleet.ids[hw].insert(id);
    fleet.to_answer.emplace_back(hw, id);
  });
  REQUIRE(devices.subscribe("esthesis/command/request/+", 1));

  std::set<std::string> command_ids;
  for (int c = 0; c < k_commands; ++c) {
    auto r = call("commands/send",
                  {{"type", "reboot"}, {"tags", {"fp"}}, {"request_id", "walk-" + std::to_string(c)}});
    REQUIRE(r.contains("command_id"));
    command_ids.insert(r["command_id"]);
  }
  REQUIRE(command_ids.size() == static_cast<size_t>(k_commands));

  // Devices answer what they receive (again on re-delivery: the id is their idempotency key) until every
  // delivery of every command has succeeded.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool done = false;
  int extra_commands = 0;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::pair<std::string, std::string>> batch;
    {
      std::lock_guard lk(fleet.mu);
      batch.swap(fleet.to_answer);
    }
    for (const auto& [hw, id] : batch) (void)devices.publish("esthesis/command/reply/" + hw, id + " s ok", 1);
    restart_if_dead();
    done = true;
    for (const auto& id : command_ids) {
      auto got = call("commands/get", {{"command_id", id}});
      if (got["command"]["counts"]["succeeded"] != k_devices) done = false;
    }
    // The failpoint must fire while the walk runs. On a loaded machine one flush may carry every
    // acknowledgement of the commands (before_mark_sent), so its second hit would come only at shutdown:
    // another command gives it another one.
    if (done && restarts == 0 && extra_commands < 10) {
      auto r = call("commands/send", {{"type", "reboot"},
                                      {"tags", {"fp"}},
                                      {"request_id", "walk-extra-" + std::to_string(extra_commands++)}});
      REQUIRE(r.contains("command_id"));
      command_ids.insert(r["command_id"]);
      done = false;
    }
    if (!done) {
      // A device that missed a publish while the service was down pulls its pending commands, as
      // agents do on reconnect.
      for (int i = 0; i < k_devices; ++i) {
        (void)devices.publish("esthesis/ping/fp-" + std::to_string(1000 + i), "health ping=1", 0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  CHECK(done);
  CHECK(restarts >= 1);  // the failpoint fired
  // Invariants.
  {
    std::lock_guard lk(fleet.mu);
    REQUIRE(fleet.ids.size() == static_cast<size_t>(k_devices));
    for (const auto& [hw, ids] : fleet.ids) {
      INFO(hw);
      CHECK(ids == command_ids);
    }
  }
  auto list = call("commands/list", json::object());
  CHECK(list["commands"].size() == command_ids.size());
  for (const auto& id : command_ids) {
    auto got = call("commands/get", {{"command_id", id}});
    std::map<std::string, int> recount;
    for (const auto& d : got["devices"]) ++recount[d["state"].get<std::string>()];
    for (const char* state : {"queued", "sent", "succeeded", "failed", "expired", "canceled"}) {
      CHECK(got["command"]["counts"][state] == recount[state]);
    }
    CHECK(got["devices"].size() == static_cast<size_t>(k_devices));
  }
  REQUIRE(daemon.terminate() == 0);
  auto db = dispatch::storage::Database::open(daemon.db_path());
  REQUIRE(db);
  auto check = (*db)->integrity_check();
  REQUIRE(check);
  CHECK(*check == "ok");
}

}  // namespace

TEST_CASE("failpoint walk: after_delivery_commit", "[integration][failpoints]") {
  for (int hit : {1, 2}) run_walk("after_delivery_commit", hit);
}
TEST_CASE("failpoint walk: before_mark_sent", "[integration][failpoints]") {
  for (int hit : {1, 2}) run_walk("before_mark_sent", hit);
}
TEST_CASE("failpoint walk: before_reply_commit", "[integration][failpoints]") {
  for (int hit : {1, 25}) run_walk("before_reply_commit", hit);
}
TEST_CASE("failpoint walk: after_reply_commit", "[integration][failpoints]") {
  for (int hit : {1, 2}) run_walk("after_reply_commit", hit);
}
TEST_CASE("failpoint walk: after_batch_commit", "[integration][failpoints]") {
  for (int hit : {5, 15}) run_walk("after_batch_commit", hit);
}
// A send to 20 devices with commands.expand_chunk 6 commits 6 deliveries and a list of 14 targets, then
// writes them in three more chunks after its answer: killed before and after those commits, the next start
// goes on from the list's cursor, and every device still gets each command id exactly once.
TEST_CASE("failpoint walk: before_expansion_commit", "[integration][failpoints]") {
  for (int hit : {1, 3}) run_walk("before_expansion_commit", hit, {"--commands.expand_chunk", "6"});
}
TEST_CASE("failpoint walk: after_expansion_commit", "[integration][failpoints]") {
  for (int hit : {1, 2}) run_walk("after_expansion_commit", hit, {"--commands.expand_chunk", "6"});
}
TEST_CASE("failpoint walk: after_delivery_commit of a send written in chunks", "[integration][failpoints]") {
  run_walk("after_delivery_commit", 1, {"--commands.expand_chunk", "6"});
}
