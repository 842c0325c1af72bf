#include "protocol/core/rate_limiter.h"

#include <algorithm>

namespace dispatch::core {

namespace {

std::int64_t ceil_seconds(std::int64_t ms) { return ms <= 0 ? 0 : (ms + 999) / 1000; }

}  // namespace

RateDecision decide(std::span<const TimeMs> recent_events_sorted, TimeMs now, int limit,
                    std::int64_t window_ms) {
  if (limit <= 0) return {false, std::max<std::int64_t>(1, ceil_seconds(window_ms))};
  // Events at or before now - window_ms have left the window (see the header on the boundary).
  const auto first =
      std::upper_bound(recent_events_sorted.begin(), recent_events_sorted.end(), now - window_ms);
  const auto counted = recent_events_sorted.end() - first;
  if (counted < limit) return {true, 0};
  // Once this event leaves, limit - 1 remain: a new one fits.
  const TimeMs pivot = *(first + (counted - limit));
  return {false, std::max<std::int64_t>(1, ceil_seconds(pivot + window_ms - now))};
}

SlidingWindowLimiter::SlidingWindowLimiter(const Clock& clock, int limit, std::int64_t window_ms,
                                           std::size_t max_keys)
    : clock_(clock), limit_(limit), window_ms_(window_ms), max_keys_(std::max<std::size_t>(1, max_keys)) {}

SlidingWindowLimiter::Entry& SlidingWindowLimiter::touch(std::string_view key) {
  if (auto it = entries_.find(key); it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru_node);
    return it->second;
  }
  if (entries_.size() >= max_keys_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.emplace_front(key);
  auto [it, inserted] = entries_.emplace(std::string(key), Entry{{}, lru_.begin()});
  return it->second;
}

void SlidingWindowLimiter::prune(std::vector<TimeMs>& events, TimeMs now) const {
  const auto first = std::upper_bound(events.begin(), events.end(), now - window_ms_);
  events.erase(events.begin(), first);
  // Only the newest limit_ events can decide anything (see decide()); drop the rest.
  const auto keep = static_cast<std::size_t>(std::max(limit_, 0));
  if (events.size() > keep) events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(keep));
}

RateDecision SlidingWindowLimiter::hit(std::string_view key) {
  std::lock_guard lock(mu_);
  const TimeMs now = clock_.now_ms();
  Entry& entry = touch(key);
  prune(entry.events, now);
  const RateDecision before = decide(entry.events, now, limit_, window_ms_);
  // A clock stepping back must not break the ascending order decide() relies on.
  entry.events.insert(std::upper_bound(entry.events.begin(), entry.events.end(), now), now);
  if (before.allowed) {
    prune(entry.events, now);
    return before;
  }
  // The refused event counts too, so measure the wait with it recorded.
  const RateDecision after = decide(entry.events, now, limit_, window_ms_);
  prune(entry.events, now);
  return after;
}

std::vector<TimeMs> SlidingWindowLimiter::events(std::string_view key) const {
  std::lock_guard lock(mu_);
  const auto it = entries_.find(key);
  if (it == entries_.end()) return {};
  std::vector<TimeMs> out = it->second.events;
  prune(out, clock_.now_ms());
  return out;
}

void SlidingWindowLimiter::restore(std::string_view key, std::vector<TimeMs> events) {
  std::lock_guard lock(mu_);
  std::sort(events.begin(), events.end());
  prune(events, clock_.now_ms());
  if (events.empty()) {
    if (auto it = entries_.find(key); it != entries_.end()) {
      lru_.erase(it->second.lru_node);
      entries_.erase(it);
    }
    return;
  }
  touch(key).events = std::move(events);
}

bool SlidingWindowLimiter::contains(std::string_view key) const {
  std::lock_guard lock(mu_);
  return entries_.find(key) != entries_.end();
}

std::size_t SlidingWindowLimiter::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace dispatch::core
