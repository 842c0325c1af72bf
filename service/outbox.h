// Outbox: committed messages for devices waiting to be published, and the bookkeeping of the broker's
// acknowledgements. One outbox serves every owner (command deliveries, campaign sends); it knows nothing
// of either, so it can later be owned per service instance.
//
// Durable before visible: an owner enqueues an item only after the state that produced it is committed.
// The outbox publishes items in order within a budget, asks the owner just before each publish whether
// the item still applies (canceled, answered or superseded meanwhile), drops expired items (the link drops
// them too if they are still waiting there at their expiry), re-queues an unexpired item Paho gave up on
// (same command id), and hands acknowledged items back to their owner in batches
// (hand_back), so the owner can record them with one write.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/topics.h"
#include "service/publisher.h"

namespace dispatch::service {

class OutboxOwner;

// One command line for one device.
struct OutboxItem {
  OutboxOwner* owner = nullptr;
  std::string command_id;
  std::string hardware_id;
  std::string payload;  // the command line
  // Dropped at or after this, by the outbox or by the link (OutMessage::not_after_ms); what remains of it at
  // the hand-off to the broker is the MQTT 5 expiry.
  std::optional<core::TimeMs> expires_at;
  // Owner's bookkeeping, carried untouched.
  std::string group;  // e.g. the campaign id
  int attempt = 0;
  // Set by pump(): when the line was handed to the publisher (before any reply to it can exist).
  core::TimeMs published_at = 0;
};

// A send still waiting for its reply, as the pending pull lists it (PROTOCOL §1.3).
struct PendingSend {
  std::string command_id;
  std::string line;             // the command line, as published
  core::TimeMs created_at = 0;  // orders the pending list (oldest first)
};

class OutboxOwner {
 public:
  virtual ~OutboxOwner() = default;
  // Asked just before item is published: false drops it.
  virtual bool still_wanted(const OutboxItem& item) = 0;
  // Items the broker acknowledged since the last hand_back, in acknowledgement order.
  virtual void acknowledged(std::vector<OutboxItem> items) = 0;
};

class Outbox {
 public:
  // Publishes on topics.command_request(hw) with qos; tags its messages with ids unique in the process
  // (across outboxes too: the daemon rebuilds its App after a rolled-back batch while acknowledgements of the
  // old one's messages are still on their way, and those must not be taken for the new one's).
  Outbox(core::Clock& clock, Publisher& publisher, const protocol::Topics& topics, int qos);

  // Queues item at the back; ignored when the same (command_id, hardware_id) is already waiting or in
  // flight. item.owner must outlive the outbox's use of the item.
  void enqueue(OutboxItem item);
  // Publishes up to budget items; returns how many were published.
  std::size_t pump(std::size_t budget);
  // The broker acknowledged (ok) or the link gave up on (!ok) the message tagged tag. False when the tag
  // is not one of ours (an answer or an event). A failed item goes back to the front of the queue, unless it
  // has expired (the link reports a line past its deadline as failed) or was refused (PublishDone::refused:
  // the same message would be refused again): it is dropped.
  bool on_publish_done(std::uint64_t tag, bool ok, bool refused = false);
  // Hands each owner its acknowledged items (one call per owner with any).
  void hand_back();

  std::size_t size() const { return queue_.size(); }  // waiting, not in flight
  std::size_t in_flight() const { return in_flight_.size(); }

  // Since start: messages handed to the publisher, acknowledged by the broker, given up on by the link (and
  // queued again), and dropped before publishing (expired, canceled, superseded, refused).
  struct Counters {
    std::uint64_t published = 0;
    std::uint64_t acknowledged = 0;
    std::uint64_t retried = 0;
    std::uint64_t dropped = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  core::Clock& clock_;
  Publisher& publisher_;
  const protocol::Topics& topics_;
  int qos_;
  std::deque<OutboxItem> queue_;
  std::unordered_map<std::uint64_t, OutboxItem> in_flight_;
  Counters counters_;
  std::set<std::pair<std::string, std::string>> keys_;  // (command_id, hw) waiting or in flight
  std::vector<OutboxItem> acked_;
};

}  // namespace dispatch::service
