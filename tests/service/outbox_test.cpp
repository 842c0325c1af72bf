// The outbox on its own: a recording publisher, a manual clock and a scripted owner.
#include "service/outbox.h"

#include <catch2/catch.hpp>
#include <set>

using namespace dispatch;

namespace {

class ScriptedOwner final : public service::OutboxOwner {
 public:
  bool still_wanted(const service::OutboxItem& item) override { return unwanted.count(item.command_id) == 0; }
  void acknowledged(std::vector<service::OutboxItem> items) override {
    batches.push_back({});
    for (auto& i : items) batches.back().push_back(i.command_id + "@" + i.hardware_id);
  }
  std::set<std::string> unwanted;
  std::vector<std::vector<std::string>> batches;
};

struct OutboxFixture {
  core::ManualClock clock;
  service::RecordingPublisher pub;
  protocol::Topics topics;
  service::Outbox outbox{clock, pub, topics, 1};

  void add(service::OutboxOwner& owner, const std::string& id, const std::string& hw,
           std::optional<core::TimeMs> expires_in_ms = std::nullopt) {
    service::OutboxItem item;
    item.owner = &owner;
    item.command_id = id;
    item.hardware_id = hw;
    item.payload = id + " rs";
    if (expires_in_ms) item.expires_at = clock.now_ms() + *expires_in_ms;
    outbox.enqueue(std::move(item));
  }
};

}  // namespace

TEST_CASE("the outbox publishes in order within a budget, with the remaining lifetime as expiry",
          "[service][outbox]") {
  OutboxFixture f;
  ScriptedOwner owner;
  f.add(owner, "c1", "dev-1", 10'500);
  f.add(owner, "c2", "dev-2");
  f.add(owner, "c3", "dev-3");
  f.add(owner, "c1", "dev-1");  // already waiting: ignored
  CHECK(f.outbox.size() == 3);
  CHECK(f.outbox.pump(2) == 2);
  REQUIRE(f.pub.sent.size() == 2);
  CHECK(f.pub.sent[0].topic == "esthesis/command/request/dev-1");
  CHECK(f.pub.sent[0].payload == "c1 rs");
  CHECK(f.pub.sent[0].expiry_s == 11);
  CHECK(f.pub.sent[1].expiry_s == 0);
  CHECK(f.pub.sent[0].tag != f.pub.sent[1].tag);
  CHECK(f.outbox.size() == 1);
  CHECK(f.outbox.in_flight() == 2);
}

TEST_CASE("the outbox drops expired and unwanted items, and re-queues refused publishes first",
          "[service][outbox]") {
  OutboxFixture f;
  ScriptedOwner owner;
  f.add(owner, "c1", "dev-1", 1000);
  f.add(owner, "c2", "dev-1");
  f.add(owner, "c3", "dev-1");
  owner.unwanted.insert("c2");
  f.clock.advance_ms(1000);
  CHECK(f.outbox.pump(10) == 1);  // c1 expired, c2 canceled
  REQUIRE(f.pub.sent.size() == 1);
  CHECK(f.pub.sent[0].payload == "c3 rs");
  f.add(owner, "c2", "dev-1");  // dropped items may come back (e.g. redelivery)
  CHECK(f.outbox.on_publish_done(f.pub.sent[0].tag, false));
  CHECK_FALSE(f.outbox.on_publish_done(999, true));  // not ours: an answer or an event
  owner.unwanted.clear();
  CHECK(f.outbox.pump(10) == 2);
  CHECK(f.pub.sent[1].payload == "c3 rs");  // same command id, before what queued later
  CHECK(f.pub.sent[2].payload == "c2 rs");
}

TEST_CASE("an item's expiry is the link's deadline: an expired item the link gave up on is dropped",
          "[service][outbox]") {
  OutboxFixture f;
  ScriptedOwner owner;
  f.add(owner, "c1", "dev-1", 6'000);
  f.add(owner, "c2", "dev-2", 6'000);
  f.add(owner, "c3", "dev-3");
  REQUIRE(f.outbox.pump(10) == 3);
  CHECK(f.pub.sent[0].not_after_ms == f.clock.now_ms() + 6'000);
  CHECK(f.pub.sent[2].not_after_ms == 0);  // no expiry: no deadline
  // The loop could not hand c1 and c2 to the broker in time (unready, link down): the link reports c1 as
  // given up at its deadline. It is not queued again: its old line must not reach the device late.
  f.clock.advance_ms(6'000);
  CHECK(f.outbox.on_publish_done(f.pub.sent[0].tag, false));
  CHECK(f.outbox.size() == 0);
  CHECK(f.outbox.counters().dropped == 1);
  CHECK(f.outbox.counters().retried == 0);
  CHECK(f.outbox.on_publish_done(f.pub.sent[2].tag, false));  // unexpired: queued again, same id
  CHECK(f.outbox.size() == 1);
  CHECK(f.outbox.counters().retried == 1);
  f.add(owner, "c1", "dev-1", 6'000);  // a dropped line may be queued again (a takeover republishes it)
  CHECK(f.outbox.size() == 2);
}

TEST_CASE("an item the broker or the client library refused is dropped, not published again",
          "[service][outbox]") {
  OutboxFixture f;
  ScriptedOwner owner;
  f.add(owner, "c1", "dev-1");
  f.add(owner, "c2", "dev-2");
  REQUIRE(f.outbox.pump(10) == 2);
  // c1 was refused (over the broker's Maximum Packet Size, or its ACL): the same line would be refused
  // again, so it is not queued again (an endless publish loop otherwise); c2 was given up for another
  // reason and goes out again.
  CHECK(f.outbox.on_publish_done(f.pub.sent[0].tag, false, true));
  CHECK(f.outbox.size() == 0);
  CHECK(f.outbox.counters().dropped == 1);
  CHECK(f.outbox.on_publish_done(f.pub.sent[1].tag, false));
  CHECK(f.outbox.size() == 1);
  CHECK(f.outbox.counters().retried == 1);
  REQUIRE(f.outbox.pump(10) == 1);
  CHECK(f.pub.sent.back().payload.rfind("c2 ", 0) == 0);
}

TEST_CASE("acknowledged items go back to their owner in batches", "[service][outbox]") {
  OutboxFixture f;
  ScriptedOwner commands, campaigns;
  f.add(commands, "c1", "dev-1");
  f.add(campaigns, "k1", "dev-1");
  f.add(commands, "c2", "dev-2");
  REQUIRE(f.outbox.pump(10) == 3);
  for (const auto& m : f.pub.sent) CHECK(f.outbox.on_publish_done(m.tag, true));
  CHECK(commands.batches.empty());  // nothing until hand_back
  f.outbox.hand_back();
  CHECK(commands.batches == std::vector<std::vector<std::string>>{{"c1@dev-1", "c2@dev-2"}});
  CHECK(campaigns.batches == std::vector<std::vector<std::string>>{{"k1@dev-1"}});
  f.outbox.hand_back();
  CHECK(commands.batches.size() == 1);
  // Acknowledged: the same delivery may be queued again (a redelivery).
  f.add(commands, "c1", "dev-1");
  CHECK(f.outbox.size() == 1);
}
