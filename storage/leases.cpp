#include "storage/leases.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;
using core::TimeMs;

namespace {

core::Error lost(const std::string& name) {
  return make_error(ErrorCode::conflict, "lease " + name + " lost");
}

Status check_arguments(const std::string& name, const std::string& holder, std::int64_t ttl_ms) {
  if (name.empty() || holder.empty())
    return make_error(ErrorCode::bad_request, "lease name and holder must not be empty");
  if (ttl_ms < 1) return make_error(ErrorCode::bad_request, "lease ttl must be at least 1 ms");
  return {};
}

LeaseRow read_row(Statement& q) {
  LeaseRow row;
  row.name = q.getColumn(0).getString();
  row.holder = q.getColumn(1).getString();
  row.token = q.getColumn(2).getInt64();
  row.expires_at = q.getColumn(3).getInt64();
  return row;
}

constexpr const char* k_select = "SELECT name, holder, token, expires_at FROM leases WHERE name = ?";

}  // namespace

Result<LeaseRow> LeaseStore::acquire(const std::string& name, const std::string& holder, TimeMs now,
                                     std::int64_t ttl_ms) {
  if (auto ok = check_arguments(name, holder, ttl_ms); !ok.ok()) return ok.error();
  return db_.transaction([&]() -> Result<LeaseRow> {
    // One statement decides: the guard (ours, or lapsed) is evaluated on the row as it is when the
    // statement runs (PostgreSQL re-reads it after waiting for a racing writer's row lock), and the
    // SET expressions all read the old row. Both dialects spell the upsert the same way.
    auto q = db_.prepare(
        "INSERT INTO leases(name, holder, token, expires_at) VALUES(?, ?, 1, ?) "
        "ON CONFLICT(name) DO UPDATE SET "
        "token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ? "
        "THEN leases.token ELSE leases.token + 1 END, "
        "holder = excluded.holder, expires_at = excluded.expires_at "
        "WHERE leases.holder = excluded.holder OR leases.expires_at <= ?");
    q->bind(1, name);
    q->bind(2, holder);
    q->bind(3, now + ttl_ms);
    q->bind(4, now);
    q->bind(5, now);
    if (q->exec() != 1)
      return make_error(ErrorCode::conflict, "lease " + name + " is held by another instance");
    auto s = db_.prepare(k_select);
    s->bind(1, name);
    if (!s->executeStep()) return make_error(ErrorCode::internal, "lease " + name + " vanished");
    return read_row(*s);
  });
}

Result<LeaseRow> LeaseStore::take_over(const std::string& name, const std::string& holder, TimeMs now,
                                       std::int64_t ttl_ms) {
  if (auto ok = check_arguments(name, holder, ttl_ms); !ok.ok()) return ok.error();
  return db_.transaction([&]() -> Result<LeaseRow> {
    auto q = db_.prepare(
        "INSERT INTO leases(name, holder, token, expires_at) VALUES(?, ?, 1, ?) "
        "ON CONFLICT(name) DO UPDATE SET token = leases.token + 1, holder = excluded.holder, "
        "expires_at = excluded.expires_at");
    q->bind(1, name);
    q->bind(2, holder);
    q->bind(3, now + ttl_ms);
    q->exec();
    auto s = db_.prepare(k_select);
    s->bind(1, name);
    if (!s->executeStep()) return make_error(ErrorCode::internal, "lease " + name + " vanished");
    return read_row(*s);
  });
}

Result<LeaseRow> LeaseStore::renew(const std::string& name, const std::string& holder, std::int64_t token,
                                   TimeMs now, std::int64_t ttl_ms) {
  if (auto ok = check_arguments(name, holder, ttl_ms); !ok.ok()) return ok.error();
  return db_.transaction([&]() -> Result<LeaseRow> {
    auto q = db_.prepare("UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND token = ?");
    q->bind(1, now + ttl_ms);
    q->bind(2, name);
    q->bind(3, holder);
    q->bind(4, token);
    if (q->exec() != 1) return lost(name);
    return LeaseRow{name, holder, token, now + ttl_ms};
  });
}

Result<bool> LeaseStore::release(const std::string& name, const std::string& holder, std::int64_t token) {
  return db_.transaction([&]() -> Result<bool> {
    auto q = db_.prepare(
        "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND token = ? AND expires_at <> 0");
    q->bind(1, name);
    q->bind(2, holder);
    q->bind(3, token);
    return q->exec() == 1;
  });
}

Status LeaseStore::check(const std::string& name, const std::string& holder, std::int64_t token) {
  return db_.transaction([&]() -> Status {
    // A no-op update rather than a SELECT: it takes the row lock on PostgreSQL, which a SELECT under
    // READ COMMITTED would not, so a takeover cannot slip in between this check and the commit.
    auto q = db_.prepare("UPDATE leases SET token = token WHERE name = ? AND holder = ? AND token = ?");
    q->bind(1, name);
    q->bind(2, holder);
    q->bind(3, token);
    if (q->exec() != 1) return lost(name);
    return {};
  });
}

Result<LeaseRow> LeaseStore::get(const std::string& name) {
  return db_.read([&]() -> Result<LeaseRow> {
    auto q = db_.prepare(k_select);
    q->bind(1, name);
    if (!q->executeStep()) return make_error(ErrorCode::not_found, "no lease " + name);
    return read_row(*q);
  });
}

Result<std::vector<LeaseRow>> LeaseStore::list(const std::string& prefix, int limit) {
  if (limit < 1) return make_error(ErrorCode::bad_request, "limit must be at least 1");
  return db_.read([&]() -> Result<std::vector<LeaseRow>> {
    // A range on the primary key rather than LIKE: prefixes may hold '_' or '%'. "\x7f" sorts after
    // every character lease names use (printable ASCII; both backends compare bytes here: COLLATE "C").
    auto q = db_.prepare(
        "SELECT name, holder, token, expires_at FROM leases WHERE name >= ? AND name < ? ORDER BY name LIMIT "
        "?");
    q->bind(1, prefix);
    q->bind(2, prefix + "\x7f");
    q->bind(3, limit);
    std::vector<LeaseRow> rows;
    while (q->executeStep()) rows.push_back(read_row(*q));
    return rows;
  });
}

}  // namespace dispatch::storage
