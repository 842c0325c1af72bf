// Campaign statistics for campaigns/get and the retained campaign event (PROTOCOL §4).
//
// members: executions (existing, de-duplicated devices); missing: explicit ids that matched no device
// (not members). success_percent = 100 * succeeded / members, progress_percent = 100 * (succeeded +
// failed + timed_out + canceled) / members, both rounded to two decimals (98.04), 0 for no members.
// rate_per_minute: executions that became terminal (canceled excluded) in the 60 s before now.
// eta_s: seconds until every member is terminal at that rate, rounded up; 0 when nothing remains,
// null when the rate is 0 or the campaign is not running.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "campaigns/engine.h"

namespace dispatch::campaigns {

struct Counters {
  std::int64_t members = 0, queued = 0, sent = 0, succeeded = 0, failed = 0, timed_out = 0, canceled = 0,
               missing = 0;
  double success_percent = 0;
  double progress_percent = 0;
  bool operator==(const Counters&) const = default;
};

struct Stats {
  Counters overall;
  std::int64_t rate_per_minute = 0;
  std::optional<std::int64_t> eta_s;
  std::vector<Counters> groups;  // groups[g - 1]
};

Stats compute(const CampaignSnapshot& snapshot, TimeMs now);

// {id, name, type, state, reason, created_at, started_at, ended_at, stats:{…, rate_per_minute, eta_s},
//  groups:[{index, stats:{…}}]}; times RFC 3339 in whole seconds ("2026-11-26T14:22:44Z", milliseconds
//  dropped toward the past) or null; index is 1-based.
nlohmann::json to_json(const CampaignSnapshot& snapshot, const Stats& stats);

}  // namespace dispatch::campaigns
