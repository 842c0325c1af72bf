// Retention: deletes what has outlived its retention, batch by batch, on the service loop's timer
// (storage/retention.h says what may go). Every retention.interval_s a round starts; while it lasts each
// on_timer() runs one batch of at most retention.batch_rows rows (one short transaction), so purging
// never holds the write lock for long and message handling goes on between batches. A kind's purge is
// done for the round when a batch comes back short of the limit.
//
// Windows (cut-offs taken when the round starts):
//   commands         finished and created more than retention.commands_days ago
//   campaigns        ended more than retention.campaigns_days ago
//   request records  older than the larger of the two (the object a request_id created outlives its record
//                    by no more than that)
//   download tokens  expired
//   nonces           older than twice provisioning.skew_s (they can no longer be replayed)
//   rate events      older than provisioning.rate_window_s (they no longer count)
#pragma once

#include <cstdint>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "service/config.h"
#include "storage/retention.h"

namespace dispatch::service {

// Rows deleted since start, by table; exported later as metrics.
struct RetentionCounters {
  std::uint64_t retention_rows_deleted = 0;  // all of the below
  std::uint64_t commands_deleted = 0;
  std::uint64_t deliveries_deleted = 0;
  std::uint64_t campaigns_deleted = 0;
  std::uint64_t campaign_executions_deleted = 0;  // executions and attempt history
  std::uint64_t requests_deleted = 0;             // request_id idempotency records
  std::uint64_t download_tokens_deleted = 0;      // tokens and their served ranges
  std::uint64_t nonces_deleted = 0;
  std::uint64_t rate_events_deleted = 0;
  std::uint64_t rounds_completed = 0;
  std::uint64_t batch_failures = 0;  // a failed batch is logged and tried again next round
};

class Retention {
 public:
  Retention(const Config& config, core::Clock& clock, storage::Database& db);

  // Starts a round when one is due, and runs at most one batch of the round in progress.
  void on_timer();
  // Runs a whole round now, batch after batch (tests; a round in progress is finished first).
  core::Status run_round();
  bool round_in_progress() const { return kind_ != Kind::idle; }

  const RetentionCounters& counters() const { return counters_; }

 private:
  enum class Kind { commands, campaigns, requests, download_tokens, nonces, rate_events, idle };
  void start_round(core::TimeMs now);
  // One batch of the current kind; moves to the next kind when it came back short. Error: the batch
  // failed (the round ends; the next round tries again).
  core::Status step();

  const Config& config_;
  core::Clock& clock_;
  storage::RetentionStore store_;
  RetentionCounters counters_;
  Kind kind_ = Kind::idle;
  core::TimeMs next_round_ = 0;  // the first round starts with the first timer
  core::TimeMs round_now_ = 0;   // the clock when the round started: every cut-off derives from it
};

}  // namespace dispatch::service
