// DeviceReplies: publishes an answer to a device's provisioning request on the device's own topic, or
// on the request's Response Topic when PROTOCOL §2.1 allows it; Correlation Data is echoed.
#pragma once

#include <string>

#include "protocol/topics.h"
#include "service/event_queue.h"
#include "service/publisher.h"

namespace dispatch::service::provisioning {

class DeviceReplies {
 public:
  DeviceReplies(Publisher& publisher, const protocol::Topics& topics)
      : publisher_(publisher), topics_(topics) {}

  // `hw` must be a valid hardware id (the router checked it); `kind` is provisioning_reply or
  // provisioning_data.
  void send(const std::string& hw, protocol::TopicKind kind, const InboundMessage& request,
            std::string payload);

 private:
  Publisher& publisher_;
  const protocol::Topics& topics_;
};

}  // namespace dispatch::service::provisioning
