// RateWindowStore: timestamps of events per key (e.g. provisioning queries per device), so that an
// exact sliding-window limit survives a restart. Bounded: each key keeps at most max_per_key events
// (the newest), and prune() drops old ones for every key.
#pragma once

#include <string>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/rate_limiter.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

class RateWindowStore {
 public:
  explicit RateWindowStore(Database& db, int max_per_key = 1024) : db_(db), max_per_key_(max_per_key) {}

  // Records an event at t; then keeps only the newest max_per_key events of key (events tied in time
  // with the oldest kept one stay too). That bound costs an index walk of up to max_per_key entries.
  core::Status record_event(const std::string& key, core::TimeMs t);
  // Records an event at t and drops the key's events older than expired_before (an index range of just
  // the rows deleted). The walk that keeps the newest max_per_key runs only when over_limit is set: a
  // caller whose window held fewer than max_per_key - 1 events before this one (an allowed hit, when
  // max_per_key is the limit + 1) keeps the bound without it. Hot path: one query costs O(1) rows, not
  // O(limit).
  core::Status record_event(const std::string& key, core::TimeMs t, core::TimeMs expired_before,
                            bool over_limit);
  // Times of key's newest (at most max_per_key) events with t >= since, ascending.
  core::Result<std::vector<core::TimeMs>> events(const std::string& key, core::TimeMs since);
  // The limit decided in the database, exact across connections and instances: records an event for key
  // at now and says whether it was allowed, like core::SlidingWindowLimiter::hit (every hit counts, a
  // refusal's retry_after_s accounts for the refused event). At most `limit` events in any window_ms.
  // The count and the insert are one critical section per key: the write lock on SQLite, a transaction
  // advisory lock on the key's hash on PostgreSQL (two instances hitting the same key wait for each
  // other; different keys do not). limit must not exceed max_per_key.
  core::Result<core::RateDecision> hit(const std::string& key, core::TimeMs now, int limit,
                                       std::int64_t window_ms);
  // Deletes every event with t < older_than; returns how many.
  core::Result<int> prune(core::TimeMs older_than);

 private:
  Database& db_;
  int max_per_key_;
};

}  // namespace dispatch::storage
