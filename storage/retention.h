// RetentionStore: deletes what has outlived its retention, one small batch per call. Each call is one
// short write transaction of a bounded number of rows, so the service loop can run a batch between
// other work and never holds the write lock for long; the caller calls again while a batch came back
// full. Every function works on SQLite and PostgreSQL and returns the rows it deleted.
//
// What may go, and when:
//   commands      created before `before` and finished: no delivery queued or sent (every delivery
//                 succeeded, failed, expired or was canceled) and no target left to write as a delivery
//                 (storage/commands.h, CommandTargets). The deliveries go first, at most `limit`
//                 per call; the command row goes in the call that removed its last delivery.
//   campaigns     in a terminal state (completed, aborted, terminated_by_user) that ended before
//                 `before`: the campaign's executions and attempt history first (at most `limit` rows per
//                 call), the campaign row in the call that removed its last one.
//   requests      the request_id idempotency records (PROTOCOL §3) recorded before `before`.
//   download tokens that expired at or before `before` (spent or not), with their served ranges.
//   nonces        recorded before `before`.
//   rate events   older than `before`; rows sharing the timestamp of the batch's last row go with it, so
//                 a batch may exceed `limit` by the events of one millisecond.
#pragma once

#include <cstdint>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

// Rows deleted by one batch: `parents` of the kind's own table (commands, campaigns, ...), `children`
// of the tables that hang off it (deliveries; executions and attempts; token ranges).
struct Purged {
  std::int64_t parents = 0;
  std::int64_t children = 0;
  std::int64_t rows() const { return parents + children; }
};

class RetentionStore {
 public:
  explicit RetentionStore(Database& db) : db_(db) {}

  // limit ≥ 1 in every function (bad_request otherwise).
  core::Result<Purged> purge_commands(core::TimeMs before, int limit);
  core::Result<Purged> purge_campaigns(core::TimeMs before, int limit);
  core::Result<Purged> purge_requests(core::TimeMs before, int limit);
  core::Result<Purged> purge_download_tokens(core::TimeMs expired_by, int limit);
  core::Result<Purged> purge_nonces(core::TimeMs before, int limit);
  core::Result<Purged> purge_rate_events(core::TimeMs before, int limit);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
