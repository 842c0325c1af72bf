// Database: one SQLite connection with the service's pragmas, ordered schema migrations and
// transactions that nest.
//
// A Database is one connection and is not thread-safe: use it from one thread (the service loop), or
// open one Database per thread on the same file (WAL lets readers and one writer work together; writers
// wait up to busy_timeout = 5 s for each other). Every SQLite exception is caught here or in a store
// and returned as an Error: busy/locked/I/O/full/read-only/cannot-open → unavailable, unique or
// primary-key violation → conflict, foreign-key violation → not_found, anything else → internal.
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::storage {

// One step of the schema. Versions start at 1 and increase by one; sql may hold several statements.
struct Migration {
  int version = 0;
  std::string sql;
};

// The migrations this build knows, oldest first (schema.cpp).
const std::vector<Migration>& schema_migrations();

// Turns an exception thrown by SQLiteCpp (or anything else) into an Error with the codes above.
core::Error error_from_exception(const std::exception& e);

class Database {
 public:
  // Opens (creating if needed) the database at path; ":memory:" gives a private in-memory database.
  // Sets journal_mode=WAL (files only), synchronous=FULL, foreign_keys=ON, busy_timeout=5000, then
  // applies every pending migration, each in its own transaction.
  // Errors: unavailable when the file cannot be opened or its schema_version is newer than the
  // newest migration ("database schema version N is newer than this build (M)"); internal when a
  // migration fails.
  static core::Result<std::unique_ptr<Database>> open(const std::string& path);
  // The same with an explicit migration list (tests of the migration machinery).
  static core::Result<std::unique_ptr<Database>> open(const std::string& path,
                                                      const std::vector<Migration>& migrations);

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // The schema version after open (the newest applied migration).
  int schema_version() const { return schema_version_; }
  const std::string& path() const { return path_; }

  // Runs f inside a write transaction: BEGIN IMMEDIATE at the outermost level (so the write lock is
  // taken up front and a busy database fails early with unavailable), a SAVEPOINT when already inside
  // one. f returns Status or Result<T>. The work is committed when f returns ok, and rolled back when
  // it returns an error or throws; an exception becomes an Error (see the header comment).
  template <class F>
  auto transaction(F&& f) -> std::invoke_result_t<F> {
    return run_in_transaction(true, std::forward<F>(f));
  }

  // Like transaction() but starts a deferred (read) transaction at the outermost level: a consistent
  // snapshot for several SELECTs without taking the write lock.
  template <class F>
  auto read(F&& f) -> std::invoke_result_t<F> {
    return run_in_transaction(false, std::forward<F>(f));
  }

  // Runs SQLite's integrity check; "ok" when the file is sound, otherwise SQLite's first findings.
  core::Result<std::string> integrity_check();

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
    SQLite::Statement& operator*() { return *statement_; }
    SQLite::Statement* operator->() { return statement_; }

   private:
    friend class Database;
    Lease(SQLite::Statement* cached, bool* lent) : statement_(cached), lent_(lent) {}
    explicit Lease(std::unique_ptr<SQLite::Statement> owned)
        : owned_(std::move(owned)), statement_(owned_.get()) {}
    std::unique_ptr<SQLite::Statement> owned_;
    SQLite::Statement* statement_ = nullptr;
    bool* lent_ = nullptr;  // the cache entry's "in use" flag, or null for an owned statement
  };
  static constexpr std::size_t k_statement_cache_size = 256;
  // Throws SQLite::Exception when sql does not prepare (the stores turn it into an Error).
  Lease prepare(const std::string& sql);

  // The underlying connection, for the stores of this folder.
  SQLite::Database& db() { return db_; }
  // True while a transaction() or read() is running on this connection.
  bool in_transaction() const { return depth_ > 0; }

 private:
  explicit Database(const std::string& path);

  core::Status configure();
  core::Status migrate(const std::vector<Migration>& migrations);

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

  struct CachedStatement {
    std::unique_ptr<SQLite::Statement> statement;
    bool lent = false;
  };

  std::string path_;
  SQLite::Database db_;
  // Declared after db_ so that the statements are finalised before the connection closes.
  std::unordered_map<std::string, CachedStatement> statements_;
  int depth_ = 0;  // nesting of transaction()/read(); 0 = autocommit
  int schema_version_ = 0;
};

}  // namespace dispatch::storage
