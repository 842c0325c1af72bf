// The text of `dispatchctl campaign watch` and `campaign get`: a campaign snapshot (PROTOCOL §4, the
// campaigns/get answer and the retained campaign event carry the same document) rendered as lines.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace dispatch::tools {

// Exit codes of `campaign watch` for the states that end the watch.
inline constexpr int k_exit_campaign_completed = 0;
inline constexpr int k_exit_campaign_aborted = 4;
inline constexpr int k_exit_campaign_terminated = 5;
inline constexpr int k_exit_campaign_paused_by_workflow = 6;
inline constexpr int k_exit_campaign_watch_deadline = 7;

// The exit code for a state that ends the watch: completed, aborted, terminated_by_user,
// paused_by_workflow. nullopt for every other state (created, scheduled, running, paused_by_user, …).
std::optional<int> watch_exit_code(std::string_view state);

// tty: a header line (name, id, state, reason), an overall bar, then one bar per group, each followed by
// succeeded/failed/timed_out/in-flight counts, and rate and ETA on the overall line. Missing fields show
// as 0 / "-". Not a tty: one line "campaign=<id> state=<s> progress=<p>% succeeded=… failed=…
// timed_out=… rate_per_minute=… eta_s=…" plus one "group=<i> …" line per group.
std::string render_campaign(const nlohmann::json& snapshot, bool tty);

}  // namespace dispatch::tools
