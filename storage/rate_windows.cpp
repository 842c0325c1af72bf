#include "storage/rate_windows.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace dispatch::storage {

using core::Result;
using core::Status;
using core::TimeMs;

Status RateWindowStore::record_event(const std::string& key, TimeMs t) {
  return record_event(key, t, std::numeric_limits<TimeMs>::min(), true);
}

Status RateWindowStore::record_event(const std::string& key, TimeMs t, TimeMs expired_before,
                                     bool over_limit) {
  return db_.transaction([&]() -> Status {
    auto q = db_.prepare("INSERT INTO rate_events(key, t) VALUES(?, ?)");
    q->bind(1, key);
    q->bind(2, t);
    q->exec();
    auto expired = db_.prepare("DELETE FROM rate_events WHERE key = ? AND t < ?");
    expired->bind(1, key);
    expired->bind(2, expired_before);
    expired->exec();
    if (!over_limit) return {};
    // Everything older than the max_per_key-th newest event goes: an index walk of at most max_per_key
    // entries (a NOT IN over the key's rowids cost a temporary b-tree per event).
    auto trim = db_.prepare(
        "DELETE FROM rate_events WHERE key = ?1 AND t < "
        "(SELECT t FROM rate_events WHERE key = ?1 ORDER BY t DESC LIMIT 1 OFFSET ?2)");
    trim->bind(1, key);
    trim->bind(2, max_per_key_ - 1);
    trim->exec();
    return {};
  });
}

Result<std::vector<TimeMs>> RateWindowStore::events(const std::string& key, TimeMs since) {
  return db_.read([&]() -> Result<std::vector<TimeMs>> {
    auto q = db_.prepare("SELECT t FROM rate_events WHERE key = ? AND t >= ? ORDER BY t DESC LIMIT ?");
    q->bind(1, key);
    q->bind(2, since);
    q->bind(3, max_per_key_);
    std::vector<TimeMs> times;
    while (q->executeStep()) times.push_back(q->getColumn(0).getInt64());
    std::reverse(times.begin(), times.end());
    return times;
  });
}

Result<core::RateDecision> RateWindowStore::hit(const std::string& key, TimeMs now, int limit,
                                                std::int64_t window_ms) {
  return db_.transaction([&]() -> Result<core::RateDecision> {
    if (db_.backend() == Backend::postgres) {
      auto lock = db_.prepare("SELECT pg_advisory_xact_lock(hashtext(?))");
      lock->bind(1, key);
      lock->executeStep();
    }
    auto earlier = events(key, now - window_ms + 1);
    if (!earlier) return earlier.error();
    std::vector<TimeMs> times = std::move(*earlier);
    const core::RateDecision before = core::decide(times, now, limit, window_ms);
    // An allowed hit had fewer than limit (< max_per_key - 1) events in the window: only the expired ones
    // need to go for the bound to hold.
    if (auto st = record_event(key, now, now - window_ms + 1, !before.allowed || limit >= max_per_key_); !st)
      return st.error();
    if (before.allowed) return before;
    times.insert(std::upper_bound(times.begin(), times.end(), now), now);
    return core::decide(times, now, limit, window_ms);
  });
}

Result<int> RateWindowStore::prune(TimeMs older_than) {
  return db_.transaction([&]() -> Result<int> {
    auto q = db_.prepare("DELETE FROM rate_events WHERE t < ?");
    q->bind(1, older_than);
    return q->exec();
  });
}

}  // namespace dispatch::storage
