// EventQueue: the one hand-off from the MQTT link's network thread, the HTTP listeners' threads (and timers)
// to the service loop.
// Producers of device messages block when the queue is full — `capacity` messages or `max_bytes` bytes of
// them (topic, payload, Response Topic, Correlation Data), whichever comes first: a slow loop then holds the
// link's network thread in its message callback, so it stops reading and the broker is pushed back over
// TCP instead of our memory growing without bound. The broker then keeps the messages for our session, up to
// its own queue limits (docs/security.md). One message larger than max_bytes is let in when the queue holds
// no other message.
//
// Device messages and the other events (acknowledgements, link changes, HTTP exchanges, stop) wait in two
// lanes, popped in arrival order. The loop can take only the other lane (pop_for with
// Take::control) while it must not take device messages: while the MQTT link's outbound queue is over its
// byte budget (MqttLink::has_room), handling a device message would add its answer to that queue.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "service/http/http_exchange.h"
#include "service/mqtt/message.h"

namespace dispatch::service {

// SIGTERM / SIGINT: finish what is in hand, disconnect, exit 0.
struct StopRequested {};

using Event = std::variant<InboundMessage, PublishDone, LinkUp, LinkDown, StopRequested, http::HttpExchange,
                           http::HttpStreamed>;

class EventQueue final : public LinkEvents {
 public:
  // What pop_for may take: every event, or only the events that are not device messages.
  enum class Take { all, control };

  static constexpr size_t k_default_capacity = 200000;
  static constexpr size_t k_default_max_bytes = 64 * 1024 * 1024;

  explicit EventQueue(size_t capacity = k_default_capacity, size_t max_bytes = k_default_max_bytes)
      : capacity_(capacity), max_bytes_(max_bytes) {}

  // What a device message costs in the queue.
  static size_t message_bytes(const InboundMessage& m) {
    return m.topic.size() + m.payload.size() + m.response_topic.size() + m.correlation_data.size();
  }

  // LinkEvents, on the link's network thread: a received message waits for room, the rest never blocks.
  void on_message(InboundMessage m) override { push(std::move(m)); }
  void on_publish_done(PublishDone d) override { push_nonblocking(d); }
  void on_link_up() override { push_nonblocking(LinkUp{}); }
  void on_link_down(std::string cause) override { push_nonblocking(LinkDown{std::move(cause)}); }

  // Waits for room (at most `capacity` device messages wait), then queues e. Other events never wait.
  void push(Event e) {
    if (!std::holds_alternative<InboundMessage>(e)) return push_nonblocking(std::move(e));
    const size_t bytes = message_bytes(std::get<InboundMessage>(e));
    std::unique_lock lk(mu_);
    auto room = [&] {
      return closed_ || messages_.empty() ||
             (messages_.size() < capacity_ && message_bytes_ + bytes <= max_bytes_);
    };
    if (!room()) {
      ++producers_waiting_;
      ++waits_total_;
      not_empty_.notify_one();  // a loop holding messages back lets one in (pop_for, Take::control)
      not_full_.wait(lk, room);
      --producers_waiting_;
    }
    message_bytes_ += bytes;
    messages_.push_back({next_seq_++, std::move(e)});
    not_empty_.notify_one();
  }

  // Acknowledgements never block: they free the publish window and must not wait behind a full queue.
  void push_nonblocking(Event e) {
    std::lock_guard lk(mu_);
    const bool message = std::holds_alternative<InboundMessage>(e);
    if (message) message_bytes_ += message_bytes(std::get<InboundMessage>(e));
    (message ? messages_ : control_).push_back({next_seq_++, std::move(e)});
    not_empty_.notify_one();
  }

  // The oldest event `take` allows, waiting up to timeout for one. With Take::control the wait also ends
  // when a producer starts waiting for room (producer_waiting()), so the caller can let one message in.
  std::optional<Event> pop_for(std::chrono::milliseconds timeout, Take take = Take::all) {
    std::unique_lock lk(mu_);
    auto ready = [&] {
      if (closed_ || !control_.empty()) return true;
      return take == Take::all ? !messages_.empty() : producers_waiting_ > 0;
    };
    if (!not_empty_.wait_for(lk, timeout, ready)) return std::nullopt;
    std::deque<Entry>* lane = nullptr;
    if (take == Take::all && !messages_.empty() &&
        (control_.empty() || messages_.front().seq < control_.front().seq)) {
      lane = &messages_;
    } else if (!control_.empty()) {
      lane = &control_;
    } else {
      return std::nullopt;
    }
    Event e = std::move(lane->front().event);
    lane->pop_front();
    if (lane == &messages_) {
      message_bytes_ -= message_bytes(std::get<InboundMessage>(e));
      not_full_.notify_all();  // the freed bytes may let in a producer other than the first
    }
    return e;
  }

  // Up to max_events events in arrival order, at most max_messages of them device messages, under one lock
  // (the loop's batch: pop_for per event took the lock and woke producers once per event). Waits up to
  // timeout for the first as pop_for does: with Take::all when max_messages > 0, else with Take::control.
  // Stops after a StopRequested. Empty when nothing came within the timeout.
  std::vector<Event> pop_batch(std::chrono::milliseconds timeout, std::size_t max_events,
                               std::size_t max_messages) {
    std::vector<Event> out;
    std::unique_lock lk(mu_);
    auto ready = [&] {
      if (closed_ || !control_.empty()) return true;
      return max_messages > 0 ? !messages_.empty() : producers_waiting_ > 0;
    };
    if (!not_empty_.wait_for(lk, timeout, ready)) return out;
    std::size_t taken = 0;
    while (out.size() < max_events) {
      std::deque<Entry>* lane = nullptr;
      if (taken < max_messages && !messages_.empty() &&
          (control_.empty() || messages_.front().seq < control_.front().seq)) {
        lane = &messages_;
      } else if (!control_.empty()) {
        lane = &control_;
      } else {
        break;
      }
      out.push_back(std::move(lane->front().event));
      lane->pop_front();
      if (lane == &messages_) {
        message_bytes_ -= message_bytes(std::get<InboundMessage>(out.back()));
        ++taken;
      } else if (std::holds_alternative<StopRequested>(out.back())) {
        break;
      }
    }
    if (taken > 0) not_full_.notify_all();  // the freed bytes may let in more than one producer
    return out;
  }

  // A producer of device messages waits for room right now.
  bool producer_waiting() const {
    std::lock_guard lk(mu_);
    return producers_waiting_ > 0;
  }

  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  size_t size() const {
    std::lock_guard lk(mu_);
    return messages_.size() + control_.size();
  }
  // Bytes of the device messages waiting (message_bytes): at most max_bytes(), or one larger message.
  size_t bytes() const {
    std::lock_guard lk(mu_);
    return message_bytes_;
  }
  size_t max_bytes() const { return max_bytes_; }
  // Times a producer of device messages found the queue full and waited (pushing back on the broker).
  std::uint64_t waits_total() const {
    std::lock_guard lk(mu_);
    return waits_total_;
  }

 private:
  struct Entry {
    std::uint64_t seq;
    Event event;
  };
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Entry> messages_;  // InboundMessage only
  std::deque<Entry> control_;   // everything else
  std::uint64_t next_seq_ = 0;
  size_t capacity_;
  size_t max_bytes_;
  size_t message_bytes_ = 0;  // message_bytes() of the messages in messages_
  std::uint64_t waits_total_ = 0;
  int producers_waiting_ = 0;
  bool closed_ = false;
};

}  // namespace dispatch::service
