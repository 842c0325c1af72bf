#include "service/outbox.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>

#include "service/logging.h"

namespace dispatch::service {

namespace {

// Process-wide, so that tags stay unique across the App rebuilt after a rolled-back batch (outbox.h).
// Only the service loop thread publishes; the atomic keeps tests with several threads honest too.
std::uint64_t next_publish_tag() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Outbox::Outbox(core::Clock& clock, Publisher& publisher, const protocol::Topics& topics, int qos)
    : clock_(clock), publisher_(publisher), topics_(topics), qos_(qos) {}

void Outbox::enqueue(OutboxItem item) {
  if (!keys_.emplace(item.command_id, item.hardware_id).second) return;  // already waiting or in flight
  queue_.push_back(std::move(item));
}

std::size_t Outbox::pump(std::size_t budget) {
  std::size_t n = 0;
  const core::TimeMs now = clock_.now_ms();
  while (n < budget && !queue_.empty()) {
    OutboxItem item = std::move(queue_.front());
    queue_.pop_front();
    const bool expired = item.expires_at && *item.expires_at <= now;
    auto topic = topics_.command_request(item.hardware_id);
    if (expired || !topic || !item.owner->still_wanted(item)) {
      // Ids come from the database and were validated on the way in: a topic error is unreachable.
      if (!topic)
        log_limited(spdlog::level::err, "outbox.no_topic",
                    {{"hardware_id", item.hardware_id}, {"command_id", item.command_id}},
                    "outbox: no command topic for the device");
      keys_.erase({item.command_id, item.hardware_id});
      ++counters_.dropped;
      continue;
    }
    OutMessage msg;
    msg.topic = std::move(*topic);
    msg.payload = item.payload;
    msg.qos = qos_;
    if (item.expires_at) {
      msg.expiry_s = std::max<core::TimeMs>(1, (*item.expires_at - now + 999) / 1000);
      msg.not_after_ms = *item.expires_at;  // the link drops it if it is still waiting there by then
    }
    msg.tag = next_publish_tag();
    item.published_at = now;
    in_flight_.emplace(msg.tag, std::move(item));
    publisher_.publish(std::move(msg));
    ++counters_.published;
    ++n;
  }
  return n;
}

bool Outbox::on_publish_done(std::uint64_t tag, bool ok, bool refused) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  OutboxItem item = std::move(it->second);
  in_flight_.erase(it);
  if (!ok) {
    if (refused || (item.expires_at && *item.expires_at <= clock_.now_ms())) {
      // Expired on its way (the link drops a line past its deadline), or refused (by the broker or the
      // client library; the same line would be refused again): nothing to publish again.
      keys_.erase({item.command_id, item.hardware_id});
      ++counters_.dropped;
      return true;
    }
    // Given up for another reason: publish again, same command id.
    queue_.push_front(std::move(item));
    ++counters_.retried;
    return true;
  }
  keys_.erase({item.command_id, item.hardware_id});
  acked_.push_back(std::move(item));
  ++counters_.acknowledged;
  return true;
}

void Outbox::hand_back() {
  if (acked_.empty()) return;
  // Usually one owner has every acknowledged item (a fan-out, a campaign's batch): hand the vector over
  // as it is instead of copying it item by item into per-owner vectors (a profiled cost of fan-out).
  OutboxOwner* const first = acked_.front().owner;
  if (std::all_of(acked_.begin(), acked_.end(), [&](const OutboxItem& i) { return i.owner == first; })) {
    std::vector<OutboxItem> items;
    items.swap(acked_);
    acked_.reserve(items.size());
    first->acknowledged(std::move(items));
    return;
  }
  std::map<OutboxOwner*, std::vector<OutboxItem>> by_owner;
  for (auto& item : acked_) by_owner[item.owner].push_back(std::move(item));
  acked_.clear();
  for (auto& [owner, items] : by_owner) owner->acknowledged(std::move(items));
}

}  // namespace dispatch::service
