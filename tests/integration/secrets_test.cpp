// Canary secrets: plant recognisable keys, tokens and signatures in every flow that carries one, run the
// flows through a real dispatchd (log.level debug), and prove that none of them reaches dispatchd's log
// or its database (PROTOCOL §2.1 tokens, §2.4 download tokens stored only as their SHA-256).
#include "protocol/core/secrets.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "service/provisioning/download_tokens.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::core::KeyType;
using dispatch::core::PrivateKey;
using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

std::unique_ptr<MqttClient> connect_to(const Broker& b, int version = 5) {
  ClientOptions o;
  o.uri = b.uri();
  o.mqtt_version = version;
  auto c = std::make_unique<MqttClient>(o);
  REQUIRE(c->connect(10000));
  return c;
}

// The database as text (sqlite3 .dump, which also reads the WAL) plus the raw bytes of its files.
std::string database_contents(const std::string& db_path, const std::string& scratch_dir) {
  const std::string dump_path = scratch_dir + "/dump.sql";
  Process dump({"/usr/bin/sqlite3", db_path, ".dump"}, {}, dump_path);
  REQUIRE(dump.wait(30000) == 0);
  std::string all = read_file(dump_path);
  REQUIRE(all.find("CREATE TABLE") != std::string::npos);
  for (const char* suffix : {"", "-wal"}) all += read_file(db_path + suffix);
  return all;
}

json exchange(MqttClient& dev, const std::string& topic, const std::string& payload) {
  REQUIRE(dev.publish(topic, payload, 1));
  auto m = dev.next(10000);
  REQUIRE(m.has_value());
  auto j = json::parse(m->payload.substr(0, m->payload.find('\n')), nullptr, false);
  REQUIRE(j.is_object());
  return j;
}

}  // namespace

TEST_CASE("secrets: tokens, signatures and private keys never reach the log or the database",
          "[integration][secrets]") {
  Broker broker;
  TempDir scratch;
  auto daemon = std::make_unique<Daemon>(
      broker, std::vector<std::string>{"--log.level", "debug", "--provisioning.rate_limit", "1000",
                                       "--provisioning.token", "any"});
  auto platform = connect_to(broker);
  REQUIRE(daemon->wait_ready(*platform));

  const std::string hw = "canary-dev";
  const PrivateKey key = PrivateKey::generate(KeyType::ed25519);
  const PrivateKey stranger = PrivateKey::generate(KeyType::ed25519);
  // A line from the middle of the private key's PEM: what a leak of the key would contain.
  const std::string private_pem = key.private_pem();
  const std::string private_line = private_pem.substr(private_pem.find('\n') + 1, 40);

  // Register payloads: a private key pasted instead of the public one is refused and never echoed.
  auto refused =
      api(*platform, "devices/register", {{"hardware_id", "canary-bad"}, {"public_key", private_pem}});
  CHECK(refused["error"]["code"] == "bad_request");
  auto reg = api(*platform, "devices/register", {{"hardware_id", hw}, {"public_key", key.public_pem()}});
  REQUIRE(reg.value("hardware_id", "") == hw);

  // An internal package so the query answers with a download token.
  const std::string data(1000, 'p');
  auto pkg = api(*platform, "packages/create",
                 {{"name", "fw"},
                  {"version", "2.0.0"},
                  {"type", "internal"},
                  {"sha256", dispatch::core::sha256_hex(data)},
                  {"size", data.size()},
                  {"available", true}});
  REQUIRE(pkg.contains("id"));
  auto up = platform->request(
      "esthesis/api/v1/packages/upload",
      dispatch::protocol::encode_frame(
          {{"id", pkg["id"]}, {"offset", 0}, {"length", data.size()}, {"last", true}}, data),
      10000);
  REQUIRE(up.ok());

  auto dev = connect_to(broker);
  REQUIRE(dev->subscribe("esthesis/provisioning/reply/" + hw));
  REQUIRE(dev->subscribe("esthesis/provisioning/data/" + hw));
  REQUIRE(dev->subscribe("esthesis/command/request/" + hw));

  // A fresh token (the signature is the secret a replay would need).
  const std::string ts = dispatch::core::format_rfc3339(dispatch::core::SystemClock().now_ms());
  const std::string nonce = "canary-nonce-" + dispatch::core::random_hex(8);
  const std::string fresh_signature = key.sign_base64(dispatch::core::fresh_token_message(hw, ts, nonce));
  auto answer = exchange(*dev, "esthesis/provisioning/request/" + hw,
                         json{{"version", "1.0.0"},
                              {"token", fresh_signature},
                              {"ts", ts},
                              {"nonce", nonce},
                              {"correlation_id", "q-1"}}
                             .dump());
  REQUIRE(answer.value("status", "") == "update");
  const std::string download_token = answer["package"]["download_token"];

  // A static token (esthesis-compatible, valid forever: the most sensitive one) and a forged one.
  const std::string static_signature = key.sign_base64(hw);
  CHECK(exchange(*dev, "esthesis/provisioning/request/" + hw,
                 json{{"version", "1.0.0"}, {"token", static_signature}, {"correlation_id", "q-2"}}.dump())
            .value("status", "") == "update");
  const std::string forged_signature = stranger.sign_base64(hw);
  CHECK(exchange(*dev, "esthesis/provisioning/request/" + hw,
                 json{{"version", "1.0.0"}, {"token", forged_signature}, {"correlation_id", "q-3"}}
                     .dump())["error"]["code"] == "unauthorized");

  // The download token: spent, then replayed, then a guessed one.
  auto chunk = exchange(*dev, "esthesis/provisioning/download/" + hw,
                        json{{"download_token", download_token},
                             {"offset", 0},
                             {"length", data.size()},
                             {"correlation_id", "d-1"}}
                            .dump());
  CHECK_FALSE(chunk.contains("error"));
  CHECK(exchange(
            *dev, "esthesis/provisioning/download/" + hw,
            json{{"download_token", download_token}, {"offset", 0}, {"length", 10}, {"correlation_id", "d-2"}}
                .dump())["error"]["code"] == "token_invalid");
  const std::string guessed_token = dispatch::core::random_token();
  CHECK(exchange(
            *dev, "esthesis/provisioning/download/" + hw,
            json{{"download_token", guessed_token}, {"offset", 0}, {"length", 10}, {"correlation_id", "d-3"}}
                .dump())["error"]["code"] == "token_invalid");

  // Malformed requests that carry a secret must not be quoted back or logged either.
  const std::string malformed = R"({"token":")" + static_signature + R"(", "version": )";
  CHECK(exchange(*dev, "esthesis/provisioning/request/" + hw, malformed)["error"]["code"] == "bad_request");

  // A command whose output is a secret: stored (commands/get shows it, by design) but never logged.
  const std::string output_canary = "canary-output-" + dispatch::core::random_hex(16);
  auto sent = api(*platform, "commands/send",
                  {{"type", "exec"}, {"execution", "sync"}, {"command", "cat"}, {"hardware_ids", {hw}}});
  REQUIRE(sent.contains("command_id"));
  const std::string command_id = sent["command_id"];
  auto line = dev->next(10000);
  REQUIRE(line);
  REQUIRE(dev->publish("esthesis/command/reply/" + hw, command_id + " s " + output_canary, 1, false, {}, {},
                       true));
  bool stored = false;
  for (int i = 0; i < 100 && !stored; ++i) {
    auto got = api(*platform, "commands/get", {{"command_id", command_id}});
    stored =
        got.contains("devices") && !got["devices"].empty() && got["devices"][0]["output"] == output_canary;
    if (!stored) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(stored);

  const std::string db_path = daemon->db_path();
  REQUIRE(daemon->terminate() == 0);
  const std::string log = daemon->log();
  const std::string db = database_contents(db_path, scratch.path());
  // Controls: the log is verbose and the dump holds what the service stores.
  REQUIRE(log.find(hw) != std::string::npos);
  REQUIRE(db.find(output_canary) != std::string::npos);
  // Its database key (the ordering prefix and its SHA-256), never the token itself.
  CHECK(db.find(dispatch::service::provisioning::DownloadTokens::key_of(download_token)) !=
        std::string::npos);

  struct {
    const char* rule;
    std::string secret;
    bool may_be_stored;
  } cases[] = {
      {"the private key is never logged or stored", private_line, false},
      {"a fresh token's signature is neither logged nor stored", fresh_signature, false},
      {"a static token's signature is neither logged nor stored", static_signature, false},
      {"a forged signature is neither logged nor stored", forged_signature, false},
      {"the download token is stored only as its hash and never logged", download_token, false},
      {"a guessed download token is neither logged nor stored", guessed_token, false},
      {"command output is stored but never logged", output_canary, true},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(log.find(c.secret) == std::string::npos);
    if (!c.may_be_stored) CHECK(db.find(c.secret) == std::string::npos);
  }
}
