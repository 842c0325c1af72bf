// App: the composition root. It owns the stores' modules (devices, commands, provisioning, campaigns),
// the router they register their routes with, the one outbox, and the batch boundary; the daemon's loop
// drives it. One thread (the service loop) calls it; nothing here is shared with Paho's threads.
// Messages arrive through handle() / handle_batch(), acknowledgements through on_publish_done();
// outgoing messages leave through the injected Publisher.
//
// Durable before visible: every handler commits its state change before it publishes anything that
// depends on it; handle_batch holds every publish of a batch until the batch's transaction committed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/result.h"
#include "protocol/topics.h"
#include "service/agent_api.h"
#include "service/batch_effects.h"
#include "service/campaign_service.h"
#include "service/cluster.h"
#include "service/commands.h"
#include "service/config.h"
#include "service/devices.h"
#include "service/event_queue.h"
#include "service/metrics.h"
#include "service/outbox.h"
#include "service/provisioning.h"
#include "service/publisher.h"
#include "service/retention.h"
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
  std::uint64_t handler_failures = 0;        // handlers that threw (answered internal, logged)
  std::uint64_t retention_rows_deleted = 0;  // rows purged by retention (every table; details below)
  RetentionCounters retention;
};

// What the loop knows that App does not (for /metrics): the queue, the link and its window.
struct LoopStats {
  std::size_t event_queue = 0;            // events waiting in the EventQueue
  std::size_t event_queue_bytes = 0;      // bytes of the device messages among them
  std::uint64_t event_queue_waits = 0;    // times a producer waited for room (EventQueue::waits_total)
  std::size_t link_backlog = 0;           // messages queued in the MQTT link or in flight
  int link_inflight = 0;                  // un-acknowledged QoS 1 publishes handed to Paho
  int link_max_inflight = 0;              // the link's window (Receive Maximum, at most mqtt.max_inflight)
  std::size_t link_queued_bytes = 0;      // bytes queued in the MQTT link (MqttLink::queued_bytes)
  std::size_t link_max_queued_bytes = 0;  // mqtt.max_queued_bytes
  std::uint64_t link_held = 0;            // loop passes that held device messages back (no room in the link)
  bool mqtt_connected = false;
  std::uint64_t link_published = 0;  // messages handed to Paho since start (answers and events included)
  std::uint64_t link_refused = 0;    // messages the client library or the broker refused (given up)
  std::uint64_t link_expired = 0;    // command lines the link dropped: past their expiry before the hand-off
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
  void on_publish_done(std::uint64_t tag, bool ok, bool refused = false);
  // The MQTT link is up again and subscribed: device silence before now is not held against them.
  void on_link_up();
  // Publishes up to `budget` outbox messages; returns how many.
  size_t pump_outbox(size_t budget);
  size_t outbox_size() const;
  // Whether a module has work for the next loop pass without any event (the loop does not sleep then).
  bool has_work() const { return commands_.expanding(); }
  // Commits batched bookkeeping (deliveries acknowledged by the broker, last_seen). Cheap when idle.
  void flush(bool force = false);
  // Periodic work: expiry, provisioning pruning, campaign ticks and events, one retention batch.
  void on_timer();

  AppCounters counters() const;

  // GET /metrics (PROTOCOL §6): every family in the Prometheus text format. Reads the database (one
  // COUNT per table of commands, deliveries and campaigns): call it outside a batch. A failing count is
  // left out of the answer and logged.
  std::string metrics_text(const LoopStats& loop);
  // The sample names a scrape can contain (dispatchd --print-metrics).
  std::vector<std::string> metric_series() const { return metrics_.series_names(); }
  // /readyz: ok when a trivial query succeeds. Call it outside a batch.
  core::Status check_database();

  // The web console's API (service/console.h): one platform API action (PROTOCOL §3) answered by the
  // module that answers it over MQTT, so that the console shows the same documents. Only the read
  // actions, campaigns pause/resume/terminate and packages/create are reachable (anything else:
  // bad_request). Call it outside a batch: like handle(), a write commits by itself before its event is
  // published.
  core::Result<nlohmann::json> console_call(const std::string& resource, const std::string& action,
                                            const nlohmann::json& body);
  // The console's package upload: one packages/upload frame (header {id, offset, length, last}, the
  // chunk's bytes), the same path as the MQTT API's. Call it outside a batch.
  core::Result<nlohmann::json> console_upload(const nlohmann::json& header, std::string_view bytes);

 private:
  void on_device_message(protocol::TopicKind kind, const std::string& hw);

  void declare_metrics();
  // Observes one batch: its whole transaction and its COMMIT.
  void observe_batch(std::chrono::steady_clock::duration took);

  storage::Database& db_;
  InstanceLease instance_;
  metrics::Registry metrics_;
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
  Retention retention_;
  std::set<std::string> seen_campaign_states_;  // label values of dispatch_campaigns seen so far
};

}  // namespace dispatch::service
