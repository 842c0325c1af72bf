// dispatchctl and dispatch-sim driven as processes against a private mosquitto and a real dispatchd.
#include <fmt/format.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/frame.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

namespace {

using dispatch::testing::Broker;
using dispatch::testing::Process;
using dispatch::testing::TempDir;

const std::string k_dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";
const std::string k_bin = std::string(DISPATCH_BINARY_DIR) + "/tools/";  // dispatchctl, dispatch-sim

struct Run {
  int code = -1;
  std::string output;  // stdout and stderr together
};

int g_run_counter = 0;

// Runs a tool to completion (at most timeout_ms) and returns its exit code and output.
Run run_tool(const TempDir& dir, std::vector<std::string> argv, int timeout_ms = 30000) {
  std::string log = fmt::format("{}/run-{}.log", dir.path(), ++g_run_counter);
  Process p(std::move(argv), {}, log);
  Run r;
  r.code = p.wait(timeout_ms);
  r.output = dispatch::testing::read_file(log);
  return r;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

bool wait_for_text(const std::string& path, const std::string& text, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (dispatch::testing::read_file(path).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A broker, a dispatchd on it, and helpers to run the tools against them.
struct Stack {
  Broker broker;
  TempDir dir;
  std::unique_ptr<Process> dispatchd;

  explicit Stack(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{k_dispatchd,
                                  "--mqtt.uri",
                                  broker.uri(),
                                  "--storage.path",
                                  dir.path() + "/db.sqlite",
                                  "--storage.data_dir",
                                  dir.path() + "/pkgs",
                                  "--mqtt.client_id",
                                  "dispatchd-test",
                                  "--http.ops_listen",
                                  "off"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    dispatchd =
        std::make_unique<Process>(std::move(argv), std::vector<std::string>{}, dir.path() + "/dispatchd.log");
    // Ready when the API answers.
    for (int i = 0; i < 60; ++i) {
      if (ctl({"--timeout", "1", "device", "list"}).code == 0) return;
    }
    FAIL("dispatchd did not answer within 60 s:\n"
         << dispatch::testing::read_file(dir.path() + "/dispatchd.log"));
  }
  // A clean SIGTERM stop ends every test (a sanitized build checks for leaks at that exit).
  ~Stack() {
    int rc = dispatchd->terminate(15000);
    if (rc != 0) {
      FAIL_CHECK("dispatchd did not stop cleanly on SIGTERM: "
                 << rc << "\n"
                 << dispatch::testing::read_file(dir.path() + "/dispatchd.log"));
    }
  }

  Run ctl(std::vector<std::string> args, int timeout_ms = 30000) {
    std::vector<std::string> argv{k_bin + "dispatchctl", "--broker", broker.uri()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_tool(dir, std::move(argv), timeout_ms);
  }

  // Starts dispatch-sim and waits until it is subscribed.
  std::unique_ptr<Process> sim(std::vector<std::string> args, const std::string& log) {
    std::vector<std::string> argv{k_bin + "dispatch-sim", "--broker", broker.uri()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = std::make_unique<Process>(std::move(argv), std::vector<std::string>{}, log);
    REQUIRE(wait_for_text(log, "devices ready", 30000));
    return p;
  }
};

std::string ed25519_public_pem_file(const TempDir& dir, const std::string& name) {
  auto key = dispatch::core::PrivateKey::generate(dispatch::core::KeyType::ed25519);
  std::string path = dir.path() + "/" + name;
  write_file(path, key.public_pem());
  return path;
}

}  // namespace

TEST_CASE("dispatchctl registers a device and reads it back", "[tools]") {
  Stack s;
  auto pem = ed25519_public_pem_file(s.dir, "dev-1.pub");

  auto reg =
      s.ctl({"device", "register", "dev-1", "--public-key", pem, "--tag", "lab", "--attr", "site=berlin"});
  INFO(reg.output);
  REQUIRE(reg.code == 0);
  CHECK(reg.output.find("registered dev-1") != std::string::npos);

  auto get = s.ctl({"device", "get", "dev-1"});
  INFO(get.output);
  REQUIRE(get.code == 0);
  CHECK(get.output.find("hardware_id: dev-1") != std::string::npos);
  CHECK(get.output.find("tags: lab") != std::string::npos);

  auto list = s.ctl({"--json", "device", "list", "--tag", "lab"});
  INFO(list.output);
  REQUIRE(list.code == 0);
  auto j = nlohmann::json::parse(list.output);
  REQUIRE(j["devices"].size() == 1);
  CHECK(j["devices"][0]["hardware_id"] == "dev-1");
  CHECK(j["devices"][0]["attributes"]["site"] == "berlin");

  // MQTT 3.1.1 reaches the same API through reply_to/correlation_id.
  auto v3 = s.ctl({"--mqtt-version", "3", "device", "get", "dev-1"});
  INFO(v3.output);
  CHECK(v3.code == 0);
  CHECK(v3.output.find("hardware_id: dev-1") != std::string::npos);
}

TEST_CASE("command send --wait collects the replies of a dispatch-sim fleet", "[tools]") {
  Stack s;
  struct {
    const char* rule;
    std::vector<std::string> sim_args;
    const char* tag;
    int expected_exit;
    const char* expected_state;
  } cases[] = {
      {"every device succeeds: exit 0",
       {"--count", "5", "--prefix", "ok-", "--tag", "good"},
       "good",
       0,
       "succeeded"},
      {"devices fail: exit 1",
       {"--count", "3", "--prefix", "bad-", "--tag", "bad", "--failure-rate", "1"},
       "bad",
       1,
       "failed"},
      {"per-device MQTT 3.1.1 connections behave alike",
       {"--count", "4", "--prefix", "con-", "--tag", "conn", "--connections", "2", "--mqtt-version", "3",
        "--latency-ms", "5-30"},
       "conn",
       0,
       "succeeded"},
  };
  for (const auto& c : cases) {
    SECTION(c.rule) {
      std::string log = s.dir.path() + "/sim-" + c.tag + ".log";
      std::vector<std::string> args = c.sim_args;
      args.push_back("--register");
      auto sim = s.sim(args, log);

      auto r = s.ctl({"command", "send", "--type", "exec", "--command", "echo", "--arg", "hello", "--tag",
                      c.tag, "--wait", "30"},
                     60000);
      INFO(r.output);
      CHECK(r.code == c.expected_exit);
      int count = std::stoi(c.sim_args[1]);
      for (int i = 1; i <= count; ++i) {
        auto hw = fmt::format("{}{:06}", c.sim_args[3], i);
        auto line_start = r.output.find("device=" + hw);
        REQUIRE(line_start != std::string::npos);
        auto line = r.output.substr(line_start, r.output.find('\n', line_start) - line_start);
        CHECK(line.find(std::string("state=") + c.expected_state) != std::string::npos);
      }

      REQUIRE(sim->terminate(10000) == 0);
      auto summary = dispatch::testing::read_file(log);
      INFO(summary);
      CHECK(summary.find(fmt::format("commands received {}", count)) != std::string::npos);
    }
  }
}

TEST_CASE("dispatch-sim answers a re-delivered command id again without re-running it", "[tools]") {
  Broker broker;
  TempDir dir;
  std::string log = dir.path() + "/sim.log";
  Process sim(
      {k_bin + "dispatch-sim", "--broker", broker.uri(), "--count", "2", "--prefix", "dup-", "--json"}, {},
      log);
  REQUIRE(wait_for_text(log, "devices ready", 30000));

  dispatch::service::ClientOptions o;
  o.uri = broker.uri();
  dispatch::service::MqttClient client(o);
  REQUIRE(client.connect());
  REQUIRE(client.subscribe("esthesis/command/reply/dup-000001"));
  struct {
    const char* rule;
    const char* line;
    const char* expected_reply;  // nullptr: no reply expected
  } cases[] = {
      {"first delivery runs", "c-1 es echo hi", "c-1 s hi"},
      {"re-delivery gets the same answer", "c-1 es echo hi", "c-1 s hi"},
      {"an unparsable line gets no reply, like the agent", "c-2 x", nullptr},
      {"a new id runs", "c-3 pa", "c-3 s PING command was sent to the device."},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    REQUIRE(client.publish("esthesis/command/request/dup-000001", c.line, 1, false, {}, {}, true));
    auto m = client.next(c.expected_reply ? 10000 : 500);
    if (c.expected_reply) {
      REQUIRE(m);
      CHECK(m->payload == c.expected_reply);
    } else {
      CHECK_FALSE(m);
    }
  }
  REQUIRE(sim.terminate(10000) == 0);
  auto out = dispatch::testing::read_file(log);
  auto summary = nlohmann::json::parse(out.substr(out.rfind('{')));
  CHECK(summary["commands_received"] == 4);
  CHECK(summary["duplicates"] == 1);
  CHECK(summary["malformed"] == 1);
  CHECK(summary["replies_ok"] == 2);
}

TEST_CASE("dispatchctl reports errors with the service's message and a non-zero exit", "[tools]") {
  Stack s;
  std::string garbage = s.dir.path() + "/garbage.pem";
  write_file(garbage, "not a key");
  std::string yaml = s.dir.path() + "/campaign.yaml";
  write_file(yaml, "name: x");
  std::string broken_json = s.dir.path() + "/campaign.json";
  write_file(broken_json, "{\"name\":");
  struct {
    const char* rule;
    std::vector<std::string> args;
    int expected_exit;
    const char* expected_text;
  } cases[] = {
      {"unknown command id is the service's not_found",
       {"command", "get", "01NOSUCHCOMMAND"},
       1,
       "error: not_found: "},
      {"unknown device is the service's not_found", {"device", "get", "nobody"}, 1, "error: not_found: "},
      {"a key the service refuses is its bad_request",
       {"device", "register", "dev-2", "--public-key", garbage},
       1,
       "error: bad_request: "},
      {"an unreadable key file is a usage error",
       {"device", "register", "dev-2", "--public-key", "/nonexistent.pem"},
       2,
       "cannot read /nonexistent.pem"},
      {"a campaign file of another format is a usage error",
       {"campaign", "create", yaml},
       2,
       "unsupported campaign file extension '.yaml'"},
      {"a malformed campaign file is a usage error",
       {"campaign", "create", broken_json},
       2,
       "not valid JSON"},
      {"a missing subcommand is a usage error", {"device"}, 2, "A subcommand is required"},
      {"an unknown option is a usage error", {"device", "list", "--colour"}, 2, "--colour"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = s.ctl(c.args);
    INFO(r.output);
    CHECK(r.code == c.expected_exit);
    CHECK(r.output.find(c.expected_text) != std::string::npos);
  }
}

TEST_CASE("dispatchctl says clearly when the service or the broker cannot be reached", "[tools]") {
  Broker broker;  // no dispatchd on it
  TempDir dir;
  int closed_port = dispatch::testing::free_port();
  struct {
    const char* rule;
    std::string uri;
    std::string expected_text;
  } cases[] = {
      {"service down: no answer", broker.uri(),
       "error: cannot reach dispatchd at " + broker.uri() +
           ": no answer within 2 s (is the service running?)"},
      {"broker down: no connection", fmt::format("tcp://127.0.0.1:{}", closed_port),
       fmt::format("error: cannot reach the broker at tcp://127.0.0.1:{}", closed_port)},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    auto r = run_tool(dir, {k_bin + "dispatchctl", "--broker", c.uri, "--timeout", "2", "device", "list"});
    INFO(r.output);
    CHECK(r.code == 3);
    CHECK(r.output.find(c.expected_text) != std::string::npos);
  }
}

namespace {

// A stand-in for dispatchd's API, for the parts of the contract the tools use before the service has them:
// answers every request on esthesis/api/v1/+/+ with handler(resource/action, payload) (MQTT 5 only).
class FakeApi {
 public:
  using Handler = std::function<nlohmann::json(const std::string&, const std::string&)>;

  FakeApi(const std::string& uri, Handler handler) : handler_(std::move(handler)) {
    dispatch::service::ClientOptions o;
    o.uri = uri;
    client_ = std::make_unique<dispatch::service::MqttClient>(o);
    REQUIRE(client_->connect());
    REQUIRE(client_->subscribe("esthesis/api/v1/+/+"));
    thread_ = std::thread([this] {
      while (running_) {
        auto m = client_->next(100);
        if (!m || m->response_topic.empty()) continue;
        auto name = m->topic.substr(std::string("esthesis/api/v1/").size());
        nlohmann::json answer;
        {
          std::lock_guard lk(mu_);
          answer = handler_(name, m->payload);
        }
        (void)client_->publish(m->response_topic, answer.dump(), 1, false, {}, m->correlation_data);
      }
    });
  }
  ~FakeApi() {
    running_ = false;
    thread_.join();
  }
  dispatch::service::MqttClient& client() { return *client_; }
  std::mutex& mutex() { return mu_; }

 private:
  Handler handler_;
  std::unique_ptr<dispatch::service::MqttClient> client_;
  std::atomic<bool> running_{true};
  std::mutex mu_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("campaign watch ends with an exit code that says how the campaign ended", "[tools]") {
  struct {
    const char* rule;
    const char* final_state;
    int expected_exit;
    const char* expected_text;
  } cases[] = {
      {"completed exits 0", "completed", 0, "state=completed"},
      {"aborted exits 4", "aborted", 4, "state=aborted"},
      {"terminated by the user exits 5", "terminated_by_user", 5, "state=terminated_by_user"},
      {"paused by the workflow exits 6 and says why", "paused_by_workflow", 6, "group 0 below 95%"},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    Broker broker;
    TempDir dir;
    auto snapshot = [](const std::string& state) {
      return nlohmann::json{
          {"id", "c1"},
          {"name", "rollout"},
          {"state", state},
          {"reason", state == "paused_by_workflow" ? "group 0 below 95%" : ""},
          {"stats", {{"members", 10}, {"succeeded", 4}, {"failed", 1}, {"progress_percent", 50.0}}},
          {"groups", {{{"index", 0}, {"stats", {{"members", 10}, {"succeeded", 4}}}}}}};
    };
    FakeApi api(broker.uri(), [&](const std::string& name, const std::string&) {
      return name == "campaigns/get" ? snapshot("running")
                                     : nlohmann::json{{"error", {{"code", "not_found"}, {"message", "no"}}}};
    });
    // The retained event the service would publish when the campaign ends.
    REQUIRE(api.client().publish("esthesis/events/v1/campaigns/c1", snapshot(c.final_state).dump(), 1, true,
                                 {}, {}, true));
    auto r = run_tool(dir, {k_bin + "dispatchctl", "--broker", broker.uri(), "campaign", "watch", "c1",
                            "--deadline", "20"});
    INFO(r.output);
    CHECK(r.code == c.expected_exit);
    CHECK(r.output.find("state=running") != std::string::npos);
    CHECK(r.output.find(c.expected_text) != std::string::npos);
  }
}

TEST_CASE("package upload resumes after an interruption and sends the file's exact bytes", "[tools]") {
  Broker broker;
  TempDir dir;
  std::string file = dir.path() + "/fw.bin";
  std::string content;
  for (std::size_t i = 0; i < 700 * 1024; ++i) content.push_back(static_cast<char>((i * 7919) % 251));
  write_file(file, content);

  std::string stored;
  std::vector<std::uint64_t> offsets;
  bool fail_second_chunk = true;
  bool ready = false;
  FakeApi api(broker.uri(), [&](const std::string& name, const std::string& payload) -> nlohmann::json {
    if (name == "packages/get") {
      nlohmann::json pkg{{"id", "p1"}, {"state", ready ? "ready" : "receiving"}, {"received", stored.size()}};
      if (ready) pkg["sha256"] = dispatch::core::sha256_hex(stored);
      return pkg;
    }
    if (name != "packages/upload") return {{"error", {{"code", "not_found"}, {"message", "no"}}}};
    auto frame = dispatch::protocol::parse_frame(payload);
    if (!frame) return {{"error", {{"code", "bad_request"}, {"message", frame.error().message}}}};
    auto offset = frame->header["offset"].get<std::uint64_t>();
    offsets.push_back(offset);
    if (offset == 256 * 1024 && fail_second_chunk) {
      fail_second_chunk = false;
      return {{"error", {{"code", "unavailable"}, {"message", "disk full"}}}};
    }
    if (stored.size() < offset + frame->body.size()) stored.resize(offset + frame->body.size());
    stored.replace(offset, frame->body.size(), frame->body);
    if (frame->header.value("last", false)) ready = true;
    return {{"id", "p1"}, {"received", stored.size()}};
  });

  struct {
    const char* rule;
    int expected_exit;
    const char* expected_text;
    std::vector<std::uint64_t> expected_offsets;
  } cases[] = {
      {"an interrupted upload fails with the service's error",
       1,
       "error: unavailable: disk full",
       {0, 262144}},
      {"re-running resumes at the received byte count", 0, "resumed at byte 262144", {262144, 524288}},
      {"a finished upload is not sent again", 0, "already holds this file", {}},
  };
  for (const auto& c : cases) {
    INFO(c.rule);
    {
      std::lock_guard lk(api.mutex());
      offsets.clear();
    }
    auto r =
        run_tool(dir, {k_bin + "dispatchctl", "--broker", broker.uri(), "package", "upload", "p1", file});
    INFO(r.output);
    CHECK(r.code == c.expected_exit);
    CHECK(r.output.find(c.expected_text) != std::string::npos);
    std::lock_guard lk(api.mutex());
    CHECK(offsets == c.expected_offsets);
  }
  std::lock_guard lk(api.mutex());
  CHECK(stored == content);
}

TEST_CASE("against the real service: upload a package, roll it out with a campaign, watch it to completion",
          "[tools][campaigns]") {
  Stack s;
  // A small firmware rollout: the simulated agents query with fresh tokens, download in chunks, check
  // the sha256 and report the new version (verify_version).
  std::string sim_log = s.dir.path() + "/sim.log";
  auto sim = s.sim({"--count", "12", "--prefix", "fw-", "--tag", "fleet", "--version", "1.0.0", "--register"},
                   sim_log);
  std::string file = s.dir.path() + "/fw.bin";
  std::string bytes;
  for (size_t i = 0; i < 700 * 1024; ++i) bytes.push_back(static_cast<char>((i * 7919) % 251));
  write_file(file, bytes);
  auto created = s.ctl({"package", "create", "--name", "fw", "--version", "2.0.0", "--sha256",
                        dispatch::core::sha256_hex(bytes), "--size", std::to_string(bytes.size()), "--tag",
                        "fleet", "--available"});
  INFO(created.output);
  REQUIRE(created.code == 0);
  std::string id = created.output.substr(0, created.output.find('\n'));
  auto uploaded = s.ctl({"package", "upload", id, file, "--chunk-kib", "128"}, 60000);
  INFO(uploaded.output);
  REQUIRE(uploaded.code == 0);
  auto again = s.ctl({"package", "upload", id, file});  // already ready: nothing to resend
  CHECK(again.code == 0);
  auto got = s.ctl({"--json", "package", "get", id});
  REQUIRE(got.code == 0);
  CHECK(nlohmann::json::parse(got.output)["state"] == "ready");

  std::string doc = s.dir.path() + "/campaign.json";
  write_file(
      doc, nlohmann::json{{"name", "fw 2.0.0"},
                          {"type", "provisioning"},
                          {"package_id", id},
                          {"groups", {{{"hardware_ids", {"fw-000001", "fw-000002"}}}, {{"tags", {"fleet"}}}}},
                          {"success", {{"threshold_percent", 100}, {"verify_version", true}}},
                          {"reply_timeout_s", 60}}
               .dump());
  auto c = s.ctl({"campaign", "create", doc});
  INFO(c.output);
  REQUIRE(c.code == 0);
  std::string campaign = c.output.substr(0, c.output.find('\n'));
  REQUIRE(s.ctl({"campaign", "start", campaign}).code == 0);
  auto watched = s.ctl({"campaign", "watch", campaign, "--deadline", "90"}, 120000);
  INFO(watched.output);
  CHECK(watched.code == 0);
  auto final_state = s.ctl({"--json", "campaign", "get", campaign});
  auto j = nlohmann::json::parse(final_state.output);
  CHECK(j["state"] == "completed");
  CHECK(j["stats"]["succeeded"] == 12);
  CHECK(j["groups"][0]["stats"]["members"] == 2);
  CHECK(j["groups"][1]["stats"]["members"] == 10);
  // Every device now reports the new version.
  // Parsed into a named value first: a range-for over a member of a temporary reads freed memory.
  auto devices = nlohmann::json::parse(s.ctl({"--json", "device", "list", "--tag", "fleet"}).output);
  REQUIRE(devices["devices"].size() == 12);
  for (const auto& d : devices["devices"]) CHECK(d["reported_version"] == "2.0.0");
  REQUIRE(sim->terminate(10000) == 0);
  auto summary = dispatch::testing::read_file(sim_log);
  INFO(summary);
  CHECK(summary.find("downloads 12") != std::string::npos);
  CHECK(summary.find("firmware failures 0") != std::string::npos);
}

TEST_CASE("dispatch-sim --agent esthesis: HTTP registration, QoS 0 commands run once, firmware over HTTP",
          "[tools]") {
  const int port = dispatch::testing::free_port();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  Stack s({"--http.agent_listen", listen, "--registration.mode", "open", "--provisioning.token", "any",
           "--registration.provisioning_url", "http://" + listen});
  std::string sim_log = s.dir.path() + "/sim-agent.log";
  auto sim = s.sim({"--agent", "esthesis", "--agent-http", "http://" + listen, "--register", "--count", "3",
                    "--prefix", "ag-", "--tag", "agents", "--ping-interval", "1", "--json"},
                   sim_log);
  {
    auto summary = dispatch::testing::read_file(sim_log);
    INFO(summary);
    CHECK(summary.find("registered 3 of 3 devices") != std::string::npos);
    CHECK(summary.find("MQTT 3.1.1") != std::string::npos);
  }
  // Registered over HTTP: the service made each device an RSA key pair.
  auto dev = s.ctl({"--json", "device", "get", "ag-000001"});
  REQUIRE(dev.code == 0);
  CHECK(nlohmann::json::parse(dev.output)["key_type"] == "rsa");

  auto r = s.ctl({"command", "send", "--type", "exec", "--command", "echo", "--arg", "hello", "--tag",
                  "agents", "--wait", "30"},
                 60000);
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(r.output.find("state=succeeded") != std::string::npos);

  std::string file = s.dir.path() + "/fw.bin";
  std::string bytes;
  for (size_t i = 0; i < 300 * 1024; ++i) bytes.push_back(static_cast<char>((i * 31) % 253));
  write_file(file, bytes);
  auto created =
      s.ctl({"package", "create", "--name", "fw", "--version", "2.0.0", "--sha256",
             dispatch::core::sha256_hex(bytes), "--size", std::to_string(bytes.size()), "--available"});
  INFO(created.output);
  REQUIRE(created.code == 0);
  std::string id = created.output.substr(0, created.output.find('\n'));
  REQUIRE(s.ctl({"package", "upload", id, file}, 60000).code == 0);
  auto fw = s.ctl(
      {"command", "send", "--type", "firmware", "--package", id, "--tag", "agents", "--wait", "30"}, 60000);
  INFO(fw.output);
  CHECK(fw.code == 0);
  auto devices = nlohmann::json::parse(s.ctl({"--json", "device", "list", "--tag", "agents"}).output);
  REQUIRE(devices["devices"].size() == 3);
  for (const auto& d : devices["devices"]) CHECK(d["reported_version"] == "2.0.0");

  REQUIRE(sim->terminate(10000) == 0);
  auto log = dispatch::testing::read_file(sim_log);
  INFO(log);
  auto summary = nlohmann::json::parse(log.substr(log.rfind("{")));
  CHECK(summary["downloads"] == 3);
  CHECK(summary["download_bytes"] == 3 * bytes.size());
  CHECK(summary["replies_ok"] == 6);
  CHECK(summary["reruns"] == 0);
  CHECK(summary["pings"].get<int>() >= 6);
}
