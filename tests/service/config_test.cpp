#include "service/config.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/process.h"

using namespace dispatch::service;
using dispatch::core::ErrorCode;

namespace {
std::string write_file(const dispatch::testing::TempDir& dir, const std::string& text) {
  std::string path = dir.path() + "/dispatch.toml";
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("every key has a default, file < environment < flag", "[service][config]") {
  dispatch::testing::TempDir dir;
  auto path = write_file(
      dir, "[mqtt]\nuri = \"tcp://file:1883\"\nclient_id = \"from-file\"\n[storage]\npath = \"file.db\"\n");
  CommandLineRequest req;
  auto defaults = load_config({}, {}, req);
  REQUIRE(defaults);
  CHECK(defaults->mqtt_uri == "tcp://127.0.0.1:1883");
  CHECK(defaults->provisioning_rate_limit == 5);
  CHECK(defaults->provisioning_token == "fresh");

  auto from_file = load_config({"--config", path}, {}, req);
  REQUIRE(from_file);
  CHECK(from_file->mqtt_uri == "tcp://file:1883");
  CHECK(from_file->storage_path == "file.db");

  auto from_env = load_config(
      {"--config", path}, {"DISPATCH_MQTT_URI=tcp://env:1883", "DISPATCH_PROVISIONING_RATE_LIMIT=9"}, req);
  REQUIRE(from_env);
  CHECK(from_env->mqtt_uri == "tcp://env:1883");
  CHECK(from_env->mqtt_client_id == "from-file");
  CHECK(from_env->provisioning_rate_limit == 9);

  auto from_flag =
      load_config({"--config=" + path, "--mqtt.uri", "tcp://flag:1883", "--provisioning.rate_limit=7"},
                  {"DISPATCH_MQTT_URI=tcp://env:1883"}, req);
  REQUIRE(from_flag);
  CHECK(from_flag->mqtt_uri == "tcp://flag:1883");
  CHECK(from_flag->provisioning_rate_limit == 7);
}

TEST_CASE("a bad config is a clear error naming the key", "[service][config]") {
  dispatch::testing::TempDir dir;
  struct {
    const char* rule;
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string file;
    std::string message_part;
  } cases[] = {
      {"unknown flag", {"--mqtt.nope", "1"}, {}, "", "unknown option --mqtt.nope"},
      {"flag without value", {"--mqtt.uri"}, {}, "", "--mqtt.uri needs a value"},
      {"integer expected", {"--mqtt.qos", "high"}, {}, "", "mqtt.qos"},
      {"out of range", {"--mqtt.qos", "2"}, {}, "", "invalid value 2 for mqtt.qos"},
      {"bad choice", {"--provisioning.token", "maybe"}, {}, "", "provisioning.token"},
      {"bad env value", {}, {"DISPATCH_LOG_FORMAT=xml"}, "", "DISPATCH_LOG_FORMAT"},
      {"unknown key in file", {}, {}, "[mqtt]\nurl = \"x\"\n", "unknown config key mqtt.url"},
      {"wrong type in file", {}, {}, "[provisioning]\nrate_limit = \"five\"\n", "provisioning.rate_limit"},
      {"syntax error in file", {}, {}, "[mqtt\n", "cannot read config file"},
      {"empty uri", {"--mqtt.uri", ""}, {}, "", "mqtt.uri must not be empty"},
  };
  for (auto& c : cases) {
    INFO(c.rule);
    auto args = c.args;
    if (!c.file.empty()) {
      args.push_back("--config");
      args.push_back(write_file(dir, c.file));
    }
    CommandLineRequest req;
    auto r = load_config(args, c.env, req);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK_THAT(r.error().message, Catch::Contains(c.message_part));
  }
  CommandLineRequest req;
  auto missing = load_config({"--config", dir.path() + "/absent.toml"}, {}, req);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Catch::Contains("absent.toml"));
}

TEST_CASE("--help lists every key with its environment variable and never a password default",
          "[service][config]") {
  auto help = config_help();
  for (const auto& k : config_keys()) {
    CHECK_THAT(help, Catch::Contains(k.flag));
    CHECK_THAT(help, Catch::Contains(k.env));
  }
  CHECK_THAT(help, Catch::Contains("DISPATCH_MQTT_URI"));
}

TEST_CASE("the agent HTTP API is off by default and registration.mode takes only its four values",
          "[service][config]") {
  CommandLineRequest req;
  auto defaults = load_config({}, {}, req);
  REQUIRE(defaults);
  CHECK(defaults->http_agent_listen.empty());
  CHECK(defaults->registration_mode == "disabled");
  auto set = load_config({"--http.agent_listen", "0.0.0.0:8080", "--registration.mode", "open_with_secret",
                          "--registration.secret", "s", "--registration.mqtt_server", "tcp://b:1883",
                          "--registration.provisioning_url", "http://h:8080"},
                         {"DISPATCH_HTTP_TLS_CERT_FILE=c.pem", "DISPATCH_HTTP_TLS_KEY_FILE=k.pem"}, req);
  REQUIRE(set);
  CHECK(set->http_agent_listen == "0.0.0.0:8080");
  CHECK(set->http_tls_cert_file == "c.pem");
  CHECK(set->http_tls_key_file == "k.pem");
  CHECK(set->registration_mode == "open_with_secret");
  CHECK(set->registration_secret == "s");
  CHECK(set->registration_mqtt_server == "tcp://b:1883");
  CHECK(set->registration_provisioning_url == "http://h:8080");
  auto bad = load_config({"--registration.mode", "anyone"}, {}, req);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("registration.mode"));
}
