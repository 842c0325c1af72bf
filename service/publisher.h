// Publisher: where the service's outgoing messages go. The MQTT link in the daemon; a recording fake in
// unit tests, so handlers are tested without a broker.
#pragma once

#include <cstddef>
#include <vector>

#include "service/mqtt/message.h"
#include "service/mqtt/mqtt_link.h"

namespace dispatch::service {

class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(OutMessage m) = 0;
  // The largest MQTT packet the broker accepts (MQTT 5 CONNACK Maximum Packet Size), bytes; 0 = none known.
  // Answers check against it before they are published (Router).
  virtual std::size_t max_packet_bytes() const { return 0; }
};

class LinkPublisher final : public Publisher {
 public:
  explicit LinkPublisher(MqttLink& link) : link_(link) {}
  void publish(OutMessage m) override { link_.publish(std::move(m)); }
  std::size_t max_packet_bytes() const override { return link_.max_packet_bytes(); }

 private:
  MqttLink& link_;
};

// Holds messages while a batch of handlers runs inside one database transaction, and passes them on
// only after that transaction committed (durable before visible, with one fsync per batch).
class BufferedPublisher final : public Publisher {
 public:
  explicit BufferedPublisher(Publisher& inner) : inner_(inner) {}
  void publish(OutMessage m) override {
    if (buffering_) {
      held_.push_back(std::move(m));
    } else {
      inner_.publish(std::move(m));
    }
  }
  std::size_t max_packet_bytes() const override { return inner_.max_packet_bytes(); }
  void hold() { buffering_ = true; }
  // Passes every held message on, in order, and stops holding.
  void release() {
    buffering_ = false;
    for (auto& m : held_) inner_.publish(std::move(m));
    held_.clear();
  }
  // Drops every held message and stops holding (their batch was rolled back: nothing of it may show).
  void discard() {
    buffering_ = false;
    held_.clear();
  }

 private:
  Publisher& inner_;
  bool buffering_ = false;
  std::vector<OutMessage> held_;
};

class RecordingPublisher final : public Publisher {
 public:
  void publish(OutMessage m) override { sent.push_back(std::move(m)); }
  std::size_t max_packet_bytes() const override { return max_packet; }
  std::vector<OutMessage> sent;
  std::size_t max_packet = 0;  // what a broker's CONNACK would announce; 0 = none
};

}  // namespace dispatch::service
