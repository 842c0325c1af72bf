// Database: one connection to SQLite (the embedded default) or PostgreSQL (several instances), with
// ordered schema migrations per backend, transactions that nest, and a cache of prepared statements.
//
// A Database is one connection and is not thread-safe: use it from one thread (the service loop), or
// open one Database per thread (SQLite: on the same file; WAL lets readers and one writer work
// together; writers wait up to busy_timeout = 5 s for each other). Every backend exception is caught
// here or in a store and returned as an Error:
//   SQLite: busy/locked/I/O/full/read-only/cannot-open → unavailable;
//   PostgreSQL: connection lost or refused, server shutting down, too many connections, serialization
//   failure or deadlock → unavailable;
//   both: unique or primary-key violation → conflict, foreign-key violation → not_found, anything else →
//   internal.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/core/result.h"
#include "storage/statement.h"

namespace dispatch::storage {

namespace detail {
class PgConnection;
}

enum class Backend { sqlite, postgres };

// True for a "postgresql://…" or "postgres://…" connection URI (libpq's URI syntax; key=value strings
// are not accepted so that a file name can never be taken for one).
bool is_postgres_url(const std::string& location);

// One step of the schema. Versions start at 1 and increase by one; sql may hold several statements.
struct Migration {
  int version = 0;
  std::string sql;
};

// The migrations this build knows for a backend, oldest first (schema.cpp). Both lists have the same
// versions; each step is written in its backend's dialect.
const std::vector<Migration>& schema_migrations(Backend backend = Backend::sqlite);

// Turns an exception thrown by SQLiteCpp, libpqxx (or anything else) into an Error with the codes above.
core::Error error_from_exception(const std::exception& e);

class Database {
 public:
  // Opens a database. location is either a PostgreSQL URI (is_postgres_url: "postgresql://user@host:
  // port/db", libpq's parameters such as ?options=-csearch_path%3Dx allowed) or a SQLite path
  // (created if needed; ":memory:" gives a private in-memory database).
  // SQLite: sets journal_mode=WAL (files only), synchronous=FULL, foreign_keys=ON, busy_timeout=5000.
  // PostgreSQL: connects (connect_timeout 5 s unless the URI says otherwise); the migrations run under
  // an advisory lock, so instances starting together migrate once.
  // Then applies every pending migration, each in its own transaction.
  // Errors: unavailable when the database cannot be opened or reached, or its schema_version is newer
  // than the newest migration ("database schema version N is newer than this build (M)"); internal
  // when a migration fails.
  static core::Result<std::unique_ptr<Database>> open(const std::string& location);
  // The same with an explicit migration list (tests of the migration machinery).
  static core::Result<std::unique_ptr<Database>> open(const std::string& location,
                                                      const std::vector<Migration>& migrations);
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The schema version after open (the newest applied migration).
  int schema_version() const { return schema_version_; }
  // The location given to open() (a PostgreSQL URI as given, password included if it had one).
  const std::string& path() const { return path_; }
  Backend backend() const { return backend_; }
  // The SQL text for this connection's backend, for the few statements whose dialects differ.
  const char* dialect(const char* sqlite, const char* postgres) const {
    return backend_ == Backend::sqlite ? sqlite : postgres;
  }
  // Runs SQL without parameters (may hold several statements; no result). Throws like prepare().
  void exec(const std::string& sql);

  // Runs f inside a write transaction: BEGIN IMMEDIATE at the outermost level (so the write lock is
  // taken up front and a busy database fails early with unavailable), a SAVEPOINT when already inside
  // one. On PostgreSQL the outermost level is a plain BEGIN (READ COMMITTED): writers do not exclude
  // each other, so what must be decided once across connections is decided by one statement (a state
  // guard in an UPDATE, ON CONFLICT), a row lock (FOR UPDATE) or an advisory lock in the store. f returns
  // Status or Result<T>. The work is committed when f returns ok, and rolled back when it returns an error or
  // throws; an exception becomes an Error (see the header comment).
  template <class F>
  auto transaction(F&& f) -> std::invoke_result_t<F> {
    return run_in_transaction(true, std::forward<F>(f));
  }

  // Like transaction() but starts a deferred (read) transaction at the outermost level: a consistent
  // snapshot for several SELECTs without taking the write lock (PostgreSQL: REPEATABLE READ). Inside a
  // transaction on SQLite it opens no savepoint: f changes nothing, so there is nothing to roll back, and
  // it reads the enclosing transaction's snapshot either way.
  template <class F>
  auto read(F&& f) -> std::invoke_result_t<F> {
    if (sqlite_ && depth_ > 0) return run_unwrapped(std::forward<F>(f));
    return run_in_transaction(false, std::forward<F>(f));
  }

  // Like transaction() for an f that changes the database with one SQL statement and nothing after it
  // that can fail. Inside a transaction on SQLite it opens no savepoint: SQLite backs out the changes of
  // a statement that fails by itself, so a savepoint would only cost two more statements and a second
  // copy of each page the statement changes (docs/performance.md). On PostgreSQL a failed statement
  // aborts the whole enclosing transaction unless a savepoint bounds it, so there it is transaction().
  template <class F>
  auto statement(F&& f) -> std::invoke_result_t<F> {
    if (sqlite_ && depth_ > 0) return run_unwrapped(std::forward<F>(f));
    return run_in_transaction(true, std::forward<F>(f));
  }

  // Runs SQLite's integrity check; "ok" when the file is sound, otherwise SQLite's first findings.
  // PostgreSQL checks its own pages: "ok" when the server answers.
  core::Result<std::string> integrity_check();

  // A trivial query ("SELECT 1") outside any transaction: ok when the database answers (readiness probe).
  // unavailable with the driver's message otherwise. Must not be called inside a transaction.
  core::Status ping();

  // How long the last outermost COMMIT took (zero before the first). Savepoint releases are not timed.
  std::chrono::nanoseconds last_commit_duration() const { return last_commit_; }

  // A prepared statement lent from this connection's cache (prepared on first use, SQLite re-prepares
  // it by itself after a schema change). It is reset and its bindings cleared when the lease ends.
  // Preparing is a large part of a small query's cost, so the stores' fixed statements come from here.
  // A statement whose text is already lent out (a nested use of the same SQL) or that does not fit in
  // the cache (k_statement_cache_size distinct texts) is prepared afresh and finalised after use.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Statement& operator*() { return *statement_; }
    Statement* operator->() { return statement_; }

   private:
    friend class Database;
    Lease(Statement* cached, bool* lent) : statement_(cached), lent_(lent) {}
    explicit Lease(std::unique_ptr<Statement> owned) : owned_(std::move(owned)), statement_(owned_.get()) {}
    std::unique_ptr<Statement> owned_;
    Statement* statement_ = nullptr;
    bool* lent_ = nullptr;  // the cache entry's "in use" flag, or null for an owned statement
  };
  static constexpr std::size_t k_statement_cache_size = 256;
  // Throws SQLite::Exception / pqxx::failure when sql does not prepare (the stores turn it into an Error).
  Lease prepare(const std::string& sql);

  // The underlying SQLite connection (SQLite only: tests of pragmas and files).
  SQLite::Database& db() { return *sqlite_; }
  // True while a transaction() or read() is running on this connection.
  bool in_transaction() const { return depth_ > 0; }

 private:
  Database(const std::string& location, Backend backend);
  std::unique_ptr<Statement> make_statement(const std::string& sql);

  core::Status configure();
  core::Status migrate(const std::vector<Migration>& migrations);
  core::Status migrate_locked(const std::vector<Migration>& migrations);

  void begin(bool write);
  void commit();
  void rollback() noexcept;

  template <class F>
  auto run_in_transaction(bool write, F&& f) -> std::invoke_result_t<F> {
    using R = std::invoke_result_t<F>;
    try {
      begin(write);
    } catch (const std::exception& e) {
      return R(error_from_exception(e));
    }
    try {
      R result = f();
      if (!result.ok()) {
        rollback();
        return result;
      }
      commit();
      return result;
    } catch (const std::exception& e) {
      rollback();
      return R(error_from_exception(e));
    }
  }

  template <class F>
  auto run_unwrapped(F&& f) -> std::invoke_result_t<F> {
    using R = std::invoke_result_t<F>;
    try {
      return f();
    } catch (const std::exception& e) {
      return R(error_from_exception(e));
    }
  }

  struct CachedStatement {
    std::unique_ptr<Statement> statement;
    bool lent = false;
  };

  std::string path_;
  Backend backend_;
  std::unique_ptr<SQLite::Database> sqlite_;
  std::unique_ptr<detail::PgConnection> pg_;
  // Declared after the connections so that the statements are finalised before a connection closes.
  std::unordered_map<std::string, CachedStatement> statements_;
  int depth_ = 0;  // nesting of transaction()/read(); 0 = autocommit
  std::chrono::nanoseconds last_commit_{0};
  int schema_version_ = 0;
};

}  // namespace dispatch::storage
