#include "storage/commands.h"

#include <algorithm>
#include <tuple>

#include "storage/sql_util.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;
using detail::bind_opt;
using detail::decode_strings;
using detail::encode_strings;
using detail::opt_int64;
using detail::opt_string;

namespace {

constexpr const char* k_command_columns =
    "id, type, execution, command, arguments, package_id, description, ttl_s, expires_at, created_at, "
    "request_id, request_hash, canceled";
constexpr const char* k_delivery_columns =
    "command_id, hardware_id, command_line, state, output, trimmed, attempts, sent_at, replied_at, "
    "expires_at, created_at";

CommandRow read_command(Statement& q) {
  CommandRow row;
  row.id = q.getColumn(0).getString();
  row.type = q.getColumn(1).getString();
  row.execution = q.getColumn(2).getString();
  row.command = q.getColumn(3).getString();
  row.arguments = decode_strings(q.getColumn(4).getString());
  row.package_id = q.getColumn(5).getString();
  row.description = q.getColumn(6).getString();
  row.ttl_s = opt_int64(q.getColumn(7));
  row.expires_at = opt_int64(q.getColumn(8));
  row.created_at = q.getColumn(9).getInt64();
  row.request_id = opt_string(q.getColumn(10));
  row.request_hash = opt_string(q.getColumn(11));
  row.canceled = q.getColumn(12).getInt() != 0;
  return row;
}

DeliveryRow read_delivery(Statement& q) {
  DeliveryRow row;
  row.command_id = q.getColumn(0).getString();
  row.hardware_id = q.getColumn(1).getString();
  row.command_line = q.getColumn(2).getString();
  row.state = q.getColumn(3).getString();
  row.output = q.getColumn(4).getString();
  row.trimmed = q.getColumn(5).getInt() != 0;
  row.attempts = q.getColumn(6).getInt();
  row.sent_at = opt_int64(q.getColumn(7));
  row.replied_at = opt_int64(q.getColumn(8));
  row.expires_at = opt_int64(q.getColumn(9));
  row.created_at = q.getColumn(10).getInt64();
  return row;
}

std::vector<DeliveryRow> read_deliveries(Statement& q) {
  std::vector<DeliveryRow> rows;
  while (q.executeStep()) rows.push_back(read_delivery(q));
  return rows;
}

std::string select_deliveries(const std::string& where) {
  return std::string("SELECT ") + k_delivery_columns + " FROM deliveries WHERE " + where;
}

}  // namespace

Status CommandStore::create_with_deliveries(const CommandRow& c, const std::vector<DeliveryRow>& deliveries,
                                            const std::string& owner) {
  return db_.transaction([&]() -> Status {
    auto insert = db_.prepare(std::string("INSERT INTO commands(") + k_command_columns +
                              ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert->bind(1, c.id);
    insert->bind(2, c.type);
    insert->bind(3, c.execution);
    insert->bind(4, c.command);
    insert->bind(5, encode_strings(c.arguments));
    insert->bind(6, c.package_id);
    insert->bind(7, c.description);
    bind_opt(*insert, 8, c.ttl_s);
    bind_opt(*insert, 9, c.expires_at);
    insert->bind(10, c.created_at);
    bind_opt(*insert, 11, c.request_id);
    bind_opt(*insert, 12, c.request_hash);
    insert->bind(13, c.canceled ? 1 : 0);
    insert->exec();

    insert_deliveries(c.id, deliveries.data(), deliveries.size(), owner);
    return {};
  });
}

void CommandStore::insert_deliveries(const std::string& command_id, const DeliveryRow* deliveries,
                                     std::size_t count, const std::string& owner) {
  const std::optional<std::string> owner_or_null = owner.empty() ? std::nullopt : std::optional(owner);
  auto bind_row = [&](Statement& d, int p, const DeliveryRow& row) {
    // No copies of the strings: the rows outlive the statement's execution.
    d.bindNoCopy(p + 1, command_id);
    d.bindNoCopy(p + 2, row.hardware_id);
    d.bindNoCopy(p + 3, row.command_line);
    d.bindNoCopy(p + 4, row.state);
    d.bindNoCopy(p + 5, row.output);
    d.bind(p + 6, row.trimmed ? 1 : 0);
    d.bind(p + 7, row.attempts);
    bind_opt(d, p + 8, row.sent_at);
    bind_opt(d, p + 9, row.replied_at);
    bind_opt(d, p + 10, row.expires_at);
    d.bind(p + 11, row.created_at);
    bind_opt(d, p + 12, owner_or_null);
  };
  const std::string insert_rows =
      std::string("INSERT INTO deliveries(") + k_delivery_columns + ", owner) VALUES";
  const char* const row_placeholders = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  // Batches of rows in one multi-row VALUES (detail::for_each_batch). PostgreSQL: a round trip per batch
  // instead of per row. SQLite: a statement's fixed cost per batch instead of per row: 100,000 deliveries
  // are written in about 30% less time (docs/performance.md).
  detail::for_each_batch(count, [&](std::size_t first, std::size_t n) {
    auto d = db_.prepare(insert_rows + detail::value_rows(row_placeholders, n));
    for (std::size_t k = 0; k < n; ++k) bind_row(*d, static_cast<int>(k) * 12, deliveries[first + k]);
    d->exec();
  });
}

namespace {

constexpr const char* k_targets_columns =
    "command_id, hardware_ids, expanded, command_line, expires_at, created_at, owner";

// A list's hardware ids as one text: each followed by a space, the first preceded by one (" a b c "), so
// that " <id> " finds an id by a substring search on both backends (commands/list's device filter).
// Hardware ids never hold a space (protocol/ids.h).
std::string encode_targets(const std::vector<std::string>& ids) {
  std::size_t n = 1;
  for (const auto& id : ids) n += id.size() + 1;
  std::string out;
  out.reserve(n);
  out += ' ';
  for (const auto& id : ids) {
    out += id;
    out += ' ';
  }
  return out;
}

std::vector<std::string> decode_targets(const std::string& text) {
  std::vector<std::string> ids;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find(' ', pos);
    const std::size_t stop = end == std::string::npos ? text.size() : end;
    if (stop > pos) ids.push_back(text.substr(pos, stop - pos));
    pos = stop + 1;
  }
  return ids;
}

CommandTargets read_targets(Statement& q) {
  CommandTargets t;
  t.command_id = q.getColumn(0).getString();
  t.hardware_ids = decode_targets(q.getColumn(1).getString());
  t.expanded = q.getColumn(2).getInt64();
  t.command_line = q.getColumn(3).getString();
  t.expires_at = opt_int64(q.getColumn(4));
  t.created_at = q.getColumn(5).getInt64();
  t.owner = q.getColumn(6).getString();
  return t;
}

}  // namespace

Status CommandStore::save_targets(const CommandTargets& t) {
  for (const auto& id : t.hardware_ids) {
    if (id.empty() || id.find(' ') != std::string::npos)
      return make_error(ErrorCode::bad_request, "save_targets: a hardware id is empty or holds a space");
  }
  return db_.statement([&]() -> Status {
    auto q = db_.prepare(
        "INSERT INTO command_targets(command_id, hardware_ids, total, expanded, command_line, expires_at, "
        "created_at, owner) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    q->bind(1, t.command_id);
    q->bind(2, encode_targets(t.hardware_ids));
    q->bind(3, static_cast<std::int64_t>(t.hardware_ids.size()));
    q->bind(4, t.expanded);
    q->bind(5, t.command_line);
    bind_opt(*q, 6, t.expires_at);
    q->bind(7, t.created_at);
    q->bind(8, t.owner);
    q->exec();
    return {};
  });
}

Result<bool> CommandStore::expand_targets(const CommandTargets& t, const std::vector<DeliveryRow>& rows) {
  const auto n = static_cast<std::int64_t>(rows.size());
  if (n == 0 || n > t.remaining())
    return make_error(ErrorCode::bad_request, "expand_targets: 1 to remaining() rows at a time");
  return db_.transaction([&]() -> Result<bool> {
    // The cursor moves only from where the caller saw it, and only for its owner: of two instances (a
    // takeover racing a slow owner) one writes the chunk, the other finds the row changed. On PostgreSQL
    // the UPDATE waits for the other's lock and then re-checks the row.
    auto u = db_.prepare(
        "UPDATE command_targets SET expanded = expanded + ? WHERE command_id = ? AND owner = ? AND "
        "expanded = ? AND total >= expanded + ?");
    u->bind(1, n);
    u->bind(2, t.command_id);
    u->bind(3, t.owner);
    u->bind(4, t.expanded);
    u->bind(5, n);
    if (u->exec() == 0) return false;
    if (t.expanded + n == static_cast<std::int64_t>(t.hardware_ids.size())) {
      auto d = db_.prepare("DELETE FROM command_targets WHERE command_id = ?");
      d->bind(1, t.command_id);
      d->exec();
    }
    insert_deliveries(t.command_id, rows.data(), rows.size(), t.owner);
    return true;
  });
}

Result<std::vector<CommandTargets>> CommandStore::take_over_targets(const std::optional<std::string>& from,
                                                                    const std::string& to) {
  return db_.transaction([&]() -> Result<std::vector<CommandTargets>> {
    // One statement: the rows moved are exactly the rows returned, with the cursor they have when moved
    // (a writer still running is fenced out by the owner from then on, storage expand_targets).
    auto q = db_.prepare(std::string("UPDATE command_targets SET owner = ?") +
                         (from ? " WHERE owner = ?" : "") + " RETURNING " + k_targets_columns);
    q->bind(1, to);
    if (from) q->bind(2, *from);
    std::vector<CommandTargets> lists;
    while (q->executeStep()) lists.push_back(read_targets(*q));
    std::sort(lists.begin(), lists.end(), [](const CommandTargets& a, const CommandTargets& b) {
      return std::tie(a.created_at, a.command_id) < std::tie(b.created_at, b.command_id);
    });
    return lists;
  });
}

Result<std::optional<CommandTargets>> CommandStore::targets(const std::string& command_id) {
  return db_.read([&]() -> Result<std::optional<CommandTargets>> {
    auto q = db_.prepare(std::string("SELECT ") + k_targets_columns +
                         " FROM command_targets WHERE command_id = ?");
    q->bind(1, command_id);
    if (!q->executeStep()) return std::optional<CommandTargets>{};
    return std::optional<CommandTargets>{read_targets(*q)};
  });
}

Result<std::optional<CommandRow>> CommandStore::find_by_request_id(const std::string& request_id) {
  return db_.read([&]() -> Result<std::optional<CommandRow>> {
    auto q = db_.prepare(std::string("SELECT ") + k_command_columns + " FROM commands WHERE request_id = ?");
    q->bind(1, request_id);
    if (!q->executeStep()) return std::optional<CommandRow>{};
    return std::optional<CommandRow>{read_command(*q)};
  });
}

Result<CommandRow> CommandStore::get(const std::string& id) {
  return db_.read([&]() -> Result<CommandRow> {
    auto q = db_.prepare(std::string("SELECT ") + k_command_columns + " FROM commands WHERE id = ?");
    q->bind(1, id);
    if (!q->executeStep()) return make_error(ErrorCode::not_found, "command " + id + " does not exist");
    return read_command(*q);
  });
}

Result<std::vector<CommandRow>> CommandStore::list(const CommandQuery& query) {
  return db_.read([&]() -> Result<std::vector<CommandRow>> {
    std::string sql = std::string("SELECT ") + k_command_columns + " FROM commands WHERE id > ?";
    // A device's commands: those with a delivery to it, and those whose list of targets not yet written
    // names it (a large send being written, storage CommandTargets; a substring search of the few lists).
    if (query.hardware_id) {
      sql += std::string(
                 " AND (id IN (SELECT command_id FROM deliveries WHERE hardware_id = ?) OR id IN "
                 "(SELECT command_id FROM command_targets WHERE ") +
             (db_.backend() == Backend::postgres ? "strpos(hardware_ids, ?)" : "instr(hardware_ids, ?)") +
             " > 0))";
    }
    sql += " ORDER BY id LIMIT ?";
    auto q = db_.prepare(sql);
    int i = 1;
    q->bind(i++, query.after.value_or(""));
    if (query.hardware_id) {
      q->bind(i++, *query.hardware_id);
      q->bind(i++, " " + *query.hardware_id + " ");
    }
    q->bind(i++, std::max(query.limit, 0));
    std::vector<CommandRow> rows;
    while (q->executeStep()) rows.push_back(read_command(*q));
    return rows;
  });
}

Result<std::vector<DeliveryRow>> CommandStore::deliveries(const std::string& command_id,
                                                          const std::optional<std::string>& after,
                                                          int limit) {
  return db_.read([&]() -> Result<std::vector<DeliveryRow>> {
    auto q =
        db_.prepare(select_deliveries("command_id = ? AND hardware_id > ? ORDER BY hardware_id LIMIT ?"));
    q->bind(1, command_id);
    q->bind(2, after.value_or(""));
    q->bind(3, limit);
    return read_deliveries(*q);
  });
}

Result<DeliveryRow> CommandStore::delivery(const std::string& command_id, const std::string& hardware_id) {
  return db_.read([&]() -> Result<DeliveryRow> {
    auto q = db_.prepare(select_deliveries("command_id = ? AND hardware_id = ?"));
    q->bind(1, command_id);
    q->bind(2, hardware_id);
    if (!q->executeStep()) {
      return make_error(ErrorCode::not_found,
                        "no delivery of command " + command_id + " to device " + hardware_id);
    }
    return read_delivery(*q);
  });
}

Result<std::vector<DeliveryRow>> CommandStore::deliveries_to_publish(TimeMs now, int limit,
                                                                     const std::string& owner) {
  return db_.read([&]() -> Result<std::vector<DeliveryRow>> {
    if (owner.empty()) {
      auto q =
          db_.prepare(select_deliveries("state = 'queued' AND (expires_at IS NULL OR expires_at > ?) "
                                        "ORDER BY created_at, rowid LIMIT ?"));
      q->bind(1, now);
      q->bind(2, std::max(limit, 0));
      return read_deliveries(*q);
    }
    auto q = db_.prepare(
        select_deliveries("state = 'queued' AND (owner = ? OR owner IS NULL) AND "
                          "(expires_at IS NULL OR expires_at > ?) ORDER BY created_at, rowid LIMIT ?"));
    q->bind(1, owner);
    q->bind(2, now);
    q->bind(3, std::max(limit, 0));
    return read_deliveries(*q);
  });
}

Result<bool> CommandStore::has_queued_owned_by(const std::string& owner) {
  return db_.read([&]() -> Result<bool> {
    auto q = db_.prepare(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM deliveries WHERE owner = ?1 AND state = 'queued') OR "
        "EXISTS (SELECT 1 FROM command_targets WHERE owner = ?1)");
    q->bind(1, owner);
    return q->executeStep();
  });
}

Result<std::vector<DeliveryRow>> CommandStore::take_over_queued(const std::string& from,
                                                                const std::string& to, int limit) {
  if (from.empty() || to.empty() || limit < 1)
    return make_error(ErrorCode::bad_request, "take_over_queued needs two owners and a limit >= 1");
  return db_.transaction([&]() -> Result<std::vector<DeliveryRow>> {
    auto q = db_.prepare(std::string("SELECT ") + k_delivery_columns +
                         ", rowid FROM deliveries WHERE owner = ? AND state = 'queued' "
                         "ORDER BY created_at, rowid LIMIT ?");
    q->bind(1, from);
    q->bind(2, limit);
    std::vector<DeliveryRow> rows;
    std::int64_t last_rowid = 0;
    while (q->executeStep()) {
      rows.push_back(read_delivery(*q));
      last_rowid = q->getColumn(11).getInt64();
    }
    if (rows.empty()) return rows;
    // Exactly the rows read: (created_at, rowid) up to the last one in the same order.
    auto u = db_.prepare(
        "UPDATE deliveries SET owner = ? WHERE owner = ? AND state = 'queued' AND "
        "(created_at < ? OR (created_at = ? AND rowid <= ?))");
    u->bind(1, to);
    u->bind(2, from);
    u->bind(3, rows.back().created_at);
    u->bind(4, rows.back().created_at);
    u->bind(5, last_rowid);
    u->exec();
    return rows;
  });
}

Result<int> CommandStore::mark_sent(const std::vector<DeliveryKey>& keys, TimeMs t) {
  // One statement per k_pg_batch keys on both backends (a key listed twice counts once). On PostgreSQL
  // that saves a round trip per key; on SQLite it saves a statement step per key (the flush of a busy
  // fan-out was 48% of the loop, docs/performance.md). SQLite needs the keys as a subquery: with a bare
  // `IN (VALUES …)` its planner scans deliveries_open_expiry instead of searching the primary key
  // (six times slower than one UPDATE per key on 20,000 rows).
  const char* keys_from =
      db_.backend() == Backend::postgres ? "(VALUES " : "(SELECT column1, column2 FROM (VALUES ";
  const char* keys_to = db_.backend() == Backend::postgres ? ")" : "))";
  return db_.transaction([&]() -> Result<int> {
    int changed = 0;
    detail::for_each_batch(keys.size(), [&](std::size_t first, std::size_t n) {
      auto q = db_.prepare(
          std::string("UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = ?1 "
                      "WHERE state IN ('queued', 'sent') AND (command_id, hardware_id) IN ") +
          keys_from + detail::value_rows("(?, ?)", n) + keys_to);
      q->bind(1, t);
      for (std::size_t k = 0; k < n; ++k) {
        q->bindNoCopy(2 + 2 * static_cast<int>(k), keys[first + k].first);
        q->bindNoCopy(3 + 2 * static_cast<int>(k), keys[first + k].second);
      }
      changed += q->exec();
    });
    return changed;
  });
}

Result<ReplyOutcome> CommandStore::record_reply(const std::string& command_id, const std::string& hardware_id,
                                                bool success, const std::string& output, bool trimmed,
                                                TimeMs t, TimeMs* sent_at) {
  return db_.transaction([&]() -> Result<ReplyOutcome> {
    // The state guard in the UPDATE makes acceptance a single atomic step: a second reply can never
    // overwrite the first.
    auto u = db_.prepare(
        "UPDATE deliveries SET state = ?, output = ?, trimmed = ?, replied_at = ?, "
        // A reply can overtake the broker's acknowledgement of the publish: the device
        // evidently got the command, so count the attempt and its send time.
        "attempts = CASE WHEN attempts < 1 THEN 1 ELSE attempts END, sent_at = COALESCE(sent_at, ?4) "
        "WHERE command_id = ? AND hardware_id = ? AND state IN ('queued', 'sent') RETURNING sent_at");
    u->bind(1, success ? "succeeded" : "failed");
    u->bind(2, output);
    u->bind(3, trimmed ? 1 : 0);
    u->bind(4, t);
    u->bind(5, command_id);
    u->bind(6, hardware_id);
    if (u->executeStep()) {
      // (command_id, hardware_id) is the key: at most one row.
      if (sent_at) *sent_at = u->getColumn(0).getInt64();
      return ReplyOutcome::accepted;
    }
    auto q = db_.prepare("SELECT state FROM deliveries WHERE command_id = ? AND hardware_id = ?");
    q->bind(1, command_id);
    q->bind(2, hardware_id);
    if (!q->executeStep()) return ReplyOutcome::unknown;
    const std::string state = q->getColumn(0).getString();
    if (state == "succeeded" || state == "failed") return ReplyOutcome::duplicate;
    return ReplyOutcome::closed;
  });
}

Result<std::vector<DeliveryRow>> CommandStore::pending_for_device(const std::string& hardware_id, TimeMs now,
                                                                  int limit) {
  return db_.read([&]() -> Result<std::vector<DeliveryRow>> {
    auto q =
        db_.prepare(select_deliveries("hardware_id = ? AND state IN ('queued', 'sent') "
                                      "AND (expires_at IS NULL OR expires_at > ?) "
                                      "ORDER BY created_at, rowid LIMIT ?"));
    q->bind(1, hardware_id);
    q->bind(2, now);
    q->bind(3, std::max(limit, 0));
    return read_deliveries(*q);
  });
}

Result<std::vector<DeliveryRow>> CommandStore::redeliverable(const std::string& hardware_id, TimeMs now,
                                                             TimeMs sent_before, int max_attempts) {
  return db_.read([&]() -> Result<std::vector<DeliveryRow>> {
    auto q =
        db_.prepare(select_deliveries("hardware_id = ? AND state = 'sent' "
                                      "AND (expires_at IS NULL OR expires_at > ?) "
                                      "AND sent_at <= ? AND attempts < ? ORDER BY created_at, rowid"));
    q->bind(1, hardware_id);
    q->bind(2, now);
    q->bind(3, sent_before);
    q->bind(4, max_attempts);
    return read_deliveries(*q);
  });
}

Result<int> CommandStore::expire(TimeMs now) {
  return db_.transaction([&]() -> Result<int> {
    auto u = db_.prepare(
        "UPDATE deliveries SET state = 'expired' WHERE state IN ('queued', 'sent') "
        "AND expires_at IS NOT NULL AND expires_at <= ?");
    u->bind(1, now);
    return u->exec();
  });
}

Result<int> CommandStore::cancel(const std::string& command_id) {
  return db_.transaction([&]() -> Result<int> {
    auto c = db_.prepare("UPDATE commands SET canceled = 1 WHERE id = ?");
    c->bind(1, command_id);
    if (c->exec() == 0) return make_error(ErrorCode::not_found, "command " + command_id + " does not exist");
    auto u = db_.prepare(
        "UPDATE deliveries SET state = 'canceled' WHERE command_id = ? "
        "AND state IN ('queued', 'sent')");
    u->bind(1, command_id);
    int changed = u->exec();
    // Targets not yet written become canceled deliveries (every target of a command ends as a delivery
    // row, so commands/get and the counts show them), and the list goes.
    std::optional<CommandTargets> list;
    {
      auto r = db_.prepare(std::string("SELECT ") + k_targets_columns +
                           " FROM command_targets WHERE command_id = ?");
      r->bind(1, command_id);
      if (r->executeStep()) list = read_targets(*r);
    }
    if (list) {
      auto d = db_.prepare("DELETE FROM command_targets WHERE command_id = ?");
      d->bind(1, command_id);
      d->exec();
      std::vector<DeliveryRow> rows(static_cast<std::size_t>(list->remaining()));
      for (std::size_t k = 0; k < rows.size(); ++k) {
        rows[k].hardware_id = list->hardware_ids[static_cast<std::size_t>(list->expanded) + k];
        rows[k].command_line = list->command_line;
        rows[k].state = "canceled";
        rows[k].expires_at = list->expires_at;
        rows[k].created_at = list->created_at;
      }
      insert_deliveries(command_id, rows.data(), rows.size(), list->owner);
      changed += static_cast<int>(rows.size());
    }
    return changed;
  });
}

Result<DeliveryCounts> CommandStore::counts(const std::string& command_id) {
  return db_.read([&]() -> Result<DeliveryCounts> {
    // One statement, one snapshot on PostgreSQL: a chunk written meanwhile is counted once.
    auto q = db_.prepare(
        "SELECT state, COUNT(*) FROM deliveries WHERE command_id = ?1 GROUP BY state "
        "UNION ALL SELECT 'unwritten', total - expanded FROM command_targets WHERE command_id = ?1");
    q->bind(1, command_id);
    DeliveryCounts counts;
    while (q->executeStep()) {
      const std::string state = q->getColumn(0).getString();
      const std::int64_t n = q->getColumn(1).getInt64();
      if (state == "unwritten") counts.queued += n;
      if (state == "queued") counts.queued += n;
      if (state == "sent") counts.sent = n;
      if (state == "succeeded") counts.succeeded = n;
      if (state == "failed") counts.failed = n;
      if (state == "expired") counts.expired = n;
      if (state == "canceled") counts.canceled = n;
    }
    return counts;
  });
}

Result<DeliveryCounts> CommandStore::counts_all() {
  return db_.read([&]() -> Result<DeliveryCounts> {
    auto q = db_.prepare(
        "SELECT state, COUNT(*) FROM deliveries GROUP BY state "
        "UNION ALL SELECT 'unwritten', CAST(COALESCE(SUM(total - expanded), 0) AS BIGINT) FROM "
        "command_targets");
    DeliveryCounts counts;
    while (q->executeStep()) {
      const std::string state = q->getColumn(0).getString();
      const std::int64_t n = q->getColumn(1).getInt64();
      if (state == "unwritten") counts.queued += n;
      if (state == "queued") counts.queued += n;
      if (state == "sent") counts.sent = n;
      if (state == "succeeded") counts.succeeded = n;
      if (state == "failed") counts.failed = n;
      if (state == "expired") counts.expired = n;
      if (state == "canceled") counts.canceled = n;
    }
    return counts;
  });
}

Result<std::int64_t> CommandStore::command_count() {
  return db_.read([&]() -> Result<std::int64_t> {
    auto q = db_.prepare("SELECT COUNT(*) FROM commands");
    return q->executeStep() ? q->getColumn(0).getInt64() : std::int64_t{0};
  });
}

}  // namespace dispatch::storage
