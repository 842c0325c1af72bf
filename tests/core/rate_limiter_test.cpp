#include "protocol/core/rate_limiter.h"

#include <catch2/catch.hpp>

using namespace dispatch::core;

namespace {
constexpr std::int64_t k_window_ms = 300'000;
constexpr int k_limit = 5;
}  // namespace

TEST_CASE("decide counts events inside the sliding window", "[core][rate_limiter]") {
  struct {
    const char* rule;
    std::vector<TimeMs> events;
    TimeMs now;
    int limit;
    RateDecision expected;
  } cases[] = {
      {"no events", {}, 1000, 5, {true, 0}},
      {"four of five", {0, 1, 2, 3}, 10, 5, {true, 0}},
      {"fifth makes the limit", {0, 1, 2, 3, 4}, 10'000, 5, {false, 290}},
      {"retry after rounds up", {1, 1, 1, 1, 1}, 10'000, 5, {false, 291}},
      {"event at now - window no longer counts (300 s boundary)", {0, 1, 2, 3, 4}, 300'000, 5, {true, 0}},
      {"event 1 ms inside the window counts", {0, 1, 2, 3, 4}, 299'999, 5, {false, 1}},
      {"retry after is at least one second", {0, 299'999, 299'999, 299'999, 299'999}, 299'999, 5, {false, 1}},
      {"old events ignored without pruning", {-900'000, -600'000, 0, 1, 2, 3}, 100'000, 5, {true, 0}},
      {"over the limit waits for the event that brings the count below it",
       {0, 10'000, 20'000, 30'000, 40'000, 50'000, 60'000},
       60'000,
       5,
       {false, 260}},
      {"limit zero refuses everything", {}, 0, 0, {false, 300}},
      {"limit one", {5'000}, 6'000, 1, {false, 299}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    const RateDecision d = decide(c.events, c.now, c.limit, k_window_ms);
    CHECK(d.allowed == c.expected.allowed);
    CHECK(d.retry_after_s == c.expected.retry_after_s);
  }
}

TEST_CASE("five hits pass, the sixth is refused with retry_after", "[core][rate_limiter]") {
  ManualClock clock(1'000'000);
  SlidingWindowLimiter limiter(clock, k_limit, k_window_ms, 100);
  for (int i = 0; i < 5; ++i) {
    INFO("hit " << i + 1);
    CHECK(limiter.hit("dev-1") == RateDecision{true, 0});
    clock.advance_s(10);
  }
  // Hits at 0..40 s, now 50 s. The refused hit counts, so a retry needs the 10 s hit gone (310 s).
  CHECK(limiter.hit("dev-1") == RateDecision{false, 260});
  // Other keys are independent.
  CHECK(limiter.hit("dev-2") == RateDecision{true, 0});
}

TEST_CASE("exact 300 s boundary", "[core][rate_limiter]") {
  ManualClock clock(0);
  SlidingWindowLimiter limiter(clock, k_limit, k_window_ms, 100);
  for (int i = 0; i < 5; ++i) REQUIRE(limiter.hit("dev").allowed);
  clock.set_ms(299'999);
  CHECK(limiter.hit("dev") == RateDecision{false, 1});
  // The refused hit at 299.999 s counts, so at 300 s the window still holds five events.
  CHECK_FALSE(limiter.hit("dev").allowed);

  ManualClock clock2(0);
  SlidingWindowLimiter fresh(clock2, k_limit, k_window_ms, 100);
  for (int i = 0; i < 5; ++i) REQUIRE(fresh.hit("dev").allowed);
  clock2.set_ms(300'000);
  CHECK(fresh.hit("dev") == RateDecision{true, 0});
}

TEST_CASE("refused hits count, and retry_after accounts for them", "[core][rate_limiter]") {
  ManualClock clock(0);
  SlidingWindowLimiter limiter(clock, k_limit, k_window_ms, 100);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(limiter.hit("dev").allowed);
    clock.advance_s(10);
  }
  // Now 50 s; hits at 0..40 s. The refused hit at 50 s is recorded, so the 10 s hit must leave first.
  const RateDecision refused = limiter.hit("dev");
  CHECK(refused == RateDecision{false, 260});
  CHECK(limiter.events("dev") == std::vector<TimeMs>{10'000, 20'000, 30'000, 40'000, 50'000});
  // Without the refused hit a retry at 300 s would pass; with it, it is refused.
  clock.set_ms(300'000);
  CHECK(limiter.hit("dev") == RateDecision{false, 20});

  // Waiting exactly retry_after_s with no further hits succeeds.
  ManualClock clock2(0);
  SlidingWindowLimiter quiet(clock2, k_limit, k_window_ms, 100);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(quiet.hit("dev").allowed);
    clock2.advance_s(10);
  }
  const RateDecision d = quiet.hit("dev");
  REQUIRE_FALSE(d.allowed);
  clock2.advance_s(d.retry_after_s);
  CHECK(quiet.hit("dev").allowed);
}

TEST_CASE("restore keeps counts across a restart", "[core][rate_limiter]") {
  ManualClock clock(1'000'000);
  SlidingWindowLimiter before(clock, k_limit, k_window_ms, 100);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(before.hit("dev").allowed);
    clock.advance_s(1);
  }
  const std::vector<TimeMs> saved = before.events("dev");
  REQUIRE(saved.size() == 4);

  SlidingWindowLimiter after(clock, k_limit, k_window_ms, 100);
  // Order does not matter; expired events are dropped.
  std::vector<TimeMs> shuffled(saved.rbegin(), saved.rend());
  shuffled.push_back(clock.now_ms() - k_window_ms);
  after.restore("dev", shuffled);
  CHECK(after.events("dev") == saved);
  CHECK(after.hit("dev").allowed);
  CHECK_FALSE(after.hit("dev").allowed);

  // Restoring nothing but expired events forgets the key.
  after.restore("dev", {clock.now_ms() - k_window_ms - 1});
  CHECK(after.events("dev").empty());
  CHECK(after.size() == 0);
}

TEST_CASE("events keeps only what still counts, at most limit entries", "[core][rate_limiter]") {
  ManualClock clock(0);
  SlidingWindowLimiter limiter(clock, k_limit, k_window_ms, 100);
  for (int i = 0; i < 50; ++i) (void)limiter.hit("dev");
  CHECK(limiter.events("dev").size() == k_limit);
  clock.set_ms(k_window_ms);
  CHECK(limiter.events("dev").empty());
  CHECK(limiter.events("unknown").empty());
}

TEST_CASE("max_keys bound evicts the least recently used key", "[core][rate_limiter]") {
  ManualClock clock(0);
  SlidingWindowLimiter limiter(clock, 1, k_window_ms, 3);
  REQUIRE(limiter.hit("a").allowed);
  REQUIRE(limiter.hit("b").allowed);
  REQUIRE(limiter.hit("c").allowed);
  // Touch "a" so "b" becomes the least recently used.
  CHECK_FALSE(limiter.hit("a").allowed);
  REQUIRE(limiter.hit("d").allowed);
  CHECK(limiter.size() == 3);
  CHECK(limiter.events("b").empty());
  CHECK_FALSE(limiter.events("a").empty());
  CHECK_FALSE(limiter.events("c").empty());
  CHECK_FALSE(limiter.events("d").empty());
  // An evicted key starts over.
  CHECK(limiter.hit("b").allowed);
  CHECK(limiter.size() == 3);
  for (int i = 0; i < 1000; ++i) (void)limiter.hit("k" + std::to_string(i));
  CHECK(limiter.size() == 3);
}
