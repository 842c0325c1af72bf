// Commands module (PROTOCOL §1.2, §1.3, §3): commands/send|get|list|cancel, device replies, pending
// pulls, redelivery on presence and expiry. Called from the service loop thread only.
//
// Durable before visible: a send commits the command and its deliveries as `queued` (and the
// request_id's answer) before it enqueues them in the outbox; a delivery is marked `sent` when the broker
// acknowledges it (batched), so after a crash every queued delivery is published again with the same
// command id, and none gets a second id.
//
// Expansion: a send to more than commands.expand_chunk devices commits its first chunk of deliveries and
// the rest of its targets as a list (storage/commands.h, CommandTargets) in that transaction, and answers;
// every later loop pass writes the next chunk (rows and the list's cursor in one commit) and only then
// queues its lines. The broker takes the first lines while the rest are written. A list outlives a crash:
// the next start (or a takeover) goes on from its cursor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
struct CommandTargets;
class DeviceStore;
class PackageStore;
}  // namespace dispatch::storage

namespace dispatch::service {

class Router;

// Most output bytes (as stored) one commands/get answer carries over all its devices: a page of large
// outputs must stay well inside a broker's maximum packet size (2 MiB in our broker config) even after
// JSON escaping (a default commands.max_output_bytes output fits whole in a page of one). Devices past the
// budget show an output cut short (`output_partial`; `output_bytes` is the stored size); a smaller page
// (`limit`, `after`) shows more of each.
inline constexpr std::size_t k_command_get_output_budget = 1024 * 1024;
// Room left in the broker's Maximum Packet Size for what surrounds a commands/get document: the packet's
// header, topic, properties (Correlation Data) and the echoed correlation_id.
inline constexpr std::size_t k_answer_envelope_bytes = 4096;

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

  // Sends another module has in flight to a device (campaign attempts): the pending pull lists them and
  // presence re-publishes them by the same rule as command deliveries (PROTOCOL §1.3 v1.1).
  struct OtherSends {
    // Unanswered, unexpired sends to hw, oldest first.
    std::function<std::vector<PendingSend>(const std::string& hw, core::TimeMs now)> in_flight;
    // The pending pull handed these over at now: it counts as their last send.
    std::function<void(const std::string& hw, const std::vector<std::string>& command_ids, core::TimeMs now)>
        handed_over;
    // Queues again the sends to hw last sent at or before sent_before and published fewer than
    // max_publishes times; returns how many.
    std::function<int(const std::string& hw, core::TimeMs now, core::TimeMs sent_before, int max_publishes)>
        redeliver;
  };

  void set_reply_claim(ReplyClaim claim) { reply_claim_ = std::move(claim); }
  void set_other_sends(OtherSends other) { other_ = std::move(other); }
  // commands/send|get|list|cancel, command_reply and command_pending.
  void register_routes(Router& router);

  // Records this instance's start in the database (the cluster's restart epoch, committed before anything
  // is published), then queues every committed, unexpired delivery not yet acknowledged (after a
  // restart), whichever instance owns it (see commands.cpp for why).
  core::Status start();
  // A message from hw on its ping, metadata, reply or pending topic (`pull`: the pending topic). Tracks
  // whether the device has been present without a break (no silence over commands.presence_gap_s while
  // we listened) and queues again what it missed: unanswered sends from before its present stretch began,
  // their last send older than commands.redeliver_interval_s, published fewer than
  // commands.redeliver_max_attempts times. A device present since a line was published never gets it
  // again. A pull starts a new stretch and queues nothing: its answer hands the commands over. Restart
  // exception: once per restart epoch (the newest start of any instance, see on_timer) a device's stretch
  // is taken to begin no earlier than the epoch, so its unanswered sends from before are queued again
  // once (by the same rules). The design and its limits: docs/protocol.md, "Presence redelivery".
  void on_presence(const std::string& hw, bool pull = false);
  // The service (re)subscribed at now: silence before it is not evidence of a device's absence (while
  // we were away its pings went nowhere).
  void on_listening();
  // Writes the next chunk of a large send's targets (see Expansion above), then marks acknowledged
  // deliveries sent: at least every 100 ms or 2000 deliveries, or now when force.
  void flush(bool force);
  // Whether targets wait to be written as deliveries (the loop does not sleep then).
  bool expanding() const;
  // Expires overdue deliveries (at most once a second), and every third of cluster.lease_ttl_ms takes
  // over the queued deliveries of instances whose lease lapsed (service/cluster.h): they are published
  // with their own command ids; records such a lapse as an epoch (the instance may never restart), and
  // learns the restart epoch (the newest start or lapse of any instance).
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
  void enqueue(std::string command_id, std::string hw, std::string line,
               std::optional<core::TimeMs> expires_at);
  void expand_next(core::TimeMs now);
  void take_over_lapsed(core::TimeMs now);
  // Records the lapse of instance other's lease (expired_at) as a restart epoch, once per lapse.
  void note_lapse(const std::string& other, core::TimeMs expired_at, core::TimeMs now);
  void learn_restart_epoch();

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

  std::vector<std::pair<std::string, std::string>> acked_;  // to mark sent at the next flush
  std::optional<core::TimeMs> acked_published_at_;          // the earliest publish among acked_
  // Presence per device (memory only; see on_presence).
  struct Presence {
    core::TimeMs last_heard = 0;
    // Start of the stretch the device has been present without a break; sends before it were missed.
    // nullopt: unknown and assumed present (forgotten devices, see k_presence_memory).
    std::optional<core::TimeMs> present_since;
    std::optional<core::TimeMs> last_check;  // last redelivery query
    // The restart epoch (restart_epoch_) the device was last checked against; 0: none yet.
    core::TimeMs epoch_checked = 0;
  };
  std::unordered_map<std::string, Presence> presence_;
  static constexpr std::size_t k_presence_memory = 1'000'000;  // bound: forget all past this
  // The newest start of any instance sharing the database (storage/instance_starts.h), ours at first;
  // learnt every third of cluster.lease_ttl_ms. Sends from before it may have had their reply lost.
  core::TimeMs restart_epoch_ = 0;
  core::TimeMs listening_since_ = 0;
  std::optional<core::TimeMs> forgot_at_;
  OtherSends other_;
  std::set<std::string> canceled_;  // canceled while deliveries wait in the outbox
  core::TimeMs last_expiry_run_ = 0;
  std::string instance_id_;  // the owner written on our deliveries (service/cluster.h)
  core::TimeMs last_takeover_scan_ = 0;
  core::TimeMs last_ack_flush_ = 0;
  CommandCounters counters_;
  // Lists of targets this instance writes (oldest first), as committed; see Expansion above.
  std::vector<storage::CommandTargets> expansions_;
  core::TimeMs expand_retry_at_ = 0;  // after a failed chunk: not before
  metrics::Registry* metrics_ = nullptr;
};

}  // namespace dispatch::service
