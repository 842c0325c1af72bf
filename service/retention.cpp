#include "service/retention.h"

#include <algorithm>

#include "service/logging.h"

namespace dispatch::service {

namespace {
constexpr core::TimeMs k_day_ms = 86'400'000;
}

Retention::Retention(const Config& config, core::Clock& clock, storage::Database& db)
    : config_(config), clock_(clock), store_(db) {}

void Retention::start_round(core::TimeMs now) {
  round_now_ = now;
  next_round_ = now + config_.retention_interval_s * 1000;
  kind_ = Kind::commands;
}

void Retention::on_timer() {
  const core::TimeMs now = clock_.now_ms();
  if (kind_ == Kind::idle) {
    if (now < next_round_) return;
    start_round(now);
  }
  if (auto st = step(); !st) {
    ++counters_.batch_failures;
    log_warn({}, "retention: a purge batch failed, the next round tries again: {}", st.error().message);
    kind_ = Kind::idle;
  }
}

core::Status Retention::run_round() {
  if (kind_ == Kind::idle) start_round(clock_.now_ms());
  while (kind_ != Kind::idle) {
    if (auto st = step(); !st) {
      ++counters_.batch_failures;
      kind_ = Kind::idle;
      return st;
    }
  }
  return {};
}

core::Status Retention::step() {
  const int limit = config_.retention_batch_rows;
  const core::TimeMs now = round_now_;
  core::Result<storage::Purged> r = storage::Purged{};
  switch (kind_) {
    case Kind::commands:
      r = store_.purge_commands(now - config_.retention_commands_days * k_day_ms, limit);
      break;
    case Kind::campaigns:
      r = store_.purge_campaigns(now - config_.retention_campaigns_days * k_day_ms, limit);
      break;
    case Kind::requests:
      r = store_.purge_requests(
          now - std::max(config_.retention_commands_days, config_.retention_campaigns_days) * k_day_ms,
          limit);
      break;
    case Kind::download_tokens:
      r = store_.purge_download_tokens(now, limit);
      break;
    case Kind::nonces:
      // A nonce can be presented until its ts + skew, and its ts may lie skew ahead of when it was seen.
      r = store_.purge_nonces(now - 2 * config_.provisioning_skew_s * 1000, limit);
      break;
    case Kind::rate_events:
      r = store_.purge_rate_events(now - config_.provisioning_rate_window_s * 1000, limit);
      break;
    case Kind::idle:
      return {};
  }
  if (!r) return r.error();
  const auto parents = static_cast<std::uint64_t>(r->parents);
  const auto children = static_cast<std::uint64_t>(r->children);
  counters_.retention_rows_deleted += parents + children;
  switch (kind_) {
    case Kind::commands:
      counters_.commands_deleted += parents;
      counters_.deliveries_deleted += children;
      break;
    case Kind::campaigns:
      counters_.campaigns_deleted += parents;
      counters_.campaign_executions_deleted += children;
      break;
    case Kind::requests:
      counters_.requests_deleted += parents;
      break;
    case Kind::download_tokens:
      counters_.download_tokens_deleted += parents;
      break;
    case Kind::nonces:
      counters_.nonces_deleted += parents;
      break;
    case Kind::rate_events:
      counters_.rate_events_deleted += parents;
      break;
    case Kind::idle:
      break;
  }
  // A full batch may have left more behind: the same kind again next time. Commands and campaigns count
  // their children against the limit too.
  const bool full = r->rows() >= limit;
  if (!full) {
    kind_ = static_cast<Kind>(static_cast<int>(kind_) + 1);
    if (kind_ == Kind::idle) {
      ++counters_.rounds_completed;
      if (counters_.retention_rows_deleted > 0) {
        log_debug({}, "retention: round done, {} rows deleted since start", counters_.retention_rows_deleted);
      }
    }
  }
  return {};
}

}  // namespace dispatch::service
