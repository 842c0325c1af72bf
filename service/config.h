// Config: every setting of dispatchd, typed and validated at load. One key table (config.cpp) names each
// key's TOML name, DISPATCH_… environment variable, --flag, type, default and description; --help,
// --print-config, --print-config-markdown (docs/configuration.md) and the loader all read it.
// Precedence: default < config file < environment < command line.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"
#include "protocol/topics.h"

namespace dispatch::service {

// provisioning.token: what a package query must carry (PROTOCOL §2.1).
enum class TokenMode {
  fresh,  // a signature over hardware id, ts and nonce (single use, within the clock skew)
  any,    // a fresh token, or a static signature over the hardware id
  off,    // nothing: answered without a signature (trusted networks only)
};
// registration.mode: who may register a device over the agent HTTP API (PROTOCOL §6).
enum class RegistrationMode {
  disabled,          // nobody
  open,              // anyone reaching the listener
  open_with_secret,  // whoever sends registration.secret
  id,                // only devices created beforehand
};
enum class LogFormat { text, json };
enum class LogLevel { trace, debug, info, warn, error };

std::string_view to_string(TokenMode mode);
std::string_view to_string(RegistrationMode mode);
std::string_view to_string(LogFormat format);
std::string_view to_string(LogLevel level);

struct Config {
  // [mqtt]
  std::string mqtt_uri = "tcp://127.0.0.1:1883";
  std::string mqtt_client_id = "dispatchd";
  std::string mqtt_username;
  std::string mqtt_password;
  std::string mqtt_ca_file;
  std::string mqtt_cert_file;
  std::string mqtt_key_file;
  // TLS: the broker's certificate must name the host of mqtt_uri. Off only for tests and emergencies.
  bool mqtt_tls_verify_hostname = true;
  int mqtt_qos = 1;
  int mqtt_keepalive_s = 30;
  int mqtt_session_expiry_s = 3600;
  // Upper bound of un-acked QoS 1 publishes at once; 0: the broker's Receive Maximum (CONNACK). The link's
  // window is min(this, Receive Maximum, mqtt_max_buffered) (mqtt_link.h).
  int mqtt_max_inflight = 0;
  // Upper bound of the publish window: messages handed to the client library, not yet acknowledged.
  int mqtt_max_buffered = 10000;
  std::int64_t mqtt_max_queued_bytes = 32LL * 1024 * 1024;
  std::int64_t mqtt_max_inbound_bytes = 64LL * 1024 * 1024;
  // Several instances: subscribe to the device topics and the API as $share/<group>/<filter> so that the
  // broker hands each inbound message to one instance (PROTOCOL §7). Empty = plain subscriptions.
  std::string mqtt_share_group;

  // [storage]
  // PostgreSQL URI ("postgresql://user@host:port/db") shared by several instances (PROTOCOL §7);
  // empty = the SQLite file storage_path (one node, the default).
  std::string storage_url;
  std::string storage_path = "var/dispatch.db";
  std::string storage_data_dir = "var/packages";

  // [log]
  LogFormat log_format = LogFormat::text;
  LogLevel log_level = LogLevel::info;
  // The flood bound of warnings a remote party can trigger (service/logging.h).
  int log_rate_limit_burst = 10;
  std::int64_t log_rate_limit_window_s = 10;

  // [api]
  std::int64_t api_max_request_bytes = 256 * 1024;
  int api_max_depth = 32;

  // [devices] Bounds of one device's metadata properties (the merged blob): new keys past either bound
  // are dropped, counted and warned about.
  int devices_max_properties = 256;
  std::int64_t devices_max_properties_bytes = 64 * 1024;

  // [commands]
  std::int64_t commands_default_ttl_s = 86400;
  std::int64_t commands_max_output_bytes = 1024 * 1024;
  // Transport limit of the reply topic (PROTOCOL §1.2): larger replies are dropped and counted; smaller
  // ones are recorded, their output cut to commands_max_output_bytes. Never below that limit.
  std::int64_t commands_max_reply_bytes = 16LL * 1024 * 1024;
  std::int64_t commands_redeliver_interval_s = 60;
  // A device silent for longer than this is taken to have been away (PROTOCOL §1.3 v1.1): 2.5 times the
  // esthesis agent's 60 s ping, and above the 90 s after which a broker drops a 60 s keep-alive client.
  std::int64_t commands_presence_gap_s = 150;
  int commands_redeliver_max_attempts = 5;
  // A commands/send commits at most this many deliveries before it answers; the rest of its targets are
  // committed as a list and written this many per loop pass while the first lines are published.
  int commands_expand_chunk = 1000;

  // [provisioning]
  TokenMode provisioning_token = TokenMode::fresh;
  std::int64_t provisioning_skew_s = 300;
  int provisioning_rate_limit = 5;
  std::int64_t provisioning_rate_window_s = 300;
  std::int64_t provisioning_download_token_ttl_s = 3600;
  std::int64_t provisioning_max_chunk_bytes = 256 * 1024;
  std::int64_t provisioning_max_package_bytes = 2LL * 1024 * 1024 * 1024;
  // One download token pulls at most this many times its package's size (re-requests included).
  std::int64_t provisioning_max_download_factor = 3;
  // Devices whose rate-limit windows are held in memory (least recently seen are dropped and reloaded
  // from storage when they query again).
  int provisioning_max_tracked_devices = 100000;

  // [campaigns]
  int campaigns_tick_ms = 200;

  // [cluster]: who drives what across instances sharing one database (PROTOCOL §7, service/cluster.h).
  std::string cluster_instance_id;  // empty: mqtt.client_id
  std::int64_t cluster_lease_ttl_ms = 10000;

  // [retention]: what is deleted, and how (service/retention.h, docs/storage.md "Retention").
  int retention_commands_days = 30;
  int retention_campaigns_days = 90;
  int retention_batch_rows = 500;
  std::int64_t retention_interval_s = 600;

  // [http] and [registration]: the esthesis agent-facing HTTP API (PROTOCOL §6; docs/esthesis-agents.md).
  std::string http_agent_listen;  // "host:port"; empty = no agent listener
  std::string http_tls_cert_file;
  std::string http_tls_key_file;
  // Worker threads of the agent listener: each serves one connection at a time, so this bounds the
  // connections served at once (the rest wait in a queue of 64, then in the kernel's backlog).
  int http_agent_threads = 16;
  // How long an idle keep-alive connection may hold its worker, seconds (and while others wait, none).
  int http_agent_keep_alive_s = 5;
  RegistrationMode registration_mode = RegistrationMode::disabled;
  std::string registration_secret;
  std::string registration_mqtt_server;
  std::string registration_provisioning_url;
  // The operators' listener (PROTOCOL §6): /metrics, /healthz, /readyz. "" or "off" = no ops listener.
  std::string http_ops_listen = "127.0.0.1:9464";
  std::string http_console_token;             // empty: the console on http.ops_listen is read-only
  std::int64_t http_console_max_streams = 8;  // open server-sent event streams of the console

  // [topics]: validated at load (protocol::validate); defaults keep esthesis CORE's device-facing topics.
  protocol::TopicRoots topics;
};

enum class ValueType { string, integer, boolean, choice };
std::string_view to_string(ValueType type);

struct ConfigKeyInfo {
  std::string key;   // "mqtt.uri"
  std::string env;   // "DISPATCH_MQTT_URI"
  std::string flag;  // "--mqtt.uri"
  ValueType type = ValueType::string;
  std::string default_value;         // as text: "tcp://127.0.0.1:1883", "30", "true", "fresh"; "" = none
  std::vector<std::string> choices;  // choice: the allowed values
  std::int64_t min = 0, max = 0;     // integer: the allowed range
  std::string description;           // one line
  bool secret = false;               // never printed (mqtt.password)
};

// Every key, in table order, for --help and the generated docs.
std::vector<ConfigKeyInfo> config_keys();

// What the command line asked for besides settings.
struct CommandLineRequest {
  bool help = false;
  bool version = false;
  bool print_config = false;           // --print-config: the sample TOML of the loaded config
  bool print_config_markdown = false;  // --print-config-markdown: docs/configuration.md
  bool print_metrics = false;          // --print-metrics: every metric series name /metrics can contain
  std::string config_file;
  std::string migrate_to;  // --migrate-to URL: copy the SQLite database into PostgreSQL (service/migrate.h)
};

// Builds the configuration from defaults, the TOML file named by --config (if any), the environment
// (envp, "K=V" strings) and the command line, then validates it as a whole. A missing file, a TOML syntax
// error, an unknown key, a value of the wrong type, out of range or not one of the choices, an empty
// mqtt.uri / mqtt.client_id / storage.path, a storage.url that is not a postgresql:// URI, a
// mqtt.share_group that is not a valid share name, or an invalid topic root is a bad_request error whose
// message names the key. With --help, --version or --print-config-markdown nothing but the command line is
// read.
core::Result<Config> load_config(const std::vector<std::string>& args, const std::vector<std::string>& env,
                                 CommandLineRequest& request);

std::string config_help();

// The full commented sample TOML: every key with its description, default, env variable and flag. Keys
// whose value in `config` differs from the default are set; the others are commented out with the
// default. A secret (mqtt.password) is never printed.
std::string config_sample(const Config& config);

// docs/configuration.md: the reference table (key, type, default, env, flag, description).
std::string config_markdown();

}  // namespace dispatch::service
