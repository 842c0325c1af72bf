#include "storage/commands.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <tuple>
#include <vector>

#include "storage/retention.h"
#include "tests/storage/storage_fixture.h"
#include "tests/support/sanitizers.h"

namespace dispatch::storage {
namespace {

using core::ErrorCode;
using test::backends;
using test::make_command;
using test::make_delivery;
using test::TestDb;

TEST_CASE("queued deliveries are owned by the instance that committed them and can be taken over",
          "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(store
              .create_with_deliveries(make_command("c1", 100),
                                      {make_delivery("c1", "dev-a", 100), make_delivery("c1", "dev-b", 100)},
                                      "inst-a")
              .ok());
  REQUIRE(store.create_with_deliveries(make_command("c2", 200), {make_delivery("c2", "dev-a", 200)}, "inst-b")
              .ok());
  REQUIRE(store.create_with_deliveries(make_command("c3", 300), {make_delivery("c3", "dev-a", 300)}).ok());
  // Each instance re-queues its own and the ownerless (written before the owner column) at start.
  CHECK(store.deliveries_to_publish(0, 10, "inst-a")->size() == 3);
  CHECK(store.deliveries_to_publish(0, 10, "inst-b")->size() == 2);
  CHECK(store.deliveries_to_publish(0, 10)->size() == 4);
  CHECK(*store.has_queued_owned_by("inst-a"));
  CHECK_FALSE(*store.has_queued_owned_by("inst-c"));
  // inst-b takes over inst-a's rows, one at a time, oldest first.
  auto first = store.take_over_queued("inst-a", "inst-b", 1);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 1);
  CHECK((*first)[0].command_id == "c1");
  auto rest = store.take_over_queued("inst-a", "inst-b", 10);
  REQUIRE(rest->size() == 1);
  CHECK((*first)[0].hardware_id != (*rest)[0].hardware_id);
  CHECK(store.take_over_queued("inst-a", "inst-b", 10)->empty());
  CHECK_FALSE(*store.has_queued_owned_by("inst-a"));
  CHECK(store.deliveries_to_publish(0, 10, "inst-b")->size() == 4);
  CHECK(store.deliveries_to_publish(0, 10, "inst-a")->size() == 1);  // the ownerless one
  // A sent delivery is not the outbox's any more: not taken over.
  REQUIRE(*store.mark_sent({{"c2", "dev-a"}}, 400) == 1);
  CHECK(store.take_over_queued("inst-b", "inst-c", 10)->size() == 2);
  CHECK(store.take_over_queued("", "inst-c", 10).error().code == ErrorCode::bad_request);
}

TEST_CASE("a command and its deliveries are created together", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  CommandRow c = make_command("c1", 100);
  c.ttl_s = 60;
  c.expires_at = 60'100;
  c.request_id = "req-1";
  c.request_hash = "h1";
  c.description = "say hello";
  REQUIRE(
      store.create_with_deliveries(c, {make_delivery("c1", "dev-b", 100), make_delivery("c1", "dev-a", 100)})
          .ok());

  auto got = store.get("c1");
  REQUIRE(got.ok());
  CHECK(got->arguments == std::vector<std::string>{"a", "b c"});
  CHECK(got->ttl_s == 60);
  CHECK(got->expires_at == 60'100);
  CHECK(got->request_hash == "h1");
  CHECK(got->description == "say hello");
  CHECK_FALSE(got->canceled);

  auto by_request = store.find_by_request_id("req-1");
  REQUIRE(by_request.ok());
  REQUIRE(by_request->has_value());
  CHECK((*by_request)->id == "c1");
  auto none = store.find_by_request_id("req-2");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  auto ds = store.deliveries("c1");
  REQUIRE(ds.ok());
  REQUIRE(ds->size() == 2);
  CHECK((*ds)[0].hardware_id == "dev-a");  // by hardware id, not insertion order: pages follow it
  CHECK((*ds)[1].hardware_id == "dev-b");
  CHECK((*ds)[0].state == "queued");
  CHECK((*ds)[0].command_line == "c1 es echo a");
  auto page = store.deliveries("c1", std::string("dev-a"), 10);
  REQUIRE(page.ok());
  REQUIRE(page->size() == 1);
  CHECK((*page)[0].hardware_id == "dev-b");
  auto first = store.deliveries("c1", std::nullopt, 1);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 1);
  CHECK((*first)[0].hardware_id == "dev-a");
}

TEST_CASE("creating commands refuses double work", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  CommandRow first = make_command("c1", 1);
  first.request_id = "req-1";
  REQUIRE(store.create_with_deliveries(first, {make_delivery("c1", "dev-a", 1)}).ok());

  CommandRow same_id = make_command("c1", 2);
  CommandRow same_request = make_command("c2", 2);
  same_request.request_id = "req-1";
  struct {
    const char* rule;
    CommandRow command;
    std::vector<DeliveryRow> deliveries;
  } cases[] = {
      {"a command id is used once", same_id, {make_delivery("c1", "dev-z", 2)}},
      {"a request_id names one command", same_request, {make_delivery("c2", "dev-z", 2)}},
      {"a command reaches a device once",
       make_command("c3", 2),
       {make_delivery("c3", "dev-a", 2), make_delivery("c3", "dev-a", 2)}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto s = store.create_with_deliveries(c.command, c.deliveries);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::conflict);
    CHECK(store.deliveries(c.command.id)->size() == (c.command.id == "c1" ? 1u : 0u));
  }
  CHECK_FALSE(store.get("c3").ok());  // nothing of a refused command is written
  CHECK(store.get("c3").error().code == ErrorCode::not_found);
}

TEST_CASE("50,000 deliveries are written in one fast batch", "[storage][commands][batch]") {
  const std::string backend = GENERATE(backends());
  INFO("backend " << backend);
  TestDb t(backend);
  CommandStore store(*t);
  constexpr int k_devices = 50'000;
  std::vector<DeliveryRow> rows;
  rows.reserve(k_devices);
  for (int i = 0; i < k_devices; ++i) rows.push_back(make_delivery("big", "dev-" + std::to_string(i), 5));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(store.create_with_deliveries(make_command("big", 5), rows).ok());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // PostgreSQL: 98 round trips of 512 rows to a server sharing the test machine's cores (~1.5-3 s).
  const auto bound = std::chrono::seconds(backend == "postgres" ? 10 : 5);
  CHECK(elapsed < bound * dispatch::testing::k_time_scale);
  auto counts = store.counts("big");
  REQUIRE(counts.ok());
  CHECK(counts->queued == k_devices);
  CHECK(counts->total() == k_devices);
}

TEST_CASE("mark_sent marks a loop's batch of acknowledgements in a few statements",
          "[storage][commands][batch]") {
  const std::string backend = GENERATE(backends());
  INFO("backend " << backend);
  TestDb t(backend);
  CommandStore store(*t);
  // 1,300 keys go as statements of 512, 512, 256, 16 and 4 keys: every chunk size is exercised.
  constexpr int k_devices = 1'300;
  std::vector<DeliveryRow> rows;
  for (int i = 0; i < k_devices; ++i) rows.push_back(make_delivery("b", "dev-" + std::to_string(i), 5));
  REQUIRE(store.create_with_deliveries(make_command("b", 5), rows).ok());
  // Replied before its acknowledgement was processed: it must not go back to sent.
  REQUIRE(store.record_reply("b", "dev-7", true, "ok", false, 8).value() == ReplyOutcome::accepted);
  REQUIRE(store.record_reply("b", "dev-1299", false, "no", false, 8).value() == ReplyOutcome::accepted);
  // dev-3 was acknowledged in an earlier batch: it is marked again (a second publish).
  REQUIRE(store.mark_sent({{"b", "dev-3"}}, 9).value() == 1);

  std::vector<DeliveryKey> keys;
  for (int i = 0; i < k_devices; ++i) keys.emplace_back("b", "dev-" + std::to_string(i));
  keys.emplace_back("b", "dev-unknown");  // no such delivery: ignored
  keys.emplace_back("nope", "dev-1");     // no such command: ignored
  auto changed = store.mark_sent(keys, 10);
  REQUIRE(changed.ok());
  CHECK(*changed == k_devices - 2);

  DeliveryCounts expected;
  expected.sent = k_devices - 2;
  expected.succeeded = 1;
  expected.failed = 1;
  CHECK(store.counts("b").value() == expected);
  auto answered = store.delivery("b", "dev-7").value();
  CHECK(answered.state == "succeeded");
  CHECK(answered.output == "ok");
  CHECK(answered.attempts == 1);
  CHECK(answered.sent_at == 8);
  CHECK(store.delivery("b", "dev-1299")->state == "failed");
  auto again = store.delivery("b", "dev-3").value();
  CHECK(again.attempts == 2);
  CHECK(again.sent_at == 10);
  auto last = store.delivery("b", "dev-1298").value();
  CHECK(last.state == "sent");
  CHECK(last.attempts == 1);
  CHECK(last.sent_at == 10);
  CHECK(store.deliveries_to_publish(10, 10).value().empty());
  CHECK(store.mark_sent({}, 11).value() == 0);
}

TEST_CASE("record_reply returns the send time, counts_all and command_count count every command",
          "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(store
              .create_with_deliveries(make_command("c1", 1),
                                      {make_delivery("c1", "dev-a", 1), make_delivery("c1", "dev-b", 1),
                                       make_delivery("c1", "dev-c", 1)})
              .ok());
  REQUIRE(store.create_with_deliveries(make_command("c2", 2), {make_delivery("c2", "dev-a", 2)}).ok());
  CHECK(store.command_count().value() == 2);
  REQUIRE(store.mark_sent({{"c1", "dev-a"}}, 10).ok());
  core::TimeMs sent_at = -1;
  REQUIRE(store.record_reply("c1", "dev-a", true, "", false, 25, &sent_at).value() == ReplyOutcome::accepted);
  CHECK(sent_at == 10);
  // A reply that overtook the broker's acknowledgement: the send time is the reply's.
  REQUIRE(store.record_reply("c1", "dev-b", false, "", false, 30, &sent_at).value() ==
          ReplyOutcome::accepted);
  CHECK(sent_at == 30);
  sent_at = -1;
  REQUIRE(store.record_reply("c1", "dev-a", true, "", false, 40, &sent_at).value() ==
          ReplyOutcome::duplicate);
  CHECK(sent_at == -1);
  DeliveryCounts all = store.counts_all().value();
  CHECK(all.queued == 2);  // c1/dev-c, c2/dev-a
  CHECK(all.succeeded == 1);
  CHECK(all.failed == 1);
  CHECK(all.total() == 4);
}

TEST_CASE("record_reply accepts one reply per sent delivery of that device", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(
      store
          .create_with_deliveries(make_command("c1", 1),
                                  {make_delivery("c1", "dev-a", 1), make_delivery("c1", "dev-b", 1),
                                   make_delivery("c1", "dev-c", 1, 1000), make_delivery("c1", "dev-d", 1)})
          .ok());
  REQUIRE(store.mark_sent({{"c1", "dev-a"}, {"c1", "dev-c"}, {"c1", "dev-d"}}, 10).ok());
  REQUIRE(store.expire(1000).ok());  // dev-c's delivery expires
  struct {
    const char* rule;
    std::string command_id;
    std::string hardware_id;
    bool success;
    ReplyOutcome expected;
    const char* state_after;  // nullptr: no such delivery
  } cases[] = {
      {"a reply to a sent delivery is accepted", "c1", "dev-a", true, ReplyOutcome::accepted, "succeeded"},
      {"a second reply is a duplicate and changes nothing", "c1", "dev-a", false, ReplyOutcome::duplicate,
       "succeeded"},
      {"a failure reply is accepted as failed", "c1", "dev-d", false, ReplyOutcome::accepted, "failed"},
      {"a queued delivery (not yet published) accepts a reply", "c1", "dev-b", true, ReplyOutcome::accepted,
       "succeeded"},
      {"an unknown command id is unknown", "c9", "dev-a", true, ReplyOutcome::unknown, nullptr},
      {"another device's command id is unknown", "c1", "dev-x", true, ReplyOutcome::unknown, nullptr},
      {"an expired delivery is closed", "c1", "dev-c", true, ReplyOutcome::closed, "expired"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = store.record_reply(c.command_id, c.hardware_id, c.success, "out of " + c.hardware_id, false, 20);
    REQUIRE(r.ok());
    CHECK(*r == c.expected);
    auto d = store.delivery(c.command_id, c.hardware_id);
    if (c.state_after == nullptr) {
      CHECK(d.error().code == ErrorCode::not_found);
    } else {
      REQUIRE(d.ok());
      CHECK(d->state == c.state_after);
    }
  }
  auto a = store.delivery("c1", "dev-a");
  CHECK(a->output == "out of dev-a");
  CHECK(a->replied_at == 20);
  CHECK(a->attempts == 1);
  CHECK(a->sent_at == 10);
}

TEST_CASE("deliveries move through publish, pending, redelivery and expiry", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(
      store.create_with_deliveries(make_command("c1", 1), {make_delivery("c1", "dev-a", 1, 10'000)}).ok());
  REQUIRE(store.create_with_deliveries(make_command("c2", 2), {make_delivery("c2", "dev-a", 2, 500)}).ok());
  REQUIRE(store.create_with_deliveries(make_command("c3", 3), {make_delivery("c3", "dev-a", 3)}).ok());
  REQUIRE(store.create_with_deliveries(make_command("c4", 4), {make_delivery("c4", "dev-b", 4)}).ok());

  auto ids = [](const core::Result<std::vector<DeliveryRow>>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows.value()) out.push_back(r.command_id + "/" + r.hardware_id);
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(ids(store.deliveries_to_publish(100, 10)) == V{"c1/dev-a", "c2/dev-a", "c3/dev-a", "c4/dev-b"});
  CHECK(ids(store.deliveries_to_publish(100, 2)) == V{"c1/dev-a", "c2/dev-a"});
  CHECK(ids(store.deliveries_to_publish(600, 10)) == V{"c1/dev-a", "c3/dev-a", "c4/dev-b"});

  auto sent = store.mark_sent({{"c1", "dev-a"}, {"c3", "dev-a"}, {"c9", "dev-a"}}, 100);
  REQUIRE(sent.ok());
  CHECK(*sent == 2);  // the unknown key is ignored
  CHECK(ids(store.deliveries_to_publish(100, 10)) == V{"c2/dev-a", "c4/dev-b"});
  CHECK(ids(store.pending_for_device("dev-a", 100)) == V{"c1/dev-a", "c2/dev-a", "c3/dev-a"});
  CHECK(ids(store.pending_for_device("dev-a", 600)) == V{"c1/dev-a", "c3/dev-a"});
  CHECK(ids(store.pending_for_device("dev-a", 100, 1)) == V{"c1/dev-a"});

  CHECK(ids(store.redeliverable("dev-a", 200, 99, 3)).empty());  // sent too recently
  CHECK(ids(store.redeliverable("dev-a", 200, 100, 3)) == V{"c1/dev-a", "c3/dev-a"});
  REQUIRE(store.mark_sent({{"c1", "dev-a"}}, 150).ok());
  CHECK(store.delivery("c1", "dev-a")->attempts == 2);
  CHECK(ids(store.redeliverable("dev-a", 200, 200, 2)) == V{"c3/dev-a"});  // c1 used its attempts

  auto expired = store.expire(10'000);
  REQUIRE(expired.ok());
  CHECK(*expired == 2);  // c1 (sent) and c2 (queued)
  CHECK(store.delivery("c1", "dev-a")->state == "expired");
  CHECK(store.delivery("c2", "dev-a")->state == "expired");
  CHECK(*store.expire(20'000) == 0);
  CHECK(store.mark_sent({{"c1", "dev-a"}}, 20'000).value() == 0);  // an expired delivery is not re-sent
}

TEST_CASE("cancel closes the open deliveries of a command", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(store
              .create_with_deliveries(make_command("c1", 1),
                                      {make_delivery("c1", "dev-a", 1), make_delivery("c1", "dev-b", 1),
                                       make_delivery("c1", "dev-c", 1)})
              .ok());
  REQUIRE(store.mark_sent({{"c1", "dev-b"}, {"c1", "dev-c"}}, 5).ok());
  REQUIRE(store.record_reply("c1", "dev-c", true, "", false, 6).value() == ReplyOutcome::accepted);
  auto n = store.cancel("c1");
  REQUIRE(n.ok());
  CHECK(*n == 2);
  CHECK(store.get("c1")->canceled);
  DeliveryCounts expected;
  expected.canceled = 2;
  expected.succeeded = 1;
  CHECK(store.counts("c1").value() == expected);
  CHECK(store.record_reply("c1", "dev-a", true, "", false, 7).value() == ReplyOutcome::closed);
  CHECK(store.cancel("nope").error().code == ErrorCode::not_found);
}

CommandTargets make_targets(const std::string& command_id, std::vector<std::string> ids, core::TimeMs t) {
  CommandTargets x;
  x.command_id = command_id;
  x.hardware_ids = std::move(ids);
  x.command_line = command_id + " es echo a";
  x.expires_at = t + 60'000;
  x.created_at = t;
  return x;
}

// x as written by owner.
CommandTargets by(CommandTargets x, const std::string& owner) {
  x.owner = owner;
  return x;
}

std::vector<DeliveryRow> chunk_of(const CommandTargets& x, std::size_t n) {
  std::vector<DeliveryRow> rows;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = static_cast<std::size_t>(x.expanded) + k;
    // Past the list's end (a caller's mistake under test): made-up ids.
    const std::string hw = i < x.hardware_ids.size() ? x.hardware_ids[i] : "dev-z" + std::to_string(i);
    rows.push_back(make_delivery(x.command_id, hw, x.created_at, x.expires_at));
  }
  return rows;
}

TEST_CASE(
    "a large send's targets are written chunk by chunk from their cursor and counted as queued meanwhile",
    "[storage][commands][expansion]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(store.create_with_deliveries(make_command("c1", 100), {make_delivery("c1", "dev-a", 100)}, "inst-a")
              .ok());
  CommandTargets x = make_targets("c1", {"dev-b", "dev-c", "dev-d", "dev-e", "dev-f"}, 100);
  REQUIRE(store.save_targets(by(x, "inst-a")).ok());
  CHECK(store.save_targets(by(x, "inst-a")).error().code == ErrorCode::conflict);
  CHECK(*store.has_queued_owned_by("inst-a"));
  DeliveryCounts expected;
  expected.queued = 6;
  CHECK(store.counts("c1").value() == expected);
  CHECK(store.counts_all().value() == expected);
  // A device's commands include those whose list names it; a part of an id names nothing.
  CommandQuery by_device;
  by_device.hardware_id = "dev-e";
  auto listed = store.list(by_device);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].id == "c1");
  by_device.hardware_id = "dev-";
  CHECK(store.list(by_device).value().empty());
  CHECK(store.save_targets(make_targets("c1", {"dev b"}, 100)).error().code == ErrorCode::bad_request);

  // Two of five, then the cursor says so.
  REQUIRE(store.expand_targets(by(x, "inst-a"), chunk_of(x, 2)).value());
  CHECK(store.targets("c1").value()->expanded == 2);
  CHECK(store.deliveries("c1").value().size() == 3);
  CHECK(store.counts("c1").value() == expected);  // still 6 queued: 3 written, 3 listed
  // A writer that saw an older cursor, or is not the owner, writes nothing.
  CHECK_FALSE(store.expand_targets(by(x, "inst-a"), chunk_of(x, 1)).value());
  x.expanded = 2;
  CHECK_FALSE(store.expand_targets(by(x, "inst-b"), chunk_of(x, 1)).value());
  CHECK(store.deliveries("c1").value().size() == 3);
  CHECK(store.expand_targets(by(x, "inst-a"), chunk_of(x, 4)).error().code == ErrorCode::bad_request);
  // The last chunk removes the list.
  REQUIRE(store.expand_targets(by(x, "inst-a"), chunk_of(x, 3)).value());
  CHECK_FALSE(store.targets("c1").value().has_value());
  auto rows = store.deliveries("c1").value();
  REQUIRE(rows.size() == 6);
  for (const auto& d : rows) CHECK(d.state == "queued");
  CHECK(store.deliveries_to_publish(0, 100, "inst-a").value().size() == 6);
  CHECK(store.counts("c1").value() == expected);
  x.expanded = 5;
  CHECK(store.expand_targets(by(x, "inst-a"), chunk_of(x, 0)).error().code == ErrorCode::bad_request);
}

TEST_CASE(
    "cancel drops a list of targets and counts them, retention keeps a command whose list is not written",
    "[storage][commands][expansion]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(
      store.create_with_deliveries(make_command("c1", 100), {make_delivery("c1", "dev-a", 100)}, "i").ok());
  CommandTargets x = make_targets("c1", {"dev-b", "dev-c", "dev-d"}, 100);
  REQUIRE(store.save_targets(by(x, "i")).ok());
  REQUIRE(store.expand_targets(by(x, "i"), chunk_of(x, 1)).value());
  x.expanded = 1;
  // Every written delivery answered: only the list keeps the command open.
  REQUIRE(*store.mark_sent({{"c1", "dev-a"}, {"c1", "dev-b"}}, 200) == 2);
  REQUIRE(store.record_reply("c1", "dev-a", true, "", false, 300).value() == ReplyOutcome::accepted);
  REQUIRE(store.record_reply("c1", "dev-b", true, "", false, 300).value() == ReplyOutcome::accepted);
  auto purged = RetentionStore(*t).purge_commands(1'000'000, 100);
  REQUIRE(purged.ok());
  CHECK(purged->parents == 0);
  REQUIRE(store.get("c1").ok());

  CHECK(store.cancel("c1").value() == 2);  // the two targets not yet written
  CHECK_FALSE(store.targets("c1").value().has_value());
  DeliveryCounts expected;
  expected.succeeded = 2;
  expected.canceled = 2;
  CHECK(store.counts("c1").value() == expected);
  CHECK_FALSE(store.expand_targets(by(x, "i"), chunk_of(x, 1)).value());  // the writer finds it gone
  auto rows = store.deliveries("c1").value();
  REQUIRE(rows.size() == 4);
  CHECK(rows[2].hardware_id == "dev-c");
  CHECK(rows[2].state == "canceled");
  CHECK(rows[3].hardware_id == "dev-d");
  CHECK(rows[3].state == "canceled");
  CHECK(RetentionStore(*t).purge_commands(1'000'000, 100).value().parents == 1);
}

TEST_CASE("lists of targets are taken over with their cursor, and the old owner cannot write after",
          "[storage][commands][expansion]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  for (const auto& [id, owner, at] :
       {std::tuple{"c1", "inst-a", 100}, {"c2", "inst-b", 200}, {"c3", "inst-a", 300}}) {
    REQUIRE(store.create_with_deliveries(make_command(id, at), {make_delivery(id, "dev-0", at)}, owner).ok());
    REQUIRE(store.save_targets(by(make_targets(id, {"dev-1", "dev-2"}, at), owner)).ok());
  }
  CommandTargets c1 = *store.targets("c1").value();
  REQUIRE(store.expand_targets(c1, chunk_of(c1, 1)).value());
  c1.expanded = 1;
  CHECK(*store.has_queued_owned_by("inst-b"));
  REQUIRE(*store.mark_sent({{"c2", "dev-0"}}, 250) == 1);
  CHECK(*store.has_queued_owned_by("inst-b"));  // its list, though no delivery is queued

  auto taken = store.take_over_targets(std::string("inst-a"), "inst-c");
  REQUIRE(taken.ok());
  REQUIRE(taken->size() == 2);
  CHECK((*taken)[0].command_id == "c1");  // oldest first
  CHECK((*taken)[0].expanded == 1);
  CHECK((*taken)[0].hardware_ids == std::vector<std::string>{"dev-1", "dev-2"});
  CHECK((*taken)[1].command_id == "c3");
  CHECK((*taken)[1].owner == "inst-c");
  CHECK(store.targets("c3").value()->owner == "inst-c");
  CHECK(store.targets("c2").value()->owner == "inst-b");
  // The old owner's next chunk is refused; the new one's is written.
  CHECK_FALSE(store.expand_targets(c1, chunk_of(c1, 1)).value());
  REQUIRE(store.expand_targets((*taken)[0], chunk_of((*taken)[0], 1)).value());
  CHECK(store.deliveries("c1").value().size() == 3);
  // Without a previous owner: every list.
  CHECK(store.take_over_targets(std::nullopt, "inst-d").value().size() == 2);  // c2, c3 (c1 is done)
  CHECK(store.take_over_targets(std::string("inst-c"), "inst-e").value().empty());
}

TEST_CASE("commands list by id with a cursor and a device filter", "[storage][commands]") {
  TestDb t(GENERATE(backends()));
  CommandStore store(*t);
  REQUIRE(store.create_with_deliveries(make_command("c1", 1), {make_delivery("c1", "dev-a", 1)}).ok());
  REQUIRE(store.create_with_deliveries(make_command("c2", 2), {make_delivery("c2", "dev-b", 2)}).ok());
  REQUIRE(store.create_with_deliveries(make_command("c3", 3), {make_delivery("c3", "dev-a", 3)}).ok());
  auto ids = [&](CommandQuery q) {
    auto rows = store.list(q);
    REQUIRE(rows.ok());
    std::vector<std::string> out;
    for (const auto& c : *rows) out.push_back(c.id);
    return out;
  };
  using V = std::vector<std::string>;
  struct {
    const char* rule;
    CommandQuery query;
    V expected;
  } cases[] = {
      {"all, ordered by id", {100, std::nullopt, std::nullopt}, {"c1", "c2", "c3"}},
      {"limit bounds the page", {2, std::nullopt, std::nullopt}, {"c1", "c2"}},
      {"after is an exclusive cursor", {100, "c1", std::nullopt}, {"c2", "c3"}},
      {"hardware_id keeps that device's commands", {100, std::nullopt, "dev-a"}, {"c1", "c3"}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(ids(c.query) == c.expected);
  }
}

}  // namespace
}  // namespace dispatch::storage
