// App: the service's state and every handler. One thread (the service loop) calls it; nothing here is
// shared with Paho's threads. Messages arrive through handle(), acknowledgements through
// on_publish_done(); outgoing messages leave through the injected Publisher.
//
// Durable before visible: every handler commits its state change in SQLite before it publishes anything
// that depends on it. Command deliveries are committed as `queued`, published from the in-memory outbox
// (rebuilt from the database at start), and marked `sent` when the broker acknowledges them — so after a
// crash every queued delivery is published again with the same command id, and none gets a second id.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/rate_limiter.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/campaign_service.h"
#include "service/config.h"
#include "service/event_queue.h"
#include "service/provisioning.h"
#include "service/publisher.h"

namespace dispatch::storage {
class Database;
class DeviceStore;
class CommandStore;
class PackageStore;
class TokenStore;
class NonceStore;
class RateWindowStore;
class CampaignStore;
class IdempotencyStore;
}  // namespace dispatch::storage

namespace dispatch::service {

// Counters for things that are dropped rather than answered (there is nobody to answer).
struct AppCounters {
  std::uint64_t invalid_topics = 0;         // device topic with an invalid hardware id
  std::uint64_t unanswerable_requests = 0;  // API request with no Response Topic and no reply_to
  std::uint64_t replies_unknown = 0;        // reply for an id never sent to that device
  std::uint64_t replies_duplicate = 0;
  std::uint64_t replies_malformed = 0;
  std::uint64_t metadata_malformed = 0;
  std::uint64_t oversize_device_messages = 0;
};

// Where and how an API answer goes.
struct ApiContext {
  std::string resource, action;
  std::string reply_topic;
  std::optional<std::string> correlation_data;  // MQTT 5, echoed as is
  std::optional<std::string> correlation_id;    // JSON, echoed in the answer
};

class App {
 public:
  App(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Rebuilds the outbox from the database (queued deliveries, unpublished campaign sends).
  core::Status start();
  std::vector<std::string> subscriptions() const;

  void handle(const InboundMessage& m);
  // Handles a batch in one database transaction (group commit: one fsync for the whole batch) and
  // publishes what the handlers produced only after it committed. If the commit fails the process
  // stops: its memory would be ahead of the database, and a restart resumes from the database.
  void handle_batch(const std::vector<InboundMessage>& batch);
  void on_publish_done(std::uint64_t tag, bool ok);
  // Publishes up to `budget` outbox messages; returns how many.
  size_t pump_outbox(size_t budget);
  size_t outbox_size() const;
  // Commits batched bookkeeping (deliveries acknowledged by the broker, last_seen). Cheap when idle.
  void flush(bool force = false);
  // Periodic work: expiry, campaign ticks, campaign events.
  void on_timer();

  const AppCounters& counters() const { return counters_; }

 private:
  using Json = nlohmann::json;
  using ApiHandler = core::Result<Json> (App::*)(const Json& body, const InboundMessage& m);
  using DeviceHandler = void (App::*)(const std::string& hw, const InboundMessage& m);

  // One message for a device waiting in the outbox (or in flight to the broker).
  struct OutboxItem {
    std::string command_id;
    std::string hardware_id;
    std::string line;
    std::optional<core::TimeMs> expires_at;
  };

  // Outbox (app_outbox.cpp).
  void enqueue_delivery(const std::string& command_id, const std::string& hw, const std::string& line,
                        std::optional<core::TimeMs> expires_at);

  // Routing.
  void handle_api(const protocol::ParsedTopic& t, const InboundMessage& m);
  void answer(const ApiContext& ctx, const Json& body);
  void answer_error(const ApiContext& ctx, const core::Error& e);
  void publish_device(protocol::TopicKind kind, const std::string& hw, std::string payload,
                      const InboundMessage* request = nullptr,
                      std::optional<std::string> correlation_id = {});

  // api_devices.cpp
  core::Result<Json> api_devices_register(const Json& body, const InboundMessage& m);
  core::Result<Json> api_devices_get(const Json& body, const InboundMessage& m);
  core::Result<Json> api_devices_list(const Json& body, const InboundMessage& m);
  core::Result<Json> api_devices_delete(const Json& body, const InboundMessage& m);
  // api_commands.cpp
  core::Result<Json> api_commands_send(const Json& body, const InboundMessage& m);
  core::Result<Json> api_commands_get(const Json& body, const InboundMessage& m);
  core::Result<Json> api_commands_list(const Json& body, const InboundMessage& m);
  core::Result<Json> api_commands_cancel(const Json& body, const InboundMessage& m);
  // packages/upload: the payload is a frame, not JSON.
  void handle_upload(ApiContext& ctx, const InboundMessage& m);
  core::Result<Json> api_packages(const Json& body, const InboundMessage& m);
  core::Result<Json> api_campaigns(const Json& body, const InboundMessage& m);
  // device_commands.cpp
  void device_reply(const std::string& hw, const InboundMessage& m);
  void device_pending(const std::string& hw, const InboundMessage& m);
  void device_metadata(const std::string& hw, const InboundMessage& m);
  void device_ping(const std::string& hw, const InboundMessage& m);
  void device_presence(const std::string& hw);
  void device_provisioning_request(const std::string& hw, const InboundMessage& m);
  void device_provisioning_download(const std::string& hw, const InboundMessage& m);

  const Config& config_;
  core::Clock& clock_;
  storage::Database& db_;
  BufferedPublisher publisher_;
  protocol::Topics topics_;

  std::unique_ptr<storage::DeviceStore> devices_;
  std::unique_ptr<storage::CommandStore> commands_;
  std::unique_ptr<storage::PackageStore> packages_;
  std::unique_ptr<storage::IdempotencyStore> idempotency_;
  std::unique_ptr<Provisioning> provisioning_;
  std::unique_ptr<CampaignService> campaigns_;
  std::string current_action_;  // action of the API request being handled (for the grouped handlers)

  std::map<std::pair<std::string, std::string>, ApiHandler> api_routes_;
  std::map<protocol::TopicKind, DeviceHandler> device_routes_;

  std::deque<OutboxItem> outbox_;
  std::unordered_map<std::uint64_t, OutboxItem> in_flight_;
  std::set<std::pair<std::string, std::string>> queued_keys_;       // (command_id, hw) in outbox or in flight
  std::vector<std::pair<std::string, std::string>> acked_;          // to mark sent at the next flush
  std::map<std::string, core::TimeMs> seen_;                        // last_seen to write at the next flush
  std::unordered_map<std::string, core::TimeMs> presence_checked_;  // last redelivery check per device
  static constexpr size_t k_presence_memory = 1'000'000;            // bound: forget all past this
  std::set<std::string> canceled_commands_;  // canceled while deliveries wait in the outbox
  std::uint64_t next_tag_ = 1;
  bool batch_committed_deliveries_ = false;  // for the failpoints of handle_batch
  bool batch_committed_replies_ = false;
  core::TimeMs last_expiry_run_ = 0;
  core::TimeMs last_ack_flush_ = 0;
  core::TimeMs last_seen_flush_ = 0;
  static constexpr size_t k_ack_batch = 2000;
  static constexpr core::TimeMs k_ack_flush_ms = 100;
  static constexpr core::TimeMs k_seen_flush_ms = 1000;
  AppCounters counters_;
};

}  // namespace dispatch::service
