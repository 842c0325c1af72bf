// CampaignService over a real SQLite database, a manual clock and a recording publisher (no broker).
#include "service/campaign_service.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "service/outbox.h"
#include "storage/campaigns.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "tests/support/process.h"

namespace {

using dispatch::core::ErrorCode;
using dispatch::service::CampaignService;
using dispatch::service::OutMessage;
using dispatch::service::Publisher;
using nlohmann::json;
namespace storage = dispatch::storage;

// Records every message and, for each command request, what the database held at that moment.
class CheckingPublisher final : public Publisher {
 public:
  explicit CheckingPublisher(storage::Database& db) : db_(db) {}
  void publish(OutMessage m) override {
    if (m.topic.rfind("esthesis/command/request/", 0) == 0) {
      const std::string id = m.payload.substr(0, m.payload.find(' '));
      storage::CampaignStore store(db_);
      auto ref = store.execution_by_command_id(id);
      bool committed = ref.ok() && ref->has_value();
      if (committed) {
        auto row = store.execution((*ref)->campaign_id, (*ref)->hardware_id);
        committed = row.ok() && row->state == "sent" && row->command_id == id;
      }
      if (!committed) ++published_before_commit;
    }
    sent.push_back(std::move(m));
  }
  std::vector<OutMessage> sent;
  int published_before_commit = 0;

 private:
  storage::Database& db_;
};

struct Send {
  std::string hw, command_id, payload;
  std::uint64_t tag;
};

class Fixture {
 public:
  // instance_id: the cluster instance this service is (two fixtures on one file are two instances).
  explicit Fixture(std::string path = ":memory:", std::string instance_id = "") : path_(std::move(path)) {
    config_.cluster_instance_id = std::move(instance_id);
    open();
  }

  void open() {
    service_.reset();
    outbox_.reset();
    publisher_.reset();
    db_.reset();
    seen_ = 0;
    auto db = storage::Database::open(path_);
    REQUIRE(db.ok());
    db_ = std::move(*db);
    publisher_ = std::make_unique<CheckingPublisher>(*db_);
    outbox_ = std::make_unique<dispatch::service::Outbox>(clock, *publisher_, topics_, 1);
    service_ =
        std::make_unique<CampaignService>(config_, clock, *db_, *publisher_, topics_, *outbox_, effects_);
    REQUIRE(service_->start().ok());
  }

  void add_device(const std::string& hw, std::vector<std::string> tags = {}) {
    storage::DeviceRow row;
    row.hardware_id = hw;
    row.public_key_pem = "-";
    row.key_type = "ed25519";
    row.tags = std::move(tags);
    REQUIRE(storage::DeviceStore(*db_).upsert(row, clock.now_ms()).ok());
  }

  std::string create(const json& doc) {
    auto r = service_->api("create", doc);
    REQUIRE(r.ok());
    return (*r)["id"].get<std::string>();
  }
  dispatch::core::Result<json> call(const std::string& action, const std::string& id) {
    return service_->api(action, json{{"id", id}});
  }
  json get(const std::string& id) {
    auto r = call("get", id);
    REQUIRE(r.ok());
    return *r;
  }

  // Publishes what the outbox holds; returns the command requests since the last call.
  std::vector<Send> pump() {
    outbox_->pump(1'000'000);
    std::vector<Send> out;
    for (; seen_ < publisher_->sent.size(); ++seen_) {
      const OutMessage& m = publisher_->sent[seen_];
      if (m.topic.rfind("esthesis/command/request/", 0) != 0) continue;
      out.push_back(Send{m.topic.substr(m.topic.rfind('/') + 1), m.payload.substr(0, m.payload.find(' ')),
                         m.payload, m.tag});
    }
    return out;
  }
  void ack(const std::vector<Send>& sends) {
    for (const auto& s : sends) CHECK(outbox_->on_publish_done(s.tag, true));
    flush();
  }
  // Ticks, publishes and acknowledges; returns the sends.
  std::vector<Send> step() {
    service_->tick();
    auto sends = pump();
    ack(sends);
    return sends;
  }
  // flush() writes at most every 50 ms: let that much time pass first.
  void flush() {
    clock.advance_ms(100);
    outbox_->hand_back();
    service_->flush();
  }
  void reply(const Send& s, bool ok) {
    CHECK(service_->on_reply(s.hw, s.command_id, ok, ok ? "ok" : "boom"));
  }

  std::vector<std::string> attempt_ids(const std::string& campaign, const std::string& hw) {
    auto ids = storage::CampaignStore(*db_).attempt_command_ids(campaign, hw);
    REQUIRE(ids.ok());
    return *ids;
  }
  // The last retained event of a campaign.
  json last_event(const std::string& id) {
    for (auto it = publisher_->sent.rbegin(); it != publisher_->sent.rend(); ++it) {
      if (it->topic == "esthesis/events/v1/campaigns/" + id && it->retain) {
        return it->payload.empty() ? json::object() : json::parse(it->payload);  // empty: cleared
      }
    }
    return json::object();
  }

  dispatch::core::ManualClock clock;
  CampaignService& service() { return *service_; }
  CheckingPublisher& publisher() { return *publisher_; }
  dispatch::service::Outbox& outbox() { return *outbox_; }
  storage::Database& db() { return *db_; }

 private:
  std::string path_;
  dispatch::service::Config config_;
  dispatch::protocol::Topics topics_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<CheckingPublisher> publisher_;
  std::unique_ptr<dispatch::service::Outbox> outbox_;
  dispatch::service::BatchEffects effects_;
  std::unique_ptr<CampaignService> service_;
  size_t seen_ = 0;
};

json exec_doc(json groups) {
  return json{{"name", "t"}, {"type", "exec"}, {"command", "ls"}, {"groups", std::move(groups)}};
}

json counters(const json& stats) {
  return json{{"members", stats["members"]},
              {"queued", stats["queued"]},
              {"sent", stats["sent"]},
              {"succeeded", stats["succeeded"]},
              {"failed", stats["failed"]},
              {"timed_out", stats["timed_out"]},
              {"canceled", stats["canceled"]},
              {"missing", stats["missing"]},
              {"success_percent", stats["success_percent"]},
              {"progress_percent", stats["progress_percent"]}};
}

}  // namespace

TEST_CASE("campaigns/create refuses invalid documents with bad_request, a missing package with not_found",
          "[service][campaigns]") {
  const json base = exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}}));
  auto with = [&](const char* field, json value) {
    json d = base;
    d[field] = std::move(value);
    return d;
  };
  struct {
    const char* rule;
    json body;
    ErrorCode code;
    const char* message;
  } cases[] = {
      {"no groups", with("groups", json::array()), ErrorCode::bad_request,
       "groups must hold at least one group"},
      {"unknown type", with("type", "firmware"), ErrorCode::bad_request, "unknown type 'firmware'"},
      {"threshold over 100", with("success", {{"threshold_percent", 101}}), ErrorCode::bad_request,
       "success.threshold_percent must be between 0 and 100"},
      {"bad member id", with("groups", json::array({{{"hardware_ids", {"a/b"}}}})), ErrorCode::bad_request,
       "group 1 has an invalid hardware id 'a/b'"},
      {"negative rate", with("rate", {{"per_minute", -5}}), ErrorCode::bad_request,
       "rate.per_minute must be positive"},
      {"negative retries", with("retries", {{"max", -1}}), ErrorCode::bad_request,
       "retries.max must not be negative"},
      {"unknown package",
       json{{"name", "t"}, {"type", "provisioning"}, {"package_id", "nope"}, {"groups", base["groups"]}},
       ErrorCode::not_found, "no package 'nope'"},
      {"bad request_id", with("request_id", "a b"), ErrorCode::bad_request,
       "invalid request_id 'a b': must match ^[A-Za-z0-9_.:-]{1,128}$"},
  };
  Fixture f;
  for (const auto& c : cases) {
    SECTION(c.rule) {
      auto r = f.service().api("create", c.body);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == c.code);
      CHECK(r.error().message == c.message);
    }
  }
}

TEST_CASE("campaigns/create with a request_id answers the first id again", "[service][campaigns]") {
  Fixture f;
  json doc = exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}}));
  doc["request_id"] = "r-1";
  const std::string first = f.create(doc);
  CHECK(f.create(doc) == first);
  doc["name"] = "other";
  auto again = f.service().api("create", doc);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::conflict);
}

TEST_CASE("a campaign runs its groups to completed with exact statistics", "[service][campaigns]") {
  Fixture f;
  for (int i = 0; i < 10; ++i)
    f.add_device("dev-00" + std::to_string(i),
                 i >= 4 ? std::vector<std::string>{"eu"} : std::vector<std::string>{});
  f.add_device("dev-000-eu", {"eu"});
  const std::string id = f.create(
      exec_doc(json::array({{{"hardware_ids", {"dev-000", "dev-001", "dev-002", "dev-003", "ghost-1"}}},
                            {{"hardware_ids", {"dev-000"}}, {"tags", {"eu"}}}})));
  auto started = f.call("start", id);
  REQUIRE(started.ok());
  CHECK((*started)["state"] == "scheduled");
  CHECK((*started)["stats"]["members"] == 11);
  CHECK((*started)["stats"]["missing"] == 1);

  // Group 1: four sends, each committed before it was published.
  auto g1 = f.step();
  REQUIRE(g1.size() == 4);
  CHECK(f.publisher().published_before_commit == 0);
  CHECK(f.get(id)["state"] == "running");
  for (const auto& s : g1) f.reply(s, s.hw != "dev-001");
  f.flush();
  // Group 1 ends at 75 %, under the default 95 %: the gate pauses; the operator's resume approves it.
  f.service().tick();
  CHECK(f.get(id)["state"] == "paused_by_workflow");
  CHECK(f.get(id)["reason"] == "group 1 success 75.00% below threshold 95%");
  REQUIRE(f.call("resume", id).ok());
  auto g2 = f.step();
  REQUIRE(g2.size() == 7);
  std::set<std::string> g2_devices;
  for (const auto& s : g2) g2_devices.insert(s.hw);
  CHECK(g2_devices.count("dev-000") == 0);  // contacted once, in its first group
  for (const auto& s : g2) f.reply(s, true);
  f.flush();
  f.service().tick();

  const json got = f.get(id);
  CHECK(got["state"] == "completed");
  CHECK(counters(got["stats"]) == json{{"members", 11},
                                       {"queued", 0},
                                       {"sent", 0},
                                       {"succeeded", 10},
                                       {"failed", 1},
                                       {"timed_out", 0},
                                       {"canceled", 0},
                                       {"missing", 1},
                                       {"success_percent", 90.91},
                                       {"progress_percent", 100.0}});
  CHECK(counters(got["groups"][0]["stats"]) == json{{"members", 4},
                                                    {"queued", 0},
                                                    {"sent", 0},
                                                    {"succeeded", 3},
                                                    {"failed", 1},
                                                    {"timed_out", 0},
                                                    {"canceled", 0},
                                                    {"missing", 1},
                                                    {"success_percent", 75.0},
                                                    {"progress_percent", 100.0}});
  CHECK(got["groups"][1]["stats"]["succeeded"] == 7);
  // The retained event carries the same document.
  CHECK(f.last_event(id)["state"] == "completed");
  CHECK(f.last_event(id)["stats"] == got["stats"]);
  // The database holds the outcome and one command id per device.
  auto row = storage::CampaignStore(f.db()).execution(id, "dev-001");
  REQUIRE(row.ok());
  CHECK(row->state == "failed");
  CHECK(row->output == "boom");
  CHECK(f.attempt_ids(id, "dev-001").size() == 1);
}

TEST_CASE(
    "a start sends at the next flush, and a reply that leaves nothing in flight ends the campaign at once",
    "[service][campaigns]") {
  Fixture f;
  for (int i = 0; i < 3; ++i) f.add_device("dev-00" + std::to_string(i));
  const std::string id =
      f.create(exec_doc(json::array({{{"hardware_ids", {"dev-000", "dev-001", "dev-002"}}}})));
  REQUIRE(f.call("start", id).ok());
  // The loop's flush after the start's batch: the first sends go out without waiting for the timer's tick.
  f.flush();
  auto sends = f.pump();
  REQUIRE(sends.size() == 3);
  CHECK(f.publisher().published_before_commit == 0);
  f.ack(sends);
  f.service().tick();  // a tick just now: the replies' 50 ms spacing has not passed
  for (const auto& s : sends) f.reply(s, true);
  // The last reply left nothing in flight: the next flush ticks at once, and the campaign is completed.
  f.outbox().hand_back();
  f.service().flush();
  CHECK(f.get(id)["state"] == "completed");
}

TEST_CASE("operator actions are allowed only where the state allows them", "[service][campaigns]") {
  struct {
    const char* rule;
    std::vector<const char*> before;  // actions that must succeed first
    const char* action;
    std::optional<ErrorCode> error;
    const char* state_or_message;
  } cases[] = {
      {"start a created campaign", {}, "start", {}, "scheduled"},
      {"start twice", {"start"}, "start", ErrorCode::conflict, "cannot start a campaign that is scheduled"},
      {"pause a created campaign",
       {},
       "pause",
       ErrorCode::conflict,
       "cannot pause a campaign that is created"},
      {"pause a scheduled campaign", {"start"}, "pause", {}, "paused_by_user"},
      {"resume a paused campaign", {"start", "pause"}, "resume", {}, "running"},
      {"resume a scheduled campaign",
       {"start"},
       "resume",
       ErrorCode::conflict,
       "cannot resume a campaign that is scheduled"},
      {"terminate a running campaign", {"start", "pause", "resume"}, "terminate", {}, "terminated_by_user"},
      {"terminate twice",
       {"start", "terminate"},
       "terminate",
       ErrorCode::conflict,
       "cannot terminate a campaign that is terminated_by_user"},
      {"delete a scheduled campaign",
       {"start"},
       "delete",
       ErrorCode::conflict,
       "cannot delete a campaign that is scheduled"},
      {"delete a created campaign", {}, "delete", {}, "created"},
      {"delete a terminated campaign", {"start", "terminate"}, "delete", {}, "terminated_by_user"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      Fixture f;
      f.add_device("dev-001");
      const std::string id = f.create(exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}})));
      for (const char* a : c.before) REQUIRE(f.call(a, id).ok());
      auto r = f.call(c.action, id);
      if (c.error) {
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == *c.error);
        CHECK(r.error().message == c.state_or_message);
      } else {
        REQUIRE(r.ok());
        CHECK((*r)["state"] == c.state_or_message);
        CHECK(f.last_event(id).value("state", "") ==
              (std::string(c.action) == "delete" ? "" : c.state_or_message));
      }
    }
  }
}

TEST_CASE("unknown campaigns are not_found, deleted ones too", "[service][campaigns]") {
  Fixture f;
  CHECK(f.call("get", "nope").error().code == ErrorCode::not_found);
  CHECK(f.call("start", "nope").error().code == ErrorCode::not_found);
  const std::string id = f.create(exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}})));
  REQUIRE(f.call("delete", id).ok());
  CHECK(f.call("get", id).error().code == ErrorCode::not_found);
  CHECK(f.service().api("get", json::object()).error().code == ErrorCode::bad_request);
}

TEST_CASE("terminate cancels sent executions and their queued publishes", "[service][campaigns]") {
  Fixture f;
  f.add_device("dev-001");
  f.add_device("dev-002");
  const std::string id = f.create(exec_doc(json::array({{{"hardware_ids", {"dev-001", "dev-002"}}}})));
  REQUIRE(f.call("start", id).ok());
  f.service().tick();
  CHECK(f.outbox().size() == 2);
  auto r = f.call("terminate", id);
  REQUIRE(r.ok());
  CHECK((*r)["stats"]["canceled"] == 2);
  CHECK(f.pump().empty());  // nothing is delivered for a canceled execution
}

TEST_CASE("a timed-out attempt is retried with a new command id, a late reply changes nothing",
          "[service][campaigns]") {
  Fixture f;
  f.add_device("dev-001");
  json doc = exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}}));
  doc["reply_timeout_s"] = 10;
  doc["retries"] = {{"max", 1}, {"backoff_s", 0}};
  const std::string id = f.create(doc);
  REQUIRE(f.call("start", id).ok());
  auto first = f.step();
  REQUIRE(first.size() == 1);
  f.clock.advance_s(10);
  f.service().tick();  // timed out, queued again
  auto second = f.step();
  REQUIRE(second.size() == 1);
  CHECK(second[0].command_id != first[0].command_id);
  CHECK(f.attempt_ids(id, "dev-001") == std::vector<std::string>{first[0].command_id, second[0].command_id});
  f.reply(first[0], true);  // superseded: ours, no effect on the execution, recorded in the history
  f.flush();
  CHECK(f.get(id)["stats"]["sent"] == 1);
  auto history = storage::CampaignStore(f.db()).attempts(id, "dev-001");
  REQUIRE(history.ok());
  REQUIRE(history->size() == 2);
  CHECK((*history)[0].command_id == first[0].command_id);
  CHECK((*history)[0].replied_at.has_value());
  CHECK((*history)[0].output == "ok");
  CHECK_FALSE((*history)[1].replied_at.has_value());
  f.reply(second[0], true);
  f.flush();
  CHECK(f.get(id)["stats"]["succeeded"] == 1);
  CHECK_FALSE(f.service().on_reply("dev-002", second[0].command_id, true, ""));  // another device's id
  CHECK_FALSE(f.service().on_reply("dev-001", "never-sent", true, ""));
}

TEST_CASE("pause and resume alternating between two instances are decided on what the other committed",
          "[service][campaigns][cluster]") {
  // Issue #13: an instance that drove a campaign keeps its snapshot in memory after another instance
  // seized the lease for an operator's action; deciding the next action on that memory answered
  // `conflict` from a stale state ("cannot pause a campaign that is paused_by_user"). Each action must be
  // decided on the committed state, whichever instance drove the previous one.
  dispatch::testing::TempDir dir;
  Fixture one(dir.path() + "/db", "one");
  Fixture two(dir.path() + "/db", "two");
  for (int i = 0; i < 3; ++i) one.add_device("dev-00" + std::to_string(i));
  const std::string id =
      one.create(exec_doc(json::array({{{"hardware_ids", {"dev-000", "dev-001", "dev-002"}}}})));
  REQUIRE(one.call("start", id).ok());
  one.service().tick();  // scheduled -> running, three sends
  REQUIRE(one.pump().size() == 3);
  REQUIRE(one.get(id)["state"] == "running");
  auto committed_state = [&] {
    auto row = storage::CampaignStore(one.db()).get(id);
    REQUIRE(row.ok());
    return row->state;
  };
  // Each instance in turn answers an action the other one's memory would refuse.
  struct Step {
    Fixture& at;
    const char* action;
    const char* state;
  } steps[] = {{two, "pause", "paused_by_user"}, {one, "resume", "running"},
               {two, "pause", "paused_by_user"}, {one, "resume", "running"},
               {one, "pause", "paused_by_user"}, {two, "resume", "running"}};
  for (const auto& s : steps) {
    INFO(s.action << " -> " << s.state);
    auto r = s.at.call(s.action, id);
    REQUIRE(r.ok());
    CHECK((*r)["state"] == s.state);
    CHECK(committed_state() == s.state);
  }
  // The instance that lost the lease writes nothing when it ticks; the one that holds it drives on with
  // the command ids already committed (no second id for any device).
  one.service().tick();
  one.flush();
  CHECK(committed_state() == "running");
  for (int i = 0; i < 3; ++i) CHECK(one.attempt_ids(id, "dev-00" + std::to_string(i)).size() == 1);
  auto resent = two.pump();  // each takeover publishes the unanswered sends again, with their ids
  std::set<std::string> resent_hws;
  for (const auto& s : resent) {
    CHECK(one.attempt_ids(id, s.hw) == std::vector<std::string>{s.command_id});
    resent_hws.insert(s.hw);
  }
  REQUIRE(resent_hws.size() == 3);
  // A get answered by the instance that lost the lease reads what was committed, not its old snapshot.
  CHECK(one.get(id)["state"] == "running");
  for (const auto& s : resent) two.reply(s, true);
  two.flush();
  two.step();
  CHECK(committed_state() == "completed");
  CHECK(one.get(id)["state"] == "completed");
}

TEST_CASE("an instance whose campaign lease lapsed publishes none of its queued lines of it",
          "[service][campaigns][cluster]") {
  // Issue #13: an instance that stopped renewing (its database unreachable, its loop stalled) still held
  // the campaign's lines in its outbox; published after another instance took the campaign over and
  // retried, an old command id reached a device after the new one.
  dispatch::testing::TempDir dir;
  Fixture one(dir.path() + "/db", "one");
  Fixture two(dir.path() + "/db", "two");
  for (int i = 0; i < 3; ++i) one.add_device("dev-00" + std::to_string(i));
  const std::string id =
      one.create(exec_doc(json::array({{{"hardware_ids", {"dev-000", "dev-001", "dev-002"}}}})));
  REQUIRE(one.call("start", id).ok());
  one.service().tick();  // scheduled -> running: three sends committed and queued, not yet published
  const auto lapse = dispatch::service::Config{}.cluster_lease_ttl_ms + 1000;
  one.clock.advance_ms(lapse);
  two.clock.advance_ms(lapse);
  two.service().tick();  // takes the lapsed lease over and publishes the unanswered sends itself
  auto taken = two.pump();
  REQUIRE(taken.size() == 3);
  for (const auto& s : taken) {
    const auto ids = two.attempt_ids(id, s.hw);
    REQUIRE_FALSE(ids.empty());
    CHECK(ids.back() == s.command_id);
  }
  CHECK(one.pump().empty());  // its lease is gone: nothing of that campaign leaves it any more
  // A lapse nobody took over is renewed on the spot: the lines go out.
  Fixture solo(dir.path() + "/db2", "solo");
  solo.add_device("dev-000");
  const std::string other = solo.create(exec_doc(json::array({{{"hardware_ids", {"dev-000"}}}})));
  REQUIRE(solo.call("start", other).ok());
  solo.service().tick();
  solo.clock.advance_ms(lapse);
  CHECK(solo.pump().size() == 1);
}

TEST_CASE("a restart resumes with identical statistics and republishes every unanswered send",
          "[service][campaigns]") {
  dispatch::testing::TempDir dir;
  Fixture f(dir.path() + "/db");
  for (int i = 0; i < 6; ++i) f.add_device("dev-00" + std::to_string(i));
  json doc = exec_doc(
      json::array({{{"hardware_ids", {"dev-000", "dev-001", "dev-002", "dev-003", "dev-004", "dev-005"}}}}));
  doc["batch_size"] = 4;
  const std::string id = f.create(doc);
  REQUIRE(f.call("start", id).ok());
  f.service().tick();
  auto sends = f.pump();
  REQUIRE(sends.size() == 4);
  // The broker acknowledged two; two replies were written.
  f.ack({sends[0], sends[1]});
  f.reply(sends[0], true);
  f.reply(sends[2], false);
  f.flush();               // writes the replies; the tick they wake sends to the two freed slots
  auto refill = f.pump();  // published, never acknowledged
  REQUIRE(refill.size() == 2);
  const json before = f.get(id);
  std::map<std::string, std::string> ids;
  for (const auto& s : sends) ids[s.hw] = s.command_id;
  for (const auto& s : refill) ids[s.hw] = s.command_id;

  f.open();  // a new service over the same file
  const json after = f.get(id);
  CHECK(after["stats"] == before["stats"]);
  CHECK(after["groups"] == before["groups"]);
  CHECK(after["state"] == "running");
  // Exactly the unanswered sends are published again, each with its command id: acknowledged by the
  // broker or not (a reply may have died with the process after Paho acknowledged it).
  CHECK(f.outbox().size() == 4);
  auto again = f.pump();
  REQUIRE(again.size() == 4);
  std::set<std::string> again_hws;
  for (const auto& s : again) {
    CHECK(s.hw != sends[0].hw);  // answered
    CHECK(s.hw != sends[2].hw);  // answered
    CHECK(s.command_id == ids[s.hw]);
    again_hws.insert(s.hw);
  }
  CHECK(again_hws.count(sends[1].hw) == 1);  // acknowledged but unanswered
  // Ticking on mints no second id for any device already sent (the batch of 4 is full).
  f.ack(again);
  auto more = f.step();
  CHECK(more.empty());
  for (const auto& [hw, cid] : ids) CHECK(f.attempt_ids(id, hw) == std::vector<std::string>{cid});
}

TEST_CASE("a started campaign runs in memory as it would after reading it back from the database",
          "[service][campaigns]") {
  // campaigns/start keeps the rows it committed instead of reading them back: their order must be the
  // store's (group, then hardware id), whatever order the document named the devices in.
  const std::vector<std::string> first = {"dev-zz", "dev-ab", "dev-m0", "dev-aa", "dev-q7"};
  const std::vector<std::string> second = {"dev-y1", "dev-b2", "dev-k3"};
  json doc = exec_doc(json::array({{{"hardware_ids", first}}, {{"hardware_ids", second}}}));
  doc["batch_size"] = 3;
  auto sends_of = [&](bool read_back) {
    dispatch::testing::TempDir dir;
    Fixture f(dir.path() + "/db");
    for (const auto& hw : first) f.add_device(hw);
    for (const auto& hw : second) f.add_device(hw);
    const std::string id = f.create(doc);
    REQUIRE(f.call("start", id).ok());
    const json started = f.get(id);
    if (read_back) {
      f.open();
      CHECK(f.get(id) == started);
    }
    std::vector<std::string> order;
    for (int turn = 0; turn < 8 && order.size() < first.size() + second.size(); ++turn) {
      f.service().tick();
      auto sends = f.pump();
      f.ack(sends);
      for (const auto& s : sends) {
        order.push_back(s.hw);
        f.reply(s, true);
      }
      f.flush();
    }
    return order;
  };
  const auto in_memory = sends_of(false);
  CHECK(in_memory.size() == first.size() + second.size());
  CHECK(in_memory == sends_of(true));
}

TEST_CASE("verify_version with the latest package needs a version newer than the one reported at send",
          "[service][campaigns]") {
  Fixture f;
  f.add_device("dev-001");
  REQUIRE(storage::DeviceStore(f.db()).set_reported_version("dev-001", "1.0.0", f.clock.now_ms()).ok());
  json doc = {{"name", "latest"},
              {"type", "provisioning"},
              {"package_id", nullptr},
              {"groups", json::array({{{"hardware_ids", {"dev-001"}}}})},
              {"success", {{"threshold_percent", 100}, {"verify_version", true}}},
              {"reply_timeout_s", 60}};
  const std::string id = f.create(doc);
  REQUIRE(f.call("start", id).ok());
  auto sends = f.step();
  REQUIRE(sends.size() == 1);
  f.reply(sends[0], true);
  f.flush();
  f.service().on_version("dev-001", "1.0.0");  // the old version again: not an update
  f.service().tick();
  f.flush();
  CHECK(f.get(id)["stats"]["succeeded"] == 0);
  f.service().on_version("dev-001", "1.1.0");
  f.service().tick();
  f.flush();
  CHECK(f.get(id)["stats"]["succeeded"] == 1);
}

TEST_CASE("campaigns/list pages with next_after like the other lists", "[service][campaigns]") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    json doc = exec_doc(json::array({{{"hardware_ids", {"dev-001"}}}}));
    doc["name"] = "c" + std::to_string(i);
    ids.push_back(f.create(doc));
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> seen;
  json req{{"limit", 2}};
  int pages = 0;
  for (;;) {
    auto r = f.service().api("list", req);
    REQUIRE(r.ok());
    ++pages;
    for (const auto& c : (*r)["campaigns"]) seen.push_back(c["id"].get<std::string>());
    if (!r->contains("next_after")) break;
    // A cursor is only given for a full page, and it is that page's last id.
    CHECK((*r)["campaigns"].size() == 2);
    CHECK((*r)["next_after"] == (*r)["campaigns"].back()["id"]);
    req["after"] = (*r)["next_after"];
    REQUIRE(pages < 10);
  }
  CHECK(pages == 3);
  CHECK(seen == ids);
  // A page shorter than the limit has no cursor.
  auto all = f.service().api("list", json{{"limit", 10}});
  REQUIRE(all.ok());
  CHECK((*all)["campaigns"].size() == 5);
  CHECK_FALSE(all->contains("next_after"));
}
