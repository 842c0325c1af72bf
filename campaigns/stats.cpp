#include "campaigns/stats.h"

#include <cmath>

#include "protocol/core/time.h"

namespace dispatch::campaigns {
namespace {

double percent(std::int64_t part, std::int64_t whole) {
  if (whole <= 0) return 0.0;
  return std::round(10000.0 * static_cast<double>(part) / static_cast<double>(whole)) / 100.0;
}

// Adds n executions in state s.
void add(Counters& c, ExecState s, std::int64_t n) {
  c.members += n;
  switch (s) {
    case ExecState::queued:
      c.queued += n;
      break;
    case ExecState::sent:
      c.sent += n;
      break;
    case ExecState::succeeded:
      c.succeeded += n;
      break;
    case ExecState::failed:
      c.failed += n;
      break;
    case ExecState::timed_out:
      c.timed_out += n;
      break;
    case ExecState::canceled:
      c.canceled += n;
      break;
  }
}

void finish(Counters& c) {
  c.success_percent = percent(c.succeeded, c.members);
  c.progress_percent = percent(c.succeeded + c.failed + c.timed_out + c.canceled, c.members);
}

nlohmann::json counters_json(const Counters& c) {
  return {{"members", c.members},
          {"queued", c.queued},
          {"sent", c.sent},
          {"succeeded", c.succeeded},
          {"failed", c.failed},
          {"timed_out", c.timed_out},
          {"canceled", c.canceled},
          {"missing", c.missing},
          {"success_percent", c.success_percent},
          {"progress_percent", c.progress_percent}};
}

// Whole seconds, as every time on the wire (PROTOCOL conventions); the engine keeps milliseconds.
nlohmann::json time_json(const std::optional<TimeMs>& t) {
  return t ? nlohmann::json(core::format_rfc3339(*t)) : nlohmann::json(nullptr);
}

}  // namespace

Stats compute(const CampaignSnapshot& snapshot, TimeMs now) {
  Stats st;
  const std::size_t groups = snapshot.doc.groups.size();
  st.groups.resize(groups);
  for (std::size_t g = 0; g < groups && g < snapshot.missing_per_group.size(); ++g) {
    st.groups[g].missing = snapshot.missing_per_group[g];
    st.overall.missing += snapshot.missing_per_group[g];
  }
  if (snapshot.index_current()) {
    // O(groups): the index holds the same counts the scan below would find.
    const ExecutionIndex& index = snapshot.index;
    for (std::size_t k = 0; k < ExecutionIndex::k_states; ++k) {
      const auto s = static_cast<ExecState>(k);
      add(st.overall, s, index.count(s));
      for (std::size_t g = 0; g < groups; ++g) add(st.groups[g], s, index.count(s, static_cast<int>(g + 1)));
    }
    st.rate_per_minute = index.finished_between(now - 60'000, now);
  } else {
    for (const auto& e : snapshot.executions) {
      add(st.overall, e.state, 1);
      if (e.group >= 1 && static_cast<std::size_t>(e.group) <= groups)
        add(st.groups[e.group - 1], e.state, 1);
      if (e.state != ExecState::canceled && is_terminal(e.state) && e.finished_at &&
          *e.finished_at > now - 60'000 && *e.finished_at <= now) {
        ++st.rate_per_minute;
      }
    }
  }
  finish(st.overall);
  for (auto& g : st.groups) finish(g);
  const std::int64_t remaining = st.overall.queued + st.overall.sent;
  if (remaining == 0) {
    st.eta_s = 0;
  } else if (snapshot.progress.state == State::running && st.rate_per_minute > 0) {
    st.eta_s = (remaining * 60 + st.rate_per_minute - 1) / st.rate_per_minute;
  }
  return st;
}

nlohmann::json to_json(const CampaignSnapshot& snapshot, const Stats& stats) {
  nlohmann::json overall = counters_json(stats.overall);
  overall["rate_per_minute"] = stats.rate_per_minute;
  overall["eta_s"] = stats.eta_s ? nlohmann::json(*stats.eta_s) : nlohmann::json(nullptr);
  nlohmann::json groups = nlohmann::json::array();
  for (std::size_t g = 0; g < stats.groups.size(); ++g) {
    groups.push_back({{"index", g + 1}, {"stats", counters_json(stats.groups[g])}});
  }
  const CampaignProgress& p = snapshot.progress;
  return {{"id", snapshot.id},
          {"name", snapshot.doc.name},
          {"type", to_string(snapshot.doc.type)},
          {"state", to_string(p.state)},
          {"reason", p.reason},
          {"created_at", time_json(snapshot.created_at)},
          {"started_at", time_json(p.started_at)},
          {"ended_at", time_json(p.ended_at)},
          {"stats", overall},
          {"groups", groups}};
}

}  // namespace dispatch::campaigns
