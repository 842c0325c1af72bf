#include "storage/database.h"

#include <sqlite3.h>

#include <string>

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

}  // namespace

Error error_from_exception(const std::exception& e) {
  if (const auto* sql = dynamic_cast<const SQLite::Exception*>(&e)) {
    return make_error(code_for_sqlite(sql->getErrorCode(), sql->getExtendedErrorCode()),
                      std::string("storage: ") + sql->what());
  }
  return make_error(ErrorCode::internal, std::string("storage: ") + e.what());
}

Database::Database(const std::string& path)
    : path_(path), db_(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, k_busy_timeout_ms) {}

Result<std::unique_ptr<Database>> Database::open(const std::string& path) {
  return open(path, schema_migrations());
}

Result<std::unique_ptr<Database>> Database::open(const std::string& path,
                                                 const std::vector<Migration>& migrations) {
  std::unique_ptr<Database> database;
  try {
    database.reset(new Database(path));
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
  try {
    // Pragmas are set explicitly on every open: SQLite's defaults (rollback journal, foreign keys off,
    // no busy wait) are wrong for a service that must survive kill -9 and share the file.
    if (path_ != ":memory:" && !path_.empty()) {
      std::string mode = db_.execAndGet("PRAGMA journal_mode=WAL").getString();
      if (mode != "wal") {
        return make_error(ErrorCode::unavailable, "storage: cannot enable WAL journal (got " + mode + ")");
      }
    }
    db_.exec("PRAGMA synchronous=FULL");
    db_.exec("PRAGMA foreign_keys=ON");
    db_.exec("PRAGMA busy_timeout=" + std::to_string(k_busy_timeout_ms));
    return {};
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

Status Database::migrate(const std::vector<Migration>& migrations) {
  const int newest = migrations.empty() ? 0 : migrations.back().version;
  auto current = transaction([&]() -> Result<int> {
    db_.exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)");
    SQLite::Statement query(db_, "SELECT MAX(version) FROM schema_version");
    query.executeStep();
    return query.getColumn(0).isNull() ? 0 : query.getColumn(0).getInt();
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
      db_.exec(m.sql);
      db_.exec("DELETE FROM schema_version");
      SQLite::Statement insert(db_, "INSERT INTO schema_version(version) VALUES(?)");
      insert.bind(1, m.version);
      insert.exec();
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

Database::Lease Database::prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end() && statements_.size() < k_statement_cache_size) {
    it =
        statements_.emplace(sql, CachedStatement{std::make_unique<SQLite::Statement>(db_, sql), false}).first;
  }
  if (it == statements_.end() || it->second.lent) return Lease(std::make_unique<SQLite::Statement>(db_, sql));
  it->second.lent = true;
  return Lease(it->second.statement.get(), &it->second.lent);
}

void Database::begin(bool write) {
  if (depth_ == 0) {
    prepare(write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED")->exec();
  } else {
    prepare("SAVEPOINT sp" + std::to_string(depth_))->exec();
  }
  ++depth_;
}

void Database::commit() {
  if (depth_ == 1) {
    prepare("COMMIT")->exec();
  } else {
    prepare("RELEASE sp" + std::to_string(depth_ - 1))->exec();
  }
  --depth_;
}

void Database::rollback() noexcept {
  if (depth_ == 0) return;
  --depth_;
  try {
    if (depth_ == 0) {
      // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL); ROLLBACK would then fail.
      if (!sqlite3_get_autocommit(db_.getHandle())) db_.exec("ROLLBACK");
    } else if (!sqlite3_get_autocommit(db_.getHandle())) {
      const std::string name = "sp" + std::to_string(depth_);
      db_.exec("ROLLBACK TO " + name);
      db_.exec("RELEASE " + name);
    }
  } catch (const std::exception&) {
    // Nothing more can be done here; the caller already returns the original error.
  }
}

Result<std::string> Database::integrity_check() {
  try {
    SQLite::Statement query(db_, "PRAGMA integrity_check");
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
