// Config: every setting of dispatchd, with its default, its TOML key, its DISPATCH_… environment variable
// and its --flag. Precedence: default < config file < environment < command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::service {

struct Config {
  // [mqtt]
  std::string mqtt_uri = "tcp://127.0.0.1:1883";
  std::string mqtt_client_id = "dispatchd";
  std::string mqtt_username;
  std::string mqtt_password;
  std::string mqtt_ca_file;
  std::string mqtt_cert_file;
  std::string mqtt_key_file;
  int mqtt_qos = 1;
  int mqtt_keepalive_s = 30;
  int mqtt_session_expiry_s = 3600;
  // Un-acked QoS 1 publishes allowed at once; kept ≤ the broker's Receive Maximum (mosquitto: 20).
  int mqtt_max_inflight = 16;
  // Paho's own buffer (its default of 100 aborts fan-out bursts, stack.md P2).
  int mqtt_max_buffered = 10000;

  // [storage]
  std::string storage_path = "var/dispatch.db";
  std::string storage_data_dir = "var/packages";

  // [log]
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace debug info warn error

  // [api]
  std::int64_t api_max_request_bytes = 256 * 1024;
  int api_max_depth = 32;

  // [commands]
  std::int64_t commands_default_ttl_s = 86400;
  std::int64_t commands_max_output_bytes = 1024 * 1024;
  std::int64_t commands_redeliver_interval_s = 60;
  int commands_redeliver_max_attempts = 5;

  // [provisioning]
  std::string provisioning_token = "fresh";  // fresh | any | off
  std::int64_t provisioning_skew_s = 300;
  int provisioning_rate_limit = 5;
  std::int64_t provisioning_rate_window_s = 300;
  std::int64_t provisioning_download_token_ttl_s = 3600;
  std::int64_t provisioning_max_chunk_bytes = 256 * 1024;
  std::int64_t provisioning_max_package_bytes = 2LL * 1024 * 1024 * 1024;
  // One download token pulls at most this many times its package's size (re-requests included).
  std::int64_t provisioning_max_download_factor = 3;
  int provisioning_max_tracked_devices = 100000;

  // [campaigns]
  int campaigns_tick_ms = 200;

  // [topics] roots; defaults keep esthesis CORE's device-facing topics.
  std::string topics_command_request = "esthesis/command/request";
  std::string topics_command_reply = "esthesis/command/reply";
  std::string topics_command_pending = "esthesis/command/pending";
  std::string topics_command_pending_reply = "esthesis/command/pending-reply";
  std::string topics_provisioning_request = "esthesis/provisioning/request";
  std::string topics_provisioning_reply = "esthesis/provisioning/reply";
  std::string topics_provisioning_download = "esthesis/provisioning/download";
  std::string topics_provisioning_data = "esthesis/provisioning/data";
  std::string topics_metadata = "esthesis/metadata";
  std::string topics_ping = "esthesis/ping";
  std::string topics_api = "esthesis/api/v1";
  std::string topics_events = "esthesis/events/v1";
};

struct ConfigKeyInfo {
  std::string key;   // "mqtt.uri"
  std::string env;   // "DISPATCH_MQTT_URI"
  std::string flag;  // "--mqtt.uri"
  std::string default_value;
};

// Every key with its environment variable and flag, for --help and docs.
std::vector<ConfigKeyInfo> config_keys();

// What the command line asked for besides settings.
struct CommandLineRequest {
  bool help = false;
  bool version = false;
  std::string config_file;
};

// Builds the configuration from defaults, the TOML file named by --config (if any), the environment
// (envp, "K=V" strings) and the command line. A missing file, a TOML syntax error, an unknown key or a
// value of the wrong type or out of range is a bad_request error whose message names the key.
core::Result<Config> load_config(const std::vector<std::string>& args, const std::vector<std::string>& env,
                                 CommandLineRequest& request);

std::string config_help();

}  // namespace dispatch::service
