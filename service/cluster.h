// Cluster: this instance's identity and liveness among the instances sharing one database (PROTOCOL §7).
//
// Every instance (one node on SQLite too) holds the lease "instance:<id>" (storage/leases.h), renewed
// every third of cluster.lease_ttl_ms by the loop's timer. The deliveries an instance commits carry its id
// as their owner; when an instance's lease lapses (it died, or stopped renewing for a whole TTL), another
// instance takes over its queued deliveries and publishes them with the same command ids
// (CommandsModule). Campaigns have leases of their own ("campaign:<id>", CampaignService).
#pragma once

#include <cstdint>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "service/config.h"
#include "storage/leases.h"

namespace dispatch::storage {
class Database;
}

namespace dispatch::service {

// cluster.instance_id, or mqtt.client_id when it is empty.
std::string instance_id(const Config& config);
// The name of the instance lease of id.
inline std::string instance_lease_name(const std::string& id) { return "instance:" + id; }
// The lease names' prefix for instances, and the id in such a name.
inline constexpr const char* k_instance_lease_prefix = "instance:";

class InstanceLease {
 public:
  InstanceLease(const Config& config, core::Clock& clock, storage::Database& db);

  // Takes the lease (a restart under the same id takes its own live lease back with the same token).
  // Not fatal when it fails: logged, and tried again by tick().
  void start();
  // Renews the lease every third of its TTL (or takes it when it is not held). Call from the timer.
  void tick();
  bool held() const { return token_ > 0; }
  const std::string& id() const { return id_; }

 private:
  void take(core::TimeMs now);

  std::string id_;
  std::int64_t ttl_ms_;
  core::Clock& clock_;
  storage::LeaseStore leases_;
  std::int64_t token_ = 0;  // 0: not held
  core::TimeMs last_renewed_at_ = 0;
};

}  // namespace dispatch::service
