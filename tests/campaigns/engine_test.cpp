#include "campaigns/engine.h"

#include <catch2/catch.hpp>

#include "protocol/core/clock.h"
#include "tests/campaigns/fixtures.h"

using namespace dispatch::campaigns;
using namespace dispatch::campaigns::testing;
using dispatch::core::ErrorCode;
using dispatch::core::ManualClock;

namespace {

constexpr TimeMs k_t0 = 1'790'000'000'000;

// Ticks at the clock's time and commits the result.
TickResult step(CampaignSnapshot& s, ManualClock& clock, CountingIds& ids) {
  TickResult r = tick(s, clock.now_ms(), ids);
  commit(s, r);
  return r;
}

void reply(CampaignSnapshot& s, const std::string& hw, bool ok, TimeMs now) {
  const Execution& e = exec_of(s, hw);
  REQUIRE(e.command_id.has_value());
  ReplyResult r = on_reply(s, hw, *e.command_id, ok, now);
  REQUIRE(r.disposition == Disposition::applied);
  commit(s, r.result);
}

void reply_all_sent(CampaignSnapshot& s, TimeMs now, const std::set<std::string>& failing = {}) {
  std::vector<std::string> sent;
  for (const auto& e : s.executions) {
    if (e.state == ExecState::sent) sent.push_back(e.hardware_id);
  }
  for (const auto& hw : sent) reply(s, hw, failing.count(hw) == 0, now);
}

}  // namespace

TEST_CASE("ramp: start x factor ^ floor(successes / every), capped at per_minute") {
  struct {
    const char* rule;
    std::int64_t successes;
    std::int64_t expected;
  } cases[] = {
      {"no successes: the start rate", 0, 600}, {"just below the first step", 99, 600},
      {"exactly one step", 100, 1200},          {"two steps", 250, 2400},
      {"capped at per_minute", 700, 60000},     {"far beyond the cap stays capped", 1'000'000'000, 60000},
  };
  RatePolicy rate;
  rate.per_minute = 60000;
  rate.ramp = Ramp{600, 2.0, 100};
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(rate_limit(rate, c.successes) == c.expected);
  }
  RatePolicy fractional;
  fractional.per_minute = 1000;
  fractional.ramp = Ramp{10, 1.5, 1};
  CHECK(rate_limit(fractional, 1) == 15);
  CHECK(rate_limit(fractional, 2) == 22);  // 22.5 floors
  RatePolicy plain;
  plain.per_minute = 7;
  CHECK(rate_limit(plain, 500) == 7);
}

TEST_CASE("first sends never exceed the ramped rate in any 60 s") {
  CampaignDocument d = doc_with_groups({30});
  d.rate.per_minute = 100;
  d.rate.ramp = Ramp{2, 2.0, 2};
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  CHECK(step(s, clock, ids).sends.size() == 2);  // start rate 2
  clock.advance_s(59);
  CHECK(step(s, clock, ids).sends.empty());  // still within the same 60 s
  reply_all_sent(s, clock.now_ms());         // 2 successes: rate 4, 2 already used
  CHECK(step(s, clock, ids).sends.size() == 2);
  clock.advance_ms(999);  // t0 + 59.999 s: the first two sends still count
  CHECK(step(s, clock, ids).sends.empty());
  clock.advance_ms(1);  // exactly t0 + 60 s: the first two leave the window
  CHECK(step(s, clock, ids).sends.size() == 2);
}

TEST_CASE("batch_size bounds executions in flight") {
  CampaignDocument d = doc_with_groups({10});
  d.batch_size = 3;
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  CHECK(step(s, clock, ids).sends.size() == 3);
  CHECK(step(s, clock, ids).sends.empty());
  reply(s, "g1-d1", true, clock.now_ms());
  auto r = step(s, clock, ids);
  REQUIRE(r.sends.size() == 1);
  CHECK(r.sends[0] == Send{"g1-d4", "cmd-4", 1});
}

TEST_CASE("window: nothing before not_before, sends from not_before, paused at not_after") {
  CampaignDocument d = doc_with_groups({2});
  d.window = Window{k_t0 + 10'000, k_t0 + 20'000};
  struct {
    const char* rule;
    TimeMs now;
    State state;
    std::size_t sends;
    const char* reason;
  } cases[] = {
      {"1 ms before not_before stays scheduled", k_t0 + 9'999, State::scheduled, 0, ""},
      {"exactly at not_before runs", k_t0 + 10'000, State::running, 2, ""},
      {"1 ms before not_after runs", k_t0 + 19'999, State::running, 2, ""},
      {"exactly at not_after pauses", k_t0 + 20'000, State::paused_by_workflow, 0, "window closed"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CampaignSnapshot s = started(d);
    CountingIds ids;
    TickResult r = tick(s, c.now, ids);
    commit(s, r);
    CHECK(s.progress.state == c.state);
    CHECK(r.sends.size() == c.sends);
    CHECK(s.progress.reason == c.reason);
  }
}

TEST_CASE("a running campaign pauses when the window closes and resume does not reopen it") {
  CampaignDocument d = doc_with_groups({5});
  d.batch_size = 1;
  d.window = Window{std::nullopt, k_t0 + 60'000};
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  CHECK(step(s, clock, ids).sends.size() == 1);
  clock.advance_s(60);
  reply_all_sent(s, clock.now_ms());
  CHECK(step(s, clock, ids).sends.empty());
  CHECK(s.progress.state == State::paused_by_workflow);
  CHECK(s.progress.pause_cause == PauseCause::window);
  auto resumed = on_action(s, Action::resume, clock.now_ms());
  REQUIRE(resumed.ok());
  commit(s, resumed.value());
  CHECK(s.progress.state == State::running);
  CHECK(step(s, clock, ids).sends.empty());
  CHECK(s.progress.state == State::paused_by_workflow);
}

TEST_CASE("resume before not_before goes back to scheduled") {
  CampaignDocument d = doc_with_groups({1});
  d.window = Window{k_t0 + 60'000, std::nullopt};
  CampaignSnapshot s = started(d);
  auto paused = on_action(s, Action::pause, k_t0);
  REQUIRE(paused.ok());
  commit(s, paused.value());
  CHECK(s.progress.state == State::paused_by_user);
  auto resumed = on_action(s, Action::resume, k_t0 + 1);
  REQUIRE(resumed.ok());
  commit(s, resumed.value());
  CHECK(s.progress.state == State::scheduled);
}

TEST_CASE("group gate: threshold, exactly at the threshold, pause between groups to the millisecond") {
  struct {
    const char* rule;
    int failures_in_group_1;  // of 20
    bool next_group_starts;
  } cases[] = {
      {"95.0% exactly passes a 95% threshold", 1, true},
      {"90.0% is below a 95% threshold", 2, false},
      {"100% passes", 0, true},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CampaignDocument d = doc_with_groups({20, 5});
    d.between_groups_pause_minutes = 2;
    CampaignSnapshot s = started(d);
    ManualClock clock(k_t0);
    CountingIds ids;
    CHECK(step(s, clock, ids).sends.size() == 20);
    std::set<std::string> failing;
    for (int i = 1; i <= c.failures_in_group_1; ++i) failing.insert("g1-d" + std::to_string(i));
    reply_all_sent(s, clock.now_ms(), failing);
    clock.advance_s(1);
    step(s, clock, ids);
    if (!c.next_group_starts) {
      CHECK(s.progress.state == State::paused_by_workflow);
      CHECK(s.progress.pause_cause == PauseCause::gate);
      CHECK(s.progress.reason == "group 1 success 90.00% below threshold 95%");
      continue;
    }
    CHECK(s.progress.state == State::running);
    REQUIRE(s.progress.group_finished_at == k_t0 + 1000);
    clock.set_ms(k_t0 + 1000 + 2 * 60'000 - 1);
    CHECK(step(s, clock, ids).sends.empty());
    CHECK(s.progress.current_group == 1);
    clock.advance_ms(1);  // exactly pause_minutes after the group finished
    CHECK(step(s, clock, ids).sends.size() == 5);
    CHECK(s.progress.current_group == 2);
  }
}

TEST_CASE("an operator's resume approves the gate that paused the campaign") {
  CampaignDocument d = doc_with_groups({2, 2});
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply_all_sent(s, clock.now_ms(), {"g1-d1"});
  step(s, clock, ids);
  REQUIRE(s.progress.state == State::paused_by_workflow);
  CHECK(s.progress.reason == "group 1 success 50.00% below threshold 95%");
  auto r = on_action(s, Action::resume, clock.now_ms());
  REQUIRE(r.ok());
  commit(s, r.value());
  CHECK(s.progress.approved_gate == 2);
  CHECK(step(s, clock, ids).sends.size() == 2);
  CHECK(s.progress.current_group == 2);
}

TEST_CASE("the last group ends the campaign as completed, naming a shortfall") {
  CampaignDocument d = doc_with_groups({2});
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply_all_sent(s, clock.now_ms(), {"g1-d2"});
  step(s, clock, ids);
  CHECK(s.progress.state == State::completed);
  CHECK(s.progress.ended_at == k_t0);
  CHECK(s.progress.reason == "completed; group 1 success 50.00% below threshold 95%");
}

TEST_CASE("abort policy with and without min_finished") {
  struct {
    const char* rule;
    std::int64_t min_finished;
    AbortAction action;
    int failures;  // of the first 4 replies, 10 members
    State expected;
    const char* reason;
  } cases[] = {
      {"below min_finished nothing happens", 5, AbortAction::pause, 4, State::running, ""},
      {"default min_finished 1: one failure of one finished pauses", 1, AbortAction::pause, 1,
       State::paused_by_workflow, "failure 25.00% above abort threshold 20% (1 of 4 finished)"},
      {"exactly at failure_percent does not trigger", 1, AbortAction::pause, 0, State::running, ""},
      {"abort action aborts and cancels queued", 4, AbortAction::abort, 2, State::aborted,
       "aborted: failure 50.00% above abort threshold 20% (2 of 4 finished)"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CampaignDocument d = doc_with_groups({10});
    d.batch_size = 4;
    d.abort = AbortPolicy{20.0, c.min_finished, c.action};
    CampaignSnapshot s = started(d);
    ManualClock clock(k_t0);
    CountingIds ids;
    step(s, clock, ids);
    std::set<std::string> failing;
    for (int i = 1; i <= c.failures; ++i) failing.insert("g1-d" + std::to_string(i));
    reply_all_sent(s, clock.now_ms(), failing);
    step(s, clock, ids);
    CHECK(s.progress.state == c.expected);
    CHECK(s.progress.reason == c.reason);
    if (c.expected == State::aborted) {
      CHECK(count_state(s, ExecState::canceled) == 6);
      CHECK(count_state(s, ExecState::queued) == 0);
    }
  }
  // 1 of 5 = 20% is not above 20%.
  CampaignDocument d = doc_with_groups({10});
  d.batch_size = 5;
  d.abort = AbortPolicy{20.0, 1, AbortAction::pause};
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply_all_sent(s, clock.now_ms(), {"g1-d1"});
  step(s, clock, ids);
  CHECK(s.progress.state == State::running);
}

TEST_CASE("resuming an abort pause counts only what finishes afterwards") {
  CampaignDocument d = doc_with_groups({6});
  d.batch_size = 2;
  d.success.threshold_percent = 0;
  d.abort = AbortPolicy{40.0, 2, AbortAction::pause};
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply_all_sent(s, clock.now_ms(), {"g1-d1"});  // 1 of 2 = 50% > 40%
  step(s, clock, ids);
  REQUIRE(s.progress.state == State::paused_by_workflow);
  CHECK(s.progress.pause_cause == PauseCause::abort);
  auto r = on_action(s, Action::resume, clock.now_ms());
  REQUIRE(r.ok());
  commit(s, r.value());
  CHECK(s.progress.abort_base_finished == 2);
  CHECK(s.progress.abort_base_failed == 1);
  CHECK(step(s, clock, ids).sends.size() == 2);
  CHECK(s.progress.state == State::running);
  reply_all_sent(s, clock.now_ms());  // 0 of 2 since the resume
  step(s, clock, ids);
  CHECK(s.progress.state == State::running);
}

TEST_CASE("retries: failure and timeout requeue with backoff, each attempt has its own command id") {
  CampaignDocument d = doc_with_groups({1});
  d.retries = RetryPolicy{2, 30};
  d.reply_timeout_s = 100;
  d.success.threshold_percent = 0;
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  auto r = step(s, clock, ids);
  REQUIRE(r.sends.size() == 1);
  CHECK(r.sends[0] == Send{"g1-d1", "cmd-1", 1});

  reply(s, "g1-d1", false, clock.now_ms());  // attempt 1 fails
  CHECK(exec_of(s, "g1-d1").state == ExecState::queued);
  CHECK(exec_of(s, "g1-d1").next_attempt_at == k_t0 + 30'000);
  clock.advance_ms(29'999);
  CHECK(step(s, clock, ids).sends.empty());  // backoff not over
  clock.advance_ms(1);
  r = step(s, clock, ids);
  REQUIRE(r.sends.size() == 1);
  CHECK(r.sends[0] == Send{"g1-d1", "cmd-2", 2});
  CHECK(exec_of(s, "g1-d1").first_sent_at == k_t0);  // a retry is not a first send

  // A late reply to the superseded attempt is recorded by the caller but changes nothing.
  ReplyResult late = on_reply(s, "g1-d1", "cmd-1", true, clock.now_ms());
  CHECK(late.disposition == Disposition::not_current);
  CHECK(late.result.empty());

  const TimeMs sent2 = clock.now_ms();
  clock.set_ms(sent2 + 99'999);
  CHECK(step(s, clock, ids).changes.empty());  // 1 ms before the timeout
  clock.set_ms(sent2 + 100'000);               // exactly the timeout: attempt 2 timed out, retried
  step(s, clock, ids);
  CHECK(exec_of(s, "g1-d1").state == ExecState::queued);
  clock.advance_s(30);
  r = step(s, clock, ids);
  REQUIRE(r.sends.size() == 1);
  CHECK(r.sends[0] == Send{"g1-d1", "cmd-3", 3});
  clock.advance_s(100);  // attempt 3 times out: no retries left
  step(s, clock, ids);
  CHECK(exec_of(s, "g1-d1").state == ExecState::timed_out);
  CHECK(exec_of(s, "g1-d1").attempt == 3);  // 1 + retries.max command ids, never more
  CHECK(s.progress.state == State::completed);
}

TEST_CASE("replies: duplicates, unknown devices and foreign ids change nothing") {
  CampaignDocument d = doc_with_groups({2});
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  struct {
    const char* rule;
    std::string hw;
    std::string command_id;
    Disposition expected;
  } before[] = {
      {"unknown device", "nobody", "cmd-1", Disposition::not_current},
      {"another device's id", "g1-d2", "cmd-1", Disposition::not_current},
      {"never-sent id", "g1-d1", "cmd-99", Disposition::not_current},
  };
  for (const auto& c : before) {
    INFO(c.rule);
    ReplyResult r = on_reply(s, c.hw, c.command_id, true, clock.now_ms());
    CHECK(r.disposition == c.expected);
    CHECK(r.result.empty());
  }
  reply(s, "g1-d1", true, clock.now_ms());
  ReplyResult dup = on_reply(s, "g1-d1", "cmd-1", false, clock.now_ms());
  CHECK(dup.disposition == Disposition::duplicate);
  CHECK(dup.result.empty());
  CHECK(exec_of(s, "g1-d1").state == ExecState::succeeded);
}

TEST_CASE("verify_version: success needs the reported package version before the timeout") {
  CampaignDocument d = doc_with_groups({3});
  d.type = CampaignType::provisioning;
  d.success.verify_version = true;
  d.success.threshold_percent = 0;
  d.reply_timeout_s = 60;
  CampaignSnapshot s = started(d);
  s.target_version = "2.0.0";
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  // d1: reply then version. d2: version (with a leading v and build metadata) then reply. d3: no version.
  reply(s, "g1-d1", true, clock.now_ms());
  CHECK(exec_of(s, "g1-d1").state == ExecState::sent);
  CHECK(exec_of(s, "g1-d1").reply_ok);
  // Another version is recorded as the device's version but does not count.
  auto other = on_version_reported(s, "g1-d1", "1.9.0", clock.now_ms());
  commit(s, other.result);
  CHECK(exec_of(s, "g1-d1").state == ExecState::sent);
  CHECK_FALSE(exec_of(s, "g1-d1").version_reported);
  CHECK(on_version_reported(s, "g1-d1", "1.9.0", clock.now_ms()).disposition == Disposition::not_current);
  auto v1 = on_version_reported(s, "g1-d1", "2.0.0", clock.now_ms());
  REQUIRE(v1.disposition == Disposition::applied);
  commit(s, v1.result);
  CHECK(exec_of(s, "g1-d1").state == ExecState::succeeded);

  auto v2 = on_version_reported(s, "g1-d2", "v2.0.0+build.7", clock.now_ms());
  REQUIRE(v2.disposition == Disposition::applied);
  commit(s, v2.result);
  CHECK(exec_of(s, "g1-d2").state == ExecState::sent);
  reply(s, "g1-d2", true, clock.now_ms());
  CHECK(exec_of(s, "g1-d2").state == ExecState::succeeded);

  reply(s, "g1-d3", true, clock.now_ms());
  clock.advance_s(60);
  step(s, clock, ids);
  CHECK(exec_of(s, "g1-d3").state == ExecState::timed_out);
  CHECK(s.progress.state == State::completed);
}

TEST_CASE("verify_version with latest: success needs a version newer than the one at send") {
  CampaignDocument d = doc_with_groups({4});
  d.type = CampaignType::provisioning;  // package_id absent: latest for each device
  d.success.verify_version = true;
  d.success.threshold_percent = 0;
  d.reply_timeout_s = 60;
  CampaignSnapshot s = started(d);
  REQUIRE_FALSE(s.target_version.has_value());
  // What the caller seeds at load: the devices' stored reported versions (g1-d4 never reported one).
  for (const char* hw : {"g1-d1", "g1-d2", "g1-d3"}) {
    for (auto& e : s.executions) {
      if (e.hardware_id == hw) e.reported_version = "1.0.0";
    }
  }
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  CHECK(exec_of(s, "g1-d1").version_at_send == "1.0.0");
  CHECK_FALSE(exec_of(s, "g1-d4").version_at_send.has_value());

  struct {
    const char* rule;
    const char* hw;
    const char* version;
    bool counts;
  } reports[] = {
      {"the old version again does not count", "g1-d1", "1.0.0", false},
      {"the old version with build metadata has the same precedence", "g1-d1", "1.0.0+b2", false},
      {"an older version does not count", "g1-d2", "0.9.0", false},
      {"a pre-release of the old version is older", "g1-d2", "1.0.0-rc.1", false},
      {"not a version does not count and is not recorded", "g1-d3", "latest", false},
      {"a newer version counts", "g1-d1", "1.1.0", true},
      {"a device that had reported no version: any version counts", "g1-d4", "1.0.0", true},
  };
  for (const auto& r : reports) {
    INFO(r.rule);
    auto v = on_version_reported(s, r.hw, r.version, clock.now_ms());
    commit(s, v.result);
    CHECK(exec_of(s, r.hw).version_reported == r.counts);
    if (r.counts) CHECK(exec_of(s, r.hw).reported_version == r.version);
    CHECK(exec_of(s, r.hw).state == ExecState::sent);
  }
  CHECK(exec_of(s, "g1-d2").reported_version == "1.0.0-rc.1");
  CHECK(exec_of(s, "g1-d3").reported_version == "1.0.0");
  for (const char* hw : {"g1-d1", "g1-d2", "g1-d3", "g1-d4"}) reply(s, hw, true, clock.now_ms());
  CHECK(exec_of(s, "g1-d1").state == ExecState::succeeded);
  CHECK(exec_of(s, "g1-d4").state == ExecState::succeeded);
  CHECK(exec_of(s, "g1-d2").state == ExecState::sent);  // success reply, still no newer version
  clock.advance_s(60);
  step(s, clock, ids);
  CHECK(exec_of(s, "g1-d2").state == ExecState::timed_out);
  CHECK(exec_of(s, "g1-d3").state == ExecState::timed_out);
}

TEST_CASE("verify_version with latest: a retry compares with the version at its own send") {
  CampaignDocument d = doc_with_groups({1});
  d.type = CampaignType::provisioning;
  d.success.verify_version = true;
  d.success.threshold_percent = 0;
  d.reply_timeout_s = 60;
  d.retries.max = 1;
  d.retries.backoff_s = 10;
  CampaignSnapshot s = started(d);
  s.executions[0].reported_version = "1.0.0";
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply(s, "g1-d1", false, clock.now_ms());
  REQUIRE(exec_of(s, "g1-d1").state == ExecState::queued);
  // Reported while queued: recorded, counts for nothing, and becomes the next attempt's baseline.
  auto queued = on_version_reported(s, "g1-d1", "1.1.0", clock.now_ms());
  CHECK(queued.disposition == Disposition::applied);
  commit(s, queued.result);
  CHECK_FALSE(exec_of(s, "g1-d1").version_reported);
  clock.advance_s(10);
  step(s, clock, ids);
  REQUIRE(exec_of(s, "g1-d1").attempt == 2);
  CHECK(exec_of(s, "g1-d1").version_at_send == "1.1.0");
  CHECK(on_version_reported(s, "g1-d1", "1.1.0", clock.now_ms()).disposition == Disposition::not_current);
  reply(s, "g1-d1", true, clock.now_ms());
  CHECK(exec_of(s, "g1-d1").state == ExecState::sent);
  auto newer = on_version_reported(s, "g1-d1", "1.2.0", clock.now_ms());
  REQUIRE(newer.disposition == Disposition::applied);
  commit(s, newer.result);
  CHECK(exec_of(s, "g1-d1").state == ExecState::succeeded);
  CHECK(on_version_reported(s, "g1-d1", "1.2.0", clock.now_ms()).disposition == Disposition::not_current);
}

TEST_CASE("terminate cancels queued and sent executions, later replies change nothing") {
  CampaignDocument d = doc_with_groups({4});
  d.batch_size = 2;
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  reply(s, "g1-d1", true, clock.now_ms());
  auto r = on_action(s, Action::terminate, clock.now_ms());
  REQUIRE(r.ok());
  commit(s, r.value());
  CHECK(s.progress.state == State::terminated_by_user);
  CHECK(s.progress.ended_at == k_t0);
  CHECK(count_state(s, ExecState::canceled) == 3);
  CHECK(exec_of(s, "g1-d1").state == ExecState::succeeded);
  CHECK(on_reply(s, "g1-d2", "cmd-2", true, clock.now_ms()).disposition == Disposition::duplicate);
  CHECK(tick(s, clock.now_ms() + 3'600'000, ids).empty());
  auto again = on_action(s, Action::terminate, clock.now_ms());
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::conflict);
}

TEST_CASE("a user pause stops new sends but replies still count") {
  CampaignDocument d = doc_with_groups({4});
  d.batch_size = 2;
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  step(s, clock, ids);
  auto p = on_action(s, Action::pause, clock.now_ms());
  REQUIRE(p.ok());
  commit(s, p.value());
  reply_all_sent(s, clock.now_ms());
  CHECK(step(s, clock, ids).sends.empty());
  CHECK(count_state(s, ExecState::succeeded) == 2);
  auto r = on_action(s, Action::resume, clock.now_ms());
  REQUIRE(r.ok());
  commit(s, r.value());
  CHECK(step(s, clock, ids).sends.size() == 2);
}

TEST_CASE("expand: duplicates are contacted once, in their first group, missing ids are counted") {
  FakeDirectory dir;
  dir.add("dev-1", {"canary", "all"});
  dir.add("dev-2", {"eu", "all"});
  dir.add("dev-3", {"all"});
  CampaignDocument d;
  d.groups = {GroupSpec{{"dev-1", "dev-1", "ghost-1"}, {"canary"}}, GroupSpec{{"ghost-2", "ghost-2"}, {"eu"}},
              GroupSpec{{"dev-2"}, {"all"}}};
  Expansion x = expand(d, dir);
  std::vector<std::pair<std::string, int>> got;
  for (const auto& e : x.executions) got.emplace_back(e.hardware_id, e.group);
  CHECK(got == std::vector<std::pair<std::string, int>>{{"dev-1", 1}, {"dev-2", 2}, {"dev-3", 3}});
  CHECK(x.missing_per_group == std::vector<int>{1, 1, 0});
  CHECK(x.missing_ids == std::vector<std::string>{"ghost-1", "ghost-2"});
  for (const auto& e : x.executions) {
    CHECK(e.state == ExecState::queued);
    CHECK(e.attempt == 0);
  }
}

TEST_CASE("conditions compare numbers as numbers, versions as SemVer, strings as strings") {
  struct {
    const char* rule;
    const char* actual;
    ConditionOp op;
    const char* expected;
    bool holds;
  } cases[] = {
      {"numbers: 10 > 9", "10", ConditionOp::gt, "9", true},
      {"numbers: decimals", "2.5", ConditionOp::lt, "10", true},
      {"numbers: negatives", "-3", ConditionOp::lt, "-2", true},
      {"numbers: 1.0 equals 1", "1.0", ConditionOp::eq, "1", true},
      {"versions: 1.10.0 > 1.9.0", "1.10.0", ConditionOp::gt, "1.9.0", true},
      {"versions: pre-release below release", "2.0.0-rc.1", ConditionOp::lt, "2.0.0", true},
      {"versions: build metadata ignored", "2.0.0+b1", ConditionOp::eq, "2.0.0", true},
      {"strings: byte order", "beta", ConditionOp::gt, "alpha", true},
      {"strings: not equal", "eu", ConditionOp::ne, "us", true},
      {"strings: a number against a word is a string compare", "10", ConditionOp::lt, "9a", true},
      {"lte includes equality (number)", "5", ConditionOp::lte, "5", true},
      {"gte includes equality (number)", "5", ConditionOp::gte, "5", true},
      {"lte includes equality (version)", "1.2.3", ConditionOp::lte, "1.2.3", true},
      {"gte includes equality (string)", "abc", ConditionOp::gte, "abc", true},
      {"lt excludes equality", "abc", ConditionOp::lt, "abc", false},
      {"gt excludes equality", "1.2.3", ConditionOp::gt, "1.2.3", false},
      {"eq false", "1", ConditionOp::eq, "2", false},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(condition_holds(c.actual, c.op, c.expected) == c.holds);
  }
}

TEST_CASE("entry conditions gate a group, ignorable lets unreported devices through") {
  struct {
    const char* rule;
    bool ignorable;
    std::map<std::string, std::map<std::string, std::string>> props;
    bool group_2_starts;
    const char* reason;
  } cases[] = {
      {"every member satisfies it",
       false,
       {{"g2-d1", {{"health.firmware", "1.10.0"}}}, {"g2-d2", {{"health.firmware", "1.9.0"}}}},
       true,
       ""},
      {"one member below",
       false,
       {{"g2-d1", {{"health.firmware", "1.10.0"}}}, {"g2-d2", {{"health.firmware", "1.8.9"}}}},
       false,
       "group 2 entry condition health.firmware gte 1.9.0 not met by 1 of 2 devices (first: g2-d2)"},
      {"a member without the property fails a non-ignorable condition",
       false,
       {{"g2-d1", {{"health.firmware", "1.10.0"}}}},
       false,
       "group 2 entry condition health.firmware gte 1.9.0 not met by 1 of 2 devices (first: g2-d2)"},
      {"a member without the property passes an ignorable condition",
       true,
       {{"g2-d1", {{"health.firmware", "1.10.0"}}}},
       true,
       ""},
      {"ignorable does not excuse a reported value below",
       true,
       {{"g2-d1", {{"health.firmware", "1.0.0"}}}},
       false,
       "group 2 entry condition health.firmware gte 1.9.0 not met by 1 of 2 devices (first: g2-d1)"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CampaignDocument d = doc_with_groups({1, 2});
    d.conditions = {
        Condition{2, ConditionStage::entry, "health.firmware", ConditionOp::gte, "1.9.0", c.ignorable}};
    CampaignSnapshot s = started(d);
    s.device_properties = c.props;
    ManualClock clock(k_t0);
    CountingIds ids;
    step(s, clock, ids);
    reply_all_sent(s, clock.now_ms());
    auto r = step(s, clock, ids);
    CHECK((s.progress.current_group == 2) == c.group_2_starts);
    CHECK(r.sends.size() == (c.group_2_starts ? 2u : 0u));
    CHECK(s.progress.reason == c.reason);
    if (!c.group_2_starts) {
      CHECK(s.progress.state == State::paused_by_workflow);
      auto resumed = on_action(s, Action::resume, clock.now_ms());  // the operator approves
      REQUIRE(resumed.ok());
      commit(s, resumed.value());
      CHECK(step(s, clock, ids).sends.size() == 2);
    }
  }
}

TEST_CASE("empty groups pass and a campaign with no members completes") {
  CampaignDocument d = doc_with_groups({0, 1});
  d.groups[0].tags = {"nobody"};
  CampaignSnapshot s = started(d);
  ManualClock clock(k_t0);
  CountingIds ids;
  CHECK(step(s, clock, ids).sends.size() == 1);
  CHECK(s.progress.current_group == 2);
  reply_all_sent(s, clock.now_ms());
  step(s, clock, ids);
  CHECK(s.progress.state == State::completed);
}

TEST_CASE("ticks do nothing for created, paused and terminal campaigns") {
  for (State st : {State::created, State::paused_by_user, State::paused_by_workflow, State::completed,
                   State::aborted, State::terminated_by_user}) {
    INFO(to_string(st));
    CampaignSnapshot s = started(doc_with_groups({3}));
    s.progress.state = st;
    CountingIds ids;
    CHECK(tick(s, k_t0, ids).empty());
  }
}
