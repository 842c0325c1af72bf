// InstanceStartStore: when each instance sharing the database last started (PROTOCOL §7). The newest
// start of any instance is the cluster's restart epoch: a reply the broker handed to an instance killed
// before it committed the reply is lost (PROTOCOL §1.3), and with a shared subscription the device's next
// messages may reach any instance, so every instance, not only the restarted one, applies the restart
// exception of presence redelivery from that moment (service/commands.h, docs/protocol.md).
//
// Bound: one row per instance id started within the last k_instance_start_retention_ms (older rows are
// pruned by every record()); the newest row is never older than the newest start, so pruning never moves
// the epoch.
#pragma once

#include <optional>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "storage/database.h"

namespace dispatch::storage {

// Starts older than this (relative to a newer start being recorded) are deleted: a day, far longer than
// any redelivery interval (an epoch only matters for sends older than commands.redeliver_interval_s and
// younger than the start).
inline constexpr core::TimeMs k_instance_start_retention_ms = 24LL * 3600 * 1000;

class InstanceStartStore {
 public:
  explicit InstanceStartStore(Database& db) : db_(db) {}

  // Records that instance_id started at started_at (replacing its previous start) and deletes the
  // starts of any instance older than started_at - k_instance_start_retention_ms, in one transaction.
  // bad_request when instance_id is empty. The caller commits this before it publishes anything.
  core::Status record(const std::string& instance_id, core::TimeMs started_at);
  // The newest start of any instance; nullopt when none is recorded. One indexed read (MAX over
  // instance_starts_by_time), cheap enough for every timer turn that asks.
  core::Result<std::optional<core::TimeMs>> newest();
  // The start recorded for instance_id; nullopt when none is.
  core::Result<std::optional<core::TimeMs>> get(const std::string& instance_id);

 private:
  Database& db_;
};

}  // namespace dispatch::storage
