// Conversion of a received Paho message into our InboundMessage, shared by MqttLink and MqttClient.
// Only files that already include Paho include this header.
#pragma once

#include <mqtt/message.h>

#include <string>

#include "service/mqtt/message.h"

namespace dispatch::service {

// Reads topic, payload and the MQTT 5 Response Topic / Correlation Data (absent properties stay empty;
// mqtt::get would throw std::bad_cast for them).
inline InboundMessage to_inbound(const mqtt::message& m) {
  InboundMessage in;
  in.topic = m.get_topic();
  in.payload = m.get_payload_str();
  const auto& p = m.get_properties();
  if (p.contains(mqtt::property::RESPONSE_TOPIC)) {
    in.response_topic = mqtt::get<std::string>(p, mqtt::property::RESPONSE_TOPIC);
  }
  if (p.contains(mqtt::property::CORRELATION_DATA)) {
    in.correlation_data = mqtt::get<std::string>(p, mqtt::property::CORRELATION_DATA);
    in.has_correlation_data = true;
  }
  return in;
}

}  // namespace dispatch::service
