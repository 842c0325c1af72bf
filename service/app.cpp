#include "service/app.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "service/failpoint.h"
#include "storage/database.h"

namespace dispatch::service {

using protocol::TopicKind;

namespace {

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
      publisher_(publisher),
      topics_(config.topics),
      outbox_(clock, publisher_, topics_, config.mqtt_qos),
      router_(topics_, publisher_, router_limits(config)),
      devices_(config, clock, db),
      commands_(config, clock, db, publisher_, topics_, outbox_, effects_),
      provisioning_(config, clock, db, publisher_, topics_, effects_),
      campaigns_(config, clock, db, publisher_, topics_, outbox_, effects_),
      agent_api_(config, devices_, provisioning_) {
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
  router_.set_device_hook([this](TopicKind kind, const std::string& hw) { on_device_message(kind, hw); });
}

App::~App() = default;

// Presence: every device message refreshes last_seen; a command-side message (reply, pending pull,
// metadata, ping) also lets the commands module redeliver what the device never answered.
void App::on_device_message(TopicKind kind, const std::string& hw) {
  devices_.seen(hw);
  if (kind == TopicKind::provisioning_request || kind == TopicKind::provisioning_download) return;
  commands_.on_presence(hw);
}

core::Status App::start() {
  if (auto st = commands_.start(); !st) return st;
  if (auto st = provisioning_.start(); !st) return st;
  if (auto st = agent_api_.start(); !st) return st;
  return campaigns_.start();
}

std::vector<std::string> App::subscriptions() const { return router_.subscriptions(); }

void App::handle(const InboundMessage& m) { router_.dispatch(m); }

core::Status App::handle_batch(const std::vector<InboundMessage>& batch) { return handle_batch(batch, {}); }

core::Status App::handle_batch(const std::vector<InboundMessage>& batch, std::vector<HttpEvent> http) {
  if (batch.empty() && http.empty()) return {};
  publisher_.hold();
  // HTTP answers wait for the commit like publishes do (durable before visible).
  AgentApi::Answers answers;
  // Handlers run their own transactions as savepoints inside this one: a failing handler rolls back
  // only its own work. The router catches whatever a handler throws.
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

void App::on_publish_done(std::uint64_t tag, bool ok) {
  // Answers and events carry no tag; only outbox messages are tracked.
  (void)outbox_.on_publish_done(tag, ok);
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
  commands_.on_timer();
  provisioning_.on_timer();
  campaigns_.tick();
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
  return c;
}

}  // namespace dispatch::service
