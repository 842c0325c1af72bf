// Provisioning end to end through a real mosquitto and a real dispatchd (PROTOCOL §2, §3 packages).
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::core::KeyType;
using dispatch::core::PrivateKey;
using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

constexpr int k_chunk = 256 * 1024;

std::unique_ptr<MqttClient> connect_as(const Broker& b, int version) {
  ClientOptions o;
  o.uri = b.uri();
  o.mqtt_version = version;
  auto c = std::make_unique<MqttClient>(o);
  REQUIRE(c->connect(10000));
  return c;
}

std::string payload_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7919 + i / 1000) % 256);
  return s;
}

json upload_frame(MqttClient& platform, const std::string& id, std::size_t offset, std::string_view bytes,
                  bool last) {
  json h{{"id", id}, {"offset", offset}, {"length", bytes.size()}, {"last", last}};
  auto r =
      platform.request("esthesis/api/v1/packages/upload", dispatch::protocol::encode_frame(h, bytes), 10000);
  REQUIRE(r.ok());
  return json::parse(*r);
}

struct Env {
  Broker broker;
  Daemon daemon{broker, {"--provisioning.rate_limit", "1000"}};
  std::unique_ptr<MqttClient> platform = connect_as(broker, 5);
  Env() { REQUIRE(daemon.wait_ready(*platform)); }

  std::string register_device(const std::string& hw, const PrivateKey& key) {
    auto r = api(*platform, "devices/register", {{"hardware_id", hw}, {"public_key", key.public_pem()}});
    REQUIRE(r.value("hardware_id", "") == hw);
    return hw;
  }
  // Creates an internal package and uploads it in chunks, last one first.
  std::string add_package(const std::string& version, const std::string& data) {
    auto c = api(*platform, "packages/create",
                 {{"name", "fw"},
                  {"version", version},
                  {"type", "internal"},
                  {"sha256", dispatch::core::sha256_hex(data)},
                  {"size", data.size()},
                  {"available", true}});
    REQUIRE(c.contains("id"));
    const std::string id = c["id"];
    std::vector<std::size_t> offsets;
    for (std::size_t at = 0; at < data.size(); at += k_chunk) offsets.push_back(at);
    std::reverse(offsets.begin(), offsets.end());
    json last;
    for (std::size_t i = 0; i < offsets.size(); ++i) {
      last = upload_frame(*platform, id, offsets[i], std::string_view(data).substr(offsets[i], k_chunk),
                          i + 1 == offsets.size());
    }
    REQUIRE(last.value("state", "") == "ready");
    CHECK(api(*platform, "packages/get", {{"id", id}})["state"] == "ready");
    return id;
  }
};

json fresh_query(const std::string& hw, const PrivateKey& key, json body) {
  static int counter = 0;
  const std::string ts = dispatch::core::format_rfc3339(dispatch::core::SystemClock().now_ms());
  const std::string nonce = fmt::format("{}-{:08d}", dispatch::core::random_hex(8), ++counter);
  body["ts"] = ts;
  body["nonce"] = nonce;
  body["token"] = key.sign_base64(dispatch::core::fresh_token_message(hw, ts, nonce));
  return body;
}

// Publishes on a device topic and waits for the next message on the device's subscriptions.
dispatch::service::InboundMessage exchange(MqttClient& dev, const std::string& topic,
                                           const std::string& payload, const std::string& response_topic = {},
                                           std::optional<std::string> corr = std::nullopt) {
  REQUIRE(dev.publish(topic, payload, 1, false, response_topic, corr));
  auto m = dev.next(10000);
  REQUIRE(m.has_value());
  return *m;
}

}  // namespace

TEST_CASE("provisioning: upload, query, chunked download, single use (MQTT 5 and 3.1.1)", "[integration]") {
  Env env;
  const std::string data = payload_bytes(600 * 1024 + 17);
  const std::string id = env.add_package("2.0.0", data);

  for (int version : {5, 4}) {
    DYNAMIC_SECTION("MQTT version " << version) {
      const std::string hw = fmt::format("prov-dev-v{}", version);
      const PrivateKey key = PrivateKey::generate(KeyType::rsa);
      env.register_device(hw, key);
      auto dev = connect_as(env.broker, version);
      REQUIRE(dev->subscribe("esthesis/provisioning/reply/" + hw));
      REQUIRE(dev->subscribe("esthesis/provisioning/data/" + hw));

      const std::string reply_topic = version == 5 ? "esthesis/provisioning/reply/" + hw : "";
      auto q = fresh_query(hw, key, {{"version", "1.0.0"}, {"correlation_id", "q-1"}});
      auto m = exchange(*dev, "esthesis/provisioning/request/" + hw, q.dump(), reply_topic,
                        version == 5 ? std::optional<std::string>("corr-q") : std::nullopt);
      CHECK(m.topic == "esthesis/provisioning/reply/" + hw);
      if (version == 5) CHECK(m.correlation_data == "corr-q");
      auto answer = json::parse(m.payload);
      REQUIRE(answer.value("status", "") == "update");
      CHECK(answer["correlation_id"] == "q-1");
      CHECK(answer["package"]["id"] == id);
      CHECK(answer["package"]["size"] == data.size());
      const std::string token = answer["package"]["download_token"];

      // Download out of order: the last chunk first, then the rest.
      std::string got(data.size(), '\0');
      std::vector<std::size_t> offsets;
      for (std::size_t at = 0; at < data.size(); at += k_chunk) offsets.push_back(at);
      std::rotate(offsets.begin(), offsets.end() - 1, offsets.end());
      for (std::size_t off : offsets) {
        json req{{"download_token", token}, {"offset", off}, {"length", k_chunk}, {"correlation_id", "d"}};
        auto dm = exchange(*dev, "esthesis/provisioning/download/" + hw, req.dump());
        CHECK(dm.topic == "esthesis/provisioning/data/" + hw);
        auto frame = dispatch::protocol::parse_frame(dm.payload);
        REQUIRE(frame.ok());
        REQUIRE_FALSE(frame->header.contains("error"));
        CHECK(frame->header["offset"] == off);
        CHECK(frame->header["total"] == data.size());
        CHECK(frame->header["correlation_id"] == "d");
        got.replace(off, frame->body.size(), frame->body);
      }
      CHECK(dispatch::core::sha256_hex(got) == answer["package"]["sha256"]);
      CHECK(got == data);

      json again{{"download_token", token}, {"offset", 0}, {"length", k_chunk}, {"correlation_id", "d2"}};
      auto spent = dispatch::protocol::parse_frame(
          exchange(*dev, "esthesis/provisioning/download/" + hw, again.dump()).payload);
      REQUIRE(spent.ok());
      CHECK(spent->header["error"]["code"] == "token_invalid");
      CHECK(spent->header["correlation_id"] == "d2");
    }
  }
}

TEST_CASE("provisioning: a Response Topic outside the device's namespace is not used", "[integration]") {
  Env env;
  const PrivateKey key = PrivateKey::generate(KeyType::ed25519);
  const std::string hw = env.register_device("prov-rt-1", key);
  auto dev = connect_as(env.broker, 5);
  REQUIRE(dev->subscribe("esthesis/provisioning/reply/#"));
  struct Case {
    const char* rule;
    std::string response_topic;
    std::string expected;
  } cases[] = {
      {"another device's reply topic", "esthesis/provisioning/reply/prov-rt-2",
       "esthesis/provisioning/reply/prov-rt-1"},
      {"an API topic", "esthesis/api/v1/devices/list", "esthesis/provisioning/reply/prov-rt-1"},
      {"below the own reply topic", "esthesis/provisioning/reply/prov-rt-1/rpc",
       "esthesis/provisioning/reply/prov-rt-1/rpc"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto q = fresh_query(hw, key, {{"version", "1.0.0"}, {"correlation_id", "q"}});
    auto m =
        exchange(*dev, "esthesis/provisioning/request/" + hw, q.dump(), c.response_topic, std::string("cd"));
    CHECK(m.topic == c.expected);
    CHECK(m.correlation_data == "cd");
    CHECK(json::parse(m.payload)["status"] == "up_to_date");
  }
}

TEST_CASE("provisioning: malformed requests on every device topic never stop the service", "[integration]") {
  Env env;
  const PrivateKey key = PrivateKey::generate(KeyType::ec_p256);
  const std::string hw = env.register_device("prov-bad-1", key);
  auto dev = connect_as(env.broker, 4);
  REQUIRE(dev->subscribe("esthesis/provisioning/reply/" + hw));
  REQUIRE(dev->subscribe("esthesis/provisioning/data/" + hw));
  const std::vector<std::string> payloads = {"",
                                             "{",
                                             "[]",
                                             "null",
                                             "{\"version\":\"\xff\xfe\"}",
                                             R"({"version":"1.0","token":"x"})",
                                             R"({"download_token":5})",
                                             R"({"version":"1.0.0","token":"AAAA","ts":"x","nonce":"y"})",
                                             std::string(64, '[')};
  for (const char* kind : {"request", "download"}) {
    for (const auto& p : payloads) {
      INFO(kind << " payload " << p.size() << " bytes");
      auto m = exchange(*dev, fmt::format("esthesis/provisioning/{}/{}", kind, hw), p);
      std::string header = m.payload.substr(0, m.payload.find('\n'));
      auto j = json::parse(header, nullptr, false);
      REQUIRE(j.is_object());
      CHECK(j.contains("error"));
    }
  }
  // Invalid hardware ids in the topic are dropped (there is nobody to answer); the service lives on.
  for (const char* t : {"esthesis/provisioning/request/ab", "esthesis/provisioning/download/a%20b",
                        "esthesis/provisioning/request/x/y"}) {
    REQUIRE(dev->publish(t, "{}", 1, false, {}, std::nullopt, true));
  }
  CHECK(env.daemon.running());
  auto q = fresh_query(hw, key, {{"version", "1.0.0"}});
  auto m = exchange(*dev, "esthesis/provisioning/request/" + hw, q.dump());
  CHECK(json::parse(m.payload)["status"] == "up_to_date");
  CHECK(api(*env.platform, "devices/get", {{"hardware_id", hw}}).value("hardware_id", "") == hw);
}
