// The outbox: committed deliveries waiting to be published, and the bookkeeping of their acknowledgements.
#include <spdlog/spdlog.h>

#include "service/app.h"
#include "service/failpoint.h"
#include "storage/commands.h"
#include "storage/devices.h"

namespace dispatch::service {

namespace {
// Enough to rebuild any realistic backlog at start; more waits for the next restart or presence.
constexpr int k_outbox_reload_limit = 2'000'000;
// Expiry is checked at most this often.
constexpr core::TimeMs k_expiry_period_ms = 1000;
}  // namespace

core::Status App::start() {
  auto queued = commands_->deliveries_to_publish(clock_.now_ms(), k_outbox_reload_limit);
  if (!queued) return queued.error();
  for (const auto& d : *queued) enqueue_delivery(d.command_id, d.hardware_id, d.command_line, d.expires_at);
  if (!queued->empty()) spdlog::info("outbox: {} committed deliveries to publish", queued->size());
  if (auto st = provisioning_->start(); !st) return st;
  return campaigns_->start();
}

size_t App::outbox_size() const { return outbox_.size() + campaigns_->outbox_size(); }

void App::enqueue_delivery(const std::string& command_id, const std::string& hw, const std::string& line,
                           std::optional<core::TimeMs> expires_at) {
  if (!queued_keys_.emplace(command_id, hw).second) return;  // already waiting or in flight
  OutboxItem item;
  item.command_id = command_id;
  item.hardware_id = hw;
  item.line = line;
  item.expires_at = expires_at;
  outbox_.push_back(std::move(item));
}

size_t App::pump_outbox(size_t budget) {
  size_t n = 0;
  const core::TimeMs now = clock_.now_ms();
  while (n < budget && !outbox_.empty()) {
    OutboxItem item = std::move(outbox_.front());
    outbox_.pop_front();
    if (canceled_commands_.count(item.command_id) || (item.expires_at && *item.expires_at <= now)) {
      queued_keys_.erase({item.command_id, item.hardware_id});
      continue;
    }
    auto topic = topics_.command_request(item.hardware_id);
    if (!topic) {  // ids come from the database and were validated on the way in
      queued_keys_.erase({item.command_id, item.hardware_id});
      continue;
    }
    OutMessage msg;
    msg.topic = std::move(*topic);
    msg.payload = item.line;
    msg.qos = config_.mqtt_qos;
    if (item.expires_at) msg.expiry_s = std::max<core::TimeMs>(1, (*item.expires_at - now + 999) / 1000);
    msg.tag = next_tag_++;
    in_flight_.emplace(msg.tag, std::move(item));
    publisher_.publish(std::move(msg));
    ++n;
  }
  if (n < budget) n += campaigns_->pump(budget - n);
  return n;
}

void App::on_publish_done(std::uint64_t tag, bool ok) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) {
    campaigns_->on_publish_done(tag, ok);  // a campaign send, or an answer/event with no bookkeeping
    return;
  }
  OutboxItem item = std::move(it->second);
  in_flight_.erase(it);
  if (!ok) {
    // Paho gave up (e.g. the connection dropped): publish again, same command id.
    outbox_.push_front(std::move(item));
    return;
  }
  queued_keys_.erase({item.command_id, item.hardware_id});
  acked_.emplace_back(item.command_id, item.hardware_id);
}

void App::flush(bool force) {
  const core::TimeMs now = clock_.now_ms();
  // Acknowledgements only move deliveries from queued to sent, which nobody outside sees: write them in
  // batches (one fsync per batch, not per loop turn). Losing a batch in a crash only means the same
  // command id is published once more.
  if (!acked_.empty() && (force || acked_.size() >= k_ack_batch || now - last_ack_flush_ >= k_ack_flush_ms)) {
    DISPATCH_FAILPOINT("before_mark_sent");
    auto n = commands_->mark_sent(acked_, now);
    if (!n) {
      spdlog::error("cannot mark {} deliveries sent: {} (they stay queued and are published again)",
                    acked_.size(), n.error().message);
    }
    acked_.clear();
    last_ack_flush_ = now;
  }
  campaigns_->flush();
  if (!seen_.empty() && (force || now - last_seen_flush_ >= k_seen_flush_ms)) {
    std::vector<std::string> ids;
    ids.reserve(seen_.size());
    for (const auto& [hw, t] : seen_) ids.push_back(hw);
    if (auto n = devices_->touch_last_seen(ids, now); !n)
      spdlog::warn("last_seen not updated: {}", n.error().message);
    seen_.clear();
    last_seen_flush_ = now;
  }
}

void App::on_timer() {
  const core::TimeMs now = clock_.now_ms();
  if (now - last_expiry_run_ >= k_expiry_period_ms) {
    last_expiry_run_ = now;
    if (auto n = commands_->expire(now); n && *n > 0) spdlog::info("{} deliveries expired", *n);
  }
  provisioning_->on_timer();
  campaigns_->tick();
}

}  // namespace dispatch::service
