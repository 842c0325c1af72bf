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
