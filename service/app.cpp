#include "service/app.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>
#include <set>

#include "service/failpoint.h"
#include "storage/campaigns.h"
#include "storage/commands.h"
#include "storage/database.h"

namespace dispatch::service {

using metrics::Labels;
using metrics::Registry;
using protocol::TopicKind;

namespace {

// The families App fills at scrape time (the modules' own counters mirrored, the database's counts and
// the loop's gauges). The router and the commands module observe theirs in place.
constexpr const char* k_inbound = "dispatch_inbound_messages_total";
constexpr const char* k_inbound_help = "MQTT messages received and routed, by topic kind";
constexpr const char* k_dropped = "dispatch_dropped_messages_total";
constexpr const char* k_dropped_help =
    "Messages dropped rather than answered, by reason (nobody to answer, or nothing to answer)";
constexpr const char* k_handler_failures = "dispatch_handler_failures_total";
constexpr const char* k_handler_failures_help = "Handlers that threw (answered internal, logged)";
constexpr const char* k_queries = "dispatch_provisioning_queries_total";
constexpr const char* k_queries_help =
    "Device package queries answered, by transport (mqtt, http) and outcome (update, up_to_date or the "
    "error code)";
constexpr const char* k_rate_limited = "dispatch_provisioning_rate_limited_total";
constexpr const char* k_rate_limited_help = "Device package queries refused rate_limited, by transport";
constexpr const char* k_download_bytes = "dispatch_download_bytes_total";
constexpr const char* k_download_bytes_help =
    "Package bytes served to devices, by transport (mqtt chunks answered, http bytes written)";
constexpr const char* k_deliveries_enqueued = "dispatch_command_deliveries_enqueued_total";
constexpr const char* k_deliveries_enqueued_help =
    "Command deliveries handed to the outbox after their commit (re-queued ones at start included)";
constexpr const char* k_campaign_sends = "dispatch_campaign_sends_total";
constexpr const char* k_campaign_sends_help =
    "Campaign command sends handed to the outbox after their commit (re-queued ones at start included)";
constexpr const char* k_outbox_published = "dispatch_outbox_published_total";
constexpr const char* k_outbox_published_help = "Outbox messages (command lines to devices) handed to MQTT";
constexpr const char* k_outbox_acked = "dispatch_outbox_acknowledged_total";
constexpr const char* k_outbox_acked_help = "Outbox messages the broker acknowledged";
constexpr const char* k_outbox_retried = "dispatch_outbox_retried_total";
constexpr const char* k_outbox_retried_help = "Outbox messages MQTT gave up on and queued again (same id)";
constexpr const char* k_outbox_dropped = "dispatch_outbox_dropped_total";
constexpr const char* k_outbox_dropped_help =
    "Outbox messages dropped unpublished (expired, canceled, superseded, or refused by the broker or client "
    "library)";
constexpr const char* k_mqtt_published = "dispatch_mqtt_published_total";
constexpr const char* k_mqtt_published_help =
    "Messages handed to the MQTT client (command lines, answers and events)";
constexpr const char* k_mqtt_expired = "dispatch_mqtt_expired_total";
constexpr const char* k_mqtt_expired_help =
    "Command lines not handed to the MQTT client because they expired while waiting in its queue";
constexpr const char* k_mqtt_refused = "dispatch_mqtt_refused_total";
constexpr const char* k_mqtt_refused_help =
    "Messages refused by the MQTT client library (larger than the broker's maximum packet size) or by the "
    "broker (a PUBACK reason code of 0x80 or more, e.g. not authorized), and given up";
constexpr const char* k_deliveries = "dispatch_deliveries";
constexpr const char* k_deliveries_help = "Command deliveries in the database, by state";
constexpr const char* k_commands = "dispatch_commands";
constexpr const char* k_commands_help = "Commands in the database";
constexpr const char* k_campaigns = "dispatch_campaigns";
constexpr const char* k_campaigns_help = "Campaigns in the database, by state";
constexpr const char* k_outbox_waiting = "dispatch_outbox_waiting";
constexpr const char* k_outbox_waiting_help = "Outbox messages committed and waiting to be published";
constexpr const char* k_outbox_in_flight = "dispatch_outbox_in_flight";
constexpr const char* k_outbox_in_flight_help =
    "Outbox messages published and not yet acknowledged by the broker";
constexpr const char* k_mqtt_inflight = "dispatch_mqtt_inflight";
constexpr const char* k_mqtt_inflight_help = "QoS 1 publishes handed to MQTT and not yet acknowledged";
constexpr const char* k_mqtt_inflight_max = "dispatch_mqtt_inflight_max";
constexpr const char* k_mqtt_inflight_max_help =
    "The in-flight window: the broker's Receive Maximum, at most mqtt.max_inflight";
constexpr const char* k_mqtt_backlog = "dispatch_mqtt_backlog";
constexpr const char* k_mqtt_backlog_help = "Messages queued in the MQTT link or in flight";
constexpr const char* k_mqtt_queued_bytes = "dispatch_mqtt_queued_bytes";
constexpr const char* k_mqtt_queued_bytes_help =
    "Bytes of outgoing messages queued in the MQTT link, not yet handed to the MQTT client";
constexpr const char* k_mqtt_queued_bytes_max = "dispatch_mqtt_queued_bytes_max";
constexpr const char* k_mqtt_queued_bytes_max_help =
    "The link's byte budget (mqtt.max_queued_bytes): at it the service takes no device message";
constexpr const char* k_mqtt_held = "dispatch_mqtt_held_total";
constexpr const char* k_mqtt_held_help =
    "Times the service loop held device messages back because the MQTT link was over its byte budget";
constexpr const char* k_mqtt_connected = "dispatch_mqtt_connected";
constexpr const char* k_mqtt_connected_help = "1 while the broker connection is up, else 0";
constexpr const char* k_event_queue = "dispatch_event_queue_depth";
constexpr const char* k_event_queue_help =
    "Inbound events (MQTT messages, acknowledgements, HTTP requests) waiting for the service loop";
constexpr const char* k_event_queue_bytes = "dispatch_event_queue_bytes";
constexpr const char* k_event_queue_bytes_help =
    "Bytes of received MQTT messages waiting for the service loop (bounded by mqtt.max_inbound_bytes)";
constexpr const char* k_event_queue_waits = "dispatch_event_queue_waits_total";
constexpr const char* k_event_queue_waits_help =
    "Times the MQTT client found the inbound queue full and stopped reading from the broker until it had "
    "room";
constexpr const char* k_batch = "dispatch_batch_duration_seconds";
constexpr const char* k_batch_help =
    "Time to handle one batch of inbound events in one transaction, handlers and commit";
constexpr const char* k_commit = "dispatch_batch_commit_seconds";
constexpr const char* k_commit_help = "Time of one batch's COMMIT (the fsync of a group commit)";

constexpr const char* k_drop_reasons[] = {
    "invalid_topic",   "unanswerable_request", "reply_unknown",          "reply_duplicate",
    "reply_malformed", "metadata_malformed",   "oversize_device_message"};

RouterLimits router_limits(const Config& c) {
  RouterLimits l;
  l.api_max_bytes = static_cast<std::size_t>(c.api_max_request_bytes);
  l.api_max_depth = c.api_max_depth;
  l.device_qos = c.mqtt_qos;
  return l;
}

}  // namespace

App::App(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher)
    : db_(db),
      instance_(config, clock, db),
      publisher_(publisher),
      topics_(config.topics),
      outbox_(clock, publisher_, topics_, config.mqtt_qos),
      router_(topics_, publisher_, router_limits(config)),
      devices_(config, clock, db),
      commands_(config, clock, db, publisher_, topics_, outbox_, effects_),
      provisioning_(config, clock, db, publisher_, topics_, effects_),
      campaigns_(config, clock, db, publisher_, topics_, outbox_, effects_),
      agent_api_(config, devices_, provisioning_),
      retention_(config, clock, db) {
  devices_.register_routes(router_);
  commands_.register_routes(router_);
  campaigns_.register_routes(router_);
  provisioning_.register_routes(router_);
  // The modules do not know each other: what one learns that another needs is wired here.
  commands_.set_reply_claim(
      [this](const std::string& hw, const std::string& id, bool success, const std::string& output) {
        return campaigns_.on_reply(hw, id, success, output);
      });
  devices_.set_version_listener(
      [this](const std::string& hw, const std::string& version) { campaigns_.on_version(hw, version); });
  // Campaign attempts are commands like any other for the pending pull and redelivery (PROTOCOL §1.3).
  CommandsModule::OtherSends campaign_sends;
  campaign_sends.in_flight = [this](const std::string& hw, core::TimeMs now) {
    return campaigns_.in_flight(hw, now);
  };
  campaign_sends.handed_over = [this](const std::string& hw, const std::vector<std::string>& ids,
                                      core::TimeMs now) { campaigns_.handed_over(hw, ids, now); };
  campaign_sends.redeliver = [this](const std::string& hw, core::TimeMs now, core::TimeMs sent_before,
                                    int max_publishes) {
    return campaigns_.redeliver(hw, now, sent_before, max_publishes);
  };
  commands_.set_other_sends(std::move(campaign_sends));
  router_.set_device_hook([this](TopicKind kind, const std::string& hw) { on_device_message(kind, hw); });
  declare_metrics();
  router_.set_metrics(&metrics_);
  commands_.set_metrics(&metrics_);
}

void App::declare_metrics() {
  using T = Registry::Type;
  const struct {
    const char* name;
    const char* help;
    T type;
  } families[] = {
      {k_inbound, k_inbound_help, T::counter},
      {k_dropped, k_dropped_help, T::counter},
      {k_handler_failures, k_handler_failures_help, T::counter},
      {k_queries, k_queries_help, T::counter},
      {k_rate_limited, k_rate_limited_help, T::counter},
      {k_download_bytes, k_download_bytes_help, T::counter},
      {k_deliveries_enqueued, k_deliveries_enqueued_help, T::counter},
      {k_campaign_sends, k_campaign_sends_help, T::counter},
      {k_outbox_published, k_outbox_published_help, T::counter},
      {k_outbox_acked, k_outbox_acked_help, T::counter},
      {k_outbox_retried, k_outbox_retried_help, T::counter},
      {k_outbox_dropped, k_outbox_dropped_help, T::counter},
      {k_mqtt_published, k_mqtt_published_help, T::counter},
      {k_mqtt_expired, k_mqtt_expired_help, T::counter},
      {k_mqtt_refused, k_mqtt_refused_help, T::counter},
      {k_deliveries, k_deliveries_help, T::gauge},
      {k_commands, k_commands_help, T::gauge},
      {k_campaigns, k_campaigns_help, T::gauge},
      {k_outbox_waiting, k_outbox_waiting_help, T::gauge},
      {k_outbox_in_flight, k_outbox_in_flight_help, T::gauge},
      {k_mqtt_inflight, k_mqtt_inflight_help, T::gauge},
      {k_mqtt_inflight_max, k_mqtt_inflight_max_help, T::gauge},
      {k_mqtt_backlog, k_mqtt_backlog_help, T::gauge},
      {k_mqtt_queued_bytes, k_mqtt_queued_bytes_help, T::gauge},
      {k_mqtt_queued_bytes_max, k_mqtt_queued_bytes_max_help, T::gauge},
      {k_mqtt_held, k_mqtt_held_help, T::counter},
      {k_mqtt_connected, k_mqtt_connected_help, T::gauge},
      {k_event_queue, k_event_queue_help, T::gauge},
      {k_event_queue_bytes, k_event_queue_bytes_help, T::gauge},
      {k_event_queue_waits, k_event_queue_waits_help, T::counter},
  };
  for (const auto& f : families) metrics_.describe(f.name, f.help, f.type);
  metrics_.describe(k_batch, k_batch_help, T::histogram, metrics::latency_buckets());
  metrics_.describe(k_commit, k_commit_help, T::histogram, metrics::latency_buckets());
  // The fixed label sets appear from the first scrape (at zero), so that rate() has a start.
  for (std::size_t k = 0; k < k_topic_kinds; ++k) {
    const auto kind = static_cast<TopicKind>(k);
    if (kind == TopicKind::api || protocol::is_device_inbound(kind))
      metrics_.counter(k_inbound, k_inbound_help, {{"kind", std::string(protocol::to_string(kind))}});
  }
  for (const char* reason : k_drop_reasons) metrics_.counter(k_dropped, k_dropped_help, {{"reason", reason}});
  for (const char* t : {"mqtt", "http"}) {
    metrics_.counter(k_rate_limited, k_rate_limited_help, {{"transport", t}});
    metrics_.counter(k_download_bytes, k_download_bytes_help, {{"transport", t}});
  }
}

void App::observe_batch(std::chrono::steady_clock::duration took) {
  const std::chrono::duration<double> whole = took;
  const std::chrono::duration<double> commit = db_.last_commit_duration();
  metrics_.histogram(k_batch, k_batch_help, metrics::latency_buckets()).observe(whole.count());
  metrics_.histogram(k_commit, k_commit_help, metrics::latency_buckets()).observe(commit.count());
}

core::Status App::check_database() { return db_.ping(); }

std::string App::metrics_text(const LoopStats& loop) {
  const RouterCounters& r = router_.counters();
  for (std::size_t k = 0; k < k_topic_kinds; ++k) {
    if (r.inbound[k] == 0) continue;
    metrics_
        .counter(k_inbound, k_inbound_help,
                 {{"kind", std::string(protocol::to_string(static_cast<TopicKind>(k)))}})
        .set(r.inbound[k]);
  }
  const AppCounters c = counters();
  const std::uint64_t dropped[] = {c.invalid_topics,          c.unanswerable_requests, c.replies_unknown,
                                   c.replies_duplicate,       c.replies_malformed,     c.metadata_malformed,
                                   c.oversize_device_messages};
  for (std::size_t i = 0; i < std::size(k_drop_reasons); ++i)
    metrics_.counter(k_dropped, k_dropped_help, {{"reason", k_drop_reasons[i]}}).set(dropped[i]);
  metrics_.counter(k_handler_failures, k_handler_failures_help).set(c.handler_failures);

  const ProvisioningCounters p = provisioning_.counters();
  std::map<std::string, std::uint64_t> rate_limited;
  for (const auto& [key, n] : p.queries) {
    metrics_.counter(k_queries, k_queries_help, {{"transport", key.first}, {"outcome", key.second}}).set(n);
    if (key.second == "rate_limited") rate_limited[key.first] += n;
  }
  for (const auto& [transport, n] : rate_limited)
    metrics_.counter(k_rate_limited, k_rate_limited_help, {{"transport", transport}}).set(n);
  metrics_.counter(k_download_bytes, k_download_bytes_help, {{"transport", "mqtt"}})
      .set(p.download_bytes_mqtt);
  metrics_.counter(k_download_bytes, k_download_bytes_help, {{"transport", "http"}})
      .set(p.download_bytes_http);

  metrics_.counter(k_deliveries_enqueued, k_deliveries_enqueued_help)
      .set(commands_.counters().deliveries_enqueued);
  metrics_.counter(k_campaign_sends, k_campaign_sends_help).set(campaigns_.sends());
  const Outbox::Counters& o = outbox_.counters();
  metrics_.counter(k_outbox_published, k_outbox_published_help).set(o.published);
  metrics_.counter(k_outbox_acked, k_outbox_acked_help).set(o.acknowledged);
  metrics_.counter(k_outbox_retried, k_outbox_retried_help).set(o.retried);
  metrics_.counter(k_outbox_dropped, k_outbox_dropped_help).set(o.dropped);
  metrics_.counter(k_mqtt_published, k_mqtt_published_help).set(loop.link_published);
  metrics_.counter(k_mqtt_expired, k_mqtt_expired_help).set(loop.link_expired);
  metrics_.counter(k_mqtt_refused, k_mqtt_refused_help).set(loop.link_refused);

  // From the database: a scan of each table per scrape (see docs/operations.md for the cost).
  storage::CommandStore commands(db_);
  if (auto d = commands.counts_all()) {
    const std::pair<const char*, std::int64_t> states[] = {
        {"queued", d->queued}, {"sent", d->sent},       {"succeeded", d->succeeded},
        {"failed", d->failed}, {"expired", d->expired}, {"canceled", d->canceled}};
    for (const auto& [state, n] : states)
      metrics_.gauge(k_deliveries, k_deliveries_help, {{"state", state}}).set(static_cast<double>(n));
  } else {
    spdlog::warn("metrics: cannot count deliveries: {}", d.error().message);
  }
  if (auto n = commands.command_count()) {
    metrics_.gauge(k_commands, k_commands_help).set(static_cast<double>(*n));
  } else {
    spdlog::warn("metrics: cannot count commands: {}", n.error().message);
  }
  if (auto rows = storage::CampaignStore(db_).count_by_state()) {
    // A state with no campaign left reads 0 rather than keeping its last count.
    std::set<std::string> present;
    for (const auto& [state, n] : *rows) {
      metrics_.gauge(k_campaigns, k_campaigns_help, {{"state", state}}).set(static_cast<double>(n));
      present.insert(state);
    }
    for (const auto& state : seen_campaign_states_) {
      if (!present.count(state)) metrics_.gauge(k_campaigns, k_campaigns_help, {{"state", state}}).set(0);
    }
    seen_campaign_states_.insert(present.begin(), present.end());
  } else {
    spdlog::warn("metrics: cannot count campaigns: {}", rows.error().message);
  }

  metrics_.gauge(k_outbox_waiting, k_outbox_waiting_help).set(static_cast<double>(outbox_.size()));
  metrics_.gauge(k_outbox_in_flight, k_outbox_in_flight_help).set(static_cast<double>(outbox_.in_flight()));
  metrics_.gauge(k_mqtt_inflight, k_mqtt_inflight_help).set(loop.link_inflight);
  metrics_.gauge(k_mqtt_inflight_max, k_mqtt_inflight_max_help).set(loop.link_max_inflight);
  metrics_.gauge(k_mqtt_backlog, k_mqtt_backlog_help).set(static_cast<double>(loop.link_backlog));
  metrics_.gauge(k_mqtt_queued_bytes, k_mqtt_queued_bytes_help)
      .set(static_cast<double>(loop.link_queued_bytes));
  metrics_.gauge(k_mqtt_queued_bytes_max, k_mqtt_queued_bytes_max_help)
      .set(static_cast<double>(loop.link_max_queued_bytes));
  metrics_.counter(k_mqtt_held, k_mqtt_held_help).set(loop.link_held);
  metrics_.gauge(k_mqtt_connected, k_mqtt_connected_help).set(loop.mqtt_connected ? 1 : 0);
  metrics_.gauge(k_event_queue, k_event_queue_help).set(static_cast<double>(loop.event_queue));
  metrics_.gauge(k_event_queue_bytes, k_event_queue_bytes_help)
      .set(static_cast<double>(loop.event_queue_bytes));
  metrics_.counter(k_event_queue_waits, k_event_queue_waits_help).set(loop.event_queue_waits);
  return metrics_.render();
}

App::~App() = default;

// Presence: every device message refreshes last_seen; a command-side message (reply, pending pull,
// metadata, ping) also tells the commands module the device is there, so that it re-publishes what the
// device missed (a pending pull: the device says it (re)connected).
void App::on_device_message(TopicKind kind, const std::string& hw) {
  devices_.seen(hw);
  if (kind == TopicKind::provisioning_request || kind == TopicKind::provisioning_download) return;
  commands_.on_presence(hw, kind == TopicKind::command_pending);
}

void App::on_link_up() { commands_.on_listening(); }

core::Status App::start() {
  instance_.start();
  if (auto st = commands_.start(); !st) return st;
  if (auto st = provisioning_.start(); !st) return st;
  if (auto st = agent_api_.start(); !st) return st;
  return campaigns_.start();
}

std::vector<std::string> App::subscriptions() const { return router_.subscriptions(); }

void App::handle(const InboundMessage& m) { router_.dispatch(m); }

core::Result<nlohmann::json> App::console_call(const std::string& resource, const std::string& action,
                                               const nlohmann::json& body) {
  // A thrown handler is a 500 for this request, never a dead loop (like the router's one try/catch).
  try {
    if (resource == "devices" && action == "list") return devices_.list(body);
    if (resource == "commands" && action == "list") return commands_.list(body);
    if (resource == "commands" && action == "get") return commands_.get(body);
    if (resource == "packages" && (action == "list" || action == "create"))
      return provisioning_.api(action, body);
    if (resource == "campaigns" && (action == "list" || action == "get" || action == "pause" ||
                                    action == "resume" || action == "terminate"))
      return campaigns_.api(action, body);
  } catch (const std::exception& e) {
    return core::make_error(core::ErrorCode::internal,
                            std::string("console ") + resource + "/" + action + ": " + e.what());
  }
  return core::make_error(core::ErrorCode::bad_request, "the console cannot call " + resource + "/" + action);
}

core::Result<nlohmann::json> App::console_upload(const nlohmann::json& header, std::string_view bytes) {
  try {
    return provisioning_.upload(header, bytes);
  } catch (const std::exception& e) {
    return core::make_error(core::ErrorCode::internal, std::string("console packages/upload: ") + e.what());
  }
}

core::Status App::handle_batch(const std::vector<InboundMessage>& batch) { return handle_batch(batch, {}); }

core::Status App::handle_batch(const std::vector<InboundMessage>& batch, std::vector<HttpEvent> http) {
  if (batch.empty() && http.empty()) return {};
  publisher_.hold();
  // HTTP answers wait for the commit like publishes do (durable before visible).
  AgentApi::Answers answers;
  // Handlers run their own transactions as savepoints inside this one: a failing handler rolls back
  // only its own work. The router catches whatever a handler throws.
  const auto started = std::chrono::steady_clock::now();
  auto st = db_.transaction([&]() -> core::Status {
    for (const auto& m : batch) router_.dispatch(m);
    for (auto& ev : http) {
      if (auto* x = std::get_if<http::HttpExchange>(&ev)) {
        agent_api_.handle(*x, answers);
      } else {
        agent_api_.on_streamed(std::get<http::HttpStreamed>(ev), answers);
      }
    }
    return {};
  });
  if (!st) {
    // Rolled back: nothing the handlers did may become visible.
    publisher_.discard();
    for (auto& [slot, reply] : answers) {
      http::HttpReply unavailable;
      unavailable.status = 503;
      unavailable.headers.emplace_back("Retry-After", "2");
      unavailable.content_type = "application/json";
      unavailable.body = R"({"error":{"code":"unavailable","message":"service unavailable, retry later"}})";
      (void)slot->answer(std::move(unavailable));
    }
    return core::make_error(st.error().code, fmt::format("a batch of {} messages and {} HTTP requests was "
                                                         "rolled back: {}",
                                                         batch.size(), http.size(), st.error().message));
  }
  observe_batch(std::chrono::steady_clock::now() - started);
  // The one after-commit hook: the durability failpoints of what the batch's handlers committed.
  DISPATCH_FAILPOINT("after_batch_commit");
  effects_.after_commit();
  publisher_.release();
  // A download the listener gave up on releases its token; waiting ones are answered in turn (their
  // answers change nothing in the database: a waiting download only starts a stream).
  while (!answers.empty()) {
    AgentApi::Answers next;
    for (auto& [slot, reply] : answers) {
      const http::HttpReply kept = reply.file ? reply : http::HttpReply{};
      if (!slot->answer(std::move(reply))) agent_api_.on_abandoned(kept, next);
    }
    answers = std::move(next);
  }
  return {};
}

void App::on_publish_done(std::uint64_t tag, bool ok, bool refused) {
  // Answers and events carry no tag; only outbox messages are tracked.
  (void)outbox_.on_publish_done(tag, ok, refused);
}

size_t App::pump_outbox(size_t budget) { return outbox_.pump(budget); }

size_t App::outbox_size() const { return outbox_.size(); }

void App::flush(bool force) {
  outbox_.hand_back();
  commands_.flush(force);
  campaigns_.flush();
  devices_.flush(force);
}

void App::on_timer() {
  instance_.tick();
  commands_.on_timer();
  campaigns_.tick();
  // Last: a purge batch runs after the work that may finish commands and campaigns.
  retention_.on_timer();
}

AppCounters App::counters() const {
  AppCounters c;
  const RouterCounters& r = router_.counters();
  c.invalid_topics = r.invalid_topics;
  c.unanswerable_requests = r.unanswerable_requests;
  c.oversize_device_messages = r.oversize_device_messages;
  c.handler_failures = r.handler_failures;
  const CommandCounters& cmd = commands_.counters();
  c.replies_unknown = cmd.replies_unknown;
  c.replies_duplicate = cmd.replies_duplicate;
  c.replies_malformed = cmd.replies_malformed;
  c.metadata_malformed = devices_.counters().metadata_malformed;
  c.retention = retention_.counters();
  c.retention_rows_deleted = c.retention.retention_rows_deleted;
  return c;
}

}  // namespace dispatch::service
