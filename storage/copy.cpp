#include "storage/copy.h"

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "storage/sql_util.h"

namespace dispatch::storage {

using core::ErrorCode;
using core::make_error;
using core::Result;

namespace {

// PostgreSQL allows 65,535 parameters per statement; stay well below whatever the column count.
constexpr std::size_t k_max_parameters = 60000;
// The advisory lock a copy holds on the target for its transaction.
constexpr std::int64_t k_copy_lock = 0x6d696772617465;  // "migrate"

std::string quoted(const std::string& identifier) {
  std::string out = "\"";
  for (char c : identifier) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

struct TargetColumn {
  std::string name;
  bool bytea = false;
  bool sequence = false;  // identity or serial: its sequence is moved past the copied values
};

// The base tables of the current schema (schema_version aside), parents before children; ties by name.
std::vector<std::string> tables_in_copy_order(Database& target) {
  std::vector<std::string> tables;
  {
    auto q = target.prepare(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_version' ORDER BY table_name");
    while (q->executeStep()) tables.push_back(q->getColumn(0).getString());
  }
  std::map<std::string, std::set<std::string>> parents;  // child → the tables it references
  {
    auto q = target.prepare(
        "SELECT child.relname, parent.relname FROM pg_constraint c "
        "JOIN pg_class child ON child.oid = c.conrelid JOIN pg_class parent ON parent.oid = c.confrelid "
        "JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE c.contype = 'f' AND n.nspname = current_schema()");
    while (q->executeStep()) {
      const std::string child = q->getColumn(0).getString();
      const std::string parent = q->getColumn(1).getString();
      if (child != parent) parents[child].insert(parent);  // a self-reference orders nothing
    }
  }
  // Kahn's algorithm over the sorted list: the first table whose parents are all placed goes next.
  std::vector<std::string> order;
  std::set<std::string> placed;
  while (order.size() < tables.size()) {
    bool progressed = false;
    for (const auto& t : tables) {
      if (placed.count(t) > 0) continue;
      bool ready = true;
      for (const auto& p : parents[t]) ready = ready && (placed.count(p) > 0 || p == t);
      if (!ready) continue;
      order.push_back(t);
      placed.insert(t);
      progressed = true;
      break;
    }
    if (!progressed) throw std::runtime_error("the foreign keys of the target schema form a cycle");
  }
  return order;
}

std::vector<TargetColumn> target_columns(Database& target, const std::string& table) {
  std::vector<TargetColumn> out;
  auto q = target.prepare(
      "SELECT column_name, data_type, "
      "CASE WHEN pg_get_serial_sequence(quote_ident(table_name::text), column_name::text) IS NULL THEN 0 "
      "ELSE 1 END "
      "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? "
      "AND is_generated = 'NEVER' ORDER BY ordinal_position");
  q->bind(1, table);
  while (q->executeStep()) {
    out.push_back({q->getColumn(0).getString(), q->getColumn(1).getString() == "bytea",
                   q->getColumn(2).getInt64() != 0});
  }
  return out;
}

std::vector<std::string> source_columns(Database& source, const std::string& table) {
  std::vector<std::string> out;
  auto q = source.prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid");
  q->bind(1, table);
  while (q->executeStep()) out.push_back(q->getColumn(0).getString());
  return out;
}

std::int64_t count_rows(Database& db, const std::string& table) {
  auto q = db.prepare("SELECT COUNT(*) FROM " + quoted(table));
  q->executeStep();
  return q->getColumn(0).getInt64();
}

// One table: SELECT from the source, multi-row INSERTs into the target.
Result<TableCount> copy_table(Database& source, Database& target, const std::string& table) {
  const std::vector<std::string> from = source_columns(source, table);
  if (from.empty()) {
    return make_error(ErrorCode::bad_request, "table " + table + ": the source has no such table");
  }
  const std::vector<TargetColumn> to = target_columns(target, table);
  for (const auto& name : from) {
    const bool known =
        std::any_of(to.begin(), to.end(), [&](const TargetColumn& c) { return c.name == name; });
    if (!known) {
      return make_error(ErrorCode::bad_request,
                        "table " + table + ": column " + name + " of the source has no column in the target");
    }
  }
  // The columns copied, in the target's order, with the expression that reads each from the source.
  std::vector<const TargetColumn*> copied;
  std::vector<std::string> select;
  bool overriding = false;
  for (const auto& c : to) {
    if (std::find(from.begin(), from.end(), c.name) != from.end()) {
      copied.push_back(&c);
      select.push_back(quoted(c.name));
    } else if (c.sequence && c.name == "rowid") {
      // SQLite's implicit rowid, made explicit on PostgreSQL (the stores order by it).
      copied.push_back(&c);
      select.push_back("rowid");
      overriding = true;
    }
    // Any other target-only column takes its default.
  }
  std::string columns;
  std::string row = "(";
  for (std::size_t i = 0; i < copied.size(); ++i) {
    if (i > 0) {
      columns += ", ";
      row += ", ";
    }
    columns += quoted(copied[i]->name);
    row += copied[i]->bytea ? "decode(?, 'base64')" : "?";
  }
  row += ")";
  std::string select_list;
  for (std::size_t i = 0; i < select.size(); ++i) select_list += (i > 0 ? ", " : "") + select[i];

  const std::size_t per_statement = std::max<std::size_t>(
      1, std::min(detail::k_pg_batch, k_max_parameters / std::max<std::size_t>(1, copied.size())));
  const std::string insert_head = "INSERT INTO " + quoted(table) + "(" + columns + ") " +
                                  (overriding ? "OVERRIDING SYSTEM VALUE " : "") + "VALUES ";

  struct Value {
    bool null = false;
    std::string text;
  };
  std::vector<Value> pending;  // row-major, copied.size() per row
  pending.reserve(per_statement * copied.size());
  std::int64_t copied_rows = 0;
  auto flush = [&]() {
    const std::size_t rows = pending.size() / std::max<std::size_t>(1, copied.size());
    if (rows == 0) return;
    auto insert = target.prepare(insert_head + detail::value_rows(row, rows));
    for (std::size_t i = 0; i < pending.size(); ++i) {
      const int index = static_cast<int>(i) + 1;
      if (pending[i].null) {
        insert->bind(index);
      } else {
        insert->bind(index, pending[i].text);
      }
    }
    insert->exec();
    copied_rows += static_cast<std::int64_t>(rows);
    pending.clear();
  };

  auto read = source.prepare("SELECT " + select_list + " FROM " + quoted(table));
  while (read->executeStep()) {
    for (std::size_t i = 0; i < copied.size(); ++i) {
      const Column column = read->getColumn(static_cast<int>(i));
      if (column.isNull()) {
        pending.push_back({true, {}});
      } else {
        std::string value = column.getString();
        // libpq passes parameters as C strings: a NUL would silently cut the value short.
        if (!copied[i]->bytea && value.find('\0') != std::string::npos) {
          return make_error(ErrorCode::bad_request,
                            "table " + table + ": column " + copied[i]->name +
                                " holds a NUL byte, which PostgreSQL text cannot hold");
        }
        pending.push_back({false, std::move(value)});
      }
    }
    if (pending.size() >= per_statement * copied.size()) flush();
  }
  flush();

  for (const TargetColumn* c : copied) {
    if (!c->sequence) continue;
    // The next value generated is one past the largest copied (1 on an empty table).
    auto fix = target.prepare("SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX(" + quoted(c->name) +
                              "), 0) + 1, false) FROM " + quoted(table));
    fix->bind(1, quoted(table));
    fix->bind(2, c->name);
    fix->executeStep();
  }

  const std::int64_t in_source = count_rows(source, table);
  const std::int64_t in_target = count_rows(target, table);
  if (in_source != in_target || in_target != copied_rows) {
    return make_error(ErrorCode::internal, "table " + table + ": " + std::to_string(in_source) +
                                               " rows in the source, " + std::to_string(copied_rows) +
                                               " copied, " + std::to_string(in_target) + " in the target");
  }
  return TableCount{table, in_target};
}

}  // namespace

Result<std::vector<TableCount>> nonempty_tables(Database& target) {
  try {
    std::vector<TableCount> out;
    for (const auto& table : tables_in_copy_order(target)) {
      const std::int64_t rows = count_rows(target, table);
      if (rows > 0) out.push_back({table, rows});
    }
    return out;
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
}

Result<std::vector<TableCount>> copy_tables(Database& source, Database& target) {
  if (source.backend() != Backend::sqlite || target.backend() != Backend::postgres) {
    return make_error(ErrorCode::bad_request, "a copy goes from a SQLite database to a PostgreSQL one");
  }
  std::vector<std::string> order;
  try {
    // Two copies started together into one database: the second waits here, then finds data and refuses.
    target.prepare("SELECT pg_advisory_xact_lock(" + std::to_string(k_copy_lock) + ")")->executeStep();
    order = tables_in_copy_order(target);
  } catch (const std::exception& e) {
    core::Error error = error_from_exception(e);
    error.message = "reading the target schema: " + error.message;
    return error;
  }
  // A table only the source has would be left behind: refuse before copying anything.
  try {
    auto q = source.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "AND name <> 'schema_version' ORDER BY name");
    while (q->executeStep()) {
      const std::string name = q->getColumn(0).getString();
      if (std::find(order.begin(), order.end(), name) == order.end()) {
        return make_error(ErrorCode::bad_request,
                          "table " + name + " of the source has no table in the target");
      }
    }
  } catch (const std::exception& e) {
    return error_from_exception(e);
  }
  {
    auto held = nonempty_tables(target);
    if (!held) return held.error();
    if (!held->empty()) {
      std::string which;
      for (const auto& t : *held)
        which += (which.empty() ? "" : ", ") + t.table + ": " + std::to_string(t.rows);
      return make_error(ErrorCode::conflict, "the target already holds data (" + which +
                                                 " rows); a copy goes into an empty database only");
    }
  }
  std::vector<TableCount> out;
  for (const auto& table : order) {
    Result<TableCount> copied = [&]() -> Result<TableCount> {
      try {
        return copy_table(source, target, table);
      } catch (const std::exception& e) {
        core::Error error = error_from_exception(e);
        error.message = "table " + table + ": " + error.message;
        return error;
      }
    }();
    if (!copied) return copied.error();
    out.push_back(*copied);
  }
  return out;
}

}  // namespace dispatch::storage
