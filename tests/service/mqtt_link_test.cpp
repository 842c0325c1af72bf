// The MQTT link (mqtt_link.h): its publish window (the broker's Receive Maximum, bounded by the options) and
// its publish deadlines, against a real mosquitto.
#include "service/mqtt/mqtt_link.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <thread>
#include <variant>

#include "service/event_queue.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"

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

TEST_CASE("a message still queued in the link at its deadline is not published, it is reported given up",
          "[service][link]") {
  using namespace dispatch::service;
  dispatch::testing::Broker broker;
  ClientOptions co;
  co.uri = broker.uri();
  co.client_id = "deadline-device";
  MqttClient device(co);
  REQUIRE(device.connect(10000));
  REQUIRE(device.subscribe("esthesis/command/request/#"));

  EventQueue events;
  LinkOptions o;
  o.uri = broker.uri();
  o.client_id = "deadline-link";
  o.clean_start = true;
  MqttLink link(o, events);
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  auto line = [&](const std::string& id, std::int64_t not_after_ms, std::uint64_t tag) {
    OutMessage m;
    m.topic = "esthesis/command/request/dev-1";
    m.payload = id + " e true";
    m.not_after_ms = not_after_ms;
    m.tag = tag;
    return m;
  };
  // Queued while the link was down (or the loop unready): the first line's deadline passes meanwhile.
  link.publish(line("old", now_ms() + 50, 1));
  link.publish(line("new", now_ms() + 60'000, 2));
  link.publish(line("plain", 0, 3));
  REQUIRE(link.backlog() == 3);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  link.pump();  // not connected: nothing leaves the queue
  REQUIRE(link.backlog() == 3);
  CHECK(link.expired_total() == 0);
  REQUIRE(link.connect(10000));
  link.pump();

  std::map<std::uint64_t, bool> done;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    if (auto ev = events.pop_for(std::chrono::milliseconds(100))) {
      if (auto* d = std::get_if<PublishDone>(&*ev)) done[d->tag] = d->ok;
    }
    link.pump();
  }
  CHECK(done == std::map<std::uint64_t, bool>{{1, false}, {2, true}, {3, true}});
  CHECK(link.expired_total() == 1);
  CHECK(link.published_total() == 2);
  CHECK(link.backlog() == 0);
  CHECK(link.queued_bytes() == 0);
  // The device got the two live lines, in order, and never the expired one.
  std::vector<std::string> got;
  while (auto m = device.next(got.size() < 2 ? 5000 : 300)) got.push_back(m->payload);
  CHECK(got == std::vector<std::string>{"new e true", "plain e true"});
}
