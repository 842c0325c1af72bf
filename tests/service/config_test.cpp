#include "service/config.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "service/daemon.h"
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
  CHECK(defaults->provisioning_token == TokenMode::fresh);
  CHECK(defaults->mqtt_tls_verify_hostname);
  CHECK(defaults->topics.api == "esthesis/api/v1");

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
      {"token mode not a choice",
       {},
       {},
       "[provisioning]\ntoken = \"sometimes\"\n",
       "invalid value 'sometimes' for provisioning.token"},
      {"log level not a choice", {"--log.level", "verbose"}, {}, "", "expected one of trace, debug, info"},
      {"boolean expected", {"--mqtt.tls_verify_hostname", "yes"}, {}, "", "expected true or false"},
      {"boolean in file must be a boolean",
       {},
       {},
       "[mqtt]\ntls_verify_hostname = \"false\"\n",
       "config key mqtt.tls_verify_hostname: expected true or false"},
      {"integer in file is not a string",
       {},
       {},
       "[log]\nlevel = 3\n",
       "config key log.level: expected a string"},
      {"unknown key (a prefix of a real one)", {"--provisioning.max_tracked", "1"}, {}, "", "unknown option"},
      {"empty topic root",
       {"--topics.ping", ""},
       {},
       "",
       "invalid config key topics.ping: topic root 'ping' is empty"},
      {"wildcard in a topic root",
       {},
       {"DISPATCH_TOPICS_API=esthesis/+/v1"},
       "",
       "invalid config key topics.api"},
      {"system topic root", {"--topics.events", "$SYS/dispatch"}, {}, "", "invalid config key topics.events"},
      {"empty level in a topic root",
       {"--topics.metadata=a//b"},
       {},
       "",
       "invalid config key topics.metadata"},
      {"equal topic roots",
       {"--topics.ping", "esthesis/metadata"},
       {},
       "",
       "invalid config key topics.ping: topic root 'ping' equals topic root 'metadata'"},
      {"overlapping topic roots",
       {"--topics.command_reply", "esthesis/api/v1/x"},
       {},
       "",
       "invalid config key topics.api: topic root 'api' overlaps topic root 'command_reply' "
       "(topics.command_reply)"},
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

TEST_CASE("the text of --help lists every key with its environment variable and never a password default",
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
  CHECK(defaults->registration_mode == RegistrationMode::disabled);
  auto set = load_config({"--http.agent_listen", "0.0.0.0:8080", "--registration.mode", "open_with_secret",
                          "--registration.secret", "s", "--registration.mqtt_server", "tcp://b:1883",
                          "--registration.provisioning_url", "http://h:8080"},
                         {"DISPATCH_HTTP_TLS_CERT_FILE=c.pem", "DISPATCH_HTTP_TLS_KEY_FILE=k.pem"}, req);
  REQUIRE(set);
  CHECK(set->http_agent_listen == "0.0.0.0:8080");
  CHECK(set->http_tls_cert_file == "c.pem");
  CHECK(set->http_tls_key_file == "k.pem");
  CHECK(set->registration_mode == RegistrationMode::open_with_secret);
  CHECK(set->registration_secret == "s");
  CHECK(set->registration_mqtt_server == "tcp://b:1883");
  CHECK(set->registration_provisioning_url == "http://h:8080");
  auto bad = load_config({"--registration.mode", "anyone"}, {}, req);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Catch::Contains("registration.mode"));
}

TEST_CASE("typed values: enums, booleans and topic roots from file, environment and flag",
          "[service][config]") {
  dispatch::testing::TempDir dir;
  auto path = write_file(dir,
                         "[log]\nformat = \"json\"\nlevel = \"debug\"\n[mqtt]\ntls_verify_hostname = false\n"
                         "[topics]\napi = \"acme/api\"\n");
  CommandLineRequest req;
  auto c = load_config({"--config", path, "--provisioning.token", "any"},
                       {"DISPATCH_TOPICS_EVENTS=acme/events", "DISPATCH_PROVISIONING_MAX_TRACKED_DEVICES=10"},
                       req);
  REQUIRE(c);
  CHECK(c->log_format == LogFormat::json);
  CHECK(c->log_level == LogLevel::debug);
  CHECK_FALSE(c->mqtt_tls_verify_hostname);
  CHECK(c->provisioning_token == TokenMode::any);
  CHECK(c->provisioning_max_tracked_devices == 10);
  CHECK(c->topics.api == "acme/api");
  CHECK(c->topics.events == "acme/events");
  CHECK(to_string(c->provisioning_token) == "any");
  CHECK(to_string(TokenMode::off) == "off");
  CHECK(to_string(LogLevel::error) == "error");
}

TEST_CASE("the sample of --print-config shows every key and reads back as the configuration it shows",
          "[service][config]") {
  dispatch::testing::TempDir dir;
  CommandLineRequest req;
  auto defaults = load_config({}, {}, req);
  REQUIRE(defaults);
  const std::string sample = config_sample(*defaults);
  std::string unwrapped = sample;  // descriptions are wrapped at 100 columns
  for (auto p = unwrapped.find("\n# "); p != std::string::npos; p = unwrapped.find("\n# ", p)) {
    unwrapped.replace(p, 3, " ");
  }
  for (const auto& k : config_keys()) {
    INFO(k.key);
    const std::string name = k.key.substr(k.key.find('.') + 1);
    CHECK_THAT(sample, Catch::Contains("env " + k.env + ", flag " + k.flag));
    CHECK_THAT(sample, Catch::Contains("\n#" + name + " = "));  // the default, commented out
    CHECK_THAT(unwrapped, Catch::Contains(k.description));
  }
  std::istringstream lines(sample);
  for (std::string line; std::getline(lines, line);) CHECK(line.size() <= 100);
  // The defaults only: reading it back changes nothing.
  auto same = load_config({"--config", write_file(dir, sample)}, {}, req);
  REQUIRE(same);
  CHECK(config_sample(*same) == sample);

  // Changed keys are set (uncommented) and read back as they are; the password is never shown.
  auto custom = load_config({"--mqtt.uri", "ssl://broker.example:8883", "--mqtt.password", "hunter2",
                             "--mqtt.tls_verify_hostname", "false", "--log.format", "json", "--topics.ping",
                             "acme/ping \"quoted\"", "--commands.default_ttl_s", "60"},
                            {}, req);
  REQUIRE(custom);
  const std::string custom_sample = config_sample(*custom);
  CHECK_THAT(custom_sample, Catch::Contains("\nuri = \"ssl://broker.example:8883\"\n"));
  CHECK_THAT(custom_sample, Catch::Contains("\ntls_verify_hostname = false\n"));
  CHECK_THAT(custom_sample, Catch::Contains("\nformat = \"json\"\n"));
  CHECK_THAT(custom_sample, Catch::Contains("\ndefault_ttl_s = 60\n"));
  CHECK(custom_sample.find("hunter2") == std::string::npos);
  auto back = load_config({"--config", write_file(dir, custom_sample)}, {}, req);
  REQUIRE(back);
  CHECK(back->mqtt_uri == "ssl://broker.example:8883");
  CHECK(back->topics.ping == "acme/ping \"quoted\"");
  CHECK(back->mqtt_password.empty());
  CHECK_FALSE(back->mqtt_tls_verify_hostname);
  CHECK(back->log_format == LogFormat::json);
  CHECK(back->commands_default_ttl_s == 60);
}

namespace {
std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("docs/configuration.md is generated from the key table", "[service][config]") {
  const std::string doc = read_text(std::string(DISPATCH_SOURCE_DIR) + "/docs/configuration.md");
  INFO("regenerate with scripts/gen-config-docs");
  CHECK(doc == config_markdown());
  for (const auto& k : config_keys()) CHECK_THAT(doc, Catch::Contains("| `" + k.key + "` |"));
}

TEST_CASE("the packaged /etc/dispatch/dispatchd.toml is what --print-config prints for its settings",
          "[service][config]") {
  const std::string path = std::string(DISPATCH_SOURCE_DIR) + "/packaging/dispatchd.toml";
  CommandLineRequest req;
  auto packaged = load_config({"--config", path}, {}, req);
  REQUIRE(packaged);
  INFO("regenerate with scripts/gen-config-docs");
  CHECK(read_text(path) == config_sample(*packaged));
  CHECK(packaged->storage_path == "/var/lib/dispatch/dispatch.db");
  CHECK(packaged->storage_data_dir == "/var/lib/dispatch/packages");
}

TEST_CASE("http.ops_listen defaults to loopback 9464, takes host:port or off, and refuses a bad address",
          "[service][config]") {
  CommandLineRequest req;
  auto defaults = load_config({}, {}, req);
  REQUIRE(defaults);
  CHECK(defaults->http_ops_listen == "127.0.0.1:9464");
  auto flag = load_config({"--http.ops_listen", "0.0.0.0:9100"}, {}, req);
  REQUIRE(flag);
  CHECK(flag->http_ops_listen == "0.0.0.0:9100");
  auto env = load_config({}, {"DISPATCH_HTTP_OPS_LISTEN=off"}, req);
  REQUIRE(env);
  CHECK(env->http_ops_listen == "off");
  auto empty = load_config({"--http.ops_listen", ""}, {}, req);
  REQUIRE(empty);
  CHECK(empty->http_ops_listen.empty());
  for (const char* bad : {"9464", "127.0.0.1:", "127.0.0.1:99999", ":9464"}) {
    INFO(bad);
    auto r = load_config({"--http.ops_listen", bad}, {}, req);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("invalid config key http.ops_listen"));
  }
}

TEST_CASE("storage.url selects PostgreSQL and mqtt.share_group shares the subscriptions",
          "[service][config]") {
  CommandLineRequest req;
  auto defaults = load_config({}, {}, req);
  REQUIRE(defaults);
  CHECK(defaults->storage_url.empty());  // SQLite at storage.path stays the default
  CHECK(defaults->mqtt_share_group.empty());

  auto pg = load_config({"--storage.url", "postgresql://dispatch@db:5432/dispatch"},
                        {"DISPATCH_MQTT_SHARE_GROUP=dispatch"}, req);
  REQUIRE(pg);
  CHECK(pg->storage_url == "postgresql://dispatch@db:5432/dispatch");
  CHECK(pg->mqtt_share_group == "dispatch");

  auto not_pg = load_config({"--storage.url", "/var/lib/dispatch/dispatch.db"}, {}, req);
  REQUIRE_FALSE(not_pg);
  CHECK(not_pg.error().code == ErrorCode::bad_request);
  CHECK(not_pg.error().message.find("storage.url") != std::string::npos);

  for (const char* bad : {"a/b", "a+", "#"}) {
    auto r = load_config({"--mqtt.share_group", bad}, {}, req);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("mqtt.share_group") != std::string::npos);
  }
}

TEST_CASE("subscriptions are $share/<group>/<filter> with a share group, plain filters then stale",
          "[service][config]") {
  const std::vector<std::string> filters = {"esthesis/command/reply/+", "esthesis/api/v1/+/+"};
  CHECK(subscription_filters(filters, "") == filters);
  CHECK(stale_filters(filters, "").empty());
  CHECK(subscription_filters(filters, "g1") ==
        std::vector<std::string>{"$share/g1/esthesis/command/reply/+", "$share/g1/esthesis/api/v1/+/+"});
  CHECK(stale_filters(filters, "g1") == filters);
}

TEST_CASE("a PostgreSQL URI is logged without its password", "[service][config]") {
  CHECK(redacted_url("postgresql://dispatch@db:5432/x") == "postgresql://dispatch@db:5432/x");
  CHECK(redacted_url("postgresql://dispatch:s3cret@db:5432/x") == "postgresql://dispatch:***@db:5432/x");
  CHECK(redacted_url("postgresql://u@h/x?password=s3cret&sslmode=require") ==
        "postgresql://u@h/x?password=***&sslmode=require");
  CHECK(redacted_url("postgresql://u:pw1@h/x?password=pw2") == "postgresql://u:***@h/x?password=***");
}

TEST_CASE("the flag --migrate-to takes a URI and leaves the rest of the configuration as given",
          "[service][config]") {
  CommandLineRequest req;
  auto c = load_config({"--storage.path", "/tmp/node.db", "--migrate-to", "postgresql://d@db/x"}, {}, req);
  REQUIRE(c.ok());
  CHECK(req.migrate_to == "postgresql://d@db/x");
  CHECK(c->storage_path == "/tmp/node.db");
  CommandLineRequest eq;
  REQUIRE(load_config({"--migrate-to=postgresql://d@db/y"}, {}, eq).ok());
  CHECK(eq.migrate_to == "postgresql://d@db/y");
  for (const auto& args :
       {std::vector<std::string>{"--migrate-to"}, std::vector<std::string>{"--migrate-to="}}) {
    CommandLineRequest bad;
    auto r = load_config(args, {}, bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message == "--migrate-to needs a URI");
  }
}
