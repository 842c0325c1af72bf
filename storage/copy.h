// Copying a SQLite database into PostgreSQL (`dispatchd --migrate-to URL`, docs/deployment.md): table by
// table, generic over the schema so that a new table or column needs no change here.
//
// The table list, the columns and the order come from the PostgreSQL side's own catalog (the target has
// been migrated to the same schema version as the source by Database::open): every base table of the
// current schema except schema_version, parents before children (foreign keys), columns matched by name.
// A column only the target has is left to its default, except an identity or serial column, which gets
// the source's rowid when its name is "rowid" (the PostgreSQL deliveries table makes SQLite's implicit
// rowid explicit) and then has its sequence moved past the largest value copied. A column only the source
// has is an error: its data would be lost. BYTEA columns take the source's text as Base64 (how the SQLite
// schema keeps binary columns, storage/package_bytes.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct TableCount {
  std::string table;
  std::int64_t rows = 0;
};

// The base tables of target's current schema that hold rows (schema_version aside), with their counts,
// in copy order. Empty for a fresh or freshly migrated database. Errors as Database.
core::Result<std::vector<TableCount>> nonempty_tables(Database& target);

// Copies every table of `source` (SQLite) into `target` (PostgreSQL) in batched multi-row INSERTs
// (at most detail::k_pg_batch rows, and fewer than 60,000 parameters, per statement), fixes the
// sequences of identity/serial columns, then counts the rows of every table on both sides.
// Call it inside a write transaction on target (so the copy commits whole or not at all) and a
// transaction on source (one consistent snapshot). Returns the tables in copy order with their rows.
// The target must hold no rows: conflict "the target already holds data (devices: 3, … rows)"
// otherwise (checked under an advisory lock, so two copies into one database cannot both pass).
// Errors: bad_request when the backends are not SQLite → PostgreSQL, or the target lacks a table or
// column of the source ("table t: column c of the source has no column in the target"), or a text value holds
// a NUL byte (libpq would cut it short); internal when the counts differ after the copy or the foreign keys
// form a cycle; otherwise the backends' errors (a value PostgreSQL refuses, e.g. invalid UTF-8, is internal),
// prefixed with "table <name>: ".
core::Result<std::vector<TableCount>> copy_tables(Database& source, Database& target);

}  // namespace dispatch::storage
