#include "service/app.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/errors.h"
#include "protocol/frame.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "service/failpoint.h"
#include "storage/commands.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "storage/idempotency.h"
#include "storage/packages.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using protocol::TopicKind;

namespace {

// A reply_to from an MQTT 3.1.1 payload is used only if it is a plain topic we may publish to.
bool usable_reply_topic(std::string_view t) {
  if (t.empty() || t.size() > 1024) return false;
  for (unsigned char c : t) {
    if (c == '+' || c == '#' || c < 0x20 || c == 0x7f) return false;
  }
  return t.front() != '$';
}

}  // namespace

App::App(const Config& config, core::Clock& clock, storage::Database& db, Publisher& publisher)
    : config_(config),
      clock_(clock),
      db_(db),
      publisher_(publisher),
      topics_(config.topics),
      devices_(std::make_unique<storage::DeviceStore>(db)),
      commands_(std::make_unique<storage::CommandStore>(db)),
      packages_(std::make_unique<storage::PackageStore>(db)),
      idempotency_(std::make_unique<storage::IdempotencyStore>(db)),
      provisioning_(std::make_unique<Provisioning>(config, clock, db, publisher_, topics_)),
      campaigns_(std::make_unique<CampaignService>(config, clock, db, publisher_, topics_,
                                                   [this] { return next_tag_++; })) {
  api_routes_ = {
      {{"devices", "register"}, &App::api_devices_register},
      {{"devices", "get"}, &App::api_devices_get},
      {{"devices", "list"}, &App::api_devices_list},
      {{"devices", "delete"}, &App::api_devices_delete},
      {{"commands", "send"}, &App::api_commands_send},
      {{"commands", "get"}, &App::api_commands_get},
      {{"commands", "list"}, &App::api_commands_list},
      {{"commands", "cancel"}, &App::api_commands_cancel},
  };
  for (const char* a : {"create", "get", "list", "update", "delete"})
    api_routes_[{"packages", a}] = &App::api_packages;
  for (const char* a : {"create", "start", "pause", "resume", "terminate", "get", "list", "delete"}) {
    api_routes_[{"campaigns", a}] = &App::api_campaigns;
  }
  device_routes_ = {
      {TopicKind::command_reply, &App::device_reply},
      {TopicKind::command_pending, &App::device_pending},
      {TopicKind::metadata, &App::device_metadata},
      {TopicKind::ping, &App::device_ping},
      {TopicKind::provisioning_request, &App::device_provisioning_request},
      {TopicKind::provisioning_download, &App::device_provisioning_download},
  };
}

App::~App() = default;

std::vector<std::string> App::subscriptions() const { return topics_.subscriptions(); }

void App::handle_batch(const std::vector<InboundMessage>& batch) {
  if (batch.empty()) return;
  publisher_.hold();
  // Handlers run their own transactions as savepoints inside this one: a failing handler rolls back
  // only its own work.
  auto st = db_.transaction([&]() -> core::Status {
    for (const auto& m : batch) handle(m);
    return {};
  });
  if (!st) {
    spdlog::critical(
        "cannot commit a batch of {} messages: {}; stopping so that a restart resumes from the database",
        batch.size(), st.error().message);
    std::abort();
  }
  // Failpoints of the handlers' durability boundaries sit here, where their work is really committed.
  DISPATCH_FAILPOINT("after_batch_commit");
  if (batch_committed_deliveries_) DISPATCH_FAILPOINT("after_delivery_commit");
  if (batch_committed_replies_) DISPATCH_FAILPOINT("after_reply_commit");
  provisioning_->after_commit();
  batch_committed_deliveries_ = batch_committed_replies_ = false;
  publisher_.release();
}

void App::handle(const InboundMessage& m) {
  auto t = topics_.parse(m.topic);
  if (!t) {
    ++counters_.invalid_topics;
    spdlog::debug("dropping a message on an unknown topic");
    return;
  }
  if (t->kind == TopicKind::api) {
    handle_api(*t, m);
    return;
  }
  if (!t->valid) {
    // There is no valid device to answer: count and drop (the topic never reaches SQL).
    ++counters_.invalid_topics;
    spdlog::warn("dropping a message on {} with an invalid hardware id '{}'", protocol::to_string(t->kind),
                 t->hardware_id);
    return;
  }
  // Size limits apply before any parsing: a reply may carry the output limit plus its id, every other
  // device message the request limit.
  const auto limit =
      static_cast<size_t>(t->kind == TopicKind::command_reply ? config_.commands_max_output_bytes + 256
                                                              : config_.api_max_request_bytes);
  if (m.payload.size() > limit) {
    ++counters_.oversize_device_messages;
    spdlog::warn("dropping a {}-byte message on {} from {}: over the limit of {} bytes", m.payload.size(),
                 protocol::to_string(t->kind), t->hardware_id, limit);
    if (t->kind == TopicKind::provisioning_request || t->kind == TopicKind::provisioning_download ||
        t->kind == TopicKind::command_pending) {
      // These expect an answer: say why there is none.
      const TopicKind reply_kind = t->kind == TopicKind::provisioning_request ? TopicKind::provisioning_reply
                                   : t->kind == TopicKind::provisioning_download
                                       ? TopicKind::provisioning_data
                                       : TopicKind::command_pending_reply;
      publish_device(
          reply_kind, t->hardware_id,
          protocol::error_payload(make_error(
              ErrorCode::too_large,
              fmt::format("message of {} bytes exceeds the limit of {} bytes", m.payload.size(), limit))),
          &m);
    }
    return;
  }
  auto route = device_routes_.find(t->kind);
  if (route == device_routes_.end()) {
    ++counters_.invalid_topics;
    return;
  }
  (this->*route->second)(t->hardware_id, m);
}

void App::handle_api(const protocol::ParsedTopic& t, const InboundMessage& m) {
  ApiContext ctx;
  ctx.resource = t.resource;
  ctx.action = t.action;
  if (m.has_correlation_data) ctx.correlation_data = m.correlation_data;
  ctx.reply_topic = m.response_topic;

  // The payload limit applies before any parsing.
  if (t.resource == "packages" && t.action == "upload") {
    handle_upload(ctx, m);
    return;
  }
  protocol::JsonLimits limits;
  limits.max_bytes = static_cast<size_t>(config_.api_max_request_bytes);
  limits.max_depth = config_.api_max_depth;

  auto body = protocol::parse_json_object(m.payload, limits);
  if (body) {
    // MQTT 3.1.1 clients name the answer topic and correlation in the payload.
    if (auto it = body->find("correlation_id"); it != body->end()) {
      if (it->is_string()) ctx.correlation_id = it->get<std::string>();
    }
    if (ctx.reply_topic.empty()) {
      if (auto it = body->find("reply_to");
          it != body->end() && it->is_string() && usable_reply_topic(it->get_ref<const std::string&>())) {
        ctx.reply_topic = it->get<std::string>();
      }
    }
  }
  if (!ctx.reply_topic.empty() && topics_.in_reserved_namespace(ctx.reply_topic)) {
    ++counters_.unanswerable_requests;
    spdlog::warn("API request on {}/{} asks for its answer on a device, API or event topic: refused",
                 t.resource, t.action);
    return;
  }
  if (ctx.reply_topic.empty()) {
    ++counters_.unanswerable_requests;
    spdlog::warn("API request on {}/{} has no Response Topic and no usable reply_to: nobody to answer",
                 t.resource, t.action);
    return;
  }
  if (!body) {
    answer_error(ctx, body.error());
    return;
  }
  auto route = api_routes_.find({t.resource, t.action});
  if (route == api_routes_.end()) {
    answer_error(
        ctx, make_error(ErrorCode::not_found, fmt::format("unknown API action {}/{}", t.resource, t.action)));
    return;
  }
  core::Result<Json> result = make_error(ErrorCode::internal, "handler did not run");
  current_action_ = t.action;
  try {
    result = (this->*route->second)(*body, m);
  } catch (const std::exception& e) {
    // Handlers return errors as values; this is the last line so that a bug never kills the service.
    spdlog::error("API {}/{} failed unexpectedly: {}", t.resource, t.action, e.what());
    result = make_error(ErrorCode::internal, "internal error");
  }
  if (!result) {
    answer_error(ctx, result.error());
    return;
  }
  answer(ctx, *result);
}

void App::handle_upload(ApiContext& ctx, const InboundMessage& m) {
  // A frame: one JSON header line, then the bytes. The header carries reply_to / correlation_id for
  // MQTT 3.1.1 clients. The size limit is the chunk limit plus room for the header.
  const auto limit = static_cast<size_t>(config_.provisioning_max_chunk_bytes) + 4096;
  auto frame =
      m.payload.size() > limit
          ? core::Result<protocol::Frame>(make_error(
                ErrorCode::too_large, fmt::format("upload frame of {} bytes exceeds the limit of {} bytes",
                                                  m.payload.size(), limit)))
          : protocol::parse_frame(m.payload);
  if (frame) {
    if (auto it = frame->header.find("correlation_id"); it != frame->header.end() && it->is_string()) {
      ctx.correlation_id = it->get<std::string>();
    }
    if (ctx.reply_topic.empty()) {
      if (auto it = frame->header.find("reply_to"); it != frame->header.end() && it->is_string() &&
                                                    usable_reply_topic(it->get_ref<const std::string&>())) {
        ctx.reply_topic = it->get<std::string>();
      }
    }
  }
  if (ctx.reply_topic.empty() || topics_.in_reserved_namespace(ctx.reply_topic)) {
    ++counters_.unanswerable_requests;
    spdlog::warn("packages/upload without a usable Response Topic or reply_to: nobody to answer");
    return;
  }
  if (!frame) {
    answer_error(ctx, frame.error());
    return;
  }
  auto result = provisioning_->upload(frame->header, frame->body);
  if (!result) {
    answer_error(ctx, result.error());
    return;
  }
  answer(ctx, *result);
}

core::Result<nlohmann::json> App::api_packages(const Json& body, const InboundMessage&) {
  return provisioning_->api(current_action_, body);
}

core::Result<nlohmann::json> App::api_campaigns(const Json& body, const InboundMessage&) {
  return campaigns_->api(current_action_, body);
}

void App::device_provisioning_request(const std::string& hw, const InboundMessage& m) {
  seen_[hw] = clock_.now_ms();
  provisioning_->on_request(hw, m);
}

void App::device_provisioning_download(const std::string& hw, const InboundMessage& m) {
  seen_[hw] = clock_.now_ms();
  provisioning_->on_download(hw, m);
}

void App::answer(const ApiContext& ctx, const Json& body) {
  Json out = body;
  if (ctx.correlation_id) out["correlation_id"] = *ctx.correlation_id;
  OutMessage msg;
  msg.topic = ctx.reply_topic;
  msg.payload = protocol::dump_json(out);
  msg.qos = 1;
  if (ctx.correlation_data) {
    msg.correlation_data = *ctx.correlation_data;
    msg.has_correlation_data = true;
  }
  publisher_.publish(std::move(msg));
}

void App::answer_error(const ApiContext& ctx, const core::Error& e) {
  OutMessage msg;
  msg.topic = ctx.reply_topic;
  msg.payload = protocol::error_payload(e, ctx.correlation_id);
  msg.qos = 1;
  if (ctx.correlation_data) {
    msg.correlation_data = *ctx.correlation_data;
    msg.has_correlation_data = true;
  }
  publisher_.publish(std::move(msg));
}

void App::publish_device(TopicKind kind, const std::string& hw, std::string payload,
                         const InboundMessage* request, std::optional<std::string> correlation_id) {
  (void)correlation_id;
  auto own = topics_.device(kind, hw);
  if (!own) return;  // hw was validated by the router; unreachable in practice
  OutMessage msg;
  msg.topic = *own;
  if (request && !request->response_topic.empty() &&
      topics_.response_topic_allowed(request->response_topic, kind, hw)) {
    msg.topic = request->response_topic;
  }
  if (request && request->has_correlation_data) {
    msg.correlation_data = request->correlation_data;
    msg.has_correlation_data = true;
  }
  msg.payload = std::move(payload);
  msg.qos = config_.mqtt_qos;
  publisher_.publish(std::move(msg));
}

}  // namespace dispatch::service
