// The publish window of the MQTT link (mqtt_link.h): the broker's Receive Maximum, bounded by the options.
#include "service/mqtt/mqtt_link.h"

#include <catch2/catch.hpp>

using dispatch::service::LinkOptions;
using dispatch::service::MqttLink;

namespace {
LinkOptions options(int version, int max_inflight, int max_buffered = 10000) {
  LinkOptions o;
  o.mqtt_version = version;
  o.max_inflight = max_inflight;
  o.max_buffered = max_buffered;
  return o;
}
}  // namespace

TEST_CASE("MQTT 5: the window is the broker's Receive Maximum, at most mqtt.max_inflight when set",
          "[mqtt_link]") {
  CHECK(MqttLink::window_for(options(5, 0), 20) == 20);      // mosquitto's default
  CHECK(MqttLink::window_for(options(5, 0), 1000) == 1000);  // max_inflight_messages 1000
  CHECK(MqttLink::window_for(options(5, 16), 20) == 16);     // an explicit smaller bound
  CHECK(MqttLink::window_for(options(5, 100), 20) == 20);    // never above the Receive Maximum (Paho stall)
}

TEST_CASE("MQTT 5 without a Receive Maximum means 65535, bounded by Paho's buffer", "[mqtt_link]") {
  CHECK(MqttLink::window_for(options(5, 0), 0) == 10000);  // max_buffered: Paho refuses more (-12)
  CHECK(MqttLink::window_for(options(5, 0, 1000000), 0) == 65535);
  CHECK(MqttLink::window_for(options(5, 500), 0) == 500);
}

TEST_CASE("MQTT 3.1.1 has no Receive Maximum: mqtt.max_inflight, else mosquitto's default 20",
          "[mqtt_link]") {
  CHECK(MqttLink::window_for(options(4, 0), 0) == 20);
  CHECK(MqttLink::window_for(options(4, 64), 0) == 64);
  CHECK(MqttLink::window_for(options(4, 0, 100), 0) == 20);
  CHECK(MqttLink::window_for(options(4, 500, 100), 0) == 100);
}
