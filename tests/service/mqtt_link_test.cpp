// The MQTT link (mqtt_link.h): its publish window (the broker's Receive Maximum, bounded by the options), its
// publish deadlines, refused messages and connection failures, against a real mosquitto.
#include "service/mqtt/mqtt_link.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <thread>
#include <variant>

#include "service/event_queue.h"
#include "service/mqtt/broker_uri.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

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

// The link's options for a fresh session (clean start) on the broker.
LinkOptions fresh_link(const dispatch::testing::Broker& broker, const std::string& client_id) {
  LinkOptions o;
  o.uri = broker.uri();
  o.client_id = client_id;
  o.clean_start = true;
  return o;
}

// A device's client of the broker (the tools' Paho client), connected and subscribed to filter.
std::unique_ptr<dispatch::service::MqttClient> subscribed_device(const dispatch::testing::Broker& broker,
                                                                 const std::string& client_id,
                                                                 const std::string& filter) {
  dispatch::service::ClientOptions co;
  co.uri = broker.uri();
  co.client_id = client_id;
  auto device = std::make_unique<dispatch::service::MqttClient>(co);
  REQUIRE(device->connect(10000));
  REQUIRE(device->subscribe(filter));
  return device;
}
}  // namespace

TEST_CASE("MQTT 5: the window is the broker's Receive Maximum, at most mqtt.max_inflight when set",
          "[mqtt_link]") {
  CHECK(MqttLink::window_for(options(5, 0), 20) == 20);      // mosquitto's default
  CHECK(MqttLink::window_for(options(5, 0), 1000) == 1000);  // max_inflight_messages 1000
  CHECK(MqttLink::window_for(options(5, 16), 20) == 16);     // an explicit smaller bound
  CHECK(MqttLink::window_for(options(5, 100), 20) == 20);    // never above the Receive Maximum (Paho stall)
}

TEST_CASE("MQTT 5 without a Receive Maximum means 65535, bounded by mqtt.max_buffered", "[mqtt_link]") {
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
  auto device = subscribed_device(broker, "deadline-device", "esthesis/command/request/#");

  EventQueue events;
  MqttLink link(fresh_link(broker, "deadline-link"), events);
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
  while (auto m = device->next(got.size() < 2 ? 5000 : 300)) got.push_back(m->payload);
  CHECK(got == std::vector<std::string>{"new e true", "plain e true"});
}

TEST_CASE("a pump of many publishes wakes the network thread once, and a lone publish leaves at once",
          "[service][link]") {
  using namespace dispatch::service;
  // A window of 1000: the whole batch is handed to libmosquitto in one pump.
  dispatch::testing::Broker broker("max_inflight_messages 1000\n");
  auto device = subscribed_device(broker, "passes-device", "passes/#");

  EventQueue events;
  MqttLink link(fresh_link(broker, "passes-link"), events);
  REQUIRE(link.connect(10000));
  REQUIRE(link.max_inflight() == 1000);
  const auto wait_done = [&](std::size_t n) {
    std::size_t done = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (done < n && std::chrono::steady_clock::now() < deadline) {
      if (auto ev = events.pop_for(std::chrono::milliseconds(100)))
        done += std::holds_alternative<PublishDone>(*ev) ? 1 : 0;
    }
    return done;
  };
  // libmosquitto's own loop (mosquitto_loop) runs one pass per packet queued from another thread, each
  // with a select() and a read of its socket pair; ours one per wake-up (and per write the socket did not
  // take whole). QoS 0, so that no acknowledgement adds passes of its own: on a loaded machine PUBACKs
  // arrive in many small reads, a pass each, which is not what this test is about.
  constexpr int k_batch = 1000;
  for (int i = 0; i < k_batch; ++i) {
    OutMessage m;
    m.topic = "passes/" + std::to_string(i);
    m.payload = "line " + std::to_string(i);
    m.qos = 0;
    link.publish(std::move(m));
  }
  const std::uint64_t before = link.loop_passes();
  link.pump();
  REQUIRE(wait_done(k_batch) == k_batch);
  const std::uint64_t passes = link.loop_passes() - before;
  INFO("network loop passes for " << k_batch << " publishes: " << passes);
  CHECK(passes < k_batch / 4);
  std::size_t got = 0;
  while (got < k_batch && device->next(5000)) ++got;
  CHECK(got == k_batch);

  // The owner's pump wakes the thread from its poll() (100 ms long): a lone line does not wait for it.
  std::vector<double> ms;
  for (int i = 0; i < 15; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the thread is back in its poll()
    OutMessage m;
    m.topic = "passes/lone";
    m.payload = "lone " + std::to_string(i);
    const auto t0 = std::chrono::steady_clock::now();
    link.publish(std::move(m));
    link.pump();
    REQUIRE(device->next(5000));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(wait_done(1) == 1);
  }
  std::sort(ms.begin(), ms.end());
  INFO("median publish-to-delivery " << ms[ms.size() / 2] << " ms");
  CHECK(ms[ms.size() / 2] < 30.0);
}

TEST_CASE("broker URIs: scheme, host and port, with the default port of plain MQTT and of TLS",
          "[mqtt_link]") {
  using dispatch::service::parse_broker_uri;
  auto a = parse_broker_uri("tcp://127.0.0.1:18830");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 18830);
  CHECK_FALSE(a->tls);
  CHECK(parse_broker_uri("mqtt://broker.example")->port == 1883);
  auto t = parse_broker_uri("ssl://broker.example");
  REQUIRE(t);
  CHECK(t->tls);
  CHECK(t->port == 8883);
  CHECK(parse_broker_uri("mqtts://b:9000")->port == 9000);
  auto v6 = parse_broker_uri("tcp://[::1]:1884");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 1884);
  CHECK_FALSE(parse_broker_uri("ws://b:80"));
  CHECK_FALSE(parse_broker_uri("127.0.0.1:1883"));
  CHECK_FALSE(parse_broker_uri("tcp://:1883"));
  CHECK_FALSE(parse_broker_uri("tcp://b:0"));
  CHECK_FALSE(parse_broker_uri("tcp://b:65536"));
  CHECK_FALSE(parse_broker_uri("tcp://b:12x"));
}

namespace {
// Publishes the lines through a connected link and collects each tag's PublishDone.
std::map<std::uint64_t, dispatch::service::PublishDone> publish_all(
    dispatch::service::MqttLink& link, dispatch::service::EventQueue& events,
    std::vector<dispatch::service::OutMessage> lines) {
  using namespace dispatch::service;
  const std::size_t n = lines.size();
  for (auto& m : lines) link.publish(std::move(m));
  std::map<std::uint64_t, PublishDone> done;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.size() < n && std::chrono::steady_clock::now() < deadline) {
    link.pump();
    if (auto ev = events.pop_for(std::chrono::milliseconds(100))) {
      if (auto* d = std::get_if<PublishDone>(&*ev)) done[d->tag] = *d;
      if (std::holds_alternative<LinkUp>(*ev)) link.on_connected();
    }
  }
  return done;
}

dispatch::service::OutMessage out_line(const std::string& topic, std::string payload, std::uint64_t tag) {
  dispatch::service::OutMessage m;
  m.topic = topic;
  m.payload = std::move(payload);
  m.tag = tag;
  return m;
}
}  // namespace

TEST_CASE(
    "a message over the broker's Maximum Packet Size is refused and given up while the next ones go out",
    "[service][link]") {
  using namespace dispatch::service;
  dispatch::testing::Broker broker("max_packet_size 2000\n");
  auto device = subscribed_device(broker, "packet-device", "esthesis/command/request/#");

  EventQueue events;
  MqttLink link(fresh_link(broker, "packet-link"), events);
  REQUIRE(link.connect(10000));
  CHECK(link.max_packet_bytes() == 2000);
  auto done = publish_all(link, events,
                          {out_line("esthesis/command/request/dev-1", "c-1 e " + std::string(5000, 'x'), 1),
                           out_line("esthesis/command/request/dev-1", "c-2 e true", 2)});
  REQUIRE(done.size() == 2);
  CHECK_FALSE(done[1].ok);
  CHECK(done[1].refused);
  CHECK(done[2].ok);
  CHECK_FALSE(done[2].refused);
  CHECK(link.refused_total() == 1);
  CHECK(link.backlog() == 0);
  auto m = device->next(5000);
  REQUIRE(m);
  CHECK(m->payload == "c-2 e true");
  CHECK_FALSE(device->next(300));
}

TEST_CASE(
    "a publish the broker refuses (PUBACK 0x87, its ACL) is given up as refused while the allowed one is "
    "acknowledged",
    "[service][link]") {
  using namespace dispatch::service;
  dispatch::testing::TempDir dir;
  {
    std::ofstream acl(dir.path() + "/acl");
    acl << "topic readwrite allowed/#\n";
  }
  dispatch::testing::Broker broker("acl_file " + dir.path() + "/acl\n");
  EventQueue events;
  MqttLink link(fresh_link(broker, "acl-link"), events);
  REQUIRE(link.connect(10000));
  auto done = publish_all(link, events, {out_line("denied/x", "no", 1), out_line("allowed/x", "yes", 2)});
  REQUIRE(done.size() == 2);
  CHECK_FALSE(done[1].ok);
  CHECK(done[1].refused);
  CHECK(done[2].ok);
  CHECK(link.refused_total() == 1);
  CHECK(link.published_total() == 1);
}

TEST_CASE("the link says why a connection fails: nothing listening, a refused CONNACK, not a broker URI",
          "[service][link]") {
  using namespace dispatch::service;
  EventQueue events;
  int port = 0;
  {
    dispatch::testing::Broker probe;  // a free port: nothing listens on it once probe is gone
    port = probe.port();
  }
  LinkOptions o;
  o.uri = "tcp://127.0.0.1:" + std::to_string(port);
  o.client_id = "late-link";
  MqttLink link(o, events);
  auto st = link.connect(3000);
  REQUIRE_FALSE(st);
  CHECK_THAT(st.error().message, Catch::Contains("cannot connect to " + o.uri));
  CHECK_THAT(st.error().message, Catch::Contains("Connection refused"));
  CHECK_FALSE(link.connected());

  // A broker that refuses the CONNACK: its reason is in the error.
  dispatch::testing::Broker closed("allow_anonymous false\n");
  LinkOptions refused = o;
  refused.uri = closed.uri();
  MqttLink turned_away(refused, events);
  auto r = turned_away.connect(5000);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("the broker refused the connection: "));
  CHECK_FALSE(turned_away.connected());

  LinkOptions bad = o;
  bad.uri = "ws://127.0.0.1:1";
  MqttLink wrong(bad, events);
  auto w = wrong.connect(1000);
  REQUIRE_FALSE(w);
  CHECK_THAT(w.error().message, Catch::Contains("not a broker URI"));
}
