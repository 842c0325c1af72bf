// DeviceQuery with provisioning.token = off (signatures are covered by provisioning_test.cpp): the rate
// window counts oversize queries, answers carry the correlation, a query issues a download token.
#include "service/provisioning/device_query.h"

#include <catch2/catch.hpp>

#include "protocol/core/secrets.h"

using namespace dispatch;
using json = nlohmann::json;

namespace {

struct Fixture {
  core::ManualClock clock;
  service::Config config;
  protocol::Topics topics;
  std::unique_ptr<storage::Database> db = std::move(storage::Database::open(":memory:")).value();
  service::RecordingPublisher pub;
  service::DeviceAnswers answers{topics, pub, 1};
  service::BatchEffects effects;
  service::provisioning::DownloadTokens tokens{*db, 3'600'000, 3};
  std::unique_ptr<service::provisioning::DeviceQuery> query;

  Fixture() {
    config.provisioning_token = dispatch::service::TokenMode::off;
    query =
        std::make_unique<service::provisioning::DeviceQuery>(config, clock, *db, tokens, answers, effects);
    REQUIRE(query->start().ok());
    storage::DeviceRow d;
    d.hardware_id = "dev-1";
    d.public_key_pem = "unused";
    d.key_type = "rsa";
    REQUIRE(storage::DeviceStore(*db).upsert(d, clock.now_ms()).ok());
    storage::PackageRow p;
    p.id = "01PKG";
    p.name = "fw";
    p.version = "2.0.0";
    p.size = 4;
    p.sha256 = core::sha256_hex("abcd");
    p.available = true;
    p.state = "ready";
    REQUIRE(storage::PackageStore(*db).insert(p).ok());
  }
  json answer() {
    REQUIRE(pub.sent.size() == 1);
    auto j = json::parse(pub.sent[0].payload);
    pub.sent.clear();
    return j;
  }
  json ask(const std::string& hw, const json& body) {
    service::InboundMessage m;
    m.payload = body.dump();
    query->on_request(hw, m);
    return answer();
  }
  json oversize(const std::string& hw) {
    service::InboundMessage m;
    m.payload = std::string(2000, ' ');
    m.response_topic = "esthesis/provisioning/reply/" + hw + "/mine";
    query->on_oversize_request(hw, m, 1024);
    CHECK(pub.sent.at(0).topic == m.response_topic);
    return answer();
  }
};

}  // namespace

TEST_CASE("device query: a query issues a download token", "[provisioning][query]") {
  Fixture f;
  auto a = f.ask("dev-1", {{"version", "1.0.0"}, {"correlation_id", "q"}});
  CHECK(a["status"] == "update");
  CHECK(a["correlation_id"] == "q");
  CHECK(a["package"]["id"] == "01PKG");
  CHECK(f.effects.noted("after_token_issue_commit"));
  REQUIRE(f.tokens.check(a["package"]["download_token"], "dev-1", f.clock.now_ms()).ok());
  CHECK(f.ask("dev-1", {{"version", "2.0.0"}})["status"] == "up_to_date");
  CHECK(f.ask("dev-x", {{"version", "1.0.0"}})["error"]["code"] == "unauthorized");
}

TEST_CASE("device query: oversize queries count in the rate window", "[provisioning][query]") {
  Fixture f;
  for (int i = 0; i < 4; ++i) {
    auto a = f.oversize("dev-1");
    CHECK(a["error"]["code"] == "too_large");
    CHECK(a["error"]["message"] == "message of 2000 bytes exceeds the limit of 1024 bytes");
  }
  CHECK(f.ask("dev-1", {{"version", "1.0.0"}})["status"] == "update");  // the 5th query
  auto limited = f.oversize("dev-1");
  CHECK(limited["error"]["code"] == "rate_limited");
  CHECK(limited["error"]["retry_after_s"] == 300);
  f.clock.advance_s(300);
  CHECK(f.oversize("dev-1")["error"]["code"] == "too_large");
}
