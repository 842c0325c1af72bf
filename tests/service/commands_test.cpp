// The commands module on its own: in-memory SQLite, a manual clock, a recording publisher, the router and
// the outbox; no App, no broker.
#include "service/commands.h"

#include <catch2/catch.hpp>
#include <map>

#include "protocol/core/time.h"
#include "storage/commands.h"
#include "storage/leases.h"
#include "tests/service/module_fixture.h"

using namespace dispatch;
using json = nlohmann::json;
using protocol::TopicKind;

namespace {

class CommandsFixture : public testing::ModuleFixture {
 public:
  CommandsFixture() : commands(config, clock, *db, pub, topics, *outbox, effects) {
    commands.register_routes(*router);
    // Pings and metadata belong to the devices module; here they only need to reach the presence hook.
    for (TopicKind kind : {TopicKind::ping, TopicKind::metadata})
      router->add_device(kind, 1024, [](const std::string&, const service::InboundMessage&) {});
    router->set_device_hook([this](TopicKind kind, const std::string& hw) {
      commands.on_presence(hw, kind == TopicKind::command_pending);
    });
    REQUIRE(commands.start().ok());
  }
  // Publishes the outbox and acknowledges every publish; returns the command requests.
  std::vector<service::OutMessage> deliver() {
    const size_t from = pub.sent.size();
    outbox->pump(1000);
    auto sent = sent_on("esthesis/command/request/", from);
    for (const auto& m : sent) outbox->on_publish_done(m.tag, true);
    outbox->hand_back();
    commands.flush(true);
    return sent;
  }
  json command(const std::string& id) { return api("commands/get", {{"command_id", id}}); }

  service::CommandsModule commands;
};

}  // namespace

TEST_CASE("send by hardware ids schedules the known devices and reports the unknown ones",
          "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.add_device("dev-2");
  auto a = f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1", "dev-2", "dev-9"}}});
  CHECK(a["devices_matched"] == 3);
  CHECK(a["devices_scheduled"] == 2);
  CHECK(a["unknown_hardware_ids"] == json::array({"dev-9"}));
  CHECK(f.effects.noted("after_delivery_commit"));
  auto sent = f.deliver();
  REQUIRE(sent.size() == 2);
  const std::string id = a["command_id"];
  for (const auto& m : sent) CHECK(m.payload == id + " rs");
  CHECK(f.command(id)["command"]["counts"]["sent"] == 2);
}

TEST_CASE("send by tags reaches every tagged device once", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1", {"a", "b"});
  f.add_device("dev-2", {"b"});
  f.add_device("dev-3", {"c"});
  auto a = f.api("commands/send",
                 {{"type", "exec"}, {"command", "ls"}, {"tags", {"a", "b"}}, {"hardware_ids", {"dev-1"}}});
  CHECK(a["devices_scheduled"] == 2);
  auto sent = f.deliver();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].topic == "esthesis/command/request/dev-1");
  CHECK(sent[1].topic == "esthesis/command/request/dev-2");
}

TEST_CASE("send with a request_id answers the first answer again, a different body conflicts",
          "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  const json body{{"type", "ping"}, {"hardware_ids", {"dev-1"}}, {"request_id", "r-1"}};
  auto first = f.api("commands/send", body);
  auto again = f.api("commands/send", body);
  CHECK(again == first);
  CHECK(f.deliver().size() == 1);  // one command, one delivery
  json other = body;
  other["type"] = "health";
  auto conflict = f.api("commands/send", other);
  CHECK(conflict["error"]["code"] == "conflict");
  CHECK(conflict["error"]["message"] == "request_id 'r-1' was already used with a different request");
}

TEST_CASE("bad send requests are answered with the rule's error and the correlation echoed",
          "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  struct {
    const char* rule;
    std::string payload;
    const char* code;
  } cases[] = {
      {"not JSON", "{", "bad_request"},
      {"unknown type", R"({"type":"format","hardware_ids":["dev-1"],"correlation_id":"c-1"})", "bad_request"},
      {"no targets", R"({"type":"ping","correlation_id":"c-1"})", "bad_request"},
      {"no known device", R"({"type":"ping","hardware_ids":["dev-9"],"correlation_id":"c-1"})", "not_found"},
      {"missing package", R"({"type":"firmware","package_id":"nope","tags":["t"],"correlation_id":"c-1"})",
       "not_found"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto a = f.api_raw("commands/send", c.payload);
    CHECK(a["error"]["code"] == c.code);
    if (c.payload != "{") CHECK(a["correlation_id"] == "c-1");
  }
  CHECK(f.outbox->size() == 0);
}

TEST_CASE("replies: own id accepted once, foreign id dropped, malformed counted", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.add_device("dev-2");
  const std::string id = f.api(
      "commands/send", {{"type", "exec"}, {"command", "ls"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  f.deliver();
  f.effects.after_commit();

  f.device(TopicKind::command_reply, "dev-2", id + " s done");  // not sent to dev-2
  CHECK(f.commands.counters().replies_unknown == 1);
  CHECK_FALSE(f.effects.noted("after_reply_commit"));

  const size_t from = f.pub.sent.size();
  f.device(TopicKind::command_reply, "dev-1", id + " s");  // no output, no trailing space
  auto events = f.sent_on("esthesis/events/v1/commands/", from);
  REQUIRE(events.size() == 1);
  auto ev = json::parse(events[0].payload);
  CHECK(ev["state"] == "succeeded");
  CHECK(ev["output"] == "");
  CHECK(f.effects.noted("after_reply_commit"));

  f.device(TopicKind::command_reply, "dev-1", id + " f late");  // duplicate: no-op
  CHECK(f.commands.counters().replies_duplicate == 1);
  CHECK(f.sent_on("esthesis/events/v1/commands/", from).size() == 1);
  auto got = f.command(id);
  CHECK(got["devices"][0]["state"] == "succeeded");

  f.device(TopicKind::command_reply, "dev-1", "not a reply line");
  CHECK(f.commands.counters().replies_malformed == 1);
}

TEST_CASE("a reply claimed by another module is not recorded as a command reply", "[service][commands]") {
  CommandsFixture f;
  std::string claimed;
  f.commands.set_reply_claim([&](const std::string& hw, const std::string& id, bool, const std::string&) {
    claimed = hw + "/" + id;
    return true;
  });
  f.device(TopicKind::command_reply, "dev-1", "01ABC s ok");
  CHECK(claimed == "dev-1/01ABC");
  CHECK(f.commands.counters().replies_unknown == 0);
}

TEST_CASE("a pending pull hands over unanswered commands and echoes the correlation", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  size_t from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", R"({"correlation_id":"p-1"})");
  auto answers = f.sent_on("esthesis/command/pending-reply/dev-1", from);
  REQUIRE(answers.size() == 1);
  auto a = json::parse(answers[0].payload);
  CHECK(a["commands"] == json::array({id + " rs"}));
  CHECK(a["correlation_id"] == "p-1");
  CHECK(f.command(id)["command"]["counts"]["sent"] == 1);

  // Unanswered commands are listed again; answered ones no more.
  from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", "");  // an empty payload reads as {}
  answers = f.sent_on("esthesis/command/pending-reply/dev-1", from);
  REQUIRE(answers.size() == 1);
  CHECK(json::parse(answers[0].payload)["commands"] == json::array({id + " rs"}));
  f.device(TopicKind::command_reply, "dev-1", id + " s");
  from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", "{}");
  answers = f.sent_on("esthesis/command/pending-reply/dev-1", from);
  REQUIRE(answers.size() == 1);
  CHECK(json::parse(answers[0].payload)["commands"].empty());

  from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", "[1]");
  answers = f.sent_on("esthesis/command/pending-reply/dev-1", from);
  REQUIRE(answers.size() == 1);
  CHECK(json::parse(answers[0].payload)["error"]["code"] == "bad_request");
}

TEST_CASE("cancel drops deliveries still waiting in the outbox", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.add_device("dev-2");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1", "dev-2"}}})["command_id"];
  auto a = f.api("commands/cancel", {{"command_id", id}});
  CHECK(a["canceled_deliveries"] == 2);
  CHECK(f.deliver().empty());
  CHECK(f.command(id)["command"]["canceled"] == true);
  CHECK(f.api("commands/cancel", {{"command_id", "nope"}})["error"]["code"] == "not_found");
}

TEST_CASE("expired deliveries are neither published nor handed over", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}, {"ttl_s", 10}})["command_id"];
  f.clock.advance_s(11);
  f.commands.on_timer();
  CHECK(f.deliver().empty());
  CHECK(f.command(id)["command"]["counts"]["expired"] == 1);
  const size_t from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", "{}");
  CHECK(json::parse(f.sent_on("esthesis/command/pending-reply/", from).at(0).payload)["commands"].empty());
}

TEST_CASE("a pending pull hands over what the device never answered, same command id, and queues nothing",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  f.clock.advance_s(f.config.commands_redeliver_interval_s + 1);
  const size_t from = f.pub.sent.size();
  f.device(TopicKind::command_pending, "dev-1", "{}");
  auto answer = json::parse(f.sent_on("esthesis/command/pending-reply/", from).at(0).payload);
  CHECK(answer["commands"] == json::array({id + " rs"}));
  // The pull was the delivery: the device is present from now on and gets no second copy.
  CHECK(f.deliver().empty());
  for (int i = 0; i < 10; ++i) {
    f.clock.advance_s(60);
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    CHECK(f.deliver().empty());
  }
  CHECK(f.command(id)["devices"][0]["attempts"] == 2);
}

TEST_CASE("a device pinging without a break never gets a line again, however long the command runs",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  f.clock.advance_s(30);
  const std::string id = f.api("commands/send", {{"type", "exec"},
                                                 {"command", "sleep"},
                                                 {"arguments", {"3600"}},
                                                 {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  // An hour of pings every 60 s (the esthesis agent's default), well past every interval and gap.
  for (int i = 0; i < 60; ++i) {
    f.clock.advance_s(60);
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    REQUIRE(f.deliver().empty());
  }
  f.device(TopicKind::command_reply, "dev-1", id + " s done");
  auto got = f.command(id);
  CHECK(got["devices"][0]["state"] == "succeeded");
  CHECK(got["devices"][0]["attempts"] == 1);
}

TEST_CASE("a device silent past the gap gets exactly one re-publication when it comes back",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  const std::string id = f.api(
      "commands/send", {{"type", "exec"}, {"command", "ls"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  // Just inside the gap: still present, nothing again.
  f.clock.advance_s(f.config.commands_presence_gap_s);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  CHECK(f.deliver().empty());
  // Silent for longer than the gap: it was away (e.g. restarted), so it may have lost the line.
  f.clock.advance_s(f.config.commands_presence_gap_s + 1);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  auto again = f.deliver();
  REQUIRE(again.size() == 1);
  CHECK(again[0].payload == id + " es ls");
  for (int i = 0; i < 20; ++i) {
    f.clock.advance_s(60);
    f.device(TopicKind::metadata, "dev-1", "health uptime=1");
    CHECK(f.deliver().empty());
  }
  CHECK(f.command(id)["devices"][0]["attempts"] == 2);
}

TEST_CASE("sent_at is when the line was handed to the broker, however late its acknowledgement is written",
          "[service][commands][presence]") {
  // The restart exception re-publishes sends from before an instance's start: a mark written seconds late
  // (a busy loop) after the restart of the instance that lost the reply hid the send from every instance
  // (the 3-instance kill -9 fan-out left sends `sent` for good).
  CommandsFixture f;
  f.add_device("dev-1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  const auto published_at = f.clock.now_ms();
  f.outbox->pump(1000);
  auto sent = f.sent_on("esthesis/command/request/", 0);
  REQUIRE(sent.size() == 1);
  f.clock.advance_s(3);
  REQUIRE(f.outbox->on_publish_done(sent[0].tag, true));
  f.outbox->hand_back();
  f.clock.advance_s(2);
  f.commands.flush(true);
  auto device = f.command(id)["devices"][0];
  CHECK(device["state"] == "sent");
  CHECK(device["sent_at"] == core::format_rfc3339(published_at));
}

TEST_CASE("a line published while the device was away is published again when it is back",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  // The device drops off; the service does not know yet (the gap has not passed) and publishes.
  f.clock.advance_s(20);
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  f.clock.advance_s(300);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  auto again = f.deliver();
  REQUIRE(again.size() == 1);
  CHECK(again[0].payload == id + " rs");
}

TEST_CASE("redelivery waits for the interval and stops after commands.redeliver_max_attempts publishes",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  int publishes = 1;
  // A device that only ever shows up after a long silence: each return is a new stretch.
  for (int i = 0; i < 10; ++i) {
    f.clock.advance_s(f.config.commands_presence_gap_s + 1);
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    publishes += static_cast<int>(f.deliver().size());
  }
  CHECK(publishes == f.config.commands_redeliver_max_attempts);
  CHECK(f.command(id)["devices"][0]["attempts"] == f.config.commands_redeliver_max_attempts);
}

TEST_CASE("silence while the service was not listening is not held against a device",
          "[service][commands][presence]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  // The broker link was down for ten minutes: the device's pings went nowhere.
  f.clock.advance_s(600);
  f.commands.on_listening();
  f.clock.advance_s(60);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  CHECK(f.deliver().empty());
  CHECK(f.command(id)["devices"][0]["attempts"] == 1);
}

TEST_CASE("another instance's start makes this one publish a device's older unanswered send again, once",
          "[service][commands][presence][cluster]") {
  // The restart exception across instances (issue 13): a reply the broker handed to an instance killed
  // before it committed it is lost, and a shared subscription may hand all of the device's later
  // messages to another instance, one that never restarted. It must publish the line again too.
  CommandsFixture f;
  std::vector<core::TimeMs> other_sent_before;
  service::CommandsModule::OtherSends other;
  other.redeliver = [&](const std::string&, core::TimeMs, core::TimeMs sent_before, int) {
    other_sent_before.push_back(sent_before);
    return 0;
  };
  f.commands.set_other_sends(other);
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  // Pings every 60 s: present without a break, nothing again.
  for (int i = 0; i < 3; ++i) {
    f.clock.advance_s(60);
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    REQUIRE(f.deliver().empty());
  }
  other_sent_before.clear();

  // Instance A (killed with the reply in its last batch) starts again, on the same database.
  f.clock.advance_s(5);
  service::Config config_a = f.config;
  config_a.cluster_instance_id = "instance-a";
  service::Outbox outbox_a(f.clock, f.pub, f.topics, 1);
  service::CommandsModule a(config_a, f.clock, *f.db, f.pub, f.topics, outbox_a, f.effects);
  REQUIRE(a.start().ok());
  const core::TimeMs a_started = f.clock.now_ms();
  // The device's next message reaches this instance before it learnt of A's start: nothing yet.
  f.clock.advance_s(1);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  CHECK(f.deliver().empty());
  f.commands.on_timer();  // learns the newest start (every third of the lease TTL)
  f.clock.advance_s(f.config.cluster_lease_ttl_ms / 1000);
  // A send after A's start is not A's to lose: never published again.
  const std::string later =
      f.api("commands/send", {{"type", "shutdown"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);

  // Past the redelivery interval after A's start, so every send from before it qualifies.
  f.clock.advance_s(90);
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  auto again = f.deliver();
  REQUIRE(again.size() == 1);
  CHECK(again[0].payload == id + " rs");
  // Campaign attempts from before the epoch are asked for too, by the same rule.
  REQUIRE_FALSE(other_sent_before.empty());
  CHECK(other_sent_before.front() == a_started - 1);
  // Once: an hour more of pings, and further timer turns that read the same epoch, publish nothing.
  for (int i = 0; i < 60; ++i) {
    f.clock.advance_s(60);
    f.commands.on_timer();
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    REQUIRE(f.deliver().empty());
  }
  CHECK(f.command(id)["devices"][0]["attempts"] == 2);
  CHECK(f.command(later)["devices"][0]["attempts"] == 1);
}

TEST_CASE("an instance whose lease lapsed counts as restarted: its devices' unanswered sends go out again",
          "[service][commands][presence][cluster]") {
  // Instance A was killed with a reply in its last batch and stays down: no start of its own will ever
  // make an epoch, so its lapse does.
  CommandsFixture f;
  f.add_device("dev-1");
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"hardware_ids", {"dev-1"}}})["command_id"];
  REQUIRE(f.deliver().size() == 1);
  storage::LeaseStore leases(*f.db);
  const core::TimeMs ttl = f.config.cluster_lease_ttl_ms;
  REQUIRE(leases.acquire("instance:instance-a", "instance-a", f.clock.now_ms(), ttl).ok());
  // Pings every 60 s while A renews its lease: present without a break, nothing again.
  for (int i = 0; i < 3; ++i) {
    f.clock.advance_s(60);
    REQUIRE(leases.acquire("instance:instance-a", "instance-a", f.clock.now_ms(), ttl).ok());
    f.commands.on_timer();
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    REQUIRE(f.deliver().empty());
  }
  // A dies: its lease lapses, and the next scan notes the lapse as an epoch.
  f.clock.advance_ms(ttl + 1);
  f.commands.on_timer();
  f.clock.advance_s(61);  // past the redelivery interval (60 s by default) after the epoch
  f.device(TopicKind::ping, "dev-1", "health ping=1");
  auto again = f.deliver();
  REQUIRE(again.size() == 1);
  CHECK(again[0].payload == id + " rs");
  // Once per lapse: later scans see it noted, an hour of pings publishes nothing more.
  for (int i = 0; i < 60; ++i) {
    f.clock.advance_s(60);
    f.commands.on_timer();
    f.device(TopicKind::ping, "dev-1", "health ping=1");
    REQUIRE(f.deliver().empty());
  }
  CHECK(f.command(id)["devices"][0]["attempts"] == 2);
}

TEST_CASE(
    "a send to more devices than commands.expand_chunk answers at once and writes the rest as lines go out",
    "[service][commands][expansion]") {
  CommandsFixture f;
  for (int i = 0; i < 10; ++i) f.add_device("dev-" + std::to_string(i), {"fleet"});
  f.config.commands_expand_chunk = 3;
  auto a = f.api("commands/send", {{"type", "reboot"}, {"tags", {"fleet"}}});
  CHECK(a["devices_matched"] == 10);
  CHECK(a["devices_scheduled"] == 10);
  const std::string id = a["command_id"];
  // Committed with the answer: the first chunk as deliveries, every other target in the command's list.
  storage::CommandStore store(*f.db);
  CHECK(store.deliveries(id)->size() == 3);
  auto list = store.targets(id);
  REQUIRE(list.ok());
  REQUIRE(list->has_value());
  CHECK((*list)->remaining() == 7);
  CHECK(f.commands.expanding());
  // commands/get shows every target queued, in hardware id order across what is written and what is not.
  auto all = f.command(id);
  CHECK(all["command"]["counts"]["queued"] == 10);
  CHECK(all["command"]["counts"]["total"] == 10);
  REQUIRE(all["devices"].size() == 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(all["devices"][i]["hardware_id"] == "dev-" + std::to_string(i));
    CHECK(all["devices"][i]["state"] == "queued");
    CHECK(all["devices"][i]["attempts"] == 0);
  }
  auto page = f.api("commands/get", {{"command_id", id}, {"limit", 4}, {"after", "dev-1"}});
  REQUIRE(page["devices"].size() == 4);
  CHECK(page["devices"][0]["hardware_id"] == "dev-2");
  CHECK(page["devices"][3]["hardware_id"] == "dev-5");
  CHECK(page["next_after"] == "dev-5");
  // Each loop pass publishes what is written and writes the next chunk; every device gets one line.
  std::map<std::string, int> lines;
  std::vector<std::size_t> per_pass;
  for (int pass = 0; pass < 10; ++pass) {
    auto sent = f.deliver();
    per_pass.push_back(sent.size());
    for (const auto& m : sent) {
      CHECK(m.payload == id + " rs");
      ++lines[m.topic];
    }
  }
  CHECK(per_pass[0] == 3);  // the first chunk, before any other was written
  CHECK_FALSE(f.commands.expanding());
  CHECK_FALSE(store.targets(id)->has_value());
  CHECK(lines.size() == 10);
  for (const auto& [topic, n] : lines) CHECK(n == 1);
  auto done = f.command(id);
  CHECK(done["command"]["counts"]["sent"] == 10);
  CHECK(done["command"]["counts"]["total"] == 10);
}

TEST_CASE("canceling a send while it is written cancels the targets not yet written",
          "[service][commands][expansion]") {
  CommandsFixture f;
  for (int i = 0; i < 10; ++i) f.add_device("dev-" + std::to_string(i), {"fleet"});
  f.config.commands_expand_chunk = 3;
  const std::string id = f.api("commands/send", {{"type", "reboot"}, {"tags", {"fleet"}}})["command_id"];
  CHECK(f.deliver().size() == 3);  // published and marked sent; the second chunk written and queued
  auto c = f.api("commands/cancel", {{"command_id", id}});
  CHECK(c["canceled_deliveries"] == 10);  // 3 sent, 3 queued, 4 never written
  std::size_t published = 0;
  for (int pass = 0; pass < 5; ++pass) published += f.deliver().size();
  CHECK(published == 0);
  CHECK_FALSE(f.commands.expanding());
  auto got = f.command(id);
  CHECK(got["command"]["counts"]["canceled"] == 10);
  CHECK(got["command"]["counts"]["total"] == 10);
  CHECK(storage::CommandStore(*f.db).deliveries(id)->size() == 10);
}

TEST_CASE("the targets a stopped service left unwritten are written and published after its next start",
          "[service][commands][expansion]") {
  CommandsFixture f;
  for (int i = 0; i < 7; ++i) f.add_device("dev-" + std::to_string(i), {"fleet"});
  f.config.commands_expand_chunk = 2;
  const std::string id = f.api("commands/send", {{"type", "reboot"}, {"tags", {"fleet"}}})["command_id"];
  // The service stops here (nothing published, nothing more written); another starts on the database.
  service::Outbox box(f.clock, f.pub, f.topics, 1);
  service::CommandsModule again(f.config, f.clock, *f.db, f.pub, f.topics, box, f.effects);
  REQUIRE(again.start().ok());
  CHECK(again.expanding());
  std::map<std::string, int> lines;
  for (int pass = 0; pass < 8; ++pass) {
    const std::size_t from = f.pub.sent.size();
    box.pump(1000);
    for (const auto& m : f.sent_on("esthesis/command/request/", from)) {
      ++lines[m.topic];
      box.on_publish_done(m.tag, true);
    }
    box.hand_back();
    again.flush(true);
  }
  CHECK_FALSE(again.expanding());
  CHECK(lines.size() == 7);
  for (const auto& [topic, n] : lines) CHECK(n == 1);
  CHECK(f.command(id)["command"]["counts"]["sent"] == 7);
}

TEST_CASE("targets written after their command expired are written expired and never published",
          "[service][commands][expansion]") {
  CommandsFixture f;
  for (int i = 0; i < 5; ++i) f.add_device("dev-" + std::to_string(i), {"fleet"});
  f.config.commands_expand_chunk = 2;
  const std::string id =
      f.api("commands/send", {{"type", "reboot"}, {"tags", {"fleet"}}, {"ttl_s", 10}})["command_id"];
  // The service is stalled past the ttl (as a restart long after the send would be) before the rest is
  // written.
  f.clock.advance_s(11);
  f.commands.on_timer();  // the two written deliveries expire
  std::size_t published = 0;
  for (int pass = 0; pass < 4; ++pass) published += f.deliver().size();
  CHECK(published == 0);
  CHECK_FALSE(f.commands.expanding());
  auto got = f.command(id);
  CHECK(got["command"]["counts"]["expired"] == 5);
  CHECK(got["command"]["counts"]["total"] == 5);
  for (const auto& d : got["devices"]) CHECK(d["state"] == "expired");
}

TEST_CASE("commands/list pages by command id and filters by device", "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.add_device("dev-2");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    f.clock.advance_ms(5);
    ids.push_back(f.api("commands/send",
                        {{"type", "ping"}, {"hardware_ids", {i == 2 ? "dev-2" : "dev-1"}}})["command_id"]);
  }
  auto page = f.api("commands/list", {{"limit", 2}});
  REQUIRE(page["commands"].size() == 2);
  auto rest = f.api("commands/list", {{"limit", 2}, {"after", page["next_after"]}});
  CHECK(rest["commands"].size() == 1);
  auto dev2 = f.api("commands/list", {{"hardware_id", "dev-2"}});
  REQUIRE(dev2["commands"].size() == 1);
  CHECK(dev2["commands"][0]["command_id"] == ids[2]);
  CHECK(f.api("commands/list", {{"limit", 0}})["error"]["code"] == "bad_request");
}

TEST_CASE("a storage failure is answered with a generic message, its detail only logged",
          "[service][commands]") {
  CommandsFixture f;
  f.db->db().exec("DROP TABLE deliveries");
  f.db->db().exec("DROP TABLE commands");
  auto a = f.api("commands/get", {{"command_id", "01ABC"}, {"correlation_id", "c-1"}});
  const std::string code = a["error"]["code"];
  CHECK((code == "internal" || code == "unavailable"));
  const std::string message = a["error"]["message"];
  CHECK(message.find("no such table") == std::string::npos);
  CHECK(message.find("commands") == std::string::npos);
  CHECK(a["correlation_id"] == "c-1");
}

TEST_CASE("commands/get pages the devices of a command and bounds the output it carries",
          "[service][commands]") {
  CommandsFixture f;
  const std::vector<std::string> hws{"dev-1", "dev-2", "dev-3", "dev-4", "dev-5"};
  for (const auto& hw : hws) f.add_device(hw);
  const std::string id =
      f.api("commands/send", {{"type", "exec"}, {"command", "cat"}, {"hardware_ids", hws}})["command_id"];
  f.deliver();
  const std::size_t each = 300 * 1024;
  for (const auto& hw : hws) f.device(TopicKind::command_reply, hw, id + " s " + std::string(each, 'x'));

  SECTION("pages by hardware id with next_after, every device once") {
    std::vector<std::string> seen;
    json req{{"command_id", id}, {"limit", 2}};
    for (int pages = 1;; ++pages) {
      REQUIRE(pages <= 3);
      auto page = f.api("commands/get", req);
      REQUIRE(page.contains("devices"));
      CHECK(page["command"]["command_id"] == id);
      for (const auto& d : page["devices"]) {
        seen.push_back(d["hardware_id"]);
        // Two outputs of 300 KiB fit the budget: shown whole.
        CHECK(d["output_bytes"] == each);
        CHECK(d["output"].get<std::string>().size() == each);
        CHECK(d["output_partial"] == false);
      }
      if (!page.contains("next_after")) {
        CHECK(pages == 3);
        break;
      }
      CHECK(page["next_after"] == page["devices"].back()["hardware_id"]);
      req["after"] = page["next_after"];
    }
    CHECK(seen == hws);
  }
  SECTION("one page carries at most the output budget; output_bytes always tells the stored size") {
    auto page = f.api("commands/get", {{"command_id", id}});
    REQUIRE(page["devices"].size() == 5);
    CHECK_FALSE(page.contains("next_after"));
    std::size_t shown = 0;
    for (const auto& d : page["devices"]) {
      CHECK(d["output_bytes"] == each);
      const auto n = d["output"].get<std::string>().size();
      CHECK(d["output_partial"] == (n < each));
      shown += n;
    }
    CHECK(shown == service::k_command_get_output_budget);
    CHECK(page["devices"][2]["output_partial"] == false);
    CHECK(page["devices"][3]["output_partial"] == true);
    CHECK(page["devices"][4]["output"] == "");
  }
  SECTION("a bad cursor or limit is bad_request") {
    CHECK(f.api("commands/get", {{"command_id", id}, {"limit", 0}})["error"]["code"] == "bad_request");
    CHECK(f.api("commands/get", {{"command_id", id}, {"after", "a/b"}})["error"]["code"] == "bad_request");
  }
}

TEST_CASE("an answer larger than the broker's maximum packet size is replaced by too_large",
          "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  // A command whose own arguments do not fit the packet: no page of it can.
  const std::string id = f.api("commands/send", {{"type", "exec"},
                                                 {"command", "echo"},
                                                 {"arguments", {std::string(100 * 1024, 'a')}},
                                                 {"hardware_ids", {"dev-1"}}})["command_id"];
  f.pub.max_packet = 64 * 1024;
  auto big = f.api("commands/get", {{"command_id", id}, {"correlation_id", "c-7"}});
  CHECK(big["error"]["code"] == "too_large");
  CHECK(big["correlation_id"] == "c-7");
  CHECK(f.pub.sent.back().payload.size() < 1024);
  // What fits is answered as usual.
  f.pub.max_packet = 1024 * 1024;
  auto fits = f.api("commands/get", {{"command_id", id}, {"correlation_id", "c-8"}});
  CHECK(fits["command"]["arguments"][0].get<std::string>().size() == 100 * 1024);
}

TEST_CASE("commands/get shows less output rather than exceed the broker's maximum packet size",
          "[service][commands]") {
  CommandsFixture f;
  f.add_device("dev-1");
  f.add_device("dev-2");
  const std::string id =
      f.api("commands/send",
            {{"type", "exec"}, {"command", "cat"}, {"hardware_ids", {"dev-1", "dev-2"}}})["command_id"];
  f.deliver();
  f.device(TopicKind::command_reply, "dev-1", id + " s " + std::string(100 * 1024, 'x'));
  // Quotes: escaped in JSON, two bytes for each byte stored.
  f.device(TopicKind::command_reply, "dev-2", id + " s " + std::string(20 * 1024, '"'));
  f.pub.max_packet = 64 * 1024;
  auto got = f.api("commands/get", {{"command_id", id}, {"correlation_id", "c-9"}});
  REQUIRE(got.contains("devices"));
  CHECK(f.pub.sent.back().payload.size() < 64 * 1024);
  REQUIRE(got["devices"].size() == 2);
  for (const auto& d : got["devices"]) {
    CHECK(d["output_partial"] == true);
    CHECK(d["output"].get<std::string>().size() < d["output_bytes"].get<std::size_t>());
  }
  CHECK(got["devices"][0]["output_bytes"] == 100 * 1024);
  CHECK(got["devices"][1]["output_bytes"] == 20 * 1024);
  // No limit announced: the fixed budget (1 MiB) shows both whole.
  f.pub.max_packet = 0;
  auto whole = f.api("commands/get", {{"command_id", id}});
  CHECK(whole["devices"][0]["output_partial"] == false);
  CHECK(whole["devices"][1]["output_partial"] == false);
}
