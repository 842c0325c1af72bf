// Simulator: a fleet of simulated esthesis device agents (PROTOCOL §1, §2; esthesis agent behaviour) for
// dispatch-sim. An independent client of the wire contract: it talks MQTT only.
//
// Per device (without --agent; with it, see SimOptions::esthesis_agent) it: receives command lines on
// esthesis/command/request/{hw}, parses them exactly as the agent does (protocol::parse_command_line; an
// unparsable line gets no reply, like the agent), treats the command id as an idempotency key (a re-delivered
// id is answered again with the first result, never re-run, and counted as a duplicate), replies `<id> s|f
// <output>` on esthesis/command/reply/{hw} after the configured latency and with the configured failure rate,
// and runs the firmware flow for `f`: a fresh-token package query, a chunked download, a sha256 check, then
// `health firmware='<version>'` on esthesis/metadata/{hw} and a success reply ("up to date" when there is
// nothing newer; a failure reply with the message on any error or after firmware_timeout_s).
//
// Threads: Paho's callbacks only enqueue; run()'s thread owns every device's state and does all publishing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "protocol/core/result.h"
#include "protocol/core/signature.h"
#include "protocol/topics.h"
#include "service/mqtt/mqtt_client.h"

namespace dispatch::tools {

// The MQTT library's client and its values, by their short names in the tools.
using service::ClientOptions;
using service::InboundMessage;
using service::MqttClient;

struct SimOptions {
  ClientOptions mqtt;  // broker, version (5 or 4), TLS, credentials; client_id is a prefix
  int count = 10;
  std::string prefix = "sim-";  // device ids are <prefix>000001, <prefix>000002, …
  std::vector<std::string> tags;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::string version = "1.0.0";
  bool register_fleet = false;
  core::KeyType key_type = core::KeyType::ed25519;
  double failure_rate = 0.0;  // 0..1, applied to every command before it runs
  int latency_min_ms = 0;
  int latency_max_ms = 0;
  int connections = 0;  // 0: one connection with wildcard subscriptions; K: K connections, per-device topics
  std::uint64_t seed = 0;
  std::size_t chunk_size = 256 * 1024;
  int firmware_timeout_s = 120;
  int api_timeout_s = 10;
  // --agent esthesis: behave like the unmodified esthesis agent (../shared/reference/esthesis-agent.md):
  // MQTT 3.1.1, the command topic subscribed at QoS 0, everything published at QoS 0, no de-duplication
  // (a line delivered twice runs twice and is counted in `reruns`), `<id> s <output>` replies, a ping
  // every ping_interval_s, and firmware over HTTP (find or find/by-id with the static token, download,
  // sha256 check) against agent_http; with register_fleet and agent_http, registration over HTTP
  // (POST /api/v1/agent/register: the service makes the key pair).
  bool esthesis_agent = false;
  int ping_interval_s = 60;
  std::string agent_http;  // the service's http.agent_listen as a URL: http://host:port
  std::string registration_secret;
};

struct SimStats {
  std::uint64_t devices = 0;
  std::uint64_t registered = 0;
  std::uint64_t register_failed = 0;
  std::uint64_t commands_received = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t malformed = 0;
  std::uint64_t replies_ok = 0;
  std::uint64_t replies_failed = 0;
  std::uint64_t firmware_queries = 0;
  std::uint64_t up_to_date = 0;
  std::uint64_t downloads = 0;
  std::uint64_t download_bytes = 0;
  std::uint64_t firmware_failed = 0;
  std::uint64_t reruns = 0;  // --agent esthesis: lines run again because they were delivered again
  std::uint64_t pings = 0;

  nlohmann::json to_json() const;
};

// "<prefix>000001" for index 0 (six digits, more when count needs them).
std::string sim_hardware_id(const std::string& prefix, int index);

class Simulator {
 public:
  explicit Simulator(SimOptions options);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // Checks the options (bad_request: count < 1, a device id that is not a valid hardware id, failure rate
  // outside 0..1, latency min > max), connects (unavailable when the broker is unreachable), registers the
  // fleet when asked (the first registration error is returned when none succeeded; later ones are
  // counted), subscribes, and reports every device's version on its metadata topic.
  core::Status start();

  // Handles traffic until stop becomes true, duration_s elapsed (when > 0), or nothing arrived for
  // until_idle_s (when > 0) and no reply or download is pending. Then flushes outstanding publishes.
  void run(const std::atomic<bool>& stop, double duration_s, double until_idle_s);

  SimStats stats() const { return stats_; }
  // The first registration error message, empty when none.
  const std::string& first_register_error() const { return first_register_error_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  SimStats stats_;
  std::string first_register_error_;
};

}  // namespace dispatch::tools
