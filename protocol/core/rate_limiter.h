// Exact sliding-window rate limiting: at most `limit` events per key in any `window_ms`.
//
// Window boundary: an event at time t counts while now - window_ms < t, i.e. during
// [t, t + window_ms). With a 300 s window, an event at t = 0 still counts at 299.999 s and no longer
// counts at exactly 300 s.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/core/clock.h"

namespace dispatch::core {

struct RateDecision {
  bool allowed = true;
  // When refused: whole seconds (rounded up, at least 1) until a new event would be allowed if no
  // other event arrives. 0 when allowed.
  std::int64_t retry_after_s = 0;

  bool operator==(const RateDecision&) const = default;
};

// Whether one more event at `now` is allowed given the earlier events (ascending; events outside the
// window are ignored, so the caller need not prune). Refused when `limit` or more events count; then
// retry_after_s is measured to the expiry of the event whose departure brings the count below `limit`
// (the oldest counted one when exactly `limit` count). limit <= 0 refuses everything, with
// retry_after_s = the window in seconds.
RateDecision decide(std::span<const TimeMs> recent_events_sorted, TimeMs now, int limit,
                    std::int64_t window_ms);

// Per-key limiter held in memory. Every hit counts, allowed or refused (PROTOCOL §2.1: refused queries
// count too), so a client that keeps hammering stays refused. Only the newest `limit` events of a key
// are kept — they alone decide — so memory per key is bounded. At most `max_keys` keys (at least 1)
// are held; inserting one more evicts the least recently hit or restored key. Thread-safe.
class SlidingWindowLimiter {
 public:
  // `clock` must outlive the limiter.
  SlidingWindowLimiter(const Clock& clock, int limit, std::int64_t window_ms, std::size_t max_keys);

  // Records an event for `key` now and says whether it was allowed. A refused decision's retry_after_s
  // accounts for this event having been recorded: a retry after that many seconds succeeds.
  RateDecision hit(std::string_view key);

  // The key's events that still count now, ascending: what to persist. Empty for an unknown key.
  std::vector<TimeMs> events(std::string_view key) const;

  // Replaces the key's events (e.g. loaded from storage after a restart). Events in any order; expired
  // ones and all but the newest `limit` are dropped; nothing left forgets the key.
  void restore(std::string_view key, std::vector<TimeMs> events);

  // Whether the key is held (it may have no event that still counts). A caller that keeps the events in
  // storage restores a key that is not held before its first hit().
  bool contains(std::string_view key) const;
  // Number of keys held.
  std::size_t size() const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    std::vector<TimeMs> events;                 // ascending, at most limit_ entries
    std::list<std::string>::iterator lru_node;  // position in lru_
  };
  using Map = std::unordered_map<std::string, Entry, StringHash, std::equal_to<>>;

  Entry& touch(std::string_view key);  // requires mu_
  void prune(std::vector<TimeMs>& events, TimeMs now) const;

  const Clock& clock_;
  const int limit_;
  const std::int64_t window_ms_;
  const std::size_t max_keys_;

  mutable std::mutex mu_;
  Map entries_;                 // guarded by mu_
  std::list<std::string> lru_;  // guarded by mu_; most recently used first
};

}  // namespace dispatch::core
