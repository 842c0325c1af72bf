// The App's command path without a broker: a recording publisher, a manual clock and a real SQLite file.
#include "service/app.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "protocol/core/signature.h"
#include "storage/commands.h"
#include "storage/database.h"
#include "tests/support/process.h"

using namespace dispatch;
using json = nlohmann::json;

namespace {

// Checks, at the moment of each publish, that the delivery it carries is already committed.
class CheckingPublisher final : public service::Publisher {
 public:
  explicit CheckingPublisher(storage::Database& db) : db_(db) {}
  void publish(service::OutMessage m) override {
    if (m.topic.rfind("esthesis/command/request/", 0) == 0) {
      storage::CommandStore store(db_);
      auto id = m.payload.substr(0, m.payload.find(' '));
      auto hw = m.topic.substr(m.topic.rfind('/') + 1);
      auto d = store.delivery(id, hw);
      committed_before_publish = committed_before_publish && d.ok();
    }
    sent.push_back(std::move(m));
  }
  std::vector<service::OutMessage> sent;
  bool committed_before_publish = true;

 private:
  storage::Database& db_;
};

service::InboundMessage api_request(const std::string& action, const json& body) {
  service::InboundMessage m;
  m.topic = "esthesis/api/v1/" + action;
  m.payload = body.dump();
  m.response_topic = "reply/test";
  m.correlation_data = "corr-1";
  m.has_correlation_data = true;
  return m;
}

json last_answer(const CheckingPublisher& p) {
  for (auto it = p.sent.rbegin(); it != p.sent.rend(); ++it) {
    if (it->topic == "reply/test") return json::parse(it->payload);
  }
  return {};
}

}  // namespace

TEST_CASE(
    "deliveries are committed before they are published, marked sent on the broker's ack, and "
    "re-published with the same id after a restart",
    "[service][app]") {
  testing::TempDir dir;
  service::Config config;
  config.storage_data_dir = dir.path() + "/pkgs";
  core::ManualClock clock;
  auto db = storage::Database::open(dir.path() + "/db.sqlite");
  REQUIRE(db);
  std::string pem = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
  std::string command_id;
  {
    CheckingPublisher pub(**db);
    service::App app(config, clock, **db, pub);
    REQUIRE(app.start());
    for (const char* hw : {"dev-1", "dev-2", "dev-3"}) {
      app.handle(
          api_request("devices/register", {{"hardware_id", hw}, {"public_key", pem}, {"tags", {"t"}}}));
    }
    app.handle(api_request("commands/send", {{"type", "reboot"}, {"tags", {"t"}}}));
    auto answer = last_answer(pub);
    REQUIRE(answer["devices_scheduled"] == 3);
    command_id = answer["command_id"];
    CHECK(pub.sent.back().correlation_data == "corr-1");

    REQUIRE(app.outbox_size() == 3);
    pub.sent.clear();
    CHECK(app.pump_outbox(2) == 2);
    REQUIRE(pub.sent.size() == 2);
    CHECK(pub.committed_before_publish);
    CHECK(pub.sent[0].payload == command_id + " rs");
    CHECK(pub.sent[0].qos == 1);
    CHECK(pub.sent[0].expiry_s == 86400);  // remaining TTL as MQTT 5 Message Expiry

    // First publish acknowledged, second refused by Paho (re-queued), third never published.
    app.on_publish_done(pub.sent[0].tag, true);
    app.on_publish_done(pub.sent[1].tag, false);
    app.flush();
    storage::CommandStore store(**db);
    auto counts = store.counts(command_id);
    REQUIRE(counts);
    CHECK(counts->sent == 1);
    CHECK(counts->queued == 2);
    CHECK(app.outbox_size() == 2);
  }
  // "Crash": a new App over the same database re-publishes the two queued deliveries, same id.
  CheckingPublisher pub(**db);
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  CHECK(app.outbox_size() == 2);
  CHECK(app.pump_outbox(100) == 2);
  for (const auto& m : pub.sent) CHECK(m.payload == command_id + " rs");
  CHECK(pub.committed_before_publish);
}

TEST_CASE("an API request without any answer topic is counted, not answered, one with reply_to is answered",
          "[service][app]") {
  service::Config config;
  core::ManualClock clock;
  auto db = storage::Database::open(":memory:");
  REQUIRE(db);
  service::RecordingPublisher pub;
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  service::InboundMessage m;
  m.topic = "esthesis/api/v1/devices/list";
  m.payload = "{}";
  app.handle(m);
  CHECK(pub.sent.empty());
  CHECK(app.counters().unanswerable_requests == 1);
  m.payload = R"({"reply_to":"legacy/reply","correlation_id":"c-9"})";
  app.handle(m);
  REQUIRE(pub.sent.size() == 1);
  CHECK(pub.sent[0].topic == "legacy/reply");
  CHECK(json::parse(pub.sent[0].payload)["correlation_id"] == "c-9");
  // A wildcard reply_to is never used.
  m.payload = R"({"reply_to":"legacy/#","correlation_id":"c-10"})";
  app.handle(m);
  CHECK(pub.sent.size() == 1);
  CHECK(app.counters().unanswerable_requests == 2);
  // Nor a device's command topic (the answer would reach the device as a command), nor the API itself
  // (the service would answer its own answer forever).
  for (const char* target : {"esthesis/command/request/dev-1", "esthesis/api/v1/devices/list"}) {
    m.payload = "{}";
    m.response_topic = target;
    app.handle(m);
  }
  CHECK(pub.sent.size() == 1);
  CHECK(app.counters().unanswerable_requests == 4);
}

TEST_CASE("oversize device messages are refused before parsing, those expecting an answer get too_large",
          "[service][app]") {
  service::Config config;
  core::ManualClock clock;
  auto db = storage::Database::open(":memory:");
  REQUIRE(db);
  service::RecordingPublisher pub;
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  service::InboundMessage m;
  m.topic = "esthesis/metadata/dev-1";
  m.payload = "health firmware='1.0.0'," + std::string(300 * 1024, 'x');
  app.handle(m);
  CHECK(pub.sent.empty());
  m.topic = "esthesis/provisioning/request/dev-1";
  m.payload = std::string(300 * 1024, ' ');
  app.handle(m);
  REQUIRE(pub.sent.size() == 1);
  CHECK(pub.sent[0].topic == "esthesis/provisioning/reply/dev-1");
  CHECK(json::parse(pub.sent[0].payload)["error"]["code"] == "too_large");
  CHECK(app.counters().oversize_device_messages == 2);
}

namespace {

service::InboundMessage device_message(const std::string& topic, std::string payload) {
  service::InboundMessage m;
  m.topic = topic;
  m.payload = std::move(payload);
  return m;
}

json last_answer_of(const service::RecordingPublisher& p) {
  for (auto it = p.sent.rbegin(); it != p.sent.rend(); ++it) {
    if (it->topic == "reply/test") return json::parse(it->payload);
  }
  return {};
}

// Publishes the outbox, acknowledges every command request and commits the acknowledgements; returns
// the command lines published.
std::vector<std::string> publish_and_ack(service::App& app, service::RecordingPublisher& pub,
                                         core::ManualClock& clock) {
  const size_t from = pub.sent.size();
  app.pump_outbox(1000);
  std::vector<std::string> lines;
  for (size_t i = from; i < pub.sent.size(); ++i) {
    if (pub.sent[i].topic.rfind("esthesis/command/request/", 0) != 0) continue;
    lines.push_back(pub.sent[i].payload);
    app.on_publish_done(pub.sent[i].tag, true);
  }
  clock.advance_ms(100);
  app.flush(true);
  return lines;
}

}  // namespace

TEST_CASE("campaign attempts are listed by the pending pull and re-published by the presence rule",
          "[service][app][presence]") {
  service::Config config;
  core::ManualClock clock;
  auto db = storage::Database::open(":memory:");
  REQUIRE(db);
  service::RecordingPublisher pub;
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  const std::string pem = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
  app.handle(api_request("devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}}));
  app.handle(device_message("esthesis/ping/dev-1", "health ping=1"));
  app.handle(api_request("campaigns/create", {{"name", "long"},
                                              {"type", "exec"},
                                              {"command", "sleep"},
                                              {"arguments", {"600"}},
                                              {"reply_timeout_s", 3600},
                                              {"groups", {{{"hardware_ids", {"dev-1"}}}}}}));
  const std::string campaign = last_answer_of(pub)["id"];
  app.handle(api_request("campaigns/start", {{"id", campaign}}));
  std::vector<std::string> first;
  for (int i = 0; i < 20 && first.empty(); ++i) {
    clock.advance_ms(250);
    app.on_timer();
    first = publish_and_ack(app, pub, clock);
  }
  REQUIRE(first.size() == 1);
  const std::string line = first[0];
  CHECK(line.find(" es sleep 600") != std::string::npos);

  // Pinging every 60 s for 20 minutes: present without a break, never a second copy.
  for (int i = 0; i < 20; ++i) {
    clock.advance_s(60);
    app.handle(device_message("esthesis/ping/dev-1", "health ping=1"));
    app.on_timer();
    REQUIRE(publish_and_ack(app, pub, clock).empty());
  }
  // The pending pull lists the attempt.
  const size_t from = pub.sent.size();
  app.handle(device_message("esthesis/command/pending/dev-1", "{}"));
  json pending;
  for (size_t i = from; i < pub.sent.size(); ++i) {
    if (pub.sent[i].topic == "esthesis/command/pending-reply/dev-1")
      pending = json::parse(pub.sent[i].payload);
  }
  CHECK(pending["commands"] == json::array({line}));
  CHECK(publish_and_ack(app, pub, clock).empty());  // the pull was the delivery
  // Silent past the gap, then back: exactly one re-publication, same command id.
  clock.advance_s(config.commands_presence_gap_s + 1);
  app.handle(device_message("esthesis/ping/dev-1", "health ping=1"));
  CHECK(publish_and_ack(app, pub, clock) == std::vector<std::string>{line});
  for (int i = 0; i < 5; ++i) {
    clock.advance_s(60);
    app.handle(device_message("esthesis/ping/dev-1", "health ping=1"));
    CHECK(publish_and_ack(app, pub, clock).empty());
  }
}

TEST_CASE("a reply over the output limit is recorded cut and trimmed, over the transport limit it is dropped",
          "[service][app]") {
  service::Config config;
  config.commands_max_output_bytes = 1000;
  config.commands_max_reply_bytes = 4000;
  core::ManualClock clock;
  auto db = storage::Database::open(":memory:");
  REQUIRE(db);
  service::RecordingPublisher pub;
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  const std::string pem = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
  app.handle(api_request("devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}}));
  app.handle(api_request("devices/register", {{"hardware_id", "dev-2"}, {"public_key", pem}}));
  app.handle(api_request("commands/send",
                         {{"type", "exec"}, {"command", "seq"}, {"hardware_ids", {"dev-1", "dev-2"}}}));
  const std::string id = last_answer_of(pub)["command_id"];
  REQUIRE(publish_and_ack(app, pub, clock).size() == 2);
  app.handle(device_message("esthesis/command/reply/dev-1", id + " s " + std::string(3000, 'x')));
  app.handle(device_message("esthesis/command/reply/dev-2", id + " s " + std::string(5000, 'y')));
  CHECK(app.counters().oversize_device_messages == 1);
  app.handle(api_request("commands/get", {{"command_id", id}}));
  const json got = last_answer_of(pub);
  REQUIRE(got["devices"].size() == 2);
  for (const auto& d : got["devices"]) {
    if (d["hardware_id"] == "dev-1") {
      CHECK(d["state"] == "succeeded");
      CHECK(d["trimmed"] == true);
      CHECK(d["output"] == std::string(1000, 'x'));
    } else {
      CHECK(d["state"] == "sent");
    }
  }
}

TEST_CASE("commands.max_reply_bytes may not be below commands.max_output_bytes", "[service][config]") {
  service::CommandLineRequest request;
  auto c = service::load_config({"--commands.max_output_bytes", "2048", "--commands.max_reply_bytes", "1024"},
                                {}, request);
  REQUIRE(!c);
  CHECK(c.error().message.find("commands.max_reply_bytes") != std::string::npos);
}

TEST_CASE("after a restart an unanswered campaign attempt is published again once, not again on presence",
          "[service][app][presence]") {
  testing::TempDir dir;
  service::Config config;
  config.storage_data_dir = dir.path() + "/pkgs";
  core::ManualClock clock;
  auto db = storage::Database::open(dir.path() + "/db.sqlite");
  REQUIRE(db);
  std::string line;
  {
    service::RecordingPublisher pub;
    service::App app(config, clock, **db, pub);
    REQUIRE(app.start());
    const std::string pem = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
    app.handle(api_request("devices/register", {{"hardware_id", "dev-1"}, {"public_key", pem}}));
    app.handle(api_request("campaigns/create", {{"name", "r"},
                                                {"type", "reboot"},
                                                {"reply_timeout_s", 3600},
                                                {"groups", {{{"hardware_ids", {"dev-1"}}}}}}));
    app.handle(api_request("campaigns/start", {{"id", last_answer_of(pub)["id"]}}));
    std::vector<std::string> first;
    for (int i = 0; i < 20 && first.empty(); ++i) {
      clock.advance_ms(250);
      app.on_timer();
      first = publish_and_ack(app, pub, clock);
    }
    REQUIRE(first.size() == 1);
    line = first[0];
  }
  clock.advance_s(120);
  service::RecordingPublisher pub;
  service::App app(config, clock, **db, pub);
  REQUIRE(app.start());
  // The restart exception (PROTOCOL §1.3): published again with the same id at start...
  CHECK(publish_and_ack(app, pub, clock) == std::vector<std::string>{line});
  // ...and only once: the device's next messages do not add a copy.
  for (int i = 0; i < 5; ++i) {
    clock.advance_s(60);
    app.handle(device_message("esthesis/ping/dev-1", "health ping=1"));
    CHECK(publish_and_ack(app, pub, clock).empty());
  }
}
