// EventQueue: the one hand-off from Paho's threads (and timers) to the service loop.
// Producers block when the queue is full: a slow loop then pushes back on the broker over TCP instead of
// growing memory without bound (Paho's own consumer queue is unbounded, stack.md P6).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
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
  explicit EventQueue(size_t capacity = 200000) : capacity_(capacity) {}

  // LinkEvents, on Paho's threads: a received message waits for room, the rest never blocks.
  void on_message(InboundMessage m) override { push(std::move(m)); }
  void on_publish_done(PublishDone d) override { push_nonblocking(d); }
  void on_link_up() override { push_nonblocking(LinkUp{}); }
  void on_link_down(std::string cause) override { push_nonblocking(LinkDown{std::move(cause)}); }

  void push(Event e) {
    std::unique_lock lk(mu_);
    not_full_.wait(lk, [&] { return q_.size() < capacity_ || closed_; });
    q_.push_back(std::move(e));
    not_empty_.notify_one();
  }

  // Acknowledgements never block: they free capacity in Paho and must not wait behind a full queue.
  void push_nonblocking(Event e) {
    std::lock_guard lk(mu_);
    q_.push_back(std::move(e));
    not_empty_.notify_one();
  }

  std::optional<Event> pop_for(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu_);
    if (!not_empty_.wait_for(lk, timeout, [&] { return !q_.empty() || closed_; })) return std::nullopt;
    if (q_.empty()) return std::nullopt;
    Event e = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return e;
  }

  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  size_t size() const {
    std::lock_guard lk(mu_);
    return q_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<Event> q_;
  size_t capacity_;
  bool closed_ = false;
};

}  // namespace dispatch::service
