// The PostgreSQL side of Database and Statement (libpqxx 6.4), private to this folder.
//
// One connection and one pqxx::nontransaction for its whole life: Database sends BEGIN, SAVEPOINT,
// COMMIT and ROLLBACK itself, as it does on SQLite, so that nesting works the same on both. Cached
// statements are prepared on the server under a generated name (again after a reconnect); statements
// that are not cached run as unnamed parameterised queries.
#pragma once

#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace dispatch::storage::detail {

// "?" and "?N" placeholders → "$N" (SQLite's numbering: a bare "?" is one more than the largest index so
// far); quoted strings, quoted identifiers and comments are left alone.
// parameters receives the number of parameters (the largest index).
std::string postgres_placeholders(const std::string& sql, int* parameters = nullptr);

class PgConnection {
 public:
  // Connects; throws pqxx::broken_connection when the server cannot be reached.
  explicit PgConnection(std::string url);
  ~PgConnection();

  // Runs SQL text (no parameters; several statements allowed).
  pqxx::result exec(const std::string& sql);
  // Runs the prepared statement name (preparing it first on this connection generation).
  pqxx::result exec_prepared(const std::string& name, const std::string& sql, std::uint64_t& prepared_in,
                             const std::vector<const char*>& params);
  pqxx::result exec_params(const std::string& sql, const std::vector<const char*>& params);

  // (appended, not "s" + std::string: GCC 12 at -O3 warns falsely on that form, -Wrestrict)
  std::string next_statement_name() {
    std::string name = std::to_string(++statements_);
    name.insert(0, 1, 's');
    return name;
  }
  // True after an error that closed the connection; reconnect() opens a new one.
  bool broken() const { return broken_; }
  void reconnect();

 private:
  template <class F>
  pqxx::result guarded(F&& f);

  std::string url_;
  std::unique_ptr<pqxx::connection> connection_;
  std::unique_ptr<pqxx::nontransaction> work_;
  std::uint64_t generation_ = 0;  // bumped by every (re)connect: prepared statements are per connection
  std::uint64_t statements_ = 0;
  bool broken_ = false;
};

class PgStatement {
 public:
  // named: a prepared statement kept in the cache; otherwise an unnamed parameterised query.
  PgStatement(PgConnection& connection, const std::string& sql, bool named);

  void bind(int index, std::string value);
  void bind_null(int index);
  bool step();
  int exec();
  void reset();
  void clear_bindings();

  const pqxx::field field(int index) const;

 private:
  void run();

  PgConnection& connection_;
  std::string sql_;
  std::string name_;  // empty for an unnamed statement
  std::uint64_t prepared_in_ = 0;
  std::vector<std::string> values_;
  std::vector<bool> null_;
  pqxx::result result_;
  bool executed_ = false;
  long row_ = -1;
};

}  // namespace dispatch::storage::detail
