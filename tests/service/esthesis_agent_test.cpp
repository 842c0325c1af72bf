// The esthesis agent emulator (tests/support/esthesis_agent): its parsing rules as tables, and its MQTT
// and HTTP behaviour against a real mosquitto and a small stand-in HTTP server that records what the
// agent sends. The flows against dispatch itself are integration tests.
#include "tests/support/esthesis_agent.h"

#include <fmt/format.h>
#include <httplib.h>
#include <mqtt/async_client.h>
#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "protocol/core/keygen.h"
#include "protocol/core/signature.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch::testing;
using namespace std::chrono_literals;
using Outcome = ParsedCommand::Outcome;

TEST_CASE("esthesis agent: split on single spaces keeps empty tokens") {
  struct {
    const char* rule;
    const char* line;
    std::vector<std::string> tokens;
  } cases[] = {
      {"plain", "c1 es ls -l", {"c1", "es", "ls", "-l"}},
      {"double space is an empty token", "c1 es a  b", {"c1", "es", "a", "", "b"}},
      {"trailing space", "c1 s ", {"c1", "s", ""}},
      {"leading space", " c1", {"", "c1"}},
      {"empty line", "", {""}},
      {"newlines are not separators", "c1 s a\nb", {"c1", "s", "a\nb"}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    CHECK(split_single_spaces(c.line) == c.tokens);
  }
}

TEST_CASE("esthesis agent: which lines run, which get no reply, which crash the real agent") {
  struct {
    const char* rule;
    const char* line;
    Outcome outcome;
    char type, exec;
    const char* command;
    std::vector<std::string> arguments;
  } cases[] = {
      {"exec sync", "c1 es echo hi", Outcome::run, 'e', 's', "echo", {"hi"}},
      {"empty arguments kept", "c1 ea echo a  b", Outcome::run, 'e', 'a', "echo", {"a", "", "b"}},
      {"firmware latest", "c1 fs", Outcome::run, 'f', 's', "", {}},
      {"firmware by id", "c1 fs pkg-7", Outcome::run, 'f', 's', "pkg-7", {}},
      {"ping", "c1 ps", Outcome::run, 'p', 's', "", {}},
      {"a longer second token uses its first two letters", "c1 esx ls", Outcome::run, 'e', 's', "ls", {}},
      {"one token", "c1", Outcome::no_reply, 0, 0, "", {}},
      {"empty line", "", Outcome::no_reply, 0, 0, "", {}},
      {"unknown type", "c1 xs", Outcome::no_reply, 'x', 's', "", {}},
      {"unknown execution", "c1 ez", Outcome::no_reply, 'e', 'z', "", {}},
      {"upper case is unknown", "c1 ES", Outcome::no_reply, 'E', 'S', "", {}},
      {"one-letter second token crashes", "c1 e", Outcome::crash, 0, 0, "", {}},
      {"double space after the id crashes", "c1  es ls", Outcome::crash, 0, 0, "", {}},
      {"trailing space after the id crashes", "c1 ", Outcome::crash, 0, 0, "", {}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    ParsedCommand p = parse_command(c.line);
    CHECK(p.outcome == c.outcome);
    if (c.outcome == Outcome::run) {
      CHECK(p.type == c.type);
      CHECK(p.exec == c.exec);
      CHECK(p.command == c.command);
      CHECK(p.arguments == c.arguments);
    }
  }
}

TEST_CASE("esthesis agent: query strings as Go's url.Values.Encode builds them") {
  CHECK(query_escape("aZ09-_.~") == "aZ09-_.~");
  CHECK(query_escape("a b+c/d=e&f") == "a+b%2Bc%2Fd%3De%26f");
  CHECK(query_escape("\xc3\xa9") == "%C3%A9");
  CHECK(encode_query({{"version", "1.0.0"}, {"token", "ab+/="}, {"hardwareId", "gw 1"}}) ==
        "hardwareId=gw+1&token=ab%2B%2F%3D&version=1.0.0");
}

TEST_CASE("esthesis agent: the static token verifies with the registered public key") {
  auto pair = dispatch::core::generate_rsa_key(2048);
  REQUIRE(pair.ok());
  auto token = static_token(pair->private_key_pkcs8_pem, "gw-1");
  REQUIRE(token.ok());
  auto pub = dispatch::core::PublicKey::from_pem(pair->public_key_spki_pem);
  REQUIRE(pub.ok());
  CHECK(pub->verify("gw-1", *token));
  auto bad = static_token("not a key", "gw-1");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == dispatch::core::ErrorCode::bad_request);
}

namespace {

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

// A plain MQTT 3.1.1 client that records what arrives on the filters it subscribes to.
class Watcher {
 public:
  explicit Watcher(const std::string& uri)
      : c_(uri, "watcher", mqtt::create_options(MQTTVERSION_3_1_1), nullptr) {
    c_.set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard lk(mu_);
      got_.emplace_back(m->get_topic(), m->to_string());
      cv_.notify_all();
    });
    auto o = mqtt::connect_options_builder().mqtt_version(MQTTVERSION_3_1_1).clean_session(true).finalize();
    REQUIRE(c_.connect(o)->wait_for(10s));
    REQUIRE(c_.subscribe("esthesis/#", 0)->wait_for(10s));
  }
  ~Watcher() {
    try {
      c_.disconnect()->wait_for(2s);
    } catch (...) {
    }
  }
  void publish(const std::string& topic, const std::string& payload) {
    REQUIRE(c_.publish(topic, payload.data(), payload.size(), 0, false)->wait_for(5s));
  }
  // Waits for the first message on `topic` whose payload starts with `prefix`.
  std::optional<std::string> wait_for(const std::string& topic, const std::string& prefix) {
    std::unique_lock lk(mu_);
    std::optional<std::string> found;
    cv_.wait_for(lk, 10s, [&] {
      for (const auto& [t, p] : got_) {
        if (t == topic && p.starts_with(prefix)) {
          found = p;
          return true;
        }
      }
      return false;
    });
    return found;
  }

 private:
  mqtt::async_client c_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::string>> got_;
};

}  // namespace

TEST_CASE(
    "esthesis agent: MQTT session, pings, version report, exec replies, no de-duplication, crash lines") {
  Broker broker;
  TempDir dir;
  const std::string version_file = dir.path() + "/version";
  std::ofstream(version_file) << "1.0.0\n";
  Watcher watch(broker.uri());
  EsthesisAgentOptions o;
  o.hardware_id = "gw-1";
  o.mqtt_server = broker.uri();
  o.version_file = version_file;
  o.ping_interval = 200ms;
  EsthesisAgent agent(o);
  REQUIRE(agent.start().ok());

  auto ping = watch.wait_for("esthesis/ping/gw-1", "health ping=");
  REQUIRE(ping);
  CHECK(ping->size() >= std::string("health ping=2026-01-01T00:00:00Z").size());
  CHECK(watch.wait_for("esthesis/metadata/gw-1", "health firmware='1.0.0'") == "health firmware='1.0.0'");

  const std::string req = "esthesis/command/request/gw-1", rep = "esthesis/command/reply/gw-1";
  watch.publish(req, "c1 es echo hello");
  CHECK(watch.wait_for(rep, "c1 ") == "c1 s hello");
  watch.publish(req, "c2 es false");
  CHECK(watch.wait_for(rep, "c2 ") == "c2 f exit status 1");
  watch.publish(req, "c3 es true");
  CHECK(watch.wait_for(rep, "c3 ") == "c3 s ");  // empty output keeps the second space
  watch.publish(req, "c4 ea sh -c 'echo oops >&2; exit 3'");
  CHECK(watch.wait_for(rep, "c4 ") == "c4 f exit status 3: oops\n");
  watch.publish(req, "c5 rs");
  CHECK(watch.wait_for(rep, "c5 ") == "c5 f reboot script does not exist.");
  watch.publish(req, "c6 ps");
  CHECK(watch.wait_for(rep, "c6 ") == "c6 s PING command was sent to the device.");

  // The same line twice runs twice; a crash line and unknown letters get no reply. Lines run in order,
  // so once c9's reply is there, the lines before it have been handled.
  watch.publish(req, "c7 es echo again");
  watch.publish(req, "c7 es echo again");
  watch.publish(req, "c8 e");
  watch.publish(req, "c8 xs");
  watch.publish(req, "c9 es echo last");
  CHECK(watch.wait_for(rep, "c9 ") == "c9 s last");
  CHECK(agent.executions_of("c7") == 2);
  CHECK(agent.executions_of("c8") == 0);
  CHECK(agent.would_have_crashed() == 1);
  CHECK_FALSE(agent.wait_for_reply("c8", 0ms));
  CHECK(agent.pings_sent() >= 2);

  agent.stop();
  CHECK_FALSE(agent.connected());
}

TEST_CASE("esthesis agent: stop() kills a running command and joins") {
  Broker broker;
  TempDir dir;
  std::ofstream(dir.path() + "/version") << "1.0.0";
  Watcher watch(broker.uri());
  EsthesisAgentOptions o;
  o.hardware_id = "gw-2";
  o.mqtt_server = broker.uri();
  o.version_file = dir.path() + "/version";
  EsthesisAgent agent(o);
  REQUIRE(agent.start().ok());
  watch.publish("esthesis/command/request/gw-2", "c1 es sleep 120");
  REQUIRE(agent.wait_for_executions("c1", 1, 10s));
  auto t0 = std::chrono::steady_clock::now();
  agent.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(agent.replies().empty());
}

TEST_CASE("esthesis agent: registration and the firmware flow over HTTP, as the agent sends them") {
  auto pair = dispatch::core::generate_rsa_key(2048);
  REQUIRE(pair.ok());
  auto pub = dispatch::core::PublicKey::from_pem(pair->public_key_spki_pem);
  REQUIRE(pub.ok());
  const std::string firmware = "new firmware bytes";

  Broker broker;
  TempDir dir;
  std::ofstream(dir.path() + "/version") << "1.0.0";

  // A stand-in for the platform's HTTP API that records the requests.
  std::mutex mu;
  std::vector<std::string> targets;
  std::string registration_body;
  int find_status = 200;
  std::string find_id = "pkg-7", find_sha = sha256_hex(firmware);
  httplib::Server svr;
  svr.Post("/api/v1/agent/register", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lk(mu);
    registration_body = req.body;
    nlohmann::json j = {{"privateKey", pair->private_key_pkcs8_pem},
                        {"publicKey", pair->public_key_spki_pem},
                        {"mqttServer", broker.uri()},
                        {"provisioningUrl", "http://127.0.0.1:" + std::to_string(req.local_port)},
                        {"certificate", ""},
                        {"rootCaCertificate", ""}};
    res.set_content(j.dump(), "application/json");
  });
  auto find = [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lk(mu);
    targets.push_back(req.target);
    if (find_status != 200) {
      res.status = find_status;
      res.set_content("nope", "text/plain");
      return;
    }
    CHECK(pub->verify("gw-3", req.get_param_value("token")));
    nlohmann::json j = {{"id", find_id},           {"name", "fw"},     {"version", "2.0.0"},
                        {"type", "INTERNAL"},      {"size", 18},       {"sha256", find_sha},
                        {"downloadToken", "t+/="}, {"downloadUrl", ""}};
    res.set_content(j.dump(), "application/json");
  };
  svr.Get("/api/v1/provisioning/find", find);
  svr.Get("/api/v1/provisioning/find/by-id", find);
  svr.Get("/api/v1/provisioning/download", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lk(mu);
    targets.push_back(req.target);
    res.set_content(firmware, "application/octet-stream");
  });
  const int port = svr.bind_to_any_port("127.0.0.1");
  std::thread server([&] { svr.listen_after_bind(); });
  struct Join {
    httplib::Server& s;
    std::thread& t;
    ~Join() {
      while (!s.is_running()) std::this_thread::sleep_for(1ms);
      s.stop();
      t.join();
    }
  } join{svr, server};

  EsthesisAgentOptions o;
  o.hardware_id = "gw-3";
  o.version_file = dir.path() + "/version";
  o.secure_provisioning = true;
  o.registration_url = "http://127.0.0.1:" + std::to_string(port) + "/api/v1/agent/register";
  o.tags = "north,lab";
  o.registration_secret = "s3cret";
  EsthesisAgent agent(o);
  Registration reg = agent.register_device();
  REQUIRE(reg.status == 200);
  CHECK(agent.options().mqtt_server == broker.uri());
  CHECK(agent.options().private_key_pem == pair->private_key_pkcs8_pem);
  {
    auto j = nlohmann::json::parse(registration_body);
    CHECK(j == nlohmann::json{{"hardwareId", "gw-3"},
                              {"tags", "north,lab"},
                              {"attributes", ""},
                              {"type", "CORE"},
                              {"registrationSecret", "s3cret"}});
  }
  REQUIRE(agent.start().ok());
  Watcher watch(broker.uri());
  const std::string req = "esthesis/command/request/gw-3", rep = "esthesis/command/reply/gw-3";

  watch.publish(req, "f1 fs pkg-7");
  CHECK(watch.wait_for(rep, "f1 ") == "f1 s Firmware update initiated.");
  const std::string token = *static_token(pair->private_key_pkcs8_pem, "gw-3");
  {
    std::lock_guard lk(mu);
    REQUIRE(targets.size() == 2);
    CHECK(targets[0] ==
          "/api/v1/provisioning/find/by-id?hardwareId=gw-3&packageId=pkg-7&token=" + query_escape(token));
    CHECK(targets[1] == "/api/v1/provisioning/download?token=t%2B%2F%3D");
  }
  CHECK(agent.last_firmware() == firmware);
  CHECK(agent.current_version() == "2.0.0");
  // The new version is reported only after a restart.
  REQUIRE(agent.restart().ok());
  CHECK(watch.wait_for("esthesis/metadata/gw-3", "health firmware='2.0.0'"));

  watch.publish(req, "f2 fs");
  CHECK(watch.wait_for(rep, "f2 ") == "f2 s Firmware update initiated.");
  {
    std::lock_guard lk(mu);
    REQUIRE(targets.size() == 4);
    CHECK(targets[2] ==
          "/api/v1/provisioning/find?hardwareId=gw-3&token=" + query_escape(token) + "&version=2.0.0");
    find_sha = std::string(64, '0');
  }
  watch.publish(req, "f3 fs");
  CHECK(watch.wait_for(rep, "f3 ") == "f3 f Firmware file SHA256 mismatch.");
  {
    std::lock_guard lk(mu);
    find_id = "";
  }
  watch.publish(req, "f4 fs");
  CHECK(watch.wait_for(rep, "f4 ") == "f4 f No provisioning info available.");
  {
    std::lock_guard lk(mu);
    find_status = 429;
  }
  watch.publish(req, "f5 fs pkg-7");
  CHECK(watch.wait_for(rep, "f5 ") == "f5 f Could not get provisioning info due to '429'. nope");
  CHECK(agent.would_have_crashed() == 0);
}
