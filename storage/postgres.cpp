#include "storage/postgres.h"

#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <utility>

#include "storage/statement.h"

namespace dispatch::storage::detail {

std::string postgres_placeholders(const std::string& sql, int* parameters) {
  std::string out;
  out.reserve(sql.size() + 16);
  int largest = 0;
  std::size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == '\'' || c == '"') {
      // A quoted string or identifier; a doubled quote inside it is an escaped quote.
      const std::size_t end = sql.find(c, i + 1);
      const std::size_t stop = end == std::string::npos ? sql.size() : end + 1;
      out.append(sql, i, stop - i);
      i = stop;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      const std::size_t end = sql.find('\n', i);
      const std::size_t stop = end == std::string::npos ? sql.size() : end;
      out.append(sql, i, stop - i);
      i = stop;
    } else if (c == '?') {
      std::size_t j = i + 1;
      int index = 0;
      while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) {
        index = index * 10 + (sql[j] - '0');
        ++j;
      }
      if (j == i + 1) index = largest + 1;
      if (index > largest) largest = index;
      out += '$';
      out += std::to_string(index);
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  if (parameters) *parameters = largest;
  return out;
}

PgConnection::PgConnection(std::string url) : url_(std::move(url)) { reconnect(); }

PgConnection::~PgConnection() = default;

void PgConnection::reconnect() {
  work_.reset();
  connection_.reset();
  broken_ = true;
  // libpq waits forever by default for an unreachable host; 5 s unless the URI chooses.
  std::string url = url_;
  if (url.find("connect_timeout=") == std::string::npos) {
    url += url.find('?') == std::string::npos ? "?" : "&";
    url += "connect_timeout=5";
  }
  connection_ = std::make_unique<pqxx::connection>(url);
  work_ = std::make_unique<pqxx::nontransaction>(*connection_);
  // Notices ("relation already exists, skipping") are not for the log.
  work_->exec("SET client_min_messages = warning");
  ++generation_;
  broken_ = false;
}

template <class F>
pqxx::result PgConnection::guarded(F&& f) {
  if (broken_ || !work_) throw pqxx::broken_connection("the connection to PostgreSQL was lost");
  try {
    return f();
  } catch (const pqxx::broken_connection&) {
    broken_ = true;
    throw;
  } catch (const pqxx::sql_error& e) {
    // The server ends sessions with class 57P (admin/crash shutdown) and 08 (connection exceptions).
    if (e.sqlstate().rfind("08", 0) == 0 || e.sqlstate().rfind("57P", 0) == 0 || !connection_->is_open()) {
      broken_ = true;
    }
    throw;
  }
}

pqxx::result PgConnection::exec(const std::string& sql) {
  return guarded([&] { return work_->exec(sql); });
}

pqxx::result PgConnection::exec_prepared(const std::string& name, const std::string& sql,
                                         std::uint64_t& prepared_in, const std::vector<const char*>& params) {
  return guarded([&] {
    if (prepared_in != generation_) {
      connection_->prepare(name, sql);
      prepared_in = generation_;
    }
    return work_->exec_prepared(name, pqxx::prepare::make_dynamic_params(params));
  });
}

pqxx::result PgConnection::exec_params(const std::string& sql, const std::vector<const char*>& params) {
  return guarded([&] { return work_->exec_params(sql, pqxx::prepare::make_dynamic_params(params)); });
}

PgStatement::PgStatement(PgConnection& connection, const std::string& sql, bool named)
    : connection_(connection) {
  int parameters = 0;
  sql_ = postgres_placeholders(sql, &parameters);
  if (named) name_ = connection.next_statement_name();
  values_.resize(static_cast<std::size_t>(parameters));
  null_.assign(static_cast<std::size_t>(parameters), true);
}

void PgStatement::bind(int index, std::string value) {
  if (index < 1 || static_cast<std::size_t>(index) > values_.size()) {
    throw std::out_of_range("parameter " + std::to_string(index) + " is out of range");
  }
  values_[index - 1] = std::move(value);
  null_[index - 1] = false;
}

void PgStatement::bind_null(int index) {
  if (index < 1 || static_cast<std::size_t>(index) > values_.size()) {
    throw std::out_of_range("parameter " + std::to_string(index) + " is out of range");
  }
  values_[index - 1].clear();
  null_[index - 1] = true;
}

void PgStatement::run() {
  std::vector<const char*> params(values_.size());
  for (std::size_t i = 0; i < values_.size(); ++i) params[i] = null_[i] ? nullptr : values_[i].c_str();
  result_ = name_.empty() ? connection_.exec_params(sql_, params)
                          : connection_.exec_prepared(name_, sql_, prepared_in_, params);
  executed_ = true;
  row_ = -1;
}

bool PgStatement::step() {
  if (!executed_) run();
  ++row_;
  return row_ < static_cast<long>(result_.size());
}

int PgStatement::exec() {
  run();
  return static_cast<int>(result_.affected_rows());
}

void PgStatement::reset() {
  executed_ = false;
  result_.clear();
  row_ = -1;
}

void PgStatement::clear_bindings() {
  for (std::size_t i = 0; i < values_.size(); ++i) {
    values_[i].clear();
    null_[i] = true;
  }
}

const pqxx::field PgStatement::field(int index) const {
  if (!executed_ || row_ < 0 || row_ >= static_cast<long>(result_.size())) {
    throw std::logic_error("no current row");
  }
  return result_[static_cast<pqxx::result::size_type>(row_)][index];
}

std::string pg_get_string(const PgStatement& s, int index) {
  const pqxx::field f = s.field(index);
  return f.is_null() ? std::string() : std::string(f.c_str(), f.size());
}

std::int64_t pg_get_int64(const PgStatement& s, int index) {
  const pqxx::field f = s.field(index);
  if (f.is_null()) return 0;
  // Booleans come back as "t"/"f"; numeric aggregates (SUM) as decimal text.
  const char* text = f.c_str();
  if (text[0] == 't' && text[1] == '\0') return 1;
  if (text[0] == 'f' && text[1] == '\0') return 0;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  return static_cast<std::int64_t>(v);
}

double pg_get_double(const PgStatement& s, int index) {
  const pqxx::field f = s.field(index);
  return f.is_null() ? 0.0 : std::strtod(f.c_str(), nullptr);
}

bool pg_is_null(const PgStatement& s, int index) { return s.field(index).is_null(); }

}  // namespace dispatch::storage::detail

namespace dispatch::storage {

Statement::Statement(std::unique_ptr<SQLite::Statement> sqlite) : sqlite_(std::move(sqlite)) {}
Statement::Statement(std::unique_ptr<detail::PgStatement> pg) : pg_(std::move(pg)) {}
Statement::~Statement() = default;

void Statement::pg_bind(int index, std::string v) { pg_->bind(index, std::move(v)); }
void Statement::pg_bind_null(int index) { pg_->bind_null(index); }
bool Statement::pg_step() { return pg_->step(); }
int Statement::pg_exec() { return pg_->exec(); }
void Statement::pg_reset() { pg_->reset(); }

void Statement::tryReset() noexcept {
  if (sqlite_) {
    sqlite_->tryReset();
  } else {
    pg_->reset();
  }
}

void Statement::clearBindings() {
  if (sqlite_) {
    sqlite_->clearBindings();
  } else {
    pg_->clear_bindings();
  }
}

}  // namespace dispatch::storage
