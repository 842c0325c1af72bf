#include "service/daemon.h"

#include <fmt/format.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "protocol/core/clock.h"
#include "service/agent_api.h"
#include "service/app.h"
#include "service/console.h"
#include "service/event_queue.h"
#include "service/file_lock.h"
#include "service/http/http_server.h"
#include "service/logging.h"
#include "service/mqtt/mqtt_link.h"
#include "service/ops.h"
#include "service/publisher.h"
#include "storage/database.h"

namespace dispatch::service {

namespace {

// Outbox messages handed to the link beyond those already queued in it; keeps the link's queue and our
// memory small while still feeding the in-flight window without gaps.
constexpr size_t k_link_backlog_target = 2000;
// Outbox items handed to the link per step while it has room in its byte budget (mqtt.max_queued_bytes).
constexpr size_t k_outbox_step = 64;

LinkOptions link_options(const Config& c) {
  LinkOptions o;
  o.uri = c.mqtt_uri;
  o.client_id = c.mqtt_client_id;
  o.username = c.mqtt_username;
  o.password = c.mqtt_password;
  o.ca_file = c.mqtt_ca_file;
  o.cert_file = c.mqtt_cert_file;
  o.key_file = c.mqtt_key_file;
  o.tls_verify_hostname = c.mqtt_tls_verify_hostname;
  o.keepalive_s = c.mqtt_keepalive_s;
  o.session_expiry_s = c.mqtt_session_expiry_s;
  o.max_inflight = c.mqtt_max_inflight;
  o.max_buffered = c.mqtt_max_buffered;
  o.max_queued_bytes = static_cast<std::size_t>(c.mqtt_max_queued_bytes);
  // A download chunk is the largest answer a device can ask for (API answers come from operators).
  o.answer_estimate_bytes = static_cast<std::size_t>(c.provisioning_max_chunk_bytes) + 1024;
  o.clean_start = false;
  return o;
}

}  // namespace

std::size_t device_message_allowance(const MqttLink& link, bool producer_waiting, std::size_t max_batch) {
  if (!link.has_room()) return producer_waiting ? 1 : 0;
  const std::size_t largest = std::max(link.recent_largest(), link.answer_estimate_bytes());
  if (largest == 0) return max_batch;
  const std::size_t room = link.max_queued_bytes() - link.queued_bytes();
  return std::clamp<std::size_t>(room / largest, 1, max_batch);
}

int print_metrics(const Config& config) {
  auto db = storage::Database::open(":memory:");
  if (!db) {
    std::fprintf(stderr, "dispatchd: cannot open an in-memory database: %s\n", db.error().message.c_str());
    return 1;
  }
  core::SystemClock clock;
  RecordingPublisher publisher;
  App app(config, clock, **db, publisher);
  for (const auto& name : app.metric_series()) std::printf("%s\n", name.c_str());
  return 0;
}

std::vector<std::string> subscription_filters(const std::vector<std::string>& filters,
                                              const std::string& share_group) {
  if (share_group.empty()) return filters;
  std::vector<std::string> out;
  out.reserve(filters.size());
  for (const auto& f : filters) out.push_back("$share/" + share_group + "/" + f);
  return out;
}

std::vector<std::string> stale_filters(const std::vector<std::string>& filters,
                                       const std::string& share_group) {
  // With a group, the plain filters are stale; without one, nothing is known about earlier groups and
  // their sessions expire on their own (mqtt.session_expiry_s) — an operator leaving a cluster changes the
  // client id or waits for that.
  return share_group.empty() ? std::vector<std::string>{} : filters;
}

std::string redacted_url(const std::string& url) {
  std::string out = url;
  // postgresql://user:secret@host → postgresql://user:***@host
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto start = scheme + 3;
    const auto at = out.find('@', start);
    const auto slash = out.find('/', start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // …?password=secret&… → …?password=***&…
  for (auto p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    const auto value = p + 9;
    const auto end = out.find('&', value);
    out.replace(value, (end == std::string::npos ? out.size() : end) - value, "***");
  }
  return out;
}

int run_daemon(const Config& config) {
  // Block the stop signals in every thread (the MQTT link's included) and wait for them on one of ours.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  EventQueue events(EventQueue::k_default_capacity, static_cast<std::size_t>(config.mqtt_max_inbound_bytes));
  // Also set by the signal thread: a wait that must not take events off the queue checks this instead.
  static std::atomic<bool> stop_requested{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig != 0) {
      spdlog::info("received signal {}: stopping", sig);
      stop_requested.store(true);
      events.push_nonblocking(StopRequested{});
    }
  });
  signal_thread.detach();

  const bool postgres = !config.storage_url.empty();
  std::error_code ec;
  if (!postgres) {
    auto db_parent = std::filesystem::path(config.storage_path).parent_path();
    if (!db_parent.empty()) std::filesystem::create_directories(db_parent, ec);
  }
  std::filesystem::create_directories(config.storage_data_dir, ec);

  const std::string location = postgres ? config.storage_url : config.storage_path;
  const std::string shown = postgres ? redacted_url(config.storage_url) : config.storage_path;
  // One process per SQLite file: two would both drive its campaigns and publish its outbox, and
  // `dispatchd --migrate-to` must see that the file is in use. Declared before db: the lock must outlive
  // every SQLite connection to the file (service/file_lock.h).
  std::unique_ptr<FileLock> file_lock;
  if (!postgres && config.storage_path != ":memory:") {
    auto locked = FileLock::acquire(config.storage_path);
    if (!locked) {
      spdlog::error("cannot open the database {}: {}", shown, locked.error().message);
      return 1;
    }
    file_lock = std::move(*locked);
  }
  std::unique_ptr<storage::Database> db;
  // PostgreSQL may come up after us or be restarting: stay unready (no subscriptions, no answers) and
  // try again every 2 s instead of exiting into a crash loop. A SQLite file that does not open, or a
  // schema newer than this build, will not get better by waiting: those stop the process.
  for (int attempt = 1;; ++attempt) {
    auto opened = storage::Database::open(location);
    if (opened) {
      db = std::move(*opened);
      break;
    }
    const bool retry = postgres && opened.error().code == core::ErrorCode::unavailable &&
                       opened.error().message.find("newer than this build") == std::string::npos;
    if (!retry) {
      spdlog::error("cannot open the database {}: {}", shown, opened.error().message);
      return 1;
    }
    if (attempt == 1 || attempt % 15 == 0) {
      spdlog::warn("unready: cannot reach PostgreSQL at {}: {} (attempt {}, retrying every 2 s)", shown,
                   opened.error().message, attempt);
    }
    if (auto ev = events.pop_for(std::chrono::milliseconds(2000));
        ev && std::holds_alternative<StopRequested>(*ev)) {
      return 0;
    }
  }
  spdlog::info("database {} at schema version {}", shown, db->schema_version());

  core::SystemClock clock;
  MqttLink link(link_options(config), events);
  LinkPublisher publisher(link);

  // After a rolled-back batch the App's memory may be ahead of the database: build a new one from the
  // database, as a restart would, but keep the process, its MQTT session and its HTTP listener. While the
  // database stays away (PostgreSQL restarting) the service is unready: it takes no event off the queue,
  // so the queue fills, the link's message callback blocks and the broker holds the messages instead of this
  // process acknowledging messages it cannot handle. False when asked to stop meanwhile.
  std::unique_ptr<App> app;
  auto rebuild = [&]() -> bool {
    app.reset();
    for (int attempt = 1;; ++attempt) {
      auto fresh = std::make_unique<App>(config, clock, *db, publisher);
      auto st = fresh->start();
      if (st) {
        app = std::move(fresh);
        spdlog::info("ready again: service state rebuilt from the database (attempt {})", attempt);
        return true;
      }
      if (attempt == 1 || attempt % 15 == 0) {
        spdlog::warn(
            "unready: cannot rebuild the service state from the database: {} (attempt {}, retrying "
            "every 2 s)",
            st.error().message, attempt);
      }
      for (int i = 0; i < 20; ++i) {
        if (stop_requested.load()) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  };

  app = std::make_unique<App>(config, clock, *db, publisher);
  if (auto st = app->start(); !st) {
    // PostgreSQL gone again between open and start: wait for it like after a rolled-back batch.
    if (!postgres || st.error().code != core::ErrorCode::unavailable) {
      spdlog::error("cannot start: {}", st.error().message);
      return 1;
    }
    spdlog::warn("unready: cannot start: {}", st.error().message);
    if (!rebuild()) return 0;
  }
  link.set_subscriptions(subscription_filters(app->subscriptions(), config.mqtt_share_group),
                         stale_filters(app->subscriptions(), config.mqtt_share_group));

  // The operators' endpoints (PROTOCOL §6), answered by this loop from before the first broker
  // connection, so that /readyz can say why the service is not ready yet.
  std::string mqtt_down_cause = "not connected yet";
  std::uint64_t held_total = 0;  // times the loop started holding device messages back (no room in the link)
  OpsProbes probes;
  probes.metrics = [&] {
    LoopStats s;
    s.event_queue = events.size();
    s.event_queue_bytes = events.bytes();
    s.event_queue_waits = events.waits_total();
    s.link_backlog = link.backlog();
    s.link_inflight = link.inflight();
    s.link_queued_bytes = link.queued_bytes();
    s.link_max_queued_bytes = link.max_queued_bytes();
    s.link_held = held_total;
    s.link_max_inflight = link.max_inflight();
    s.mqtt_connected = link.connected();
    s.link_published = link.published_total();
    s.link_expired = link.expired_total();
    s.link_refused = link.refused_total();
    return app ? app->metrics_text(s) : std::string();
  };
  probes.not_ready = [&] {
    std::vector<std::string> reasons;
    if (!link.connected())
      reasons.push_back(mqtt_down_cause.empty() ? std::string("mqtt: disconnected")
                                                : fmt::format("mqtt: disconnected ({})", mqtt_down_cause));
    if (!app) {
      reasons.push_back("database: the service state is being rebuilt");
    } else if (auto st = app->check_database(); !st)
      reasons.push_back("database: " + st.error().message);
    return reasons;
  };
  // The web console (service/console.h) shares the listener and the loop with /metrics.
  ConsoleStreams console_streams(static_cast<std::size_t>(config.http_console_max_streams));
  ConsoleBackend console;
  console.token = config.http_console_token;
  console.streams = &console_streams;
  console.call = [&](const std::string& resource, const std::string& action,
                     const nlohmann::json& body) -> core::Result<nlohmann::json> {
    if (!app) return core::make_error(core::ErrorCode::unavailable, "the service state is being rebuilt");
    return app->console_call(resource, action, body);
  };
  console.upload = [&](const nlohmann::json& header, std::string_view bytes) -> core::Result<nlohmann::json> {
    if (!app) return core::make_error(core::ErrorCode::unavailable, "the service state is being rebuilt");
    return app->console_upload(header, bytes);
  };
  auto answer_ops = [&](const http::HttpExchange& x) {
    if (is_console_path(x.request->path)) {
      http::HttpReply reply = console_answer(*x.request, console);
      auto stream = reply.stream;
      // The worker gave up waiting: nobody will write the stream, so it must not hold a place.
      if (!x.reply->answer(std::move(reply)) && stream) stream->finish();
      return;
    }
    (void)x.reply->answer(ops_answer(*x.request, probes));
  };
  std::unique_ptr<http::HttpServer> ops_http;
  if (!config.http_ops_listen.empty() && config.http_ops_listen != "off") {
    http::HttpServerOptions o;
    o.name = k_ops_listener;
    o.listen = config.http_ops_listen;
    // GET, the console's small POSTs, and one package upload chunk with room for nothing else.
    o.max_body_bytes =
        static_cast<std::size_t>(std::max<std::int64_t>(config.provisioning_max_chunk_bytes, 4096));
    // Every open console event stream holds a worker for as long as its page is open: the streams'
    // bound plus a few for scrapes, probes and the console's other requests (a browser's idle
    // keep-alive connection also holds one for up to 5 s).
    o.worker_threads = 4 + static_cast<std::size_t>(config.http_console_max_streams);
    o.max_queued_connections = 16;
    // Longer than one broker connect attempt (5 s), during which the loop does not answer.
    o.reply_timeout = std::chrono::milliseconds(10000);
    auto server = http::HttpServer::start(o, events);
    if (!server) {
      spdlog::error(
          "cannot start the ops HTTP listener on {}: {} (set http.ops_listen to another "
          "host:port, or to \"off\")",
          config.http_ops_listen, server.error().message);
      return 1;
    }
    ops_http = std::move(*server);
    auto hp = http::parse_listen_address(config.http_ops_listen);
    spdlog::info("ops endpoints (/metrics, /healthz, /readyz) listening on http://{}:{}",
                 hp ? hp->first : config.http_ops_listen, ops_http->port());
    spdlog::info("console on http://{}:{}/console/ ({})", hp ? hp->first : config.http_ops_listen,
                 ops_http->port(),
                 config.http_console_token.empty() ? "read-only: http.console_token is not set"
                                                   : "writes need http.console_token");
  }

  // The broker may come up after us: keep trying until it answers or we are told to stop.
  for (int attempt = 1;; ++attempt) {
    auto st = link.connect(5000);
    if (st) break;
    mqtt_down_cause = st.error().message;
    if (attempt == 1 || attempt % 10 == 0) spdlog::warn("{} (retrying every second)", st.error().message);
    const auto retry_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (auto now = std::chrono::steady_clock::now(); now < retry_at;
         now = std::chrono::steady_clock::now()) {
      auto ev = events.pop_for(std::chrono::duration_cast<std::chrono::milliseconds>(retry_at - now));
      if (!ev) continue;
      if (std::holds_alternative<StopRequested>(*ev)) return 0;
      if (auto* x = std::get_if<http::HttpExchange>(&*ev)) answer_ops(*x);
    }
  }
  spdlog::info("connected to {} as {}", config.mqtt_uri, config.mqtt_client_id);

  // The esthesis agents' HTTP API (PROTOCOL §6), when configured: its threads hand requests to this loop.
  std::unique_ptr<http::HttpServer> agent_http;
  if (!config.http_agent_listen.empty()) {
    http::HttpServerOptions o;
    o.name = "agent";
    o.listen = config.http_agent_listen;
    o.tls_cert_file = config.http_tls_cert_file;
    o.tls_key_file = config.http_tls_key_file;
    o.worker_threads = static_cast<std::size_t>(config.http_agent_threads);
    o.keep_alive_timeout = std::chrono::seconds(config.http_agent_keep_alive_s);
    // Registration key pairs are made here, on the listener's workers, not on this loop.
    o.prepare = [&config](http::HttpRequest& r) { AgentApi::prepare(config, r); };
    auto server = http::HttpServer::start(o, events);
    if (!server) {
      spdlog::error("cannot start the agent HTTP listener on {}: {}", config.http_agent_listen,
                    server.error().message);
      return 1;
    }
    agent_http = std::move(*server);
    auto hp = http::parse_listen_address(config.http_agent_listen);
    spdlog::info("agent HTTP API listening on {}://{}:{} (registration.mode = {})",
                 agent_http->tls() ? "https" : "http", hp ? hp->first : config.http_agent_listen,
                 agent_http->port(), to_string(config.registration_mode));
  }

  const auto tick = std::chrono::milliseconds(config.campaigns_tick_ms);
  auto next_timer = std::chrono::steady_clock::now();
  bool stopping = false;
  bool was_held = false;
  while (!stopping) {
    auto now = std::chrono::steady_clock::now();
    auto wait = next_timer > now ? std::chrono::duration_cast<std::chrono::milliseconds>(next_timer - now)
                                 : std::chrono::milliseconds(0);
    // While the outbox has work and the link has room, do not sleep.
    if (link.connected() && app->outbox_size() > 0 && link.backlog() < k_link_backlog_target &&
        link.has_room()) {
      wait = std::chrono::milliseconds(0);
    }
    if (app->has_work()) wait = std::chrono::milliseconds(0);
    // Back-pressure on the link's byte budget (mqtt.max_queued_bytes): handling a device message adds its
    // answer to the link's queue, so the loop takes only as many as the room left allows, and while the
    // queue is over budget only the other events (acknowledgements drain the link; HTTP, link changes and
    // stop are answered) until pump() drains it (device_message_allowance).
    const bool room = link.has_room();
    if (!room && !was_held) ++held_total;
    was_held = !room;
    const std::size_t message_allowance = device_message_allowance(link, events.producer_waiting());
    // Drain a batch of events (up to 1000, under one lock): the messages are handled in one transaction
    // (group commit).
    if (auto events_batch = events.pop_batch(wait, 1000, message_allowance); !events_batch.empty()) {
      std::vector<InboundMessage> batch;
      std::vector<App::HttpEvent> http_events;
      std::vector<http::HttpExchange> ops_events;
      for (auto& event : events_batch) {
        Event* ev = &event;
        if (std::holds_alternative<StopRequested>(*ev)) {
          stopping = true;
        } else if (auto* m = std::get_if<InboundMessage>(&*ev)) {
          batch.push_back(std::move(*m));
        } else if (auto* d = std::get_if<PublishDone>(&*ev)) {
          app->on_publish_done(d->tag, d->ok, d->refused);
        } else if (auto* x = std::get_if<http::HttpExchange>(&*ev)) {
          if (x->listener == k_ops_listener) {
            ops_events.push_back(std::move(*x));
          } else {
            http_events.emplace_back(std::move(*x));
          }
        } else if (auto* s = std::get_if<http::HttpStreamed>(&*ev)) {
          http_events.emplace_back(std::move(*s));
        } else if (std::holds_alternative<LinkUp>(*ev)) {
          spdlog::info("MQTT link up: subscribing");
          mqtt_down_cause.clear();
          link.on_connected();
          app->on_link_up();
        } else if (auto* down = std::get_if<LinkDown>(&*ev)) {
          spdlog::warn("MQTT link lost: {}; the link reconnects, the outbox waits", down->cause);
          mqtt_down_cause = down->cause;
        }
      }
      if (auto st = app->handle_batch(batch, std::move(http_events)); !st) {
        spdlog::error("{}; its answers were dropped; rebuilding the service state from the database",
                      st.error().message);
        if (!rebuild()) {
          stopping = true;
          break;
        }
        // Nothing of the batch was committed and the new App knows only the database, so its messages
        // can be handled once more as if they arrived now (its HTTP exchanges were answered 503). A
        // second failure drops them: the loss window of PROTOCOL §1.3.
        if (auto again = app->handle_batch(batch); !again) {
          spdlog::error("{} again; its {} messages are dropped", again.error().message, batch.size());
          if (!rebuild()) {
            stopping = true;
            break;
          }
        }
        for (const auto& x : ops_events) answer_ops(x);
        continue;
      }
      // The batch's answers go to the client library now, not after the flushes and timers below (each
      // may be a commit of its own): a request's round trip is not made to wait for unrelated writes.
      link.pump();
      // After the batch's commit, so that a scrape counts what the batch did.
      for (const auto& x : ops_events) answer_ops(x);
    }
    app->flush();
    if (std::chrono::steady_clock::now() >= next_timer) {
      app->on_timer();
      console_streams.tick(console, std::chrono::steady_clock::now());
      flush_log_suppressions();
      next_timer = std::chrono::steady_clock::now() + tick;
    }
    // The outbox feeds the link in small steps while it has room, so it stops within one step of the
    // byte budget (command lines are bounded by the API's request size).
    while (link.connected() && link.has_room() && link.backlog() < k_link_backlog_target &&
           app->outbox_size() > 0) {
      if (app->pump_outbox(std::min(k_outbox_step, k_link_backlog_target - link.backlog())) == 0) break;
    }
    link.pump();
  }

  // No HTTP request may wait for a loop that is leaving: the listener answers the waiting ones 503.
  if (agent_http) agent_http->stop();
  if (ops_http) ops_http->stop();

  // Finish in-flight database work, give the broker a moment to acknowledge what is in flight, then leave.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (link.connected() && link.backlog() > 0 && std::chrono::steady_clock::now() < deadline) {
    link.pump();
    if (auto ev = events.pop_for(std::chrono::milliseconds(50))) {
      if (auto* d = std::get_if<PublishDone>(&*ev); d && app) app->on_publish_done(d->tag, d->ok, d->refused);
    }
  }
  if (app) app->flush(true);  // none when told to stop while rebuilding
  link.disconnect(2000);
  // Every rate-limit window ends with the service: what the last ones suppressed is reported, not lost.
  detail::log_limiter().set_limits(1, 0);
  flush_log_suppressions();
  spdlog::info("stopped cleanly");
  return 0;
}

}  // namespace dispatch::service
