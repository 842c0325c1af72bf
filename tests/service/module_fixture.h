// What a feature module needs to run without App: an in-memory database, a manual clock, a recording
// publisher, the outbox and the router. Requests go through the router, as on the wire.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "protocol/core/clock.h"
#include "protocol/core/signature.h"
#include "protocol/topics.h"
#include "service/batch_effects.h"
#include "service/config.h"
#include "service/outbox.h"
#include "service/publisher.h"
#include "service/router.h"
#include "storage/database.h"
#include "storage/devices.h"

namespace dispatch::testing {

class ModuleFixture {
 public:
  ModuleFixture() {
    auto opened = storage::Database::open(":memory:");
    REQUIRE(opened.ok());
    db = std::move(*opened);
    outbox = std::make_unique<service::Outbox>(clock, pub, topics, 1);
    router = std::make_unique<service::Router>(topics, pub, service::RouterLimits{});
  }

  // An API request with an MQTT 5 Response Topic and Correlation Data; returns the answer document.
  nlohmann::json api(const std::string& resource_action, const nlohmann::json& body) {
    return api_raw(resource_action, body.dump());
  }
  nlohmann::json api_raw(const std::string& resource_action, const std::string& payload) {
    service::InboundMessage m;
    m.topic = "esthesis/api/v1/" + resource_action;
    m.payload = payload;
    m.response_topic = "reply/test";
    m.correlation_data = "corr-" + std::to_string(++requests_);
    m.has_correlation_data = true;
    const size_t before = pub.sent.size();
    router->dispatch(m);
    REQUIRE(pub.sent.size() == before + 1);
    const service::OutMessage& answer = pub.sent.back();
    CHECK(answer.topic == "reply/test");
    CHECK(answer.correlation_data == m.correlation_data);
    return nlohmann::json::parse(answer.payload);
  }
  // A device message on <root of kind>/<hw>.
  void device(protocol::TopicKind kind, const std::string& hw, const std::string& payload) {
    service::InboundMessage m;
    auto topic = topics.device(kind, hw);
    REQUIRE(topic.ok());
    m.topic = *topic;
    m.payload = payload;
    router->dispatch(m);
  }
  void add_device(const std::string& hw, std::vector<std::string> tags = {}) {
    storage::DeviceRow row;
    row.hardware_id = hw;
    row.public_key_pem = pem();
    row.key_type = "ed25519";
    row.tags = std::move(tags);
    REQUIRE(storage::DeviceStore(*db).upsert(row, clock.now_ms()).ok());
  }
  static const std::string& pem() {
    static const std::string k = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
    return k;
  }
  // Messages published on topics starting with prefix since index from.
  std::vector<service::OutMessage> sent_on(const std::string& prefix, size_t from = 0) const {
    std::vector<service::OutMessage> out;
    for (size_t i = from; i < pub.sent.size(); ++i) {
      if (pub.sent[i].topic.rfind(prefix, 0) == 0) out.push_back(pub.sent[i]);
    }
    return out;
  }

  service::Config config;
  core::ManualClock clock;
  std::unique_ptr<storage::Database> db;
  service::RecordingPublisher pub;
  protocol::Topics topics;
  service::BatchEffects effects;
  std::unique_ptr<service::Outbox> outbox;
  std::unique_ptr<service::Router> router;

 private:
  int requests_ = 0;
};

}  // namespace dispatch::testing
