#include "tools/campaign_view.h"

#include <fmt/format.h>

#include "tools/terminal.h"

namespace dispatch::tools {

std::optional<int> watch_exit_code(std::string_view state) {
  if (state == "completed") return k_exit_campaign_completed;
  if (state == "aborted") return k_exit_campaign_aborted;
  if (state == "terminated_by_user") return k_exit_campaign_terminated;
  if (state == "paused_by_workflow") return k_exit_campaign_paused_by_workflow;
  return std::nullopt;
}

namespace {

std::int64_t count(const nlohmann::json& stats, const char* key) {
  if (!stats.is_object() || !stats.contains(key) || !stats[key].is_number()) return 0;
  return stats[key].get<std::int64_t>();
}

double number(const nlohmann::json& stats, const char* key, double fallback = 0.0) {
  if (!stats.is_object() || !stats.contains(key) || !stats[key].is_number()) return fallback;
  return stats[key].get<double>();
}

std::string text(const nlohmann::json& doc, const char* key) {
  if (!doc.is_object() || !doc.contains(key) || !doc[key].is_string()) return {};
  return doc[key].get<std::string>();
}

// progress_percent when the service gave it, else terminal members over members.
double progress(const nlohmann::json& stats) {
  if (stats.is_object() && stats.contains("progress_percent") && stats["progress_percent"].is_number()) {
    return stats["progress_percent"].get<double>() / 100.0;
  }
  auto members = count(stats, "members");
  if (members <= 0) return 0.0;
  auto done = count(stats, "succeeded") + count(stats, "failed") + count(stats, "timed_out") +
              count(stats, "canceled");
  return static_cast<double>(done) / static_cast<double>(members);
}

std::string counts(const nlohmann::json& stats) {
  return fmt::format("ok {} failed {} timed out {} in flight {} of {}", count(stats, "succeeded"),
                     count(stats, "failed"), count(stats, "timed_out"), count(stats, "sent"),
                     count(stats, "members"));
}

std::string plain_counts(const nlohmann::json& stats) {
  return fmt::format("progress={:.1f}% members={} succeeded={} failed={} timed_out={} sent={} queued={}",
                     progress(stats) * 100.0, count(stats, "members"), count(stats, "succeeded"),
                     count(stats, "failed"), count(stats, "timed_out"), count(stats, "sent"),
                     count(stats, "queued"));
}

}  // namespace

std::string render_campaign(const nlohmann::json& snapshot, bool tty) {
  const nlohmann::json empty = nlohmann::json::object();
  const auto& stats = snapshot.contains("stats") ? snapshot["stats"] : empty;
  std::string state = text(snapshot, "state");
  std::string reason = text(snapshot, "reason");
  double rate = number(stats, "rate_per_minute");
  auto eta = stats.is_object() && stats.contains("eta_s") && stats["eta_s"].is_number()
                 ? stats["eta_s"].get<std::int64_t>()
                 : -1;
  std::string out;
  if (tty) {
    out += fmt::format("campaign {} ({})  state: {}{}\n", text(snapshot, "name"), text(snapshot, "id"), state,
                       reason.empty() ? "" : "  reason: " + reason);
    out += fmt::format("overall   {}  {}  rate {:.0f}/min  ETA {}\n", render_bar(progress(stats)),
                       counts(stats), rate, format_duration(eta));
  } else {
    out += fmt::format("campaign={} state={} {} rate_per_minute={:.1f} eta_s={}{}\n", text(snapshot, "id"),
                       state, plain_counts(stats), rate, eta,
                       reason.empty() ? "" : fmt::format(" reason=\"{}\"", reason));
  }
  if (snapshot.contains("groups") && snapshot["groups"].is_array()) {
    std::size_t i = 0;
    for (const auto& g : snapshot["groups"]) {
      auto index = g.contains("index") && g["index"].is_number_integer() ? g["index"].get<std::int64_t>()
                                                                         : static_cast<std::int64_t>(i);
      const auto& gs = g.contains("stats") ? g["stats"] : empty;
      if (tty) {
        out += fmt::format("group {:<3} {}  {}\n", index, render_bar(progress(gs)), counts(gs));
      } else {
        out += fmt::format("group={} {}\n", index, plain_counts(gs));
      }
      ++i;
    }
  }
  return out;
}

}  // namespace dispatch::tools
