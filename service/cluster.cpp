#include "service/cluster.h"

#include <spdlog/spdlog.h>

#include "protocol/core/result.h"

namespace dispatch::service {

std::string instance_id(const Config& config) {
  return config.cluster_instance_id.empty() ? config.mqtt_client_id : config.cluster_instance_id;
}

InstanceLease::InstanceLease(const Config& config, core::Clock& clock, storage::Database& db)
    : id_(instance_id(config)), ttl_ms_(config.cluster_lease_ttl_ms), clock_(clock), leases_(db) {}

void InstanceLease::start() {
  take(clock_.now_ms());
  if (held()) spdlog::info("cluster: instance {} holds its lease (token {})", id_, token_);
}

void InstanceLease::take(core::TimeMs now) {
  auto got = leases_.acquire(instance_lease_name(id_), id_, now, ttl_ms_);
  if (!got) {
    // conflict: another instance is taking our old deliveries over right now (it releases the lease
    // when done), or a second instance runs under our id (a misconfiguration).
    spdlog::warn("cluster: cannot take the lease of instance {}: {} (trying again)", id_,
                 got.error().message);
    token_ = 0;
    return;
  }
  if (token_ != 0 && got->token != token_)
    spdlog::warn(
        "cluster: instance {} had lost its lease (token {} -> {}); its queued sends may have been "
        "taken over by another instance",
        id_, token_, got->token);
  token_ = got->token;
  last_renewed_at_ = now;
}

void InstanceLease::tick() {
  const core::TimeMs now = clock_.now_ms();
  if (token_ != 0 && now - last_renewed_at_ < ttl_ms_ / 3) return;
  if (token_ == 0) {
    take(now);
    return;
  }
  auto renewed = leases_.renew(instance_lease_name(id_), id_, token_, now, ttl_ms_);
  if (renewed) {
    last_renewed_at_ = now;
    return;
  }
  if (renewed.error().code == core::ErrorCode::conflict) {
    // Lapsed and taken over: our queued deliveries may now be another instance's. Take the lease again
    // (a new token); deliveries we still hold in memory are published with the same ids (at least once).
    spdlog::warn("cluster: instance {} lost its lease: {}", id_, renewed.error().message);
    take(now);
    return;
  }
  spdlog::error("cluster: cannot renew the lease of instance {}: {}", id_, renewed.error().message);
}

}  // namespace dispatch::service
