// The byte budget of the MQTT link's outbound queue (mqtt.max_queued_bytes) and the service loop's
// back-pressure on it: a real MqttLink that never connects (so nothing leaves its queue, like a broker that
// stopped acknowledging), a real EventQueue, and the loop's batch rule (device_message_allowance).
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <variant>

#include "service/daemon.h"
#include "service/event_queue.h"
#include "service/mqtt/mqtt_link.h"

using namespace dispatch::service;
using namespace std::chrono_literals;

namespace {

// Port 1 on loopback: nothing listens, and the link is never asked to connect.
LinkOptions unconnected(std::size_t budget, std::size_t estimate) {
  LinkOptions o;
  o.uri = "tcp://127.0.0.1:1";
  o.client_id = "link-bound-test";
  o.max_queued_bytes = budget;
  o.answer_estimate_bytes = estimate;
  return o;
}

OutMessage answer(std::size_t bytes) {
  OutMessage m;
  m.topic = "esthesis/provisioning/data/dev-1";
  m.payload.assign(bytes - m.topic.size(), 'x');
  return m;
}

InboundMessage request(int i) {
  InboundMessage m;
  m.topic = "esthesis/provisioning/download/dev-1";
  m.payload = "{\"n\":" + std::to_string(i) + "}";
  return m;
}

}  // namespace

TEST_CASE("the link counts the bytes it queues and has no room at its budget, dropping nothing",
          "[service][link]") {
  EventQueue events;
  MqttLink link(unconnected(100 * 1024, 0), events);
  CHECK(link.has_room());
  CHECK(link.queued_bytes() == 0);
  for (int i = 0; i < 9; ++i) link.publish(answer(10 * 1024));
  CHECK(link.queued_bytes() == 9 * 10 * 1024);
  CHECK(link.has_room());
  link.publish(answer(10 * 1024));
  CHECK_FALSE(link.has_room());  // at the budget
  // Past the budget a message is still queued (nothing is dropped), and the link stays full.
  link.publish(answer(300 * 1024));
  CHECK(link.backlog() == 11);
  CHECK(link.queued_bytes() == 400 * 1024);
  CHECK(link.recent_largest() == 300 * 1024);
  link.pump();  // not connected: nothing is handed over, nothing is lost
  CHECK(link.backlog() == 11);
}

TEST_CASE("the loop's batches keep the link within its byte budget, held messages wait, other events pass",
          "[service][link]") {
  constexpr std::size_t k_budget = 64 * 1024;
  constexpr std::size_t k_answer = 10 * 1024;  // each device request is answered with 10 KiB
  EventQueue events;
  MqttLink link(unconnected(k_budget, k_answer), events);
  for (int i = 0; i < 200; ++i) events.push(Event{request(i)});
  events.push_nonblocking(PublishDone{42, true});  // queued after every request

  // The service loop: a batch of events as allowed, one answer per device message taken.
  int taken = 0;
  bool saw_ack = false;
  for (int pass = 0; pass < 50; ++pass) {
    const std::size_t allowance = device_message_allowance(link, events.producer_waiting());
    std::size_t in_batch = 0;
    auto take = [&] { return in_batch < allowance ? EventQueue::Take::all : EventQueue::Take::control; };
    for (auto ev = events.pop_for(0ms, take()); ev; ev = events.pop_for(0ms, take())) {
      if (std::holds_alternative<InboundMessage>(*ev)) {
        ++in_batch;
        ++taken;
        link.publish(answer(k_answer));
      } else if (auto* d = std::get_if<PublishDone>(&*ev)) {
        saw_ack = d->tag == 42;
      }
    }
    INFO("pass " << pass);
    // Never more than one answer past the budget, whatever the batches.
    REQUIRE(link.queued_bytes() <= k_budget + k_answer);
  }
  // The link never drains (no broker): the loop stopped taking requests once it was full, the rest still
  // wait in the queue, and the acknowledgement queued after them was taken anyway.
  CHECK(taken == static_cast<int>(k_budget / k_answer) + 1);
  CHECK(events.size() == static_cast<std::size_t>(200 - taken));
  CHECK(saw_ack);
  CHECK_FALSE(link.has_room());
  CHECK(device_message_allowance(link, false) == 0);
}

TEST_CASE("with no room, one device message at a time is let in while a Paho thread waits for room",
          "[service][link]") {
  EventQueue events(2);  // room for two device messages
  MqttLink link(unconnected(64 * 1024, 1024), events);
  link.publish(answer(64 * 1024));  // full
  REQUIRE_FALSE(link.has_room());
  events.push(Event{request(1)});
  events.push(Event{request(2)});
  // A third message blocks its producer (Paho's receive thread, which also reads the acknowledgements).
  std::thread producer([&] { events.on_message(request(3)); });
  // The loop, holding device messages back, is woken by the waiting producer and may take one.
  std::optional<Event> woke;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!events.producer_waiting() && std::chrono::steady_clock::now() < deadline) {
    woke = events.pop_for(10ms, EventQueue::Take::control);
    REQUIRE_FALSE(woke.has_value());  // no control event was queued
  }
  REQUIRE(events.producer_waiting());
  CHECK(device_message_allowance(link, true) == 1);
  auto ev = events.pop_for(0ms, EventQueue::Take::all);
  REQUIRE(ev);
  CHECK(std::get<InboundMessage>(*ev).payload == "{\"n\":1}");
  producer.join();  // room for the third message again
  CHECK(events.size() == 2);
}

TEST_CASE("the event queue pops in arrival order across its two lanes", "[service][link]") {
  EventQueue events;
  events.push(Event{request(1)});
  events.push_nonblocking(LinkUp{});
  events.push(Event{request(2)});
  events.push_nonblocking(PublishDone{7, true});
  auto a = events.pop_for(0ms);
  auto b = events.pop_for(0ms);
  auto c = events.pop_for(0ms, EventQueue::Take::control);  // skips request 2
  auto d = events.pop_for(0ms);
  REQUIRE((a && b && c && d));
  CHECK(std::get<InboundMessage>(*a).payload == "{\"n\":1}");
  CHECK(std::holds_alternative<LinkUp>(*b));
  CHECK(std::get<PublishDone>(*c).tag == 7);
  CHECK(std::get<InboundMessage>(*d).payload == "{\"n\":2}");
  CHECK_FALSE(events.pop_for(0ms).has_value());
}

TEST_CASE("a batch pop keeps arrival order, its message allowance, its size, and ends at a stop",
          "[service][link]") {
  EventQueue events;
  events.push(Event{request(1)});
  events.push_nonblocking(LinkUp{});
  events.push(Event{request(2)});
  events.push_nonblocking(PublishDone{7, true});
  events.push(Event{request(3)});
  events.push_nonblocking(PublishDone{8, true});
  // An allowance of 1 message: request 1, then only the other lane (LinkUp and both acknowledgements).
  auto first = events.pop_batch(0ms, 1000, 1);
  REQUIRE(first.size() == 4);
  CHECK(std::get<InboundMessage>(first[0]).payload == "{\"n\":1}");
  CHECK(std::holds_alternative<LinkUp>(first[1]));
  CHECK(std::get<PublishDone>(first[2]).tag == 7);
  CHECK(std::get<PublishDone>(first[3]).tag == 8);
  CHECK(events.size() == 2);
  // At most max_events; the held messages come next, in their order.
  auto second = events.pop_batch(0ms, 1, 1000);
  REQUIRE(second.size() == 1);
  CHECK(std::get<InboundMessage>(second[0]).payload == "{\"n\":2}");
  events.push_nonblocking(StopRequested{});
  events.push_nonblocking(PublishDone{9, true});
  auto third = events.pop_batch(0ms, 1000, 1000);
  REQUIRE(third.size() == 2);  // request 3, then the stop: nothing after it
  CHECK(std::get<InboundMessage>(third[0]).payload == "{\"n\":3}");
  CHECK(std::holds_alternative<StopRequested>(third[1]));
  CHECK(events.size() == 1);
  CHECK(events.bytes() == 0);
  // No message allowance and nothing else: nothing within the timeout.
  events.push(Event{request(4)});
  CHECK(events.pop_batch(0ms, 1000, 0).size() == 1);  // the acknowledgement 9, not request 4
  CHECK(events.pop_batch(10ms, 1000, 0).empty());
  CHECK(events.size() == 1);
}

TEST_CASE("the event queue holds device messages up to its byte bound, then their producer waits",
          "[service][event_queue]") {
  EventQueue events(1000, 1000);  // room for 1,000 messages, but only 1,000 bytes of them
  InboundMessage m;
  m.topic = "esthesis/ping/dev-1";
  m.payload.assign(400 - m.topic.size(), 'p');  // 400 bytes each
  events.push(Event{m});
  events.push(Event{m});
  CHECK(events.bytes() == 800);
  // A third would make 1,200 bytes: its producer waits until the loop takes one.
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    events.on_message(m);
    pushed = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!events.producer_waiting() && !pushed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(events.producer_waiting());
  CHECK_FALSE(pushed);
  CHECK(events.waits_total() == 1);
  // Control events never wait, whatever the bytes.
  events.push_nonblocking(PublishDone{1, true});
  REQUIRE(events.pop_for(0ms, EventQueue::Take::control));
  REQUIRE(events.pop_for(0ms));  // a message: 400 bytes freed
  producer.join();
  CHECK(pushed);
  CHECK(events.bytes() == 800);
  // One message larger than the whole bound is let in once the queue holds no other message.
  REQUIRE(events.pop_for(0ms));
  REQUIRE(events.pop_for(0ms));
  InboundMessage big;
  big.topic = m.topic;
  big.payload.assign(5000, 'b');
  events.push(Event{big});
  CHECK(events.bytes() == 5000 + big.topic.size());
  CHECK(events.waits_total() == 1);
}
