// `dispatchd --migrate-to URL`: the upgrade path from one node (SQLite) to a cluster (PostgreSQL,
// PROTOCOL §7, docs/deployment.md). Copies the SQLite database storage.path and the package files of
// storage.data_dir into an empty PostgreSQL database, in one PostgreSQL transaction.
#pragma once

#include <string>

#include "service/config.h"

namespace dispatch::service {

// Runs the copy and prints a summary (one line per table with its rows, the package bytes) on stdout.
// Returns the exit code: 0 when everything was copied and every table's row count matches; 2 for a bad
// invocation (url not a postgresql:// URI, storage.url set); 1 when it refuses or fails, with the reason
// on stderr, nothing committed in the target:
//   - no SQLite file at storage.path;
//   - the file is in use by a running dispatchd (its FileLock), which must be stopped first;
//   - the target cannot be opened, or its schema is newer than this build;
//   - the target already holds rows (an empty database, or one with the schema and no rows, is fine);
//   - a ready internal package whose file is missing, of another size or another SHA-256, or an upload
//     in progress whose recorded chunks are not in its upload file;
//   - any storage error (storage/copy.h).
// Both databases are migrated to this build's schema first (the SQLite file in place, as a start of
// this build would). The SQLite file is held under its write lock for the whole copy.
int run_migrate(const Config& config, const std::string& url);

}  // namespace dispatch::service
