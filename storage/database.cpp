#include "storage/database.h"

#include <sqlite3.h>

#include <pqxx/pqxx>
#include <string>

#include "storage/postgres.h"

namespace dispatch::storage {

using core::Error;
using core::ErrorCode;
using core::make_error;
using core::Result;
using core::Status;

namespace {

constexpr int k_busy_timeout_ms = 5000;

ErrorCode code_for_sqlite(int primary, int extended) {
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return ErrorCode::unavailable;
    case SQLITE_CONSTRAINT:
      if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return ErrorCode::conflict;
      }
      if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) return ErrorCode::not_found;
      return ErrorCode::internal;
    default:
      return ErrorCode::internal;
  }
}

ErrorCode code_for_sqlstate(const std::string& state) {
  if (state == "23505") return ErrorCode::conflict;   // unique_violation
  if (state == "23503") return ErrorCode::not_found;  // foreign_key_violation
  // Connection exceptions, the server shutting down or refusing connections, out of resources,
  // serialization failures and deadlocks: all pass when retried later.
  if (state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0 || state.rfind("53", 0) == 0 ||
      state == "40001" || state == "40P01" || state == "55P03") {
    return ErrorCode::unavailable;
  }
  return ErrorCode::internal;
}

// The single key of the advisory lock that serialises migrations across instances.
constexpr std::int64_t k_migration_lock = 0x64697370617463;  // "dispatc"

}  // namespace

bool is_postgres_url(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

Error error_from_exception(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const SQLite::Exception*>(&e)) {
    return make_error(code_for_sqlite(sql->getErrorCode(), sql->getExtendedErrorCode()),
                      std::string("storage: ") + sql->what());
  }
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr ||
      dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return make_error(ErrorCode::unavailable, std::string("storage: ") + e.what());
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    std::string what = sql->what();
    while (!what.empty() && (what.back() == '\n' || what.back() == ' ')) what.pop_back();
    return make_error(code_for_sqlstate(sql->sqlstate()), "storage: " + what);
  }
  return make_error(ErrorCode::internal, std::string("storage: ") + e.what());
}

namespace {

// SQLite's process-wide settings, once, before its first connection. Too late (the library already
// initialized by another user in the process) is harmless: SQLite's defaults stay.
// - No memory statistics. With them (the default) every allocation SQLite makes takes a global mutex to
//   count itself; nothing of ours reads them.
// - Sub-journals in memory up to k_subjournal_spill_bytes. Every handler runs in a savepoint, and SQLite
//   copies each page a savepoint changes for the first time into the sub-journal, to roll the savepoint
//   back. Past SQLite's default 64 KiB it spills to a temporary file, which a batch of package queries
//   passed: a file created, written and deleted per batch (docs/performance.md). The in-memory
//   sub-journal is emptied when the last savepoint is released; one that grows past the limit spills to a
//   file as before.
//   The limit must stay below 128 KiB. SQLite holds an in-memory sub-journal in chunks of the limit's size
//   and writes each chunk to the file in one call when it spills, and its unix VFS writes at most
//   128 KiB - 1 bytes per call (seekAndWriteFd masks the length with 0x1ffff): a 128 KiB chunk is written
//   as 0 bytes and the statement fails with SQLITE_FULL, "database or disk is full". 256 KiB, tried first,
//   failed every commit of a 20,000-device campaign tick that way.
constexpr int k_subjournal_spill_bytes = 124 * 1024;
static_assert(k_subjournal_spill_bytes <= 0x1ffff,
              "a spilled chunk must fit in one write of SQLite's unix VFS");

void configure_sqlite_once() {
  static const bool done = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, k_subjournal_spill_bytes);
    return true;
  }();
  (void)done;
}

}  // namespace

Database::Database(const std::string& location, Backend backend) : path_(location), backend_(backend) {
  if (backend == Backend::sqlite) {
    configure_sqlite_once();
    // OPEN_NOMUTEX: a Database is one thread's at a time (the service loop's, or one thread's in a tool or
    // test), never shared concurrently, so SQLite's per-call connection mutex is pure cost.
    sqlite_ = std::make_unique<SQLite::Database>(
        location, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX, k_busy_timeout_ms);
  } else {
    pg_ = std::make_unique<detail::PgConnection>(location);
  }
}

Database::~Database() {
  // The statements go first: they refer to the connection.
  statements_.clear();
}

Result<std::unique_ptr<Database>> Database::open(const std::string& location) {
  return open(location, schema_migrations(is_postgres_url(location) ? Backend::postgres : Backend::sqlite));
}

Result<std::unique_ptr<Database>> Database::open(const std::string& location,
                                                 const std::vector<Migration>& migrations) {
  std::unique_ptr<Database> database;
  const Backend backend = is_postgres_url(location) ? Backend::postgres : Backend::sqlite;
  try {
    database.reset(new Database(location, backend));
  } catch (const std::exception& e) {
    Error error = error_from_exception(e);
    // Whatever the reason, a database that cannot be opened is a retryable outage for callers.
    error.code = ErrorCode::unavailable;
    return error;
  }
  if (auto s = database->configure(); !s.ok()) return s.error();
  if (auto s = database->migrate(migrations); !s.ok()) return s.error();
  return database;
}

Status Database::configure() {
  // PostgreSQL: nothing to set per session (PgConnection silences notices on every connect).
  if (backend_ == Backend::postgres) return {};
  try {
    // Pragmas are set explicitly on every open: SQLite's defaults (rollback journal, foreign keys off,
    // no busy wait) are wrong for a service that must survive kill -9 and share the file.
    if (path_ != ":memory:" && !path_.empty()) {
      std::string mode = sqlite_->execAndGet("PRAGMA journal_mode=WAL").getString();
      if (mode != "wal") {
        return make_error(ErrorCode::unavailable, "storage: cannot enable WAL journal (got " + mode + ")");
      }
    }
    sqlite_->exec("PRAGMA synchronous=FULL");
    sqlite_->exec("PRAGMA foreign_keys=ON");
    sqlite_->exec("PRAGMA busy_timeout=" + std::to_string(k_busy_timeout_ms));
    return {};
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

void Database::exec(const std::string& sql) {
  if (sqlite_) {
    sqlite_->exec(sql);
  } else {
    pg_->exec(sql);
  }
}

Status Database::migrate(const std::vector<Migration>& migrations) {
  if (backend_ == Backend::postgres) {
    // Instances starting together: the first migrates, the others wait here and then find nothing to do.
    try {
      pg_->exec("SELECT pg_advisory_lock(" + std::to_string(k_migration_lock) + ")");
    } catch (const std::exception& e) {
      return error_from_exception(e);
    }
    Status s = migrate_locked(migrations);
    try {
      pg_->exec("SELECT pg_advisory_unlock(" + std::to_string(k_migration_lock) + ")");
    } catch (const std::exception& e) {
      if (s.ok()) return error_from_exception(e);
    }
    return s;
  }
  return migrate_locked(migrations);
}

Status Database::migrate_locked(const std::vector<Migration>& migrations) {
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  auto current = transaction([&]() -> Result<int> {
    exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
    auto query = make_statement("SELECT MAX(version) FROM schema_version");
    query->executeStep();
    return query->getColumn(0).isNull() ? 0 : query->getColumn(0).getInt();
  });
  if (!current.ok()) return current.error();
  if (*current > newest) {
    return make_error(ErrorCode::unavailable, "database schema version " + std::to_string(*current) +
                                                  " is newer than this build (" + std::to_string(newest) +
                                                  ")");
  }
  schema_version_ = *current;
  for (const Migration& m : migrations) {
    if (m.version <= schema_version_) continue;
    // Each step commits on its own so an interrupted upgrade resumes at the first missing step.
    Status applied = transaction([&]() -> Status {
      exec(m.sql);
      exec("DELETE FROM schema_version");
      auto insert = make_statement("INSERT INTO schema_version(version) VALUES(?)");
      insert->bind(1, m.version);
      insert->exec();
      return {};
    });
    if (!applied.ok()) {
      return make_error(
          applied.error().code == ErrorCode::unavailable ? ErrorCode::unavailable : ErrorCode::internal,
          "storage: migration " + std::to_string(m.version) + " failed: " + applied.error().message);
    }
    schema_version_ = m.version;
  }
  return {};
}

Database::Lease::Lease(Lease&& other) noexcept
    : owned_(std::move(other.owned_)), statement_(other.statement_), lent_(other.lent_) {
  other.statement_ = nullptr;
  other.lent_ = nullptr;
}

Database::Lease::~Lease() {
  if (lent_ == nullptr) return;  // owned (finalised with owned_) or moved from
  statement_->tryReset();
  try {
    statement_->clearBindings();
  } catch (const std::exception&) {
    // sqlite3_clear_bindings cannot fail; nothing to do.
  }
  *lent_ = false;
}

std::unique_ptr<Statement> Database::make_statement(const std::string& sql) {
  if (sqlite_) return std::make_unique<Statement>(std::make_unique<SQLite::Statement>(*sqlite_, sql));
  return std::make_unique<Statement>(std::make_unique<detail::PgStatement>(*pg_, sql, false));
}

Database::Lease Database::prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end() && statements_.size() < k_statement_cache_size) {
    std::unique_ptr<Statement> statement =
        sqlite_ ? std::make_unique<Statement>(std::make_unique<SQLite::Statement>(*sqlite_, sql))
                : std::make_unique<Statement>(std::make_unique<detail::PgStatement>(*pg_, sql, true));
    it = statements_.emplace(sql, CachedStatement{std::move(statement), false}).first;
  }
  if (it == statements_.end() || it->second.lent) return Lease(make_statement(sql));
  it->second.lent = true;
  return Lease(it->second.statement.get(), &it->second.lent);
}

void Database::begin(bool write) {
  if (pg_) {
    if (depth_ == 0) {
      // A connection lost earlier is opened again at the start of the next transaction (never inside
      // one: the work of a transaction is lost with its connection). Throws while the server is away.
      if (pg_->broken()) pg_->reconnect();
      pg_->exec(write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ");
    } else {
      pg_->exec("SAVEPOINT sp" + std::to_string(depth_));
    }
    ++depth_;
    return;
  }
  if (depth_ == 0) {
    prepare(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED")->exec();
  } else {
    prepare("SAVEPOINT sp" + std::to_string(depth_))->exec();
  }
  ++depth_;
}

core::Status Database::ping() {
  try {
    auto q = prepare("SELECT 1");
    if (!q->executeStep()) return core::make_error(core::ErrorCode::unavailable, "SELECT 1 returned no row");
    return {};
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

void Database::commit() {
  if (pg_) {
    if (depth_ == 1) {
      const auto started = std::chrono::steady_clock::now();
      pg_->exec("COMMIT");
      last_commit_ = std::chrono::steady_clock::now() - started;
    } else {
      pg_->exec("RELEASE SAVEPOINT sp" + std::to_string(depth_ - 1));
    }
    --depth_;
    return;
  }
  if (depth_ == 1) {
    const auto started = std::chrono::steady_clock::now();
    prepare("COMMIT")->exec();
    last_commit_ = std::chrono::steady_clock::now() - started;
  } else {
    prepare("RELEASE sp" + std::to_string(depth_ - 1))->exec();
  }
  --depth_;
}

void Database::rollback() noexcept {
  if (depth_ == 0) return;
  --depth_;
  if (pg_) {
    try {
      if (pg_->broken()) return;  // the server rolled the transaction back with the connection
      if (depth_ == 0) {
        pg_->exec("ROLLBACK");
      } else {
        const std::string name = "sp" + std::to_string(depth_);
        pg_->exec("ROLLBACK TO SAVEPOINT " + name + "; RELEASE SAVEPOINT " + name);
      }
    } catch (const std::exception&) {
      // As below; a connection that failed here is marked broken and reopened by the next begin().
    }
    return;
  }
  try {
    if (depth_ == 0) {
      // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL); ROLLBACK would then fail.
      if (!sqlite3_get_autocommit(sqlite_->getHandle())) sqlite_->exec("ROLLBACK");
    } else if (!sqlite3_get_autocommit(sqlite_->getHandle())) {
      const std::string name = "sp" + std::to_string(depth_);
      sqlite_->exec("ROLLBACK TO " + name);
      sqlite_->exec("RELEASE " + name);
    }
  } catch (const std::exception&) {
    // Nothing more can be done here; the caller already returns the original error.
  }
}

Result<std::string> Database::integrity_check() {
  if (pg_) {
    try {
      if (pg_->broken()) pg_->reconnect();
      pg_->exec("SELECT 1");
      return std::string("ok");
    } catch (const std::exception& e) {
      return error_from_exception(e);
    }
  }
  try {
    SQLite::Statement query(*sqlite_, "PRAGMA integrity_check");
    std::string out;
    while (query.executeStep()) {
      if (!out.empty()) out += "\n";
      out += query.getColumn(0).getString();
    }
    return out;
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

}  // namespace dispatch::storage
