// Retention purges on every backend: old and finished rows go, young or unfinished ones stay, and no
// batch deletes more than its limit.
#include "storage/retention.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "storage/commands.h"
#include "storage/idempotency.h"
#include "tests/storage/storage_fixture.h"

namespace dispatch::storage {
namespace {

using test::backends;
using test::make_command;
using test::make_delivery;
using test::TestDb;

std::int64_t count(Database& db, const std::string& table, const std::string& where = "1 = 1") {
  return db
      .read([&]() -> core::Result<std::int64_t> {
        auto q = db.prepare("SELECT COUNT(*) FROM " + table + " WHERE " + where);
        q->executeStep();
        return q->getColumn(0).getInt64();
      })
      .value();
}

// A command created at `t` with one delivery per state in `states`.
void command(Database& db, const std::string& id, core::TimeMs t, const std::vector<std::string>& states) {
  CommandStore store(db);
  std::vector<DeliveryRow> ds;
  for (std::size_t i = 0; i < states.size(); ++i) {
    ds.push_back(make_delivery(id, "dev-" + std::to_string(i), t));
    ds.back().state = states[i];
  }
  REQUIRE(store.create_with_deliveries(make_command(id, t), ds).ok());
}

void campaign(Database& db, const std::string& id, const std::string& state,
              std::optional<core::TimeMs> ended_at, int members) {
  db.exec(
      "INSERT INTO campaigns(id, name, type, document_json, state, created_at, ended_at, updated_at) "
      "VALUES('" +
      id + "', 'n', 'firmware', '{}', '" + state + "', 1, " +
      (ended_at ? std::to_string(*ended_at) : std::string("NULL")) + ", 1)");
  for (int i = 0; i < members; ++i) {
    const std::string hw = "dev-" + std::to_string(i);
    db.exec(
        "INSERT INTO campaign_executions(campaign_id, hardware_id, group_index, state, updated_at) VALUES('" +
        id + "', '" + hw + "', 0, 'succeeded', 1)");
    db.exec("INSERT INTO campaign_attempts(campaign_id, hardware_id, attempt, command_id) VALUES('" + id +
            "', '" + hw + "', 1, '" + id + "-" + hw + "')");
  }
}

TEST_CASE("finished old commands are purged with their deliveries, young and open ones stay",
          "[storage][retention]") {
  TestDb t(GENERATE(backends()));
  command(*t, "old-done", 100, {"succeeded", "failed", "expired", "canceled"});
  command(*t, "old-empty", 100, {});
  command(*t, "old-open-queued", 100, {"succeeded", "queued"});
  command(*t, "old-open-sent", 100, {"sent"});
  command(*t, "young-done", 5000, {"succeeded"});
  RetentionStore store(*t);

  auto r = store.purge_commands(1000, 500);
  REQUIRE(r.ok());
  CHECK(r->parents == 2);
  CHECK(r->children == 4);
  CHECK(count(*t, "commands", "id IN ('old-done', 'old-empty')") == 0);
  CHECK(count(*t, "deliveries", "command_id = 'old-done'") == 0);
  CHECK(count(*t, "commands") == 3);
  CHECK(count(*t, "deliveries") == 4);
  // Nothing more to do.
  CHECK(store.purge_commands(1000, 500)->rows() == 0);
}

TEST_CASE("a command purge honours the batch size, deliveries included", "[storage][retention]") {
  TestDb t(GENERATE(backends()));
  command(*t, "big", 100, std::vector<std::string>(7, "succeeded"));
  command(*t, "small", 200, {"failed"});
  RetentionStore store(*t);

  std::vector<std::int64_t> batches;
  for (int i = 0; i < 10; ++i) {
    auto r = store.purge_commands(1000, 3);
    REQUIRE(r.ok());
    CHECK(r->children <= 3);
    batches.push_back(r->rows());
    if (r->rows() < 3) break;
  }
  // 7 deliveries in 3 + 3 + (1 + the command) + (small's delivery and command), then nothing.
  CHECK(count(*t, "commands") == 0);
  CHECK(count(*t, "deliveries") == 0);
  CHECK(batches.size() >= 3);
  CHECK(batches.back() < 3);

  CHECK(store.purge_commands(1000, 0).error().code == core::ErrorCode::bad_request);
}

TEST_CASE("only campaigns that ended long enough ago are purged, with their executions",
          "[storage][retention]") {
  TestDb t(GENERATE(backends()));
  campaign(*t, "done-old", "completed", 100, 3);
  campaign(*t, "aborted-old", "aborted", 100, 1);
  campaign(*t, "terminated-old", "terminated_by_user", 100, 0);
  campaign(*t, "done-young", "completed", 5000, 1);
  campaign(*t, "running", "running", std::nullopt, 2);
  campaign(*t, "paused", "paused_by_user", std::nullopt, 1);
  RetentionStore store(*t);

  int batches = 0;
  for (;;) {
    auto r = store.purge_campaigns(1000, 4);
    REQUIRE(r.ok());
    CHECK(r->children <= 4);
    ++batches;
    if (r->rows() < 4) break;
    REQUIRE(batches < 10);
  }
  CHECK(batches >= 2);
  CHECK(count(*t, "campaigns") == 3);
  CHECK(count(*t, "campaigns", "id IN ('done-young', 'running', 'paused')") == 3);
  CHECK(count(*t, "campaign_executions") == 4);
  CHECK(count(*t, "campaign_attempts") == 4);
}

TEST_CASE("idempotency records, tokens, nonces and rate events are purged by age in batches",
          "[storage][retention]") {
  TestDb t(GENERATE(backends()));
  IdempotencyStore requests(*t);
  for (int i = 0; i < 5; ++i)
    REQUIRE(requests.put("commands/send", "old-" + std::to_string(i), "f", "{}", 100).ok());
  REQUIRE(requests.put("commands/send", "young", "f", "{}", 5000).ok());
  t.db->exec("INSERT INTO meta(key, value) VALUES('service-state', 'kept')");
  for (int i = 0; i < 5; ++i) {
    const std::string h = "old-" + std::to_string(i);
    t.db->exec(
        "INSERT INTO download_tokens(token_hash, hardware_id, package_id, created_at, expires_at, spent) "
        "VALUES('" +
        h + "', 'dev', 'p', 1, 900, " + std::to_string(i % 2) + ")");
    t.db->exec("INSERT INTO token_ranges(token_hash, \"offset\", length) VALUES('" + h + "', 0, 10)");
  }
  t.db->exec(
      "INSERT INTO download_tokens(token_hash, hardware_id, package_id, created_at, expires_at) "
      "VALUES('live', 'dev', 'p', 1, 2000)");
  for (int i = 0; i < 5; ++i) {
    t.db->exec("INSERT INTO nonces(nonce_key, t) VALUES('n" + std::to_string(i) + "', " +
               std::to_string(100 + i) + ")");
    t.db->exec("INSERT INTO rate_events(key, t) VALUES('dev', " + std::to_string(100 + i) + ")");
  }
  t.db->exec("INSERT INTO nonces(nonce_key, t) VALUES('fresh', 5000)");
  t.db->exec("INSERT INTO rate_events(key, t) VALUES('dev', 5000)");
  RetentionStore store(*t);

  auto first = store.purge_requests(1000, 2);
  REQUIRE(first.ok());
  CHECK(first->parents == 2);
  while (store.purge_requests(1000, 2)->parents == 2) {
  }
  CHECK(count(*t, "meta", "key LIKE 'request:%'") == 1);
  CHECK(requests.find("commands/send", "young")->has_value());
  CHECK(count(*t, "meta", "key = 'service-state'") == 1);

  auto tokens = store.purge_download_tokens(1000, 2);
  REQUIRE(tokens.ok());
  CHECK(tokens->parents == 2);
  CHECK(tokens->children == 2);
  while (store.purge_download_tokens(1000, 2)->parents == 2) {
  }
  CHECK(count(*t, "download_tokens") == 1);
  CHECK(count(*t, "token_ranges") == 0);

  CHECK(store.purge_nonces(1000, 3)->parents == 3);
  CHECK(store.purge_nonces(1000, 3)->parents == 2);
  CHECK(count(*t, "nonces") == 1);

  CHECK(store.purge_rate_events(1000, 3)->parents == 3);
  CHECK(store.purge_rate_events(1000, 3)->parents == 2);
  CHECK(store.purge_rate_events(1000, 3)->parents == 0);
  CHECK(count(*t, "rate_events") == 1);
}

TEST_CASE("rate events sharing a timestamp never stall a purge", "[storage][retention]") {
  TestDb t(GENERATE(backends()));
  for (int i = 0; i < 6; ++i)
    t.db->exec("INSERT INTO rate_events(key, t) VALUES('dev-" + std::to_string(i) + "', 100)");
  RetentionStore store(*t);
  // One millisecond's events go together: the batch exceeds its limit rather than deleting nothing.
  CHECK(store.purge_rate_events(1000, 2)->parents == 6);
  CHECK(count(*t, "rate_events") == 0);
}

}  // namespace
}  // namespace dispatch::storage
