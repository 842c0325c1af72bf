// `dispatchd --migrate-to URL` (docs/deployment.md, "From one node to a cluster"): a SQLite node with
// devices, commands with replies, a campaign, packages with bytes and a download token is copied into
// PostgreSQL; a dispatchd started on that database answers the same. Needs DISPATCH_TEST_PG_URL
// (scripts/with-postgres); without it the test warns and passes.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <functional>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "tests/integration/command_fleet.h"
#include "tests/integration/daemon_fixture.h"

using dispatch::core::KeyType;
using dispatch::core::PrivateKey;
using dispatch::service::MqttClient;
using namespace dispatch::testing;
using json = nlohmann::json;

namespace {

constexpr int k_chunk = 256 * 1024;

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

json fresh_query(const std::string& hw, const PrivateKey& key, json body) {
  const std::string ts = dispatch::core::format_rfc3339(dispatch::core::SystemClock().now_ms());
  const std::string nonce = dispatch::core::random_hex(12);
  body["ts"] = ts;
  body["nonce"] = nonce;
  body["token"] = key.sign_base64(dispatch::core::fresh_token_message(hw, ts, nonce));
  return body;
}

// Polls until done(answer) holds; the last answer.
json wait_for(MqttClient& c, const std::string& action, const json& body,
              const std::function<bool(const json&)>& done, int timeout_ms = 30000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  json last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = api(c, action, body);
    if (done(last)) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

// Rates and ETAs are computed from the clock at each answer; everything else must be equal.
json without_clock(json j) {
  if (j.is_object()) {
    j.erase("rate_per_minute");
    j.erase("eta_s");
    for (auto& [k, v] : j.items()) v = without_clock(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = without_clock(v);
  }
  return j;
}

struct Run {
  int code;
  std::string output;
};

// `dispatchd --storage.path … --storage.data_dir … --migrate-to url`, its exit code and output.
Run migrate(const Daemon& source, const std::string& url) {
  TempDir out;
  const std::string log = out.path() + "/migrate.log";
  Process p({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--storage.path", source.sqlite_path(),
             "--storage.data_dir", source.dir() + "/packages", "--migrate-to", url},
            {}, log);
  const int code = p.wait(120000);
  return {code, read_file(log)};
}

}  // namespace

TEST_CASE(
    "migrate: a SQLite node copied by --migrate-to answers the same on PostgreSQL, a second copy is refused",
    "[integration][migrate]") {
  if (pg_test_server_url().empty()) {
    WARN("DISPATCH_TEST_PG_URL is not set: migrate test skipped (run it under scripts/with-postgres)");
    return;
  }
  // The source is a SQLite node whatever the suite's daemons run on.
  ::unsetenv("DISPATCH_TEST_DAEMON_STORAGE");
  Broker broker;
  Daemon node(broker, {"--provisioning.rate_limit", "1000"});
  REQUIRE_FALSE(node.on_postgres());
  auto platform = connected_client(broker);
  REQUIRE(node.wait_ready(*platform));

  const PrivateKey key = PrivateKey::generate(KeyType::ed25519);
  const std::vector<std::string> fleet_ids = {"mig-0", "mig-1", "mig-2", "mig-3"};
  for (const auto& hw : fleet_ids) {
    auto r = api(*platform, "devices/register",
                 {{"hardware_id", hw}, {"public_key", key.public_pem()}, {"tags", {"fleet"}}});
    REQUIRE(r.value("hardware_id", "") == hw);
  }
  std::string command_id, campaign_id;
  {
    CommandFleet fleet(broker, [](const std::string& hw) { return hw == "mig-3"; });
    auto sent =
        api(*platform, "commands/send", {{"type", "exec"}, {"command", "uptime"}, {"tags", {"fleet"}}});
    command_id = sent.value("command_id", "");
    REQUIRE_FALSE(command_id.empty());
    auto all_replied = [](const json& j) {
      int done = 0;
      for (const auto& d : j.value("devices", json::array())) {
        done += d["state"] == "succeeded" || d["state"] == "failed" ? 1 : 0;
      }
      return done == 4;
    };
    REQUIRE(all_replied(wait_for(*platform, "commands/get", {{"command_id", command_id}}, all_replied)));

    auto created = api(*platform, "campaigns/create",
                       {{"name", "before the move"},
                        {"type", "exec"},
                        {"command", "true"},
                        {"groups", {{{"tags", {"fleet"}}}}},
                        {"rate", {{"per_minute", 60000}}},
                        {"success", {{"threshold_percent", 50}}},
                        {"reply_timeout_s", 60}});
    campaign_id = created.value("id", "");
    REQUIRE_FALSE(campaign_id.empty());
    REQUIRE(api(*platform, "campaigns/start", {{"id", campaign_id}}).value("state", "") == "scheduled");
    auto completed = wait_for(*platform, "campaigns/get", {{"id", campaign_id}},
                              [](const json& j) { return j.value("state", "") == "completed"; });
    REQUIRE(completed.value("state", "") == "completed");
  }

  // A published package (3 chunks) and an upload in progress (its first chunk only).
  const std::string data = payload_bytes(2 * k_chunk + 17);
  auto created = api(*platform, "packages/create",
                     {{"name", "fw"},
                      {"version", "2.0.0"},
                      {"type", "internal"},
                      {"sha256", dispatch::core::sha256_hex(data)},
                      {"size", data.size()},
                      {"available", true}});
  const std::string package_id = created.value("id", "");
  REQUIRE_FALSE(package_id.empty());
  for (std::size_t at = 0; at < data.size(); at += k_chunk) {
    upload_frame(*platform, package_id, at, std::string_view(data).substr(at, k_chunk),
                 at + k_chunk >= data.size());
  }
  REQUIRE(api(*platform, "packages/get", {{"id", package_id}}).value("state", "") == "ready");
  const std::string data2 = payload_bytes(k_chunk + 5);
  auto created2 = api(*platform, "packages/create",
                      {{"name", "fw"},
                       {"version", "3.0.0"},
                       {"type", "internal"},
                       {"sha256", dispatch::core::sha256_hex(data2)},
                       {"size", data2.size()},
                       {"available", false}});
  const std::string pending_id = created2.value("id", "");
  REQUIRE_FALSE(pending_id.empty());
  REQUIRE(upload_frame(*platform, pending_id, 0, std::string_view(data2).substr(0, k_chunk), false)
              .value("state", "") == "pending_upload");

  // A download token, issued on SQLite and spent on PostgreSQL.
  auto dev = connected_client(broker);
  REQUIRE(dev->subscribe("esthesis/provisioning/reply/mig-0"));
  REQUIRE(dev->subscribe("esthesis/provisioning/data/mig-0"));
  REQUIRE(dev->publish("esthesis/provisioning/request/mig-0",
                       fresh_query("mig-0", key, {{"version", "1.0.0"}, {"correlation_id", "q"}}).dump(), 1));
  auto reply = dev->next(10000);
  REQUIRE(reply.has_value());
  auto answer = json::parse(reply->payload);
  REQUIRE(answer.value("status", "") == "update");
  const std::string token = answer["package"]["download_token"];

  const json command_before = api(*platform, "commands/get", {{"command_id", command_id}});
  const json campaign_before = without_clock(api(*platform, "campaigns/get", {{"id", campaign_id}}));
  const json package_before = api(*platform, "packages/get", {{"id", package_id}});
  const json pending_before = api(*platform, "packages/get", {{"id", pending_id}});
  const json devices_before = api(*platform, "devices/list", {{"limit", 100}});
  CHECK(command_before["devices"].size() == 4);

  PgDatabase target;
  {
    // The file is in use by the running node: refused, nothing copied.
    Run busy = migrate(node, target.url());
    CHECK(busy.code == 1);
    CHECK_THAT(busy.output, Catch::Contains("is in use by a running dispatchd; stop it first"));
  }
  REQUIRE(node.terminate() == 0);
  Run run = migrate(node, target.url());
  INFO(run.output);
  REQUIRE(run.code == 0);
  CHECK_THAT(run.output, Catch::Contains("devices") && Catch::Contains("campaign_executions") &&
                             Catch::Contains("each count checked in the target"));
  CHECK_THAT(run.output,
             Catch::Contains(fmt::format("package files: 2 packages, {} bytes as 4 package_bytes rows",
                                         data.size() + k_chunk)));
  {
    Run again = migrate(node, target.url());
    CHECK(again.code == 1);
    CHECK_THAT(again.output, Catch::Contains("the target already holds data (") &&
                                 Catch::Contains("nothing was committed"));
  }

  // A dispatchd on the PostgreSQL database, with an empty package directory of its own.
  Daemon cluster_node(broker, {"--storage.url", target.url(), "--provisioning.rate_limit", "1000"});
  REQUIRE(cluster_node.wait_ready(*platform));
  CHECK(api(*platform, "commands/get", {{"command_id", command_id}}) == command_before);
  CHECK(without_clock(api(*platform, "campaigns/get", {{"id", campaign_id}})) == campaign_before);
  CHECK(api(*platform, "packages/get", {{"id", package_id}}) == package_before);
  CHECK(api(*platform, "packages/get", {{"id", pending_id}}) == pending_before);
  CHECK(api(*platform, "devices/list", {{"limit", 100}}) == devices_before);

  // The token issued on SQLite downloads the bytes, now read from PostgreSQL.
  std::string got(data.size(), '\0');
  for (std::size_t at = 0; at < data.size(); at += k_chunk) {
    json req{{"download_token", token}, {"offset", at}, {"length", k_chunk}, {"correlation_id", "d"}};
    REQUIRE(dev->publish("esthesis/provisioning/download/mig-0", req.dump(), 1));
    auto m = dev->next(10000);
    REQUIRE(m.has_value());
    auto frame = dispatch::protocol::parse_frame(m->payload);
    REQUIRE(frame.ok());
    REQUIRE_FALSE(frame->header.contains("error"));
    got.replace(at, frame->body.size(), frame->body);
  }
  CHECK(got == data);
  // The upload in progress continues where it stopped.
  CHECK(upload_frame(*platform, pending_id, k_chunk, std::string_view(data2).substr(k_chunk), true)
            .value("state", "") == "ready");
}
