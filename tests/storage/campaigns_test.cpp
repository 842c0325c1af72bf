#include "storage/campaigns.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "tests/storage/storage_fixture.h"
#include "tests/support/sanitizers.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::backends;
using test::TestDb;

CampaignRow make_campaign(const std::string& id) {
  CampaignRow c;
  c.id = id;
  c.name = "rollout " + id;
  c.type = "provisioning";
  c.document_json = R"({"name":"rollout"})";
  c.state = "created";
  c.created_at = 10;
  c.updated_at = 10;
  return c;
}

ExecutionRow make_execution(const std::string& campaign, const std::string& hw, int group = 0) {
  ExecutionRow e;
  e.campaign_id = campaign;
  e.hardware_id = hw;
  e.group_index = group;
  e.updated_at = 10;
  return e;
}

TEST_CASE("campaigns are stored, updated, listed and removed", "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert(make_campaign("k2")).ok());
  CHECK(store.insert(make_campaign("k1")).error().code == ErrorCode::conflict);

  REQUIRE(store.update_state("k1", "running", "", 20).ok());
  CampaignRow k1 = store.get("k1").value();
  CHECK(k1.state == "running");
  CHECK(k1.updated_at == 20);
  k1.started_at = 20;
  k1.current_group = 2;
  k1.group_done_at = 30;
  k1.ramp_successes = 7;
  k1.engine_state = "rate=600";
  k1.reason = "threshold";
  k1.updated_at = 31;
  REQUIRE(store.update(k1).ok());
  CampaignRow again = store.get("k1").value();
  CHECK(again.started_at == 20);
  CHECK(again.current_group == 2);
  CHECK(again.group_done_at == 30);
  CHECK(again.ramp_successes == 7);
  CHECK(again.engine_state == "rate=600");
  CHECK(again.document_json == R"({"name":"rollout"})");

  CampaignQuery running;
  running.state = "running";
  REQUIRE(store.list(running).value().size() == 1);
  CHECK(store.list(CampaignQuery{}).value().size() == 2);

  struct {
    const char* rule;
    core::Status status;
  } cases[] = {
      {"update_state of an unknown campaign", store.update_state("nope", "running", "", 1)},
      {"update of an unknown campaign", store.update(make_campaign("nope"))},
      {"remove of an unknown campaign", store.remove("nope")},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    REQUIRE_FALSE(c.status.ok());
    CHECK(c.status.error().code == ErrorCode::not_found);
  }
}

TEST_CASE("campaigns are counted per state", "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  CHECK(store.count_by_state().value().empty());
  auto running = make_campaign("k3");
  running.state = "running";
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert(make_campaign("k2")).ok());
  REQUIRE(store.insert(running).ok());
  using Rows = std::vector<std::pair<std::string, std::int64_t>>;
  CHECK(store.count_by_state().value() == Rows{{"created", 2}, {"running", 1}});
}

TEST_CASE("executions carry their rowids, an update finds its row by them and never writes another row",
          "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  const bool sqlite = (*t).backend() == Backend::sqlite;
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert_executions({make_execution("k1", "dev-0")}).ok());
  std::vector<std::int64_t> rowids;
  const std::vector<ExecutionRow> rows = {make_execution("k1", "dev-a"), make_execution("k1", "dev-0"),
                                          make_execution("k1", "dev-b")};
  REQUIRE(store.insert_executions(rows, &rowids).value() == 2);
  REQUIRE(rowids.size() == 3);
  CHECK(rowids[1] == 0);  // dev-0 existed: skipped
  if (sqlite) {
    CHECK(rowids[0] > 0);
    CHECK(rowids[2] > 0);
    CHECK(rowids[0] != rowids[2]);
  } else {
    CHECK(rowids == std::vector<std::int64_t>{0, 0, 0});
  }
  // executions() reads them back with the rows.
  auto stored = store.executions("k1");
  REQUIRE(stored.ok());
  REQUIRE(stored->size() == 3);
  std::map<std::string, std::int64_t> by_hw;
  for (const auto& r : *stored) by_hw[r.hardware_id] = r.rowid;
  CHECK(by_hw["dev-a"] == rowids[0]);
  CHECK(by_hw["dev-b"] == rowids[2]);
  if (sqlite) CHECK(by_hw["dev-0"] > 0);

  // An update by a known rowid writes that row.
  ExecutionRow a = stored->at(1);
  REQUIRE(a.hardware_id == "dev-a");
  a.state = "sent";
  a.attempt = 1;
  REQUIRE(store.update_executions({a}).ok());
  CHECK(store.execution("k1", "dev-a")->state == "sent");
  // A rowid that names another device's row (never expected: a VACUUM by hand may renumber rows) never
  // writes that row: the key is compared, and the key finds the row meant.
  ExecutionRow stale = a;
  stale.rowid = by_hw["dev-b"] > 0 ? by_hw["dev-b"] : 12345;
  stale.state = "succeeded";
  REQUIRE(store.update_executions({stale}).ok());
  CHECK(store.execution("k1", "dev-a")->state == "succeeded");
  CHECK(store.execution("k1", "dev-b")->state == "queued");
  ExecutionRow gone = make_execution("k1", "dev-z");
  gone.rowid = by_hw["dev-a"];
  CHECK(store.update_executions({gone}).error().code == ErrorCode::not_found);
  CHECK(store.execution("k1", "dev-a")->state == "succeeded");
  // Without a rowid the key finds the row, on both backends.
  ExecutionRow b = store.execution("k1", "dev-b").value();
  b.rowid = 0;
  b.state = "sent";
  REQUIRE(store.update_executions({b}).ok());
  CHECK(store.execution("k1", "dev-b")->state == "sent");
}

TEST_CASE("a device has one execution per campaign and one command id per attempt", "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  auto inserted = store.insert_executions({make_execution("k1", "dev-a"), make_execution("k1", "dev-b", 1)});
  REQUIRE(inserted.ok());
  CHECK(*inserted == 2);

  // A second execution for the same campaign and device is a no-op that keeps the first row.
  auto again = store.insert_executions({make_execution("k1", "dev-a", 5), make_execution("k1", "dev-c", 1)});
  REQUIRE(again.ok());
  CHECK(*again == 1);
  CHECK(store.execution("k1", "dev-a")->group_index == 0);
  CHECK(store.insert_executions({make_execution("nope", "dev-a")}).error().code == ErrorCode::not_found);

  REQUIRE(store.record_attempt("k1", "dev-a", 0, "cmd-a0").ok());
  struct {
    const char* rule;
    std::string hw;
    int attempt;
    std::string command_id;
    std::optional<ErrorCode> error;
  } cases[] = {
      {"an attempt is recorded once", "dev-a", 0, "cmd-other", ErrorCode::conflict},
      {"a command id serves one attempt", "dev-b", 0, "cmd-a0", ErrorCode::conflict},
      {"the next attempt gets its own id", "dev-a", 1, "cmd-a1", std::nullopt},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto s = store.record_attempt("k1", c.hw, c.attempt, c.command_id);
    if (c.error) {
      REQUIRE_FALSE(s.ok());
      CHECK(s.error().code == *c.error);
    } else {
      CHECK(s.ok());
    }
  }
  CHECK(store.record_attempt("nope", "dev-a", 0, "cmd-x").error().code == ErrorCode::not_found);
  CHECK(store.attempt_command_ids("k1", "dev-a").value() == std::vector<std::string>{"cmd-a0", "cmd-a1"});
  auto ref = store.execution_by_command_id("cmd-a1");
  REQUIRE(ref.ok());
  REQUIRE(ref->has_value());
  CHECK((*ref)->campaign_id == "k1");
  CHECK((*ref)->hardware_id == "dev-a");
  CHECK((*ref)->attempt == 1);
  CHECK_FALSE(store.execution_by_command_id("cmd-zz").value().has_value());

  REQUIRE(store.remove("k1").ok());
  CHECK(store.executions("k1").value().empty());
  CHECK_FALSE(store.execution_by_command_id("cmd-a0").value().has_value());
}

TEST_CASE("execution updates are written all together or not at all", "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert_executions({make_execution("k1", "dev-a"), make_execution("k1", "dev-b")}).ok());
  ExecutionRow a = make_execution("k1", "dev-a");
  a.state = "sent";
  a.attempt = 1;
  a.command_id = "cmd-a1";
  a.sent_at = 50;
  a.next_attempt_at = 90;
  a.output = "ok";
  a.version_verified = true;
  a.updated_at = 50;
  ExecutionRow ghost = make_execution("k1", "ghost");
  ghost.state = "sent";

  auto refused = store.update_executions({a, ghost});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == ErrorCode::not_found);
  CHECK(store.execution("k1", "dev-a")->state == "queued");  // the batch rolled back

  REQUIRE(store.update_executions({a}).ok());
  ExecutionRow got = store.execution("k1", "dev-a").value();
  CHECK(got.state == "sent");
  CHECK(got.command_id == "cmd-a1");
  CHECK(got.sent_at == 50);
  CHECK(got.next_attempt_at == 90);
  CHECK(got.version_verified);
  CHECK(got.output == "ok");
  CHECK_FALSE(got.version_at_send.has_value());

  a.version_at_send = "1.4.2";  // schema v3
  REQUIRE(store.update_executions({a}).ok());
  CHECK(store.execution("k1", "dev-a")->version_at_send == "1.4.2");
  ExecutionRow c = make_execution("k1", "dev-c");
  c.version_at_send = "0.9.0";
  REQUIRE(store.insert_executions({c}).ok());
  CHECK(store.executions("k1")->back().version_at_send == "0.9.0");
}

TEST_CASE("1,300 executions and attempts go in batches, every rowid names its own row",
          "[storage][campaigns]") {
  // 1,300 = 512 + 512 + 256 + 16 + 4: every batch size of the halving, and a row that already exists in
  // the middle of the second batch.
  TestDb t(GENERATE(backends()));
  const bool sqlite = (*t).backend() == Backend::sqlite;
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert_executions({make_execution("k1", "dev-0700")}).ok());
  std::vector<ExecutionRow> rows;
  std::vector<AttemptRecord> attempts;
  for (int i = 0; i < 1300; ++i) {
    const std::string hw = fmt::format("dev-{:04}", i);
    rows.push_back(make_execution("k1", hw));
    attempts.push_back({"k1", hw, 1, "cmd-" + hw});
  }
  std::vector<std::int64_t> rowids;
  REQUIRE(store.insert_executions(rows, &rowids).value() == 1299);
  REQUIRE(rowids.size() == 1300);
  CHECK(rowids[700] == 0);  // existed before: skipped
  auto stored = store.executions("k1");
  REQUIRE(stored.ok());
  REQUIRE(stored->size() == 1300);
  std::map<std::string, std::int64_t> by_hw;
  for (const auto& r : *stored) by_hw[r.hardware_id] = r.rowid;
  int matched = 0;
  for (int i = 0; i < 1300; ++i) {
    if (i == 700) continue;
    if (sqlite) {
      matched += rowids[static_cast<std::size_t>(i)] == by_hw[rows[static_cast<std::size_t>(i)].hardware_id];
    } else {
      matched += rowids[static_cast<std::size_t>(i)] == 0;
    }
  }
  CHECK(matched == 1299);

  REQUIRE(store.record_attempts(attempts).ok());
  for (int i : {0, 511, 512, 1023, 1024, 1279, 1280, 1295, 1296, 1299}) {
    const std::string hw = fmt::format("dev-{:04}", i);
    INFO(hw);
    auto ref = store.execution_by_command_id("cmd-" + hw);
    REQUIRE(ref.ok());
    REQUIRE(ref->has_value());
    CHECK((*ref)->hardware_id == hw);
    CHECK((*ref)->attempt == 1);
  }
}

TEST_CASE("each attempt keeps its own reply: a late reply to a superseded attempt is recorded",
          "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.insert_executions({make_execution("k1", "dev-a"), make_execution("k1", "dev-b")}).ok());
  REQUIRE(store
              .record_attempts(
                  {{"k1", "dev-a", 1, "cmd-a1"}, {"k1", "dev-a", 2, "cmd-a2"}, {"k1", "dev-b", 1, "cmd-b1"}})
              .ok());
  struct {
    const char* rule;
    std::string hw;
    std::string command_id;
    bool success;
    std::string output;
    bool recorded;
  } cases[] = {
      {"the current attempt's reply", "dev-a", "cmd-a2", true, "done", true},
      {"a late reply to the superseded attempt", "dev-a", "cmd-a1", false, "late boom", true},
      {"a duplicate keeps the first reply", "dev-a", "cmd-a1", true, "again", false},
      {"another device's command id", "dev-b", "cmd-a2", true, "", false},
      {"an unknown command id", "dev-a", "cmd-zz", true, "", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = store.record_attempt_reply(c.hw, c.command_id, c.success, c.output, 70);
    REQUIRE(r.ok());
    CHECK(*r == c.recorded);
  }
  auto history = store.attempts("k1", "dev-a");
  REQUIRE(history.ok());
  CHECK(*history ==
        std::vector<AttemptRow>{{1, "cmd-a1", 70, false, "late boom"}, {2, "cmd-a2", 70, true, "done"}});
  auto b = store.attempts("k1", "dev-b");
  REQUIRE(b.ok());
  CHECK(*b == std::vector<AttemptRow>{{1, "cmd-b1", std::nullopt, std::nullopt, ""}});
  // The execution row is not touched by the history.
  CHECK(store.execution("k1", "dev-a")->output.empty());
}

TEST_CASE("a reply to a current, sent attempt goes to the campaign's inbox once", "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  ExecutionRow a = make_execution("k1", "dev-a");
  a.state = "sent";
  a.attempt = 2;
  a.command_id = "cmd-a2";
  ExecutionRow b = make_execution("k1", "dev-b");  // queued: nothing sent
  REQUIRE(store.insert_executions({a, b}).ok());
  REQUIRE(store
              .record_attempts(
                  {{"k1", "dev-a", 1, "cmd-a1"}, {"k1", "dev-a", 2, "cmd-a2"}, {"k1", "dev-b", 1, "cmd-b1"}})
              .ok());
  CHECK(*store.add_to_inbox("dev-a", "cmd-a2", true, "done", 70));
  CHECK_FALSE(*store.add_to_inbox("dev-a", "cmd-a2", true, "again", 71));  // already there
  CHECK_FALSE(*store.add_to_inbox("dev-a", "cmd-a1", false, "late", 72));  // superseded attempt
  CHECK_FALSE(*store.add_to_inbox("dev-b", "cmd-b1", true, "", 73));       // execution not sent
  CHECK_FALSE(*store.add_to_inbox("dev-b", "cmd-a2", true, "", 74));       // another device's id
  auto inbox = store.inbox("k1", 10);
  REQUIRE(inbox.ok());
  CHECK(*inbox == std::vector<InboxReply>{{"k1", "cmd-a2", "dev-a", true, "done", 70}});
  CHECK(store.inbox("k1", 0).error().code == ErrorCode::bad_request);
  REQUIRE(store.clear_inbox("k1", {"cmd-a2"}).ok());
  CHECK(store.inbox("k1", 10)->empty());
}

TEST_CASE("a device's open executions are read across campaigns through the partial index",
          "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  for (const char* id : {"k1", "k2", "k3"}) REQUIRE(store.insert(make_campaign(id)).ok());
  ExecutionRow sent = make_execution("k2", "dev-a");
  sent.state = "sent";
  sent.attempt = 1;
  sent.command_id = "cmd-2";
  sent.sent_at = 40;
  ExecutionRow done = make_execution("k3", "dev-a");
  done.state = "succeeded";
  REQUIRE(store.insert_executions({make_execution("k1", "dev-a"), sent, done, make_execution("k1", "dev-b")})
              .ok());
  auto open = store.open_executions("dev-a", 10);
  REQUIRE(open.ok());
  CHECK(*open == std::vector<OpenExecution>{{"k1", "queued", 0, std::nullopt, std::nullopt},
                                            {"k2", "sent", 1, "cmd-2", 40}});
  CHECK(store.open_executions("dev-a", 1)->size() == 1);
  CHECK(store.open_executions("dev-z", 10)->empty());
  CHECK(store.open_executions("dev-a", 0).error().code == ErrorCode::bad_request);
  // The query is answered from the index, not by scanning the executions.
  if ((*t).backend() == Backend::sqlite) {
    auto plan = (*t).prepare(
        "EXPLAIN QUERY PLAN SELECT campaign_id FROM campaign_executions "
        "WHERE hardware_id = 'dev-a' AND state IN ('queued', 'sent')");
    std::string text;
    while (plan->executeStep()) text += plan->getColumn(3).getString() + "\n";
    INFO(text);
    CHECK(text.find("campaign_executions_open_by_device") != std::string::npos);
  }
}

TEST_CASE("a campaign's version inbox keeps the newest report per device until it is cleared",
          "[storage][campaigns]") {
  TestDb t(GENERATE(backends()));
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("k1")).ok());
  REQUIRE(store.add_version_report({"k1", "dev-a", "1.0.0", 10}).ok());
  REQUIRE(store.add_version_report({"k1", "dev-a", "2.0.0", 20}).ok());
  REQUIRE(store.add_version_report({"k1", "dev-a", "1.5.0", 15}).ok());  // older, arrived late: ignored
  REQUIRE(store.add_version_report({"k1", "dev-b", "2.0.0", 12}).ok());
  CHECK(store.add_version_report({"nope", "dev-a", "2.0.0", 12}).error().code == ErrorCode::not_found);
  auto inbox = store.version_reports("k1", 10);
  REQUIRE(inbox.ok());
  CHECK(*inbox == std::vector<VersionReport>{{"k1", "dev-b", "2.0.0", 12}, {"k1", "dev-a", "2.0.0", 20}});
  CHECK(store.version_reports("k1", 0).error().code == ErrorCode::bad_request);
  // A newer report of dev-a arrived after the driver read the inbox: clearing what it read keeps it.
  REQUIRE(store.add_version_report({"k1", "dev-a", "2.0.1", 30}).ok());
  REQUIRE(store.clear_version_reports(*inbox).ok());
  CHECK(*store.version_reports("k1", 10) == std::vector<VersionReport>{{"k1", "dev-a", "2.0.1", 30}});
  REQUIRE(store.remove("k1").ok());  // the inbox goes with its campaign
  CHECK(store.version_reports("k1", 10)->empty());
}

TEST_CASE("100,000 executions are written and read back quickly", "[storage][campaigns][batch]") {
  TestDb t("file");
  CampaignStore store(*t);
  REQUIRE(store.insert(make_campaign("big")).ok());
  constexpr int k_devices = 100'000;
  std::vector<ExecutionRow> rows;
  rows.reserve(k_devices);
  for (int i = 0; i < k_devices; ++i)
    rows.push_back(make_execution("big", "dev-" + std::to_string(i), i % 3));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(store.insert_executions(rows).value() == k_devices);
  for (auto& r : rows) r.state = "sent";
  REQUIRE(store.update_executions(rows).ok());
  auto all = store.executions("big");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE(all.ok());
  CHECK(all->size() == static_cast<std::size_t>(k_devices));
  CHECK(all->front().group_index == 0);
  CHECK(all->back().group_index == 2);
  CHECK(all->back().state == "sent");
  // Generous: the machine running the tests may be busy; uncontended this takes about a second.
  CHECK(elapsed < std::chrono::seconds(10) * dispatch::testing::k_time_scale);
}

}  // namespace
}  // namespace dispatch::storage
