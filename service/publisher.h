// Publisher: where the service's outgoing messages go. The MQTT link in the daemon; a recording fake in
// unit tests, so handlers are tested without a broker.
#pragma once

#include <vector>

#include "service/mqtt_link.h"

namespace dispatch::service {

class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(OutMessage m) = 0;
};

class LinkPublisher final : public Publisher {
 public:
  explicit LinkPublisher(MqttLink& link) : link_(link) {}
  void publish(OutMessage m) override { link_.publish(std::move(m)); }

 private:
  MqttLink& link_;
};

class RecordingPublisher final : public Publisher {
 public:
  void publish(OutMessage m) override { sent.push_back(std::move(m)); }
  std::vector<OutMessage> sent;
};

}  // namespace dispatch::service
