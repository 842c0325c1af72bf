// Clock: the only source of time. Inject it; tests use ManualClock and never sleep.
#pragma once

#include <atomic>
#include <cstdint>

namespace dispatch::core {

// Milliseconds since the Unix epoch, UTC.
using TimeMs = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs now_ms() const override;
};

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start = 1'790'000'000'000) : now_(start) {}
  TimeMs now_ms() const override { return now_.load(); }
  void set_ms(TimeMs t) { now_.store(t); }
  void advance_ms(TimeMs d) { now_.fetch_add(d); }
  void advance_s(std::int64_t s) { now_.fetch_add(s * 1000); }

 private:
  std::atomic<TimeMs> now_;
};

}  // namespace dispatch::core
