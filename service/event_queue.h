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

namespace dispatch::service {

struct InboundMessage {
  std::string topic;
  std::string payload;
  std::string response_topic;    // MQTT 5 Response Topic, empty when absent
  std::string correlation_data;  // MQTT 5 Correlation Data, empty when absent
  bool has_correlation_data = false;
};

// The broker acknowledged (ok) or Paho gave up on (!ok) the publish tagged `tag`.
struct PublishDone {
  std::uint64_t tag = 0;
  bool ok = false;
};

struct LinkUp {};
struct LinkDown {
  std::string cause;
};
// SIGTERM / SIGINT: finish what is in hand, disconnect, exit 0.
struct StopRequested {};

using Event = std::variant<InboundMessage, PublishDone, LinkUp, LinkDown, StopRequested, http::HttpExchange,
                           http::HttpStreamed>;

class EventQueue {
 public:
  explicit EventQueue(size_t capacity = 200000) : capacity_(capacity) {}

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
