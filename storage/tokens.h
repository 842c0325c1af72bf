// TokenStore: download tokens (stored only as the SHA-256 of the token), which byte ranges of the
// package each has served, and how many bytes it has pulled in all. A token serves one download: chunks
// may come in any order and be re-requested until every byte of the package has been served once; then
// it is spent. Re-requests are bounded by the caller's byte bound, counted in the token's row (issue 13:
// exact across instances and restarts).
#pragma once

#include <cstdint>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

struct DownloadTokenRow {
  std::string token_hash;  // lowercase hex SHA-256 of the token; the primary key
  std::string hardware_id;
  std::string package_id;
  core::TimeMs created_at = 0;
  core::TimeMs expires_at = 0;  // valid while now < expires_at
  bool spent = false;
  std::int64_t served_bytes = 0;  // distinct bytes served so far
  std::int64_t pulled_bytes = 0;  // every byte served so far, re-requests included (schema v10)
};

struct SpendResult {
  bool spent_now = false;  // this request served the last unserved byte; the token is now spent
  // This request would have taken pulled_bytes past the bound: nothing was recorded as served, the
  // token is now spent (committed), and the caller must not send the chunk.
  bool exhausted = false;
  std::int64_t served_bytes = 0;
  std::int64_t pulled_bytes = 0;  // after this request (exhausted: before it)
};

class TokenStore {
 public:
  explicit TokenStore(Database& db) : db_(db) {}

  // conflict when the hash exists.
  core::Status insert(const DownloadTokenRow& row);
  // not_found when no such token.
  core::Result<DownloadTokenRow> get_by_hash(const std::string& token_hash);
  // In one transaction holding the token row's lock (IMMEDIATE on SQLite, FOR UPDATE on PostgreSQL):
  // checks the token exists, is not spent, is not expired at now and belongs to hardware_id (else
  // token_invalid, with the same message for every reason). When pulled_bytes + length would exceed
  // max_pulled, marks the token spent and answers exhausted (a value, not an error, so that the spend
  // commits). Otherwise adds length to pulled_bytes, records [offset, offset + length) as served and
  // marks the token spent when the served ranges cover [0, total). Of several connections racing for
  // the last range exactly one gets spent_now, the others token_invalid; connections racing past the
  // bound together pull at most max_pulled bytes. bad_request when offset < 0, length < 1, offset +
  // length > total or max_pulled < 0. total = 0 (an empty package) is spent by its first request, whose
  // length must be 0.
  core::Result<SpendResult> serve(const std::string& token_hash, const std::string& hardware_id,
                                  core::TimeMs now, std::int64_t offset, std::int64_t length,
                                  std::int64_t total, std::int64_t max_pulled);
  // Marks the token spent and drops its served ranges, whoever it belongs to (a caller that found it
  // exhausted before serving). Ok when it is already spent or does not exist.
  core::Status spend(const std::string& token_hash);
  // Deletes the package's unspent tokens; returns how many.
  core::Result<int> remove_for_package(const std::string& package_id);
  // Deletes tokens (spent or not) that expired at or before before; returns how many.
  core::Result<int> prune_expired(core::TimeMs before);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
