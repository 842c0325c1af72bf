// Walks the campaign engine's failpoints (service/campaign_service.cpp): the service is killed (as by
// kill -9) at each durability boundary of a campaign, at hit counts 1 and 3, restarted without the
// failpoint, and the invariants are checked once the campaign has ended: the failpoint fired, every
// device got exactly one command id for the campaign (no retries are owed when every device answers
// success), the statistics equal a recount from the execution rows, and integrity_check is ok.
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "protocol/core/signature.h"
#include "storage/campaigns.h"
#include "storage/database.h"
#include "tests/integration/command_fleet.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::service::InboundMessage;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

// Two groups of 12; batches of 4 make several commits with sends per group, so hit 3 of
// after_execution_commit lands in the middle of group 1.
constexpr int k_group_size = 12;
constexpr int k_devices = 2 * k_group_size;
const char* const k_groups[] = {"cfa", "cfb"};
// Longer than the walk's deadline: a reply lost in a crash shows as a campaign that never ends, not as
// a quiet timed_out.
constexpr int k_reply_timeout_s = 60;
constexpr auto k_walk_deadline = std::chrono::seconds(25);
constexpr int k_call_timeout_ms = 3000;

std::string hw_name(int group, int i) { return std::string(k_groups[group]) + "-" + std::to_string(100 + i); }

const char* const k_counters[] = {"queued", "sent", "succeeded", "failed", "timed_out", "canceled"};

void run_walk(const std::string& failpoint, int hit) {
  INFO("failpoint " << failpoint << " at hit " << hit);
  Broker broker;
  Daemon daemon(broker, {}, {"DISPATCH_FAILPOINTS=" + failpoint + ":" + std::to_string(hit)});
  auto platform = connected_client(broker);
  REQUIRE(daemon.wait_ready(*platform));
  int restarts = 0;
  auto restart_if_dead = [&] {
    if (daemon.running()) return;
    ++restarts;
    daemon.set_env({});
    daemon.start();
    REQUIRE(daemon.wait_ready(*platform));
  };
  // Every call is retried with the same body until answered: what a careful client does.
  auto call = [&](const std::string& action, const json& body) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = platform->request("esthesis/api/v1/" + action, body.dump(), k_call_timeout_ms);
      if (r) return json::parse(*r);
      restart_if_dead();
    }
    FAIL("no answer to " << action << "\n" << daemon.log_tail());
    return json();
  };

  const std::string pem = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519).public_pem();
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < k_group_size; ++i) {
      auto r = call("devices/register",
                    {{"hardware_id", hw_name(g, i)}, {"public_key", pem}, {"tags", {k_groups[g]}}});
      REQUIRE(r.value("hardware_id", "") == hw_name(g, i));
    }
  }
  CommandFleet fleet(broker);

  auto created = call("campaigns/create", {{"name", "failpoint walk"},
                                           {"type", "reboot"},
                                           {"groups", {{{"tags", {k_groups[0]}}}, {{"tags", {k_groups[1]}}}}},
                                           {"rate", {{"per_minute", 600000}}},
                                           {"batch_size", 4},
                                           {"success", {{"threshold_percent", 95}}},
                                           {"reply_timeout_s", k_reply_timeout_s},
                                           {"request_id", "cfw-walk-create"}});
  REQUIRE(created.contains("id"));
  const std::string id = created["id"];

  // campaigns/start may be the call that is killed (the transition failpoints' first hit): it is sent
  // again after the restart, and answers conflict when the first one had committed.
  for (int attempt = 0;; ++attempt) {
    REQUIRE(attempt < 5);
    auto r = platform->request("esthesis/api/v1/campaigns/start", json{{"id", id}}.dump(), k_call_timeout_ms);
    if (r) {
      auto answer = json::parse(*r);
      INFO("campaigns/start answered " << answer.dump());
      if (answer.value("state", "") == "scheduled") break;
      REQUIRE(attempt > 0);  // only a start sent again may find the campaign started
      REQUIRE(answer["error"]["code"] == "conflict");
      REQUIRE(call("campaigns/get", {{"id", id}}).value("state", "") != "created");
      break;
    }
    restart_if_dead();
  }

  // Until the campaign leaves scheduled/running, restarting the service whenever it is down.
  json last;
  const auto deadline = std::chrono::steady_clock::now() + k_walk_deadline;
  while (std::chrono::steady_clock::now() < deadline) {
    restart_if_dead();
    auto r = platform->request("esthesis/api/v1/campaigns/get", json{{"id", id}}.dump(), 2000);
    if (r) {
      last = json::parse(*r);
      const std::string state = last.value("state", "");
      if (state != "scheduled" && state != "running") break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO("last campaign document " << last.dump());

  // (1) The failpoint fired: the walk did not pass vacuously.
  CHECK(restarts >= 1);

  auto ids = fleet.ids();
  auto deliveries = fleet.deliveries();
  REQUIRE(daemon.terminate() == 0);
  auto db = dispatch::storage::Database::open(daemon.db_path());
  REQUIRE(db);
  dispatch::storage::CampaignStore store(**db);
  auto rows = store.executions(id);
  REQUIRE(rows);

  // A campaign that did not end: which executions are stuck, and had their device answered?
  std::ostringstream stuck;
  for (const auto& r : *rows) {
    if (r.state != "sent" && r.state != "queued") continue;
    stuck << r.hardware_id << " " << r.state << " attempt " << r.attempt << " id "
          << r.command_id.value_or("-") << " published_attempt " << r.published_attempt << " device saw "
          << ids[r.hardware_id].size() << " id(s), " << deliveries[r.hardware_id]
          << " deliveries (each answered)\n";
  }
  INFO("unfinished executions:\n" << stuck.str() << "log:\n" << daemon.log_tail(3000));

  // (2) Succeeded, and one command id per device, as the devices and as the database see it.
  CHECK(last.value("state", "") == "completed");
  CHECK(last["stats"]["members"] == k_devices);
  CHECK(last["stats"]["succeeded"] == k_devices);
  CHECK(last["stats"]["missing"] == 0);
  CHECK(ids.size() == static_cast<size_t>(k_devices));
  REQUIRE(rows->size() == static_cast<size_t>(k_devices));
  for (const auto& r : *rows) {
    INFO(r.hardware_id);
    auto attempts = store.attempt_command_ids(id, r.hardware_id);
    REQUIRE(attempts);
    CHECK(attempts->size() == 1);  // no retry was owed: every device answered success
    CHECK(ids[r.hardware_id].size() == 1);
    CHECK(ids[r.hardware_id] == *attempts);
    CHECK(r.state == "succeeded");
  }

  // (3) The statistics equal a recount from the rows, overall and per group.
  std::map<std::string, int> recount;
  std::map<int, std::map<std::string, int>> recount_by_group;
  for (const auto& r : *rows) {
    ++recount[r.state];
    ++recount_by_group[r.group_index][r.state];
  }
  CHECK(last["stats"]["members"] == static_cast<int>(rows->size()));
  for (const char* c : k_counters) {
    INFO("counter " << c);
    CHECK(last["stats"][c] == recount[c]);
  }
  REQUIRE(last["groups"].size() == 2);
  for (const json& group : last["groups"]) {
    // Groups are numbered from 1, in the document and in the rows' group_index.
    const int index = group.value("index", 0);
    const json& gs = group["stats"];
    CHECK(gs["members"] == k_group_size);
    for (const char* c : k_counters) {
      INFO("group " << index << " counter " << c);
      CHECK(gs[c] == recount_by_group[index][c]);
    }
  }
  CHECK(recount_by_group.size() == 2);  // no row outside the document's groups

  // (4) The file is sound.
  auto check = (*db)->integrity_check();
  REQUIRE(check);
  CHECK(*check == "ok");
}

}  // namespace

TEST_CASE("campaign failpoint walk: the service killed at each campaign durability boundary",
          "[integration][failpoints][campaign_failpoints]") {
  struct {
    const char* rule;
    const char* failpoint;
    int hit;
  } cases[] = {
      {"first batch of sends committed, none published", "after_execution_commit", 1},
      {"a batch in the middle of group 1 committed, none published", "after_execution_commit", 3},
      {"start (created -> scheduled) not yet committed", "before_campaign_transition_commit", 1},
      {"completion (running -> completed) not yet committed", "before_campaign_transition_commit", 3},
      {"start committed, its answer never sent", "after_campaign_transition_commit", 1},
      {"completion committed, its event never published", "after_campaign_transition_commit", 3},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.failpoint << ":" << c.hit << " " << c.rule) { run_walk(c.failpoint, c.hit); }
  }
}
