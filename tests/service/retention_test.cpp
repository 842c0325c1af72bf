// Retention under a week of simulated traffic (issue 14): with a manual clock, every hour brings a fleet
// command, its replies, request_id records, provisioning queries (nonces, rate events, download tokens)
// and every day a finished campaign. The service's Retention runs on the timer as in the daemon. The
// database must stay bounded: rows and file size level off once the retention windows are full, while
// what is young or unfinished stays.
#include "service/retention.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "storage/commands.h"
#include "storage/database.h"
#include "storage/idempotency.h"
#include "tests/support/process.h"

using namespace dispatch;

namespace {

constexpr core::TimeMs k_hour_ms = 3'600'000;
constexpr int k_fleet = 200;             // devices per command and campaign
constexpr int k_queries_per_hour = 200;  // provisioning queries per hour

std::int64_t count(storage::Database& db, const std::string& table) {
  return db
      .read([&]() -> core::Result<std::int64_t> {
        auto q = db.prepare("SELECT COUNT(*) FROM " + table);
        q->executeStep();
        return q->getColumn(0).getInt64();
      })
      .value();
}

std::int64_t all_rows(storage::Database& db) {
  std::int64_t n = 0;
  for (const char* t : {"commands", "deliveries", "campaigns", "campaign_executions", "campaign_attempts",
                        "meta", "download_tokens", "token_ranges", "nonces", "rate_events"}) {
    n += count(db, t);
  }
  return n;
}

std::uintmax_t file_bytes(storage::Database& db) {
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  std::error_code ec;
  auto main = std::filesystem::file_size(db.path(), ec);
  auto wal = std::filesystem::file_size(db.path() + "-wal", ec);
  return main + (ec ? 0 : wal);
}

// One hour of traffic at `now`.
void hour_of_traffic(storage::Database& db, core::TimeMs now, int hour) {
  const std::string id = "cmd-" + std::to_string(hour);
  storage::CommandRow c;
  c.id = id;
  c.type = "exec";
  c.execution = "sync";
  c.command = "uptime";
  c.created_at = now;
  std::vector<storage::DeliveryRow> ds;
  for (int i = 0; i < k_fleet; ++i) {
    storage::DeliveryRow d;
    d.command_id = id;
    d.hardware_id = "dev-" + std::to_string(i);
    d.command_line = id + " es uptime";
    d.state = i % 10 == 0 ? "expired" : "succeeded";
    d.output = "up 3 days, load average: 0.00, 0.01, 0.05";
    d.created_at = now;
    ds.push_back(d);
  }
  REQUIRE(storage::CommandStore(db).create_with_deliveries(c, ds).ok());
  auto st = db.transaction([&]() -> core::Status {
    if (auto s = storage::IdempotencyStore(db).put("commands/send", "req-" + id, std::string(64, 'f'),
                                                   R"({"command_id":")" + id + "\"}", now);
        !s)
      return s;
    for (int i = 0; i < k_queries_per_hour; ++i) {
      const std::string n = std::to_string(hour) + "-" + std::to_string(i);
      auto nonce = db.prepare("INSERT INTO nonces(nonce_key, t) VALUES(?, ?)");
      nonce->bind(1, "dev-" + n);
      nonce->bind(2, now + i);
      nonce->exec();
      auto rate = db.prepare("INSERT INTO rate_events(key, t) VALUES(?, ?)");
      rate->bind(1, "dev-" + std::to_string(i));
      rate->bind(2, now + i);
      rate->exec();
      if (i % 4 == 0) {
        auto token = db.prepare(
            "INSERT INTO download_tokens(token_hash, hardware_id, package_id, created_at, expires_at, spent, "
            "served_bytes) VALUES(?, ?, 'pkg', ?, ?, 1, 1000)");
        token->bind(1, "tok-" + n);
        token->bind(2, "dev-" + std::to_string(i));
        token->bind(3, now);
        token->bind(4, now + k_hour_ms);
        token->exec();
        auto range =
            db.prepare("INSERT INTO token_ranges(token_hash, \"offset\", length) VALUES(?, 0, 1000)");
        range->bind(1, "tok-" + n);
        range->exec();
      }
    }
    if (hour % 24 == 23) {  // the day's campaign, finished
      const std::string k = "camp-" + std::to_string(hour / 24);
      auto q = db.prepare(
          "INSERT INTO campaigns(id, name, type, document_json, state, created_at, started_at, ended_at, "
          "updated_at) VALUES(?, 'nightly', 'firmware', '{}', 'completed', ?, ?, ?, ?)");
      q->bind(1, k);
      for (int p = 2; p <= 5; ++p) q->bind(p, now);
      q->exec();
      for (int i = 0; i < k_fleet; ++i) {
        auto e = db.prepare(
            "INSERT INTO campaign_executions(campaign_id, hardware_id, group_index, state, attempt, "
            "command_id, "
            "updated_at) VALUES(?, ?, 0, 'succeeded', 1, ?, ?)");
        e->bind(1, k);
        e->bind(2, "dev-" + std::to_string(i));
        e->bind(3, k + "-" + std::to_string(i));
        e->bind(4, now);
        e->exec();
        auto a = db.prepare(
            "INSERT INTO campaign_attempts(campaign_id, hardware_id, attempt, command_id) VALUES(?, ?, 1, "
            "?)");
        a->bind(1, k);
        a->bind(2, "dev-" + std::to_string(i));
        a->bind(3, k + "-" + std::to_string(i));
        a->exec();
      }
    }
    return {};
  });
  REQUIRE(st.ok());
}

}  // namespace

TEST_CASE("a week of traffic stays bounded under retention", "[retention]") {
  dispatch::testing::TempDir dir;
  auto opened = storage::Database::open(dir.path() + "/dispatch.db");
  REQUIRE(opened.ok());
  storage::Database& db = **opened;
  core::ManualClock clock;
  service::Config config;
  config.retention_commands_days = 1;
  config.retention_campaigns_days = 2;
  config.retention_batch_rows = 500;
  config.retention_interval_s = 600;
  service::Retention retention(config, clock, db);

  // Kept whatever their age: an unfinished command and a running campaign.
  {
    storage::CommandRow open;
    open.id = "open";
    open.type = "exec";
    open.execution = "async";
    open.created_at = clock.now_ms();
    storage::DeliveryRow d;
    d.hardware_id = "dev-offline";
    d.command_line = "open ea x";
    d.state = "sent";
    d.created_at = clock.now_ms();
    REQUIRE(storage::CommandStore(db).create_with_deliveries(open, {d}).ok());
    db.exec(
        "INSERT INTO campaigns(id, name, type, document_json, state, created_at, updated_at) "
        "VALUES('running', 'slow', 'firmware', '{}', 'running', " +
        std::to_string(clock.now_ms()) + ", " + std::to_string(clock.now_ms()) + ")");
  }

  const std::int64_t initial = all_rows(db);
  std::vector<std::int64_t> rows_by_day;
  std::vector<std::uintmax_t> bytes_by_day;
  std::int64_t inserted = 0;
  std::int64_t max_batches_in_a_round = 0;
  for (int hour = 0; hour < 7 * 24; ++hour) {
    const std::int64_t before = all_rows(db);
    hour_of_traffic(db, clock.now_ms(), hour);
    inserted += all_rows(db) - before;
    // The loop's timer: a round starts every 10 minutes and runs one batch per tick.
    for (int tick = 0; tick < 6; ++tick) {
      clock.advance_s(600);
      std::int64_t batches = 0;
      do {
        retention.on_timer();
        ++batches;
        REQUIRE(batches < 10'000);
      } while (retention.round_in_progress());
      max_batches_in_a_round = std::max(max_batches_in_a_round, batches);
    }
    if (hour % 24 == 23) {
      rows_by_day.push_back(all_rows(db));
      bytes_by_day.push_back(file_bytes(db));
    }
  }

  const auto& c = retention.counters();
  for (std::size_t d = 0; d < rows_by_day.size(); ++d) {
    std::fprintf(stderr, "retention week: day %zu rows %lld file %ju bytes\n", d + 1,
                 static_cast<long long>(rows_by_day[d]), bytes_by_day[d]);
  }
  std::fprintf(
      stderr,
      "retention week: %lld rows inserted, %llu deleted (%llu commands, %llu deliveries, %llu campaigns, "
      "%llu campaign rows, %llu requests, %llu tokens, %llu nonces, %llu rate events), at most %lld "
      "batches per round\n",
      static_cast<long long>(inserted), static_cast<unsigned long long>(c.retention_rows_deleted),
      static_cast<unsigned long long>(c.commands_deleted),
      static_cast<unsigned long long>(c.deliveries_deleted),
      static_cast<unsigned long long>(c.campaigns_deleted),
      static_cast<unsigned long long>(c.campaign_executions_deleted),
      static_cast<unsigned long long>(c.requests_deleted),
      static_cast<unsigned long long>(c.download_tokens_deleted),
      static_cast<unsigned long long>(c.nonces_deleted),
      static_cast<unsigned long long>(c.rate_events_deleted), static_cast<long long>(max_batches_in_a_round));

  // Bounded: from day 3 on (both windows full) the rows and the file no longer grow.
  REQUIRE(rows_by_day.size() == 7);
  for (std::size_t d = 3; d < 7; ++d) {
    CHECK(rows_by_day[d] <= rows_by_day[2] + rows_by_day[2] / 10);
    CHECK(bytes_by_day[d] <= bytes_by_day[2] + bytes_by_day[2] / 5);
  }
  CHECK(rows_by_day[6] < inserted / 2);
  CHECK(c.retention_rows_deleted == static_cast<std::uint64_t>(initial + inserted - all_rows(db)));
  CHECK(c.batch_failures == 0);
  // Young and unfinished rows stay.
  CHECK(count(db, "commands") >= 24);
  {
    auto open = storage::CommandStore(db).get("open");
    CHECK(open.ok());
  }
  CHECK(db.read([&]() -> core::Result<std::int64_t> {
            auto q = db.prepare("SELECT COUNT(*) FROM campaigns WHERE id = 'running'");
            q->executeStep();
            return q->getColumn(0).getInt64();
          }).value() == 1);
}
