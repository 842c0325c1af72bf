#include "campaigns/stats.h"

#include <catch2/catch.hpp>

#include "tests/campaigns/fixtures.h"

using namespace dispatch::campaigns;
using namespace dispatch::campaigns::testing;

namespace {

constexpr TimeMs k_now = 1'790'000'000'000;

CampaignSnapshot snapshot_with(const std::vector<std::pair<int, ExecState>>& rows, std::vector<int> missing) {
  CampaignSnapshot s;
  s.id = "camp-7";
  s.doc = doc_with_groups({0, 0});
  s.doc.name = "fw 2.0 rollout";
  s.doc.type = CampaignType::provisioning;
  s.created_at = k_now - 3'600'000;
  s.progress.state = State::running;
  s.progress.started_at = k_now - 600'000;
  s.missing_per_group = std::move(missing);
  int n = 0;
  for (const auto& [group, state] : rows) {
    Execution e;
    e.hardware_id = "dev-" + std::to_string(++n);
    e.group = group;
    e.state = state;
    if (is_terminal(state)) e.finished_at = k_now - 120'000;  // outside the last minute
    s.executions.push_back(e);
  }
  return s;
}

}  // namespace

TEST_CASE("percentages are exact to two decimals, not truncated") {
  struct {
    const char* rule;
    int succeeded;
    int failed;
    int queued;
    double success;
    double progress;
  } cases[] = {
      {"50 of 51 is 98.04", 50, 1, 0, 98.04, 100.0},
      {"2 of 3 is 66.67 (rounded, not 60)", 2, 0, 1, 66.67, 66.67},
      {"1 of 3 is 33.33", 1, 0, 2, 33.33, 33.33},
      {"nothing done", 0, 0, 4, 0.0, 0.0},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    std::vector<std::pair<int, ExecState>> rows;
    for (int i = 0; i < c.succeeded; ++i) rows.emplace_back(1, ExecState::succeeded);
    for (int i = 0; i < c.failed; ++i) rows.emplace_back(1, ExecState::failed);
    for (int i = 0; i < c.queued; ++i) rows.emplace_back(1, ExecState::queued);
    Stats st = compute(snapshot_with(rows, {0, 0}), k_now);
    CHECK(st.overall.success_percent == c.success);
    CHECK(st.overall.progress_percent == c.progress);
  }
}

TEST_CASE("stats count every state overall and per group, with missing ids, rate and eta") {
  CampaignSnapshot s = snapshot_with({{1, ExecState::succeeded},
                                      {1, ExecState::failed},
                                      {1, ExecState::timed_out},
                                      {2, ExecState::canceled},
                                      {2, ExecState::sent},
                                      {2, ExecState::queued},
                                      {2, ExecState::queued}},
                                     {2, 1});
  s.executions[0].finished_at = k_now - 59'999;  // within the last minute
  s.executions[1].finished_at = k_now;           // within
  s.executions[2].finished_at = k_now - 60'000;  // just outside
  Stats st = compute(s, k_now);
  CHECK(st.overall == Counters{7, 2, 1, 1, 1, 1, 1, 3, 14.29, 57.14});
  REQUIRE(st.groups.size() == 2);
  CHECK(st.groups[0] == Counters{3, 0, 0, 1, 1, 1, 0, 2, 33.33, 100.0});
  CHECK(st.groups[1] == Counters{4, 2, 1, 0, 0, 0, 1, 1, 0.0, 25.0});
  CHECK(st.rate_per_minute == 2);
  CHECK(st.eta_s == 90);  // 3 remaining at 2 per minute

  s.progress.state = State::paused_by_user;
  CHECK_FALSE(compute(s, k_now).eta_s.has_value());
}

TEST_CASE("to_json has the shape of campaigns/get") {
  CampaignSnapshot s = snapshot_with({{1, ExecState::succeeded}, {2, ExecState::queued}}, {0, 1});
  s.progress.reason = "";
  nlohmann::json j = to_json(s, compute(s, k_now));
  CHECK(j["id"] == "camp-7");
  CHECK(j["name"] == "fw 2.0 rollout");
  CHECK(j["type"] == "provisioning");
  CHECK(j["state"] == "running");
  CHECK(j["reason"] == "");
  CHECK(j["created_at"] == "2026-09-21T13:13:20Z");
  CHECK(j["started_at"] == "2026-09-21T14:03:20Z");
  CHECK(j["ended_at"].is_null());
  for (const char* key : {"members", "queued", "sent", "succeeded", "failed", "timed_out", "canceled",
                          "missing", "success_percent", "progress_percent", "rate_per_minute", "eta_s"}) {
    INFO(key);
    CHECK(j["stats"].contains(key));
  }
  CHECK(j["stats"]["success_percent"] == 50.0);
  REQUIRE(j["groups"].size() == 2);
  CHECK(j["groups"][1]["index"] == 2);
  CHECK(j["groups"][1]["stats"]["missing"] == 1);
  CHECK_FALSE(j["groups"][1]["stats"].contains("eta_s"));
}

TEST_CASE("campaign times are whole seconds on the wire, as PROTOCOL's conventions say") {
  CampaignSnapshot s = snapshot_with({{1, ExecState::succeeded}}, {0, 0});
  s.created_at = k_now - 3'600'000 + 999;  // the engine's clock has milliseconds
  s.progress.started_at = k_now - 600'000 + 1;
  s.progress.ended_at = k_now + 250;
  nlohmann::json j = to_json(s, compute(s, k_now));
  CHECK(j["created_at"] == "2026-09-21T13:13:20Z");
  CHECK(j["started_at"] == "2026-09-21T14:03:20Z");
  CHECK(j["ended_at"] == "2026-09-21T14:13:20Z");
}
