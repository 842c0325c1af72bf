// Statement: one prepared SQL statement on either backend, with SQLiteCpp's method names (bind,
// bindNoCopy, executeStep, exec, reset, getColumn) so that the stores read the same on both.
//
// The SQLite path forwards inline to SQLite::Statement (one predictable branch per call, no virtual
// call); the PostgreSQL path (postgres.cpp) keeps the parameters as text, runs the prepared statement
// on the first executeStep()/exec() and walks the result rows.
//
// SQL text is written once, in the dialect both backends understand: `?` and `?N` placeholders (turned
// into `$N` for PostgreSQL), `INSERT ... ON CONFLICT DO NOTHING`, `CASE` instead of two-argument
// MAX/MIN, `"offset"` quoted. The few statements that must differ choose their text with
// Database::dialect().
#pragma once

#include <SQLiteCpp/SQLiteCpp.h>

#include <cstdint>
#include <memory>
#include <string>

namespace dispatch::storage {

namespace detail {
class PgStatement;
}

class Statement;

// One column of the current row (valid until the next step or reset).
class Column {
 public:
  std::string getString() const;
  std::int64_t getInt64() const;
  int getInt() const { return static_cast<int>(getInt64()); }
  double getDouble() const;
  bool isNull() const;

 private:
  friend class Statement;
  Column(const Statement& s, int index) : s_(s), index_(index) {}
  const Statement& s_;
  int index_;
};

class Statement {
 public:
  explicit Statement(std::unique_ptr<SQLite::Statement> sqlite);
  explicit Statement(std::unique_ptr<detail::PgStatement> pg);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1, as in SQLite.
  void bind(int index, std::int64_t v) {
    if (sqlite_) {
      sqlite_->bind(index, static_cast<int64_t>(v));
    } else {
      pg_bind(index, std::to_string(v));
    }
  }
  void bind(int index, int v) { bind(index, static_cast<std::int64_t>(v)); }
  void bind(int index, const std::string& v) {
    if (sqlite_) {
      sqlite_->bind(index, v);
    } else {
      pg_bind(index, v);
    }
  }
  void bind(int index, const char* v) {
    if (sqlite_) {
      sqlite_->bind(index, v);
    } else {
      pg_bind(index, std::string(v));
    }
  }
  // Binds NULL.
  void bind(int index) {
    if (sqlite_) {
      sqlite_->bind(index);
    } else {
      pg_bind_null(index);
    }
  }
  // The string must outlive the execution (SQLite does not copy it).
  void bindNoCopy(int index, const std::string& v) {
    if (sqlite_) {
      sqlite_->bindNoCopy(index, v);
    } else {
      pg_bind(index, v);
    }
  }

  // Steps to the next row (executing the statement on the first call); false when there is none.
  bool executeStep() { return sqlite_ ? sqlite_->executeStep() : pg_step(); }
  // Executes a statement that returns no rows; the number of rows it changed.
  int exec() { return sqlite_ ? sqlite_->exec() : pg_exec(); }
  // Ready to execute again; the bindings stay.
  void reset() {
    if (sqlite_) {
      sqlite_->reset();
    } else {
      pg_reset();
    }
  }
  // reset() that never throws (SQLite reports the last step's error again on reset).
  void tryReset() noexcept;
  void clearBindings();

  Column getColumn(int index) const { return Column(*this, index); }

 private:
  friend class Column;
  void pg_bind(int index, std::string v);
  void pg_bind_null(int index);
  bool pg_step();
  int pg_exec();
  void pg_reset();

  std::unique_ptr<SQLite::Statement> sqlite_;
  std::unique_ptr<detail::PgStatement> pg_;
};

// PostgreSQL column access (postgres.cpp).
namespace detail {
std::string pg_get_string(const PgStatement& s, int index);
std::int64_t pg_get_int64(const PgStatement& s, int index);
double pg_get_double(const PgStatement& s, int index);
bool pg_is_null(const PgStatement& s, int index);
}  // namespace detail

inline std::string Column::getString() const {
  if (s_.sqlite_) return s_.sqlite_->getColumn(index_).getString();
  return detail::pg_get_string(*s_.pg_, index_);
}
inline std::int64_t Column::getInt64() const {
  if (s_.sqlite_) return s_.sqlite_->getColumn(index_).getInt64();
  return detail::pg_get_int64(*s_.pg_, index_);
}
inline double Column::getDouble() const {
  if (s_.sqlite_) return s_.sqlite_->getColumn(index_).getDouble();
  return detail::pg_get_double(*s_.pg_, index_);
}
inline bool Column::isNull() const {
  if (s_.sqlite_) return s_.sqlite_->getColumn(index_).isNull();
  return detail::pg_is_null(*s_.pg_, index_);
}

}  // namespace dispatch::storage
