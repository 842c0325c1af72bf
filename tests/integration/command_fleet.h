// Simulated devices for integration tests: one connection listens on every device's command topic and a
// worker answers each command line on that device's reply topic with `<id> s ok`, or `<id> f boom` where
// fails(hw) says so. A repeated command id is answered again (the id is the device's idempotency key,
// PROTOCOL §1.3). Per device it records the distinct command ids in the order first seen and the number
// of deliveries; tests wait on these (wait_distinct, wait_contacted) instead of sleeping.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "service/mqtt/mqtt_client.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/support/broker.h"

namespace dispatch::testing {

class CommandFleet {
 public:
  explicit CommandFleet(const Broker& b, std::function<bool(const std::string&)> fails = {})
      : fails_(std::move(fails)) {
    replier_ = connected_client(b, 256);
    listener_ = connected_client(b);
    listener_->set_handler([this](service::InboundMessage&& m) {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(m));
      cv_.notify_one();
    });
    REQUIRE(listener_->subscribe("esthesis/command/request/+", 1));
    worker_ = std::thread([this] { run(); });
  }
  ~CommandFleet() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
    listener_->disconnect();
  }
  CommandFleet(const CommandFleet&) = delete;
  CommandFleet& operator=(const CommandFleet&) = delete;

  // While held, commands are received and recorded but not answered: a campaign whose sends all wait for
  // their replies cannot finish, so a test can act on it while it is certainly running. release_replies()
  // sends the kept answers, in the order the commands came.
  void hold_replies() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void release_replies() {
    std::vector<std::pair<std::string, std::string>> kept;
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
      kept.swap(kept_);
    }
    for (const auto& [topic, payload] : kept) (void)replier_->publish(topic, payload, 1);
  }

  // Device → its distinct command ids, in the order first received.
  std::map<std::string, std::vector<std::string>> ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }
  // Device → how many command lines it received (re-deliveries included).
  std::map<std::string, int> deliveries() {
    std::lock_guard<std::mutex> lock(mu_);
    return deliveries_;
  }
  // Waits until the devices together have received at least n distinct command ids (re-deliveries do
  // not count); false on timeout.
  bool wait_distinct(size_t n, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return seen_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return distinct_ >= n; });
  }
  // Waits until `hw` has received at least one command; false on timeout.
  bool wait_contacted(const std::string& hw, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return seen_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return ids_.count(hw) > 0; });
  }
  // How many devices whose id starts with prefix received anything.
  size_t contacted(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [hw, v] : ids_) n += hw.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }

 private:
  void run() {
    for (;;) {
      std::string topic, payload;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        service::InboundMessage m = std::move(queue_.front());
        queue_.pop_front();
        const std::string hw = m.topic.substr(m.topic.rfind('/') + 1);
        const std::string id = m.payload.substr(0, m.payload.find(' '));
        auto& seen = ids_[hw];
        if (std::find(seen.begin(), seen.end(), id) == seen.end()) {
          seen.push_back(id);
          ++distinct_;
        }
        ++deliveries_[hw];
        seen_cv_.notify_all();
        topic = "esthesis/command/reply/" + hw;
        payload = id + (fails_ && fails_(hw) ? " f boom" : " s ok");
        if (held_) {
          kept_.emplace_back(std::move(topic), std::move(payload));
          continue;
        }
      }
      (void)replier_->publish(topic, payload, 1);
    }
  }

  std::function<bool(const std::string&)> fails_;
  std::unique_ptr<service::MqttClient> replier_, listener_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable seen_cv_;  // ids_ changed
  size_t distinct_ = 0;
  std::deque<service::InboundMessage> queue_;
  std::map<std::string, std::vector<std::string>> ids_;
  std::map<std::string, int> deliveries_;
  bool stop_ = false;
  bool held_ = false;
  std::vector<std::pair<std::string, std::string>> kept_;  // answers kept while held_
  std::thread worker_;
};

}  // namespace dispatch::testing
