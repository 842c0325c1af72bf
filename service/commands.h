// Commands module (PROTOCOL §1.2, §1.3, §3): commands/send|get|list|cancel, device replies, pending
// pulls, redelivery on presence and expiry. Called from the service loop thread only.
//
// Durable before visible: a send commits the command and its deliveries as `queued` (and the
// request_id's answer) before it enqueues them in the outbox; a delivery is marked `sent` when the broker
// acknowledges it (batched), so after a crash every queued delivery is published again with the same
// command id, and none gets a second id.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/command_requests.h"
#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/event_queue.h"
#include "service/idempotency.h"
#include "service/metrics.h"
#include "service/outbox.h"
#include "service/publisher.h"

namespace dispatch::storage {
class Database;
class CommandStore;
class DeviceStore;
class PackageStore;
}  // namespace dispatch::storage

namespace dispatch::service {

class Router;

struct CommandCounters {
  std::uint64_t replies_unknown = 0;  // reply for an id never sent to that device
  std::uint64_t replies_duplicate = 0;
  std::uint64_t replies_malformed = 0;
  std::uint64_t deliveries_enqueued = 0;  // deliveries handed to the outbox (after their commit)
};

class CommandsModule final : private OutboxOwner {
 public:
  // A reply that another module may own (campaign attempts): true when it claimed the reply.
  using ReplyClaim = std::function<bool(const std::string& hw, const std::string& command_id, bool success,
                                        const std::string& output)>;

  CommandsModule(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher,
                 const protocol::Topics& topics, Outbox& outbox, BatchEffects& effects);
  ~CommandsModule() override;
  CommandsModule(const CommandsModule&) = delete;
  CommandsModule& operator=(const CommandsModule&) = delete;

  void set_reply_claim(ReplyClaim claim) { reply_claim_ = std::move(claim); }
  // commands/send|get|list|cancel, command_reply and command_pending.
  void register_routes(Router& router);

  // Queues every committed, unexpired delivery not yet acknowledged (after a restart).
  core::Status start();
  // A device showed up: queue again what it was sent and never answered (commands.redeliver_*).
  void on_presence(const std::string& hw);
  // Marks acknowledged deliveries sent: at least every 100 ms or 2000 deliveries, or now when force.
  void flush(bool force);
  // Expires overdue deliveries (at most once a second).
  void on_timer();

  // The handlers (also called by unit tests through the router).
  core::Result<nlohmann::json> send(const nlohmann::json& body);
  core::Result<nlohmann::json> get(const nlohmann::json& body);
  core::Result<nlohmann::json> list(const nlohmann::json& body);
  core::Result<nlohmann::json> cancel(const nlohmann::json& body);
  void on_reply(const std::string& hw, const InboundMessage& m);
  core::Result<nlohmann::json> pending(const std::string& hw, const nlohmann::json& body);

  const CommandCounters& counters() const { return counters_; }
  // Where accepted replies are measured: dispatch_command_reply_seconds{outcome} (send to reply). Unset:
  // nothing is measured. Must outlive the module.
  void set_metrics(metrics::Registry* registry);

 private:
  bool still_wanted(const OutboxItem& item) override;
  void acknowledged(std::vector<OutboxItem> items) override;
  void enqueue(const std::string& command_id, const std::string& hw, const std::string& line,
               std::optional<core::TimeMs> expires_at);

  const Config& config_;
  core::Clock& clock_;
  storage::Database& db_;
  Publisher& publisher_;
  const protocol::Topics& topics_;
  Outbox& outbox_;
  BatchEffects& effects_;
  std::unique_ptr<storage::CommandStore> commands_;
  std::unique_ptr<storage::DeviceStore> devices_;
  std::unique_ptr<storage::PackageStore> packages_;
  IdempotentRequests idempotency_;
  ReplyClaim reply_claim_;

  std::vector<std::pair<std::string, std::string>> acked_;          // to mark sent at the next flush
  std::unordered_map<std::string, core::TimeMs> presence_checked_;  // last redelivery check per device
  static constexpr std::size_t k_presence_memory = 1'000'000;       // bound: forget all past this
  std::set<std::string> canceled_;  // canceled while deliveries wait in the outbox
  core::TimeMs last_expiry_run_ = 0;
  core::TimeMs last_ack_flush_ = 0;
  CommandCounters counters_;
  metrics::Registry* metrics_ = nullptr;
};

}  // namespace dispatch::service
