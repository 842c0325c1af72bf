// A whole campaign driven the way the service drives it: a tick every second, devices answering two
// seconds after each send, some failing, some silent. No broker, no database: commit() stands in for
// the store.
#include <catch2/catch.hpp>
#include <deque>
#include <set>

#include "campaigns/engine.h"
#include "campaigns/stats.h"
#include "protocol/core/clock.h"
#include "tests/campaigns/fixtures.h"

using namespace dispatch::campaigns;
using namespace dispatch::campaigns::testing;
using dispatch::core::ManualClock;

namespace {

std::string device_name(int i) {
  std::string n = std::to_string(i);
  return "dev-" + std::string(4 - n.size(), '0') + n;
}

// 1% answer with a failure (index % 100 == 7), 1% never answer (index % 100 == 42).
enum class Behaviour { succeed, fail, silent };
Behaviour behaviour_of(int i) {
  if (i % 100 == 7) return Behaviour::fail;
  if (i % 100 == 42) return Behaviour::silent;
  return Behaviour::succeed;
}

}  // namespace

TEST_CASE("2,000 devices in 3 groups with 2% failures complete with exact statistics") {
  FakeDirectory dir;
  for (int i = 0; i < 2000; ++i) {
    const char* tag = i < 100 ? "canary" : (i < 500 ? "eu" : "rest");
    dir.add(device_name(i), {tag, "all"});
  }
  auto parsed = parse_campaign_document(nlohmann::json::parse(R"({
    "name":"fleet reboot", "type":"reboot",
    "groups":[{"tags":["canary"]}, {"tags":["eu"]}, {"hardware_ids":["dev-0000","ghost-1"], "tags":["all"]}],
    "rate":{"per_minute":1200, "ramp":{"start_per_minute":300, "factor":2, "every_successes":200}},
    "batch_size":500, "success":{"threshold_percent":95},
    "abort":{"failure_percent":5, "min_finished":50, "action":"pause"},
    "reply_timeout_s":30, "between_groups":{"pause_minutes":1}})"));
  REQUIRE(parsed.ok());

  CampaignSnapshot s;
  s.id = "camp-sim";
  s.doc = parsed.value();
  ManualClock clock;
  const TimeMs t0 = clock.now_ms();
  s.created_at = t0;
  auto started_r = on_action(s, Action::start, t0);
  REQUIRE(started_r.ok());
  commit(s, started_r.value());
  Expansion x = expand(s.doc, dir);
  s.executions = x.executions;
  s.missing_per_group = x.missing_per_group;
  s.reindex();  // replies find their row by index, as the service's in-memory snapshot does
  REQUIRE(s.executions.size() == 2000);  // dev-0000 and the "all" tag are de-duplicated
  CHECK(s.missing_per_group == std::vector<int>{0, 0, 1});

  CountingIds ids;
  struct Pending {
    TimeMs at;
    std::string hw;
    std::string command_id;
  };
  std::deque<Pending> replies;
  std::vector<TimeMs> first_sends;
  std::set<std::string> command_ids;
  std::vector<int> group_entered_at_tick;
  int ticks = 0;

  while (!is_terminal(s.progress.state) && ticks < 5000) {
    const TimeMs now = clock.now_ms();
    while (!replies.empty() && replies.front().at <= now) {
      const Pending p = replies.front();
      replies.pop_front();
      const int index = std::stoi(p.hw.substr(4));
      ReplyResult r = on_reply(s, p.hw, p.command_id, behaviour_of(index) == Behaviour::succeed, now);
      REQUIRE(r.disposition == Disposition::applied);
      commit(s, r.result);
    }
    const int group_before = s.progress.current_group;
    TickResult r = tick(s, now, ids);
    commit(s, r);
    if (s.progress.current_group != group_before) group_entered_at_tick.push_back(ticks);
    for (const Send& send : r.sends) {
      REQUIRE(send.attempt == 1);
      REQUIRE(command_ids.insert(send.command_id).second);
      first_sends.push_back(now);
      const int index = std::stoi(send.hardware_id.substr(4));
      if (behaviour_of(index) != Behaviour::silent)
        replies.push_back({now + 2000, send.hardware_id, send.command_id});
    }
    REQUIRE(s.progress.state != State::paused_by_workflow);
    ++ticks;
    clock.advance_s(1);
  }

  REQUIRE(s.progress.state == State::completed);
  CHECK(s.progress.reason == "completed");
  CHECK(command_ids.size() == 2000);
  // Group 1 ends at tick 30 (its silent devices time out), group 2 enters 60 s later; and so on.
  CHECK(group_entered_at_tick == std::vector<int>{0, 90, 182});

  // Never more than per_minute first sends in any 60 s, and only the start rate before any success.
  for (std::size_t i = 0, j = 0; i < first_sends.size(); ++i) {
    while (first_sends[j] <= first_sends[i] - 60'000) ++j;
    REQUIRE(i - j + 1 <= 1200);
  }
  CHECK(std::count(first_sends.begin(), first_sends.end(), t0) == 100);  // the canary group, under 300
  for (const auto& e : s.executions) {
    REQUIRE(e.attempt == 1);
    REQUIRE(e.finished_at.has_value());
  }

  Stats st = compute(s, clock.now_ms());
  CHECK(st.overall == Counters{2000, 0, 0, 1960, 20, 20, 0, 1, 98.0, 100.0});
  REQUIRE(st.groups.size() == 3);
  CHECK(st.groups[0] == Counters{100, 0, 0, 98, 1, 1, 0, 0, 98.0, 100.0});
  CHECK(st.groups[1] == Counters{400, 0, 0, 392, 4, 4, 0, 0, 98.0, 100.0});
  CHECK(st.groups[2] == Counters{1500, 0, 0, 1470, 15, 15, 0, 1, 98.0, 100.0});
  CHECK(st.eta_s == 0);
  nlohmann::json j = to_json(s, st);
  CHECK(j["state"] == "completed");
  CHECK(j["stats"]["succeeded"] == 1960);
  CHECK(j["groups"][2]["stats"]["missing"] == 1);
}
