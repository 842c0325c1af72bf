#include "storage/retention.h"

#include <string>
#include <vector>

namespace dispatch::storage {

using core::ErrorCode;
using core::Result;
using core::TimeMs;

namespace {

core::Status check_limit(int limit) {
  if (limit < 1) return core::make_error(ErrorCode::bad_request, "a purge batch needs a limit of at least 1");
  return {};
}

std::vector<std::string> column_strings(Database& db, const std::string& sql, TimeMs before, int limit) {
  std::vector<std::string> out;
  auto q = db.prepare(sql);
  q->bind(1, before);
  q->bind(2, limit);
  while (q->executeStep()) out.push_back(q->getColumn(0).getString());
  return out;
}

// Deletes up to `budget` rows of `table` whose `parent_column` is parent, choosing them by `key_column`
// (unique within the parent); returns how many.
int delete_children(Database& db, const char* table, const char* parent_column, const char* key_column,
                    const std::string& parent, int budget) {
  auto q = db.prepare(std::string("DELETE FROM ") + table + " WHERE " + parent_column + " = ?1 AND " +
                      key_column + " IN (SELECT " + key_column + " FROM " + table + " WHERE " +
                      parent_column + " = ?1 LIMIT ?2)");
  q->bind(1, parent);
  q->bind(2, budget);
  return q->exec();
}

}  // namespace

// The candidates are found once per batch; their children go first so that one fleet-wide command (one
// delivery per device) is deleted over several batches instead of in one long transaction.
Result<Purged> RetentionStore::purge_commands(TimeMs before, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    const auto ids = column_strings(
        db_,
        "SELECT c.id FROM commands c WHERE c.created_at < ?1 AND NOT EXISTS "
        "(SELECT 1 FROM deliveries d WHERE d.command_id = c.id AND d.state IN "
        "('queued', 'sent')) AND NOT EXISTS (SELECT 1 FROM command_targets t WHERE t.command_id = c.id) "
        "ORDER BY c.created_at, c.id LIMIT ?2",
        before, limit);
    Purged p;
    int budget = limit;
    for (const auto& id : ids) {
      const int n = delete_children(db_, "deliveries", "command_id", "hardware_id", id, budget);
      p.children += n;
      budget -= n;
      if (budget <= 0) break;  // this command may have deliveries left: the next batch goes on
      auto q = db_.prepare("DELETE FROM commands WHERE id = ?");
      q->bind(1, id);
      p.parents += q->exec();
    }
    return p;
  });
}

Result<Purged> RetentionStore::purge_campaigns(TimeMs before, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    const auto ids = column_strings(
        db_,
        "SELECT id FROM campaigns WHERE state IN ('completed', 'aborted', 'terminated_by_user') AND "
        "COALESCE(ended_at, updated_at) < ?1 ORDER BY COALESCE(ended_at, updated_at), id LIMIT ?2",
        before, limit);
    Purged p;
    int budget = limit;
    for (const auto& id : ids) {
      int n = delete_children(db_, "campaign_attempts", "campaign_id", "command_id", id, budget);
      p.children += n;
      budget -= n;
      if (budget <= 0) break;
      n = delete_children(db_, "campaign_executions", "campaign_id", "hardware_id", id, budget);
      p.children += n;
      budget -= n;
      if (budget <= 0) break;
      auto q = db_.prepare("DELETE FROM campaigns WHERE id = ?");
      q->bind(1, id);
      p.parents += q->exec();
    }
    return p;
  });
}

Result<Purged> RetentionStore::purge_requests(TimeMs before, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    auto q = db_.prepare(
        "DELETE FROM meta WHERE key IN (SELECT key FROM meta WHERE created_at < ?1 AND key LIKE 'request:%' "
        "ORDER BY created_at LIMIT ?2)");
    q->bind(1, before);
    q->bind(2, limit);
    return Purged{q->exec(), 0};
  });
}

Result<Purged> RetentionStore::purge_download_tokens(TimeMs expired_by, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    const auto hashes = column_strings(
        db_, "SELECT token_hash FROM download_tokens WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
        expired_by, limit);
    Purged p;
    for (const auto& h : hashes) {
      auto r = db_.prepare("DELETE FROM token_ranges WHERE token_hash = ?");
      r->bind(1, h);
      p.children += r->exec();
      auto q = db_.prepare("DELETE FROM download_tokens WHERE token_hash = ?");
      q->bind(1, h);
      p.parents += q->exec();
    }
    return p;
  });
}

Result<Purged> RetentionStore::purge_nonces(TimeMs before, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    auto q = db_.prepare(
        "DELETE FROM nonces WHERE nonce_key IN (SELECT nonce_key FROM nonces WHERE t < ?1 ORDER BY t LIMIT "
        "?2)");
    q->bind(1, before);
    q->bind(2, limit);
    return Purged{q->exec(), 0};
  });
}

// rate_events has no key of its own (and PostgreSQL no rowid): the batch is cut by time, at the
// timestamp of the limit-th oldest event (or `before` when fewer are old enough).
Result<Purged> RetentionStore::purge_rate_events(TimeMs before, int limit) {
  if (auto st = check_limit(limit); !st) return st.error();
  return db_.transaction([&]() -> Result<Purged> {
    auto q = db_.prepare(
        "DELETE FROM rate_events WHERE t < ?1 AND t <= COALESCE((SELECT t FROM rate_events WHERE t < ?1 "
        "ORDER BY t LIMIT 1 OFFSET ?2), ?1)");
    q->bind(1, before);
    q->bind(2, limit - 1);
    return Purged{q->exec(), 0};
  });
}

}  // namespace dispatch::storage
