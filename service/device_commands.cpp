// Device topics of commands (PROTOCOL §1.2, §1.3): replies, pending pulls, metadata and ping.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/core/semver.h"
#include "protocol/core/time.h"
#include "protocol/elp.h"
#include "protocol/errors.h"
#include "protocol/json_request.h"
#include "protocol/reply_line.h"
#include "service/app.h"
#include "service/failpoint.h"
#include "storage/commands.h"
#include "storage/devices.h"

namespace dispatch::service {

using protocol::TopicKind;

void App::device_reply(const std::string& hw, const InboundMessage& m) {
  device_presence(hw);
  auto reply = protocol::parse_reply_line(m.payload);
  if (!reply) {
    ++counters_.replies_malformed;
    spdlog::warn("dropping a malformed reply from {}: {}", hw, reply.error().message);
    return;
  }
  std::string output = std::move(reply->output);
  bool trimmed = false;
  if (static_cast<std::int64_t>(output.size()) > config_.commands_max_output_bytes) {
    output.resize(static_cast<size_t>(config_.commands_max_output_bytes));
    trimmed = true;
  }
  const core::TimeMs now = clock_.now_ms();
  DISPATCH_FAILPOINT("before_reply_commit");
  // Campaign attempts are known in memory: check them first and spare the database a lookup.
  if (campaigns_->on_reply(hw, reply->id, reply->success, output)) return;
  auto outcome = commands_->record_reply(reply->id, hw, reply->success, output, trimmed, now);
  if (!outcome) {
    spdlog::error("cannot record the reply of {} for {}: {}", hw, reply->id, outcome.error().message);
    return;
  }
  if (*outcome == storage::ReplyOutcome::accepted) batch_committed_replies_ = true;
  switch (*outcome) {
    case storage::ReplyOutcome::accepted: {
      nlohmann::json ev{
          {"command_id", reply->id}, {"hardware_id", hw},  {"state", reply->success ? "succeeded" : "failed"},
          {"output", output},        {"trimmed", trimmed}, {"replied_at", core::format_rfc3339(now)}};
      OutMessage msg;
      msg.topic = topics_.command_event(reply->id);
      msg.payload = protocol::dump_json(ev);
      msg.qos = 1;
      publisher_.publish(std::move(msg));
      return;
    }
    case storage::ReplyOutcome::duplicate:
      ++counters_.replies_duplicate;
      return;
    case storage::ReplyOutcome::closed:
      ++counters_.replies_duplicate;
      spdlog::info("late reply from {} for {} (delivery already closed)", hw, reply->id);
      return;
    case storage::ReplyOutcome::unknown:
      ++counters_.replies_unknown;
      spdlog::warn("dropping a reply from {} for command id {} that was never sent to it", hw, reply->id);
      return;
  }
}

void App::device_pending(const std::string& hw, const InboundMessage& m) {
  device_presence(hw);
  protocol::JsonLimits limits;
  limits.max_bytes = static_cast<size_t>(config_.api_max_request_bytes);
  auto body = protocol::parse_json_object(
      m.payload.empty() ? std::string_view("{}") : std::string_view(m.payload), limits);
  if (!body) {
    publish_device(TopicKind::command_pending_reply, hw, protocol::error_payload(body.error()), &m);
    return;
  }
  std::optional<std::string> correlation_id;
  if (auto it = body->find("correlation_id"); it != body->end() && it->is_string())
    correlation_id = it->get<std::string>();
  const core::TimeMs now = clock_.now_ms();
  auto pending = commands_->pending_for_device(hw, now, 50);
  if (!pending) {
    publish_device(TopicKind::command_pending_reply, hw,
                   protocol::error_payload(pending.error(), correlation_id), &m);
    return;
  }
  nlohmann::json lines = nlohmann::json::array();
  std::vector<storage::DeliveryKey> keys;
  for (const auto& d : *pending) {
    lines.push_back(d.command_line);
    keys.emplace_back(d.command_id, d.hardware_id);
  }
  // Handing a command over in the pending list is a delivery: count it before it becomes visible.
  if (!keys.empty()) {
    if (auto n = commands_->mark_sent(keys, now); !n) {
      publish_device(TopicKind::command_pending_reply, hw, protocol::error_payload(n.error(), correlation_id),
                     &m);
      return;
    }
  }
  nlohmann::json out{{"commands", lines}};
  if (correlation_id) out["correlation_id"] = *correlation_id;
  publish_device(TopicKind::command_pending_reply, hw, protocol::dump_json(out), &m);
}

void App::device_metadata(const std::string& hw, const InboundMessage& m) {
  device_presence(hw);
  auto values = protocol::parse_elp(m.payload);
  if (!values) {
    ++counters_.metadata_malformed;
    spdlog::warn("dropping malformed metadata from {}: {}", hw, values.error().message);
    return;
  }
  std::map<std::string, std::string> props;
  std::optional<std::string> version;
  for (const auto& v : *values) {
    props[v.category + "." + v.name] = v.value;
    if (v.category == "health" && v.name == "firmware") {
      if (auto sv = core::parse_semver(v.value)) version = core::format(*sv);
    }
  }
  const core::TimeMs now = clock_.now_ms();
  auto st = devices_->set_properties(hw, props, now);
  if (!st) {
    if (st.error().code != core::ErrorCode::not_found)
      spdlog::error("metadata of {}: {}", hw, st.error().message);
    return;  // metadata of unregistered devices is not kept
  }
  if (version) {
    if (auto s = devices_->set_reported_version(hw, *version, now); !s) {
      spdlog::error("reported version of {}: {}", hw, s.error().message);
      return;
    }
    campaigns_->on_version(hw, *version);
  }
}

void App::device_ping(const std::string& hw, const InboundMessage&) { device_presence(hw); }

void App::device_presence(const std::string& hw) {
  const core::TimeMs now = clock_.now_ms();
  seen_[hw] = now;
  if (config_.commands_redeliver_interval_s <= 0) return;
  // A chatty device (a reply per command, a ping a second) is checked for redelivery at most once per
  // half interval; nothing becomes redeliverable faster than that.
  const core::TimeMs half = config_.commands_redeliver_interval_s * 500;
  auto [it, fresh] = presence_checked_.try_emplace(hw, now);
  if (!fresh) {
    if (now - it->second < half) return;
    it->second = now;
  }
  if (presence_checked_.size() > k_presence_memory) presence_checked_.clear();
  auto again = commands_->redeliverable(hw, now, now - config_.commands_redeliver_interval_s * 1000,
                                        config_.commands_redeliver_max_attempts);
  if (!again) return;
  for (const auto& d : *again) enqueue_delivery(d.command_id, d.hardware_id, d.command_line, d.expires_at);
}

}  // namespace dispatch::service
