// EventQueue: the one hand-off from Paho's threads (and timers) to the service loop.
// Producers of device messages block when the queue is full: a slow loop then pushes back on the broker
// over TCP instead of growing memory without bound (Paho's own consumer queue is unbounded, stack.md P6).
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

  explicit EventQueue(size_t capacity = 200000) : capacity_(capacity) {}

  // LinkEvents, on Paho's threads: a received message waits for room, the rest never blocks.
  void on_message(InboundMessage m) override { push(std::move(m)); }
  void on_publish_done(PublishDone d) override { push_nonblocking(d); }
  void on_link_up() override { push_nonblocking(LinkUp{}); }
  void on_link_down(std::string cause) override { push_nonblocking(LinkDown{std::move(cause)}); }

  // Waits for room (at most `capacity` device messages wait), then queues e. Other events never wait.
  void push(Event e) {
    if (!std::holds_alternative<InboundMessage>(e)) return push_nonblocking(std::move(e));
    std::unique_lock lk(mu_);
    auto room = [&] { return messages_.size() < capacity_ || closed_; };
    if (!room()) {
      ++producers_waiting_;
      not_empty_.notify_one();  // a loop holding messages back lets one in (pop_for, Take::control)
      not_full_.wait(lk, room);
      --producers_waiting_;
    }
    messages_.push_back({next_seq_++, std::move(e)});
    not_empty_.notify_one();
  }

  // Acknowledgements never block: they free capacity in Paho and must not wait behind a full queue.
  void push_nonblocking(Event e) {
    std::lock_guard lk(mu_);
    auto& lane = std::holds_alternative<InboundMessage>(e) ? messages_ : control_;
    lane.push_back({next_seq_++, std::move(e)});
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
    if (lane == &messages_) not_full_.notify_one();
    return e;
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
  int producers_waiting_ = 0;
  bool closed_ = false;
};

}  // namespace dispatch::service
