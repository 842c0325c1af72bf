// The execution index (engine.h) against a recount: after long random sequences of ticks, replies,
// version reports and operator actions applied with apply(), the index equals one built from scratch,
// and the indexed snapshot takes exactly the decisions and statistics of an unindexed copy of it.
#include <catch2/catch.hpp>
#include <random>

#include "campaigns/engine.h"
#include "campaigns/stats.h"
#include "tests/campaigns/fixtures.h"

using namespace dispatch::campaigns;
using namespace dispatch::campaigns::testing;
using dispatch::core::TimeMs;

namespace {

void require_same(const TickResult& a, const TickResult& b) {
  REQUIRE(a.progress == b.progress);
  REQUIRE(a.changes == b.changes);
  REQUIRE(a.sends == b.sends);
}

void require_same(const Stats& a, const Stats& b) {
  REQUIRE(a.overall == b.overall);
  REQUIRE(a.groups == b.groups);
  REQUIRE(a.rate_per_minute == b.rate_per_minute);
  REQUIRE(a.eta_s == b.eta_s);
}

CampaignDocument random_doc(bool provisioning, bool abort_policy) {
  CampaignDocument d = doc_with_groups({40, 1, 60, 25});
  d.batch_size = 12;
  d.rate.per_minute = 30;
  d.rate.ramp = Ramp{8, 2.0, 10};
  d.reply_timeout_s = 20;
  d.retries = RetryPolicy{2, 5};
  d.success.threshold_percent = 60;
  d.between_groups_pause_minutes = 1;
  if (provisioning) {
    d.type = CampaignType::provisioning;
    d.success.verify_version = true;
  }
  if (abort_policy) d.abort = AbortPolicy{35, 10, AbortAction::pause};
  return d;
}

}  // namespace

TEST_CASE("the index kept by apply() equals a recount after random ticks, replies and actions") {
  struct {
    const char* rule;
    unsigned seed;
    bool provisioning;
    bool abort_policy;
    std::int64_t backoff_s;
  } cases[] = {
      {"retries with backoff, gates and pauses", 1, false, false, 5},
      {"retries due at once (backoff 0) are sent in the tick that times them out", 2, false, false, 0},
      {"abort policy pauses and resumes reset its base", 3, false, true, 5},
      {"verify_version waits for version reports", 4, true, false, 3},
      {"verify_version with abort policy and no backoff", 5, true, true, 0},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      CampaignSnapshot fast = started(random_doc(c.provisioning, c.abort_policy));
      fast.doc.retries.backoff_s = c.backoff_s;
      fast.target_version = "2.0.0";
      fast.build_index();
      CampaignSnapshot slow = fast;
      slow.index = ExecutionIndex{};  // recounts every time, as before the index existed
      REQUIRE(fast.index_current());
      REQUIRE_FALSE(slow.index_current());

      std::mt19937 rng(c.seed);
      auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
      CountingIds fast_ids, slow_ids;
      TimeMs now = 1'000'000;
      int ticks = 0, replies = 0, sends = 0;
      for (int step = 0; step < 3200 && !is_terminal(fast.progress.state); ++step) {
        const int what = pick(100);
        if (what < 40) {
          now += pick(4000);
          TickResult a = tick(fast, now, fast_ids);
          TickResult b = tick(slow, now, slow_ids);
          require_same(a, b);
          sends += static_cast<int>(a.sends.size());
          apply(fast, a);
          commit(slow, b);
          ++ticks;
        } else if (what < 85) {
          // Mostly an execution waiting for its reply, sometimes any (not current, duplicate).
          std::vector<std::size_t> sent;
          for (std::size_t i = 0; i < fast.executions.size(); ++i) {
            if (fast.executions[i].state == ExecState::sent) sent.push_back(i);
          }
          const Execution& e = !sent.empty() && pick(10) != 0
                                   ? fast.executions[sent[pick(static_cast<int>(sent.size()))]]
                                   : fast.executions[pick(static_cast<int>(fast.executions.size()))];
          const std::string command = e.command_id && pick(10) != 0 ? *e.command_id : "stale";
          const bool success = pick(4) != 0;
          ReplyResult a = on_reply(fast, e.hardware_id, command, success, now);
          ReplyResult b = on_reply(slow, e.hardware_id, command, success, now);
          REQUIRE(a.disposition == b.disposition);
          require_same(a.result, b.result);
          replies += a.disposition == Disposition::applied ? 1 : 0;
          const TickResult ra = a.result;
          apply(fast, ra);
          commit(slow, b.result);
        } else if (what < 97) {
          const std::string hw = fast.executions[pick(static_cast<int>(fast.executions.size()))].hardware_id;
          const std::string version = pick(3) == 0 ? "1.0.0" : "2.0.0";
          ReplyResult a = on_version_reported(fast, hw, version, now);
          ReplyResult b = on_version_reported(slow, hw, version, now);
          REQUIRE(a.disposition == b.disposition);
          require_same(a.result, b.result);
          const TickResult ra = a.result;
          apply(fast, ra);
          commit(slow, b.result);
        } else {
          // Terminate only late: it ends the sequence.
          const Action action = what == 97
                                    ? Action::pause
                                    : (step < 3000 || pick(20) != 0 ? Action::resume : Action::terminate);
          auto a = on_action(fast, action, now);
          auto b = on_action(slow, action, now);
          REQUIRE(a.ok() == b.ok());
          if (a.ok()) {
            require_same(a.value(), b.value());
            apply(fast, a.value());
            commit(slow, b.value());
          }
        }
        REQUIRE(fast.executions == slow.executions);
        REQUIRE(fast.progress == slow.progress);
        REQUIRE(fast.index_current());
        ExecutionIndex recount;
        recount.build(fast.executions);
        REQUIRE(fast.index == recount);
        require_same(compute(fast, now), compute(slow, now));
      }
      INFO("final state " << to_string(fast.progress.state) << ": " << fast.progress.reason);
      // The sequence exercised the paths it is meant to, not just an idle campaign.
      CHECK(ticks > 200);
      CHECK(replies > 100);
      CHECK(sends > 100);
    }
  }
}

TEST_CASE("the index counts by state, group and time window") {
  CampaignSnapshot s = started(doc_with_groups({2, 1}));
  s.executions[0].state = ExecState::sent;
  s.executions[0].sent_at = 100;
  s.executions[0].first_sent_at = 100;
  s.executions[1].state = ExecState::succeeded;
  s.executions[1].first_sent_at = 50;
  s.executions[1].finished_at = 160;
  s.executions[2].state = ExecState::canceled;
  s.executions[2].finished_at = 160;
  s.build_index();
  const ExecutionIndex& x = s.index;
  struct {
    const char* rule;
    std::int64_t got;
    std::int64_t want;
  } cases[] = {
      {"sent in all groups", x.count(ExecState::sent), 1},
      {"queued in group 2 (canceled is not queued)", x.count(ExecState::queued, 2), 0},
      {"canceled in group 2", x.count(ExecState::canceled, 2), 1},
      {"a group without members counts nothing", x.count(ExecState::queued, 7), 0},
      {"first sends: the window is half-open, the start excluded", x.first_sends_between(50, 100), 1},
      {"first sends: the end included", x.first_sends_between(49, 100), 2},
      {"finished: canceled executions are not finished", x.finished_between(0, 1000), 1},
      {"finished: an empty window", x.finished_between(160, 160), 0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(c.got == c.want);
  }
  CHECK(x.in_flight().size() == 1);
  CHECK(x.group(1)->fresh.empty());
  CHECK(x.group(1)->members() == 2);
}
