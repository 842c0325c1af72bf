// App: the composition root. It owns the stores' modules (devices, commands, provisioning, campaigns),
// the router they register their routes with, the one outbox, and the batch boundary; the daemon's loop
// drives it. One thread (the service loop) calls it; nothing here is shared with Paho's threads.
// Messages arrive through handle() / handle_batch(), acknowledgements through on_publish_done();
// outgoing messages leave through the injected Publisher.
//
// Durable before visible: every handler commits its state change before it publishes anything that
// depends on it; handle_batch holds every publish of a batch until the batch's transaction committed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/agent_api.h"
#include "service/batch_effects.h"
#include "service/campaign_service.h"
#include "service/commands.h"
#include "service/config.h"
#include "service/devices.h"
#include "service/event_queue.h"
#include "service/outbox.h"
#include "service/provisioning.h"
#include "service/publisher.h"
#include "service/router.h"

namespace dispatch::storage {
class Database;
}

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
  std::uint64_t handler_failures = 0;  // handlers that threw (answered internal, logged)
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

  // Routes one message (outside a batch: its publishes are not held).
  void handle(const InboundMessage& m);
  // Handles a batch in one database transaction (group commit: one fsync for the whole batch) and
  // publishes what the handlers produced only after it committed. If the commit fails (PostgreSQL gone
  // mid-batch, a full disk) the batch is rolled back, its publishes are dropped, its HTTP exchanges are
  // answered 503, and the error is returned: this App's memory (outbox, campaign snapshots) may then be
  // ahead of the database, so the caller must discard it and build a new App from the database
  // (service/daemon.cpp does, then hands the new App the same messages once more). Messages that fail
  // twice are lost (MQTT acknowledged them on receipt; PROTOCOL §1.3 names this window).
  core::Status handle_batch(const std::vector<InboundMessage>& batch);
  // The same with the agent listener's HTTP events of the batch (PROTOCOL §6): their database work is in
  // the batch's transaction and each exchange is answered only after it committed.
  using HttpEvent = std::variant<http::HttpExchange, http::HttpStreamed>;
  core::Status handle_batch(const std::vector<InboundMessage>& batch, std::vector<HttpEvent> http);
  void on_publish_done(std::uint64_t tag, bool ok);
  // Publishes up to `budget` outbox messages; returns how many.
  size_t pump_outbox(size_t budget);
  size_t outbox_size() const;
  // Commits batched bookkeeping (deliveries acknowledged by the broker, last_seen). Cheap when idle.
  void flush(bool force = false);
  // Periodic work: expiry, provisioning pruning, campaign ticks and events.
  void on_timer();

  AppCounters counters() const;

 private:
  void on_device_message(protocol::TopicKind kind, const std::string& hw);

  storage::Database& db_;
  BufferedPublisher publisher_;
  protocol::Topics topics_;
  BatchEffects effects_;
  Outbox outbox_;
  Router router_;
  DevicesModule devices_;
  CommandsModule commands_;
  Provisioning provisioning_;
  CampaignService campaigns_;
  AgentApi agent_api_;
};

}  // namespace dispatch::service
