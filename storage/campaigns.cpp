#include "storage/campaigns.h"

#include <algorithm>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "storage/sql_util.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;
using detail::bind_opt;
using detail::opt_int64;
using detail::opt_string;

namespace {

constexpr const char* k_campaign_columns =
    "id, name, type, document_json, state, reason, created_at, started_at, ended_at, current_group, "
    "group_done_at, ramp_successes, engine_state, updated_at";
constexpr const char* k_execution_columns =
    "campaign_id, hardware_id, group_index, state, attempt, command_id, sent_at, replied_at, "
    "next_attempt_at, output, version_verified, updated_at, first_sent_at, finished_at, reply_ok, "
    "published_attempt, version_at_send";
constexpr int k_execution_column_count = 17;

CampaignRow read_campaign(Statement& q) {
  CampaignRow row;
  row.id = q.getColumn(0).getString();
  row.name = q.getColumn(1).getString();
  row.type = q.getColumn(2).getString();
  row.document_json = q.getColumn(3).getString();
  row.state = q.getColumn(4).getString();
  row.reason = q.getColumn(5).getString();
  row.created_at = q.getColumn(6).getInt64();
  row.started_at = opt_int64(q.getColumn(7));
  row.ended_at = opt_int64(q.getColumn(8));
  row.current_group = q.getColumn(9).getInt();
  row.group_done_at = opt_int64(q.getColumn(10));
  row.ramp_successes = q.getColumn(11).getInt64();
  row.engine_state = q.getColumn(12).getString();
  row.updated_at = q.getColumn(13).getInt64();
  return row;
}

ExecutionRow read_execution(Statement& q) {
  ExecutionRow row;
  row.campaign_id = q.getColumn(0).getString();
  row.hardware_id = q.getColumn(1).getString();
  row.group_index = q.getColumn(2).getInt();
  row.state = q.getColumn(3).getString();
  row.attempt = q.getColumn(4).getInt();
  row.command_id = opt_string(q.getColumn(5));
  row.sent_at = opt_int64(q.getColumn(6));
  row.replied_at = opt_int64(q.getColumn(7));
  row.next_attempt_at = opt_int64(q.getColumn(8));
  row.output = q.getColumn(9).getString();
  row.version_verified = q.getColumn(10).getInt() != 0;
  row.updated_at = q.getColumn(11).getInt64();
  row.first_sent_at = opt_int64(q.getColumn(12));
  row.finished_at = opt_int64(q.getColumn(13));
  row.reply_ok = q.getColumn(14).getInt() != 0;
  row.published_attempt = q.getColumn(15).getInt();
  row.version_at_send = opt_string(q.getColumn(16));
  return row;
}

core::Error no_campaign(const std::string& id) {
  return make_error(ErrorCode::not_found, "campaign " + id + " does not exist");
}

}  // namespace

Status CampaignStore::insert(const CampaignRow& c) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(std::string("INSERT INTO campaigns(") + k_campaign_columns +
                         ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    q->bind(1, c.id);
    q->bind(2, c.name);
    q->bind(3, c.type);
    q->bind(4, c.document_json);
    q->bind(5, c.state);
    q->bind(6, c.reason);
    q->bind(7, c.created_at);
    bind_opt(*q, 8, c.started_at);
    bind_opt(*q, 9, c.ended_at);
    q->bind(10, c.current_group);
    bind_opt(*q, 11, c.group_done_at);
    q->bind(12, c.ramp_successes);
    q->bind(13, c.engine_state);
    q->bind(14, c.updated_at);
    q->exec();
    return {};
  });
}

Result<CampaignRow> CampaignStore::get(const std::string& id) {
  return db_.read([&]() -> Result<CampaignRow> {
    auto q = db_.prepare(std::string("SELECT ") + k_campaign_columns + " FROM campaigns WHERE id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return no_campaign(id);
    return read_campaign(*q);
  });
}

Result<std::vector<CampaignRow>> CampaignStore::list(const CampaignQuery& query) {
  return db_.read([&]() -> Result<std::vector<CampaignRow>> {
    std::string sql = std::string("SELECT ") + k_campaign_columns + " FROM campaigns WHERE id > ?";
    if (query.state) sql += " AND state = ?";
    sql += " ORDER BY id LIMIT ?";
    auto q = db_.prepare(sql);
    int i = 1;
    q->bind(i++, query.after.value_or(""));
    if (query.state) q->bind(i++, *query.state);
    q->bind(i++, std::max(query.limit, 0));
    std::vector<CampaignRow> rows;
    while (q->executeStep()) rows.push_back(read_campaign(*q));
    return rows;
  });
}

Status CampaignStore::update_state(const std::string& id, const std::string& state, const std::string& reason,
                                   TimeMs t) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("UPDATE campaigns SET state = ?, reason = ?, updated_at = ? WHERE id = ?");
    q->bind(1, state);
    q->bind(2, reason);
    q->bind(3, t);
    q->bind(4, id);
    if (q->exec() == 0) return no_campaign(id);
    return {};
  });
}

Status CampaignStore::update(const CampaignRow& c) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "UPDATE campaigns SET state = ?, reason = ?, started_at = ?, ended_at = ?, "
        "current_group = ?, group_done_at = ?, ramp_successes = ?, engine_state = ?, "
        "updated_at = ? WHERE id = ?");
    q->bind(1, c.state);
    q->bind(2, c.reason);
    bind_opt(*q, 3, c.started_at);
    bind_opt(*q, 4, c.ended_at);
    q->bind(5, c.current_group);
    bind_opt(*q, 6, c.group_done_at);
    q->bind(7, c.ramp_successes);
    q->bind(8, c.engine_state);
    q->bind(9, c.updated_at);
    q->bind(10, c.id);
    if (q->exec() == 0) return no_campaign(c.id);
    return {};
  });
}

Status CampaignStore::remove(const std::string& id) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("DELETE FROM campaigns WHERE id = ?");
    q->bind(1, id);
    if (q->exec() == 0) return no_campaign(id);
    return {};
  });
}

Result<int> CampaignStore::insert_executions(const std::vector<ExecutionRow>& rows,
                                             std::vector<std::int64_t>* rowids) {
  if (rowids != nullptr) rowids->assign(rows.size(), 0);
  return db_.transaction([&]() -> Result<int> {
    auto bind_row = [&](Statement& q, int p, const ExecutionRow& r) {
      q.bindNoCopy(p + 1, r.campaign_id);
      q.bindNoCopy(p + 2, r.hardware_id);
      q.bind(p + 3, r.group_index);
      q.bindNoCopy(p + 4, r.state);
      q.bind(p + 5, r.attempt);
      bind_opt(q, p + 6, r.command_id);
      bind_opt(q, p + 7, r.sent_at);
      bind_opt(q, p + 8, r.replied_at);
      bind_opt(q, p + 9, r.next_attempt_at);
      q.bindNoCopy(p + 10, r.output);
      q.bind(p + 11, r.version_verified ? 1 : 0);
      q.bind(p + 12, r.updated_at);
      bind_opt(q, p + 13, r.first_sent_at);
      bind_opt(q, p + 14, r.finished_at);
      q.bind(p + 15, r.reply_ok ? 1 : 0);
      bind_opt(q, p + 16, r.version_at_send);
    };
    const std::string insert_rows =
        std::string("INSERT INTO campaign_executions(") + k_execution_columns + ") VALUES";
    const char* const row_placeholders = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)";
    const char* const ignore_existing = " ON CONFLICT DO NOTHING";
    // Batches of rows per statement (a round trip per batch on PostgreSQL, a statement's fixed cost per
    // batch on SQLite). SQLite's rowids, when asked for, come back with their hardware ids (RETURNING's
    // order is not promised); a row that already existed returns nothing and keeps 0.
    const bool want_rowids = rowids != nullptr && db_.backend() == Backend::sqlite;
    std::unordered_map<std::string_view, std::size_t> position;
    int inserted = 0;
    detail::for_each_batch(rows.size(), [&](std::size_t first, std::size_t n) {
      auto q = db_.prepare(insert_rows + detail::value_rows(row_placeholders, n) + ignore_existing +
                           (want_rowids ? " RETURNING hardware_id, rowid" : ""));
      for (std::size_t k = 0; k < n; ++k) bind_row(*q, static_cast<int>(k) * 16, rows[first + k]);
      if (!want_rowids) {
        inserted += q->exec();
        return;
      }
      position.clear();
      for (std::size_t k = 0; k < n; ++k) position.emplace(rows[first + k].hardware_id, first + k);
      while (q->executeStep()) {
        ++inserted;
        if (auto it = position.find(q->getColumn(0).getString()); it != position.end())
          (*rowids)[it->second] = q->getColumn(1).getInt64();
      }
    });
    return inserted;
  });
}

Result<std::vector<ExecutionRow>> CampaignStore::executions(const std::string& campaign_id) {
  return db_.read([&]() -> Result<std::vector<ExecutionRow>> {
    const bool sqlite = db_.backend() == Backend::sqlite;
    auto q = db_.prepare(std::string("SELECT ") + k_execution_columns + (sqlite ? ", rowid" : "") +
                         " FROM campaign_executions WHERE campaign_id = ? "
                         "ORDER BY group_index, hardware_id");
    q->bind(1, campaign_id);
    std::vector<ExecutionRow> rows;
    while (q->executeStep()) {
      rows.push_back(read_execution(*q));
      if (sqlite) rows.back().rowid = q->getColumn(k_execution_column_count).getInt64();
    }
    return rows;
  });
}

Result<ExecutionRow> CampaignStore::execution(const std::string& campaign_id,
                                              const std::string& hardware_id) {
  return db_.read([&]() -> Result<ExecutionRow> {
    auto q = db_.prepare(std::string("SELECT ") + k_execution_columns +
                         " FROM campaign_executions WHERE campaign_id = ? AND hardware_id = ?");
    q->bind(1, campaign_id);
    q->bind(2, hardware_id);
    if (!q->executeStep()) {
      return make_error(ErrorCode::not_found,
                        "no execution of campaign " + campaign_id + " for " + hardware_id);
    }
    return read_execution(*q);
  });
}

Status CampaignStore::update_executions(const std::vector<ExecutionRow>& rows) {
  return db_.transaction([&]() -> Status {
    const std::string set =
        "UPDATE campaign_executions SET group_index = ?, state = ?, attempt = ?, "
        "command_id = ?, sent_at = ?, replied_at = ?, next_attempt_at = ?, output = ?, "
        "version_verified = ?, updated_at = ?, first_sent_at = ?, finished_at = ?, reply_ok = ?, "
        "version_at_send = ? WHERE campaign_id = ? AND hardware_id = ?";
    // A known rowid: one b-tree search by an integer, not one of the primary key's index by two strings
    // and then one by the rowid it found (SQLite's plan: SEARCH USING INTEGER PRIMARY KEY). A rowid that
    // finds no row of this key (never expected: a VACUUM by hand may renumber rows) falls back to the key.
    std::optional<Database::Lease> by_key;
    std::optional<Database::Lease> by_rowid;
    const auto write = [&](const ExecutionRow& r, bool use_rowid) {
      std::optional<Database::Lease>& slot = use_rowid ? by_rowid : by_key;
      if (!slot) slot.emplace(db_.prepare(use_rowid ? set + " AND rowid = ?" : set));
      Statement& q = **slot;
      q.reset();
      q.bind(1, r.group_index);
      q.bindNoCopy(2, r.state);
      q.bind(3, r.attempt);
      bind_opt(q, 4, r.command_id);
      bind_opt(q, 5, r.sent_at);
      bind_opt(q, 6, r.replied_at);
      bind_opt(q, 7, r.next_attempt_at);
      q.bindNoCopy(8, r.output);
      q.bind(9, r.version_verified ? 1 : 0);
      q.bind(10, r.updated_at);
      bind_opt(q, 11, r.first_sent_at);
      bind_opt(q, 12, r.finished_at);
      q.bind(13, r.reply_ok ? 1 : 0);
      bind_opt(q, 14, r.version_at_send);
      q.bindNoCopy(15, r.campaign_id);
      q.bindNoCopy(16, r.hardware_id);
      if (use_rowid) q.bind(17, r.rowid);
      return q.exec() > 0;
    };
    for (const ExecutionRow& r : rows) {
      const bool use_rowid = r.rowid > 0 && db_.backend() == Backend::sqlite;
      if ((use_rowid && write(r, true)) || write(r, false)) continue;
      return make_error(ErrorCode::not_found,
                        "no execution of campaign " + r.campaign_id + " for " + r.hardware_id);
    }
    return {};
  });
}

Status CampaignStore::record_attempt(const std::string& campaign_id, const std::string& hardware_id,
                                     int attempt, const std::string& command_id) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "INSERT INTO campaign_attempts(campaign_id, hardware_id, attempt, command_id) "
        "VALUES(?, ?, ?, ?)");
    q->bind(1, campaign_id);
    q->bind(2, hardware_id);
    q->bind(3, attempt);
    q->bind(4, command_id);
    q->exec();
    return {};
  });
}

Status CampaignStore::record_attempts(const std::vector<AttemptRecord>& records) {
  return db_.transaction([&]() -> Status {
    detail::for_each_batch(records.size(), [&](std::size_t first, std::size_t n) {
      auto q =
          db_.prepare("INSERT INTO campaign_attempts(campaign_id, hardware_id, attempt, command_id) VALUES" +
                      detail::value_rows("(?, ?, ?, ?)", n));
      for (std::size_t k = 0; k < n; ++k) {
        const AttemptRecord& r = records[first + k];
        const int p = static_cast<int>(k) * 4;
        q->bindNoCopy(p + 1, r.campaign_id);
        q->bindNoCopy(p + 2, r.hardware_id);
        q->bind(p + 3, r.attempt);
        q->bindNoCopy(p + 4, r.command_id);
      }
      q->exec();
    });
    return {};
  });
}

Result<std::optional<AttemptRef>> CampaignStore::execution_by_command_id(const std::string& command_id) {
  return db_.read([&]() -> Result<std::optional<AttemptRef>> {
    auto q =
        db_.prepare("SELECT campaign_id, hardware_id, attempt FROM campaign_attempts WHERE command_id = ?");
    q->bind(1, command_id);
    if (!q->executeStep()) return std::optional<AttemptRef>{};
    return std::optional<AttemptRef>{
        AttemptRef{q->getColumn(0).getString(), q->getColumn(1).getString(), q->getColumn(2).getInt()}};
  });
}

Result<std::vector<std::string>> CampaignStore::attempt_command_ids(const std::string& campaign_id,
                                                                    const std::string& hardware_id) {
  return db_.read([&]() -> Result<std::vector<std::string>> {
    auto q = db_.prepare(
        "SELECT command_id FROM campaign_attempts WHERE campaign_id = ? AND hardware_id = ? "
        "ORDER BY attempt");
    q->bind(1, campaign_id);
    q->bind(2, hardware_id);
    std::vector<std::string> ids;
    while (q->executeStep()) ids.push_back(q->getColumn(0).getString());
    return ids;
  });
}

Result<bool> CampaignStore::record_attempt_reply(const std::string& hardware_id,
                                                 const std::string& command_id, bool success,
                                                 const std::string& output, TimeMs t) {
  return db_.transaction([&]() -> Result<bool> {
    auto q = db_.prepare(
        "UPDATE campaign_attempts SET replied_at = ?, success = ?, output = ? "
        "WHERE command_id = ? AND hardware_id = ? AND replied_at IS NULL");
    q->bind(1, t);
    q->bind(2, success ? 1 : 0);
    q->bind(3, output);
    q->bind(4, command_id);
    q->bind(5, hardware_id);
    return q->exec() > 0;
  });
}

Result<bool> CampaignStore::add_to_inbox(const std::string& hardware_id, const std::string& command_id,
                                         bool success, const std::string& output, TimeMs t) {
  return db_.transaction([&]() -> Result<bool> {
    auto q = db_.prepare(
        "INSERT INTO campaign_replies(campaign_id, command_id, hardware_id, success, output, replied_at) "
        "SELECT e.campaign_id, e.command_id, e.hardware_id, ?, ?, ? FROM campaign_attempts a "
        "JOIN campaign_executions e ON e.campaign_id = a.campaign_id AND e.hardware_id = a.hardware_id "
        "WHERE a.command_id = ? AND a.hardware_id = ? AND e.command_id = a.command_id AND e.state = 'sent' "
        "ON CONFLICT DO NOTHING");
    q->bind(1, success ? 1 : 0);
    q->bind(2, output);
    q->bind(3, t);
    q->bind(4, command_id);
    q->bind(5, hardware_id);
    return q->exec() > 0;
  });
}

Result<std::vector<InboxReply>> CampaignStore::inbox(const std::string& campaign_id, int limit) {
  if (limit < 1) return make_error(ErrorCode::bad_request, "limit must be at least 1");
  return db_.read([&]() -> Result<std::vector<InboxReply>> {
    auto q = db_.prepare(
        "SELECT command_id, hardware_id, success, output, replied_at FROM campaign_replies "
        "WHERE campaign_id = ? ORDER BY replied_at, command_id LIMIT ?");
    q->bind(1, campaign_id);
    q->bind(2, limit);
    std::vector<InboxReply> rows;
    while (q->executeStep()) {
      InboxReply r;
      r.campaign_id = campaign_id;
      r.command_id = q->getColumn(0).getString();
      r.hardware_id = q->getColumn(1).getString();
      r.success = q->getColumn(2).getInt() != 0;
      r.output = q->getColumn(3).getString();
      r.replied_at = q->getColumn(4).getInt64();
      rows.push_back(std::move(r));
    }
    return rows;
  });
}

Status CampaignStore::clear_inbox(const std::string& campaign_id,
                                  const std::vector<std::string>& command_ids) {
  if (command_ids.empty()) return {};
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("DELETE FROM campaign_replies WHERE campaign_id = ? AND command_id = ?");
    for (const auto& id : command_ids) {
      q->reset();
      q->bind(1, campaign_id);
      q->bind(2, id);
      q->exec();
    }
    return {};
  });
}

Result<std::vector<OpenExecution>> CampaignStore::open_executions(const std::string& hardware_id, int limit) {
  if (limit < 1) return make_error(ErrorCode::bad_request, "limit must be at least 1");
  return db_.read([&]() -> Result<std::vector<OpenExecution>> {
    // The state condition is the partial index's own predicate, word for word: SQLite uses a partial
    // index only for a query whose WHERE implies it.
    auto q = db_.prepare(
        "SELECT campaign_id, state, attempt, command_id, sent_at FROM campaign_executions "
        "WHERE hardware_id = ? AND state IN ('queued', 'sent') ORDER BY campaign_id LIMIT ?");
    q->bind(1, hardware_id);
    q->bind(2, limit);
    std::vector<OpenExecution> rows;
    while (q->executeStep()) {
      OpenExecution r;
      r.campaign_id = q->getColumn(0).getString();
      r.state = q->getColumn(1).getString();
      r.attempt = q->getColumn(2).getInt();
      r.command_id = opt_string(q->getColumn(3));
      r.sent_at = opt_int64(q->getColumn(4));
      rows.push_back(std::move(r));
    }
    return rows;
  });
}

Status CampaignStore::add_version_report(const VersionReport& report) {
  return db_.transaction([&]() -> Status {
    auto exists = db_.prepare("SELECT 1 FROM campaigns WHERE id = ?");
    exists->bind(1, report.campaign_id);
    if (!exists->executeStep())
      return make_error(ErrorCode::not_found, "no campaign '" + report.campaign_id + "'");
    auto q = db_.prepare(
        "INSERT INTO campaign_versions(campaign_id, hardware_id, version, reported_at) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(campaign_id, hardware_id) DO UPDATE SET version = excluded.version, "
        "reported_at = excluded.reported_at WHERE excluded.reported_at >= campaign_versions.reported_at");
    q->bind(1, report.campaign_id);
    q->bind(2, report.hardware_id);
    q->bind(3, report.version);
    q->bind(4, report.reported_at);
    q->exec();
    return {};
  });
}

Result<std::vector<VersionReport>> CampaignStore::version_reports(const std::string& campaign_id, int limit) {
  if (limit < 1) return make_error(ErrorCode::bad_request, "limit must be at least 1");
  return db_.read([&]() -> Result<std::vector<VersionReport>> {
    auto q = db_.prepare(
        "SELECT hardware_id, version, reported_at FROM campaign_versions WHERE campaign_id = ? "
        "ORDER BY reported_at, hardware_id LIMIT ?");
    q->bind(1, campaign_id);
    q->bind(2, limit);
    std::vector<VersionReport> rows;
    while (q->executeStep()) {
      VersionReport r;
      r.campaign_id = campaign_id;
      r.hardware_id = q->getColumn(0).getString();
      r.version = q->getColumn(1).getString();
      r.reported_at = q->getColumn(2).getInt64();
      rows.push_back(std::move(r));
    }
    return rows;
  });
}

Status CampaignStore::clear_version_reports(const std::vector<VersionReport>& reports) {
  if (reports.empty()) return {};
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare(
        "DELETE FROM campaign_versions WHERE campaign_id = ? AND hardware_id = ? AND version = ? "
        "AND reported_at = ?");
    for (const auto& r : reports) {
      q->reset();
      q->bind(1, r.campaign_id);
      q->bind(2, r.hardware_id);
      q->bind(3, r.version);
      q->bind(4, r.reported_at);
      q->exec();
    }
    return {};
  });
}

Result<std::vector<AttemptRow>> CampaignStore::attempts(const std::string& campaign_id,
                                                        const std::string& hardware_id) {
  return db_.read([&]() -> Result<std::vector<AttemptRow>> {
    auto q = db_.prepare(
        "SELECT attempt, command_id, replied_at, success, output FROM campaign_attempts "
        "WHERE campaign_id = ? AND hardware_id = ? ORDER BY attempt");
    q->bind(1, campaign_id);
    q->bind(2, hardware_id);
    std::vector<AttemptRow> rows;
    while (q->executeStep()) {
      AttemptRow row;
      row.attempt = q->getColumn(0).getInt();
      row.command_id = q->getColumn(1).getString();
      row.replied_at = opt_int64(q->getColumn(2));
      if (!q->getColumn(3).isNull()) row.success = q->getColumn(3).getInt() != 0;
      row.output = q->getColumn(4).getString();
      rows.push_back(std::move(row));
    }
    return rows;
  });
}

core::Result<std::vector<std::pair<std::string, std::int64_t>>> CampaignStore::count_by_state() {
  using Rows = std::vector<std::pair<std::string, std::int64_t>>;
  return db_.read([&]() -> core::Result<Rows> {
    auto q = db_.prepare("SELECT state, COUNT(*) FROM campaigns GROUP BY state ORDER BY state");
    Rows rows;
    while (q->executeStep()) rows.emplace_back(q->getColumn(0).getString(), q->getColumn(1).getInt64());
    return rows;
  });
}

}  // namespace dispatch::storage
