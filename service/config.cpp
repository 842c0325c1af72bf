#include "service/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>
#include <variant>

#include "service/http/http_server.h"
#include "storage/database.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;

namespace {

constexpr std::array<std::string_view, 3> k_token_modes = {"fresh", "any", "off"};
constexpr std::array<std::string_view, 4> k_registration_modes = {"disabled", "open", "open_with_secret",
                                                                  "id"};
constexpr std::array<std::string_view, 2> k_log_formats = {"text", "json"};
constexpr std::array<std::string_view, 5> k_log_levels = {"trace", "debug", "info", "warn", "error"};

// A parsed value: text (string), number (integer), flag (boolean) or the index of a choice.
using Value = std::variant<std::string, std::int64_t, bool>;

// One row of the key table. get/set reach the Config field; everything else describes the key.
struct KeyDef {
  KeyDef(std::string k, ValueType t, std::string d) : key(std::move(k)), type(t), description(std::move(d)) {}
  std::string key;
  ValueType type = ValueType::string;
  std::string description;
  std::int64_t min = 0, max = 0;     // integer
  std::vector<std::string> choices;  // choice
  bool secret = false;
  std::function<Value(const Config&)> get;
  std::function<void(Config&, const Value&)> set;
};

KeyDef text(std::string key, std::string Config::*m, std::string description, bool secret = false) {
  KeyDef d(std::move(key), ValueType::string, std::move(description));
  d.secret = secret;
  d.get = [m](const Config& c) { return Value(c.*m); };
  d.set = [m](Config& c, const Value& v) { c.*m = std::get<std::string>(v); };
  return d;
}

KeyDef root(std::string key, std::string protocol::TopicRoots::*m, std::string description) {
  KeyDef d(std::move(key), ValueType::string, std::move(description));
  d.get = [m](const Config& c) { return Value(c.topics.*m); };
  d.set = [m](Config& c, const Value& v) { c.topics.*m = std::get<std::string>(v); };
  return d;
}

template <class T>
KeyDef integer(std::string key, T Config::*m, std::int64_t min, std::int64_t max, std::string description) {
  KeyDef d(std::move(key), ValueType::integer, std::move(description));
  d.min = min;
  d.max = max;
  d.get = [m](const Config& c) { return Value(static_cast<std::int64_t>(c.*m)); };
  d.set = [m](Config& c, const Value& v) { c.*m = static_cast<T>(std::get<std::int64_t>(v)); };
  return d;
}

KeyDef boolean(std::string key, bool Config::*m, std::string description) {
  KeyDef d(std::move(key), ValueType::boolean, std::move(description));
  d.get = [m](const Config& c) { return Value(c.*m); };
  d.set = [m](Config& c, const Value& v) { c.*m = std::get<bool>(v); };
  return d;
}

// An enum whose values are 0..N-1 in the order of `names`.
template <class E, std::size_t N>
KeyDef choice(std::string key, E Config::*m, const std::array<std::string_view, N>& names,
              std::string description) {
  KeyDef d(std::move(key), ValueType::choice, std::move(description));
  for (auto n : names) d.choices.emplace_back(n);
  d.get = [m](const Config& c) { return Value(static_cast<std::int64_t>(c.*m)); };
  d.set = [m](Config& c, const Value& v) { c.*m = static_cast<E>(std::get<std::int64_t>(v)); };
  return d;
}

// The key table: the single source of truth for keys, types, ranges and descriptions.
const std::vector<KeyDef>& key_defs() {
  using R = protocol::TopicRoots;
  static const std::vector<KeyDef> defs = {
      text("mqtt.uri", &Config::mqtt_uri,
           "Broker URI: tcp://host:port, or ssl://host:port (mqtts://) for TLS"),
      text("mqtt.client_id", &Config::mqtt_client_id,
           "MQTT client id; the persistent session is kept under it (one running dispatchd per id)"),
      text("mqtt.username", &Config::mqtt_username, "MQTT user name (empty: none)"),
      text("mqtt.password", &Config::mqtt_password,
           "MQTT password (empty: none); prefer the environment variable", true),
      text("mqtt.ca_file", &Config::mqtt_ca_file,
           "TLS: CA certificates (PEM) the broker's certificate must chain to (empty: the system store)"),
      text("mqtt.cert_file", &Config::mqtt_cert_file,
           "TLS: client certificate (PEM) presented to the broker"),
      text("mqtt.key_file", &Config::mqtt_key_file, "TLS: private key (PEM) of mqtt.cert_file"),
      boolean("mqtt.tls_verify_hostname", &Config::mqtt_tls_verify_hostname,
              "TLS: refuse a broker whose certificate does not name the host of mqtt.uri. DANGEROUS to "
              "turn off: anyone with a certificate of the CA can then pose as the broker"),
      integer("mqtt.qos", &Config::mqtt_qos, 0, 1, "QoS of the messages dispatchd publishes"),
      integer("mqtt.keepalive_s", &Config::mqtt_keepalive_s, 1, 3600, "MQTT keep-alive interval, seconds"),
      integer("mqtt.session_expiry_s", &Config::mqtt_session_expiry_s, 0, 0xFFFFFFFFLL,
              "MQTT 5 session expiry: how long the broker keeps our subscriptions and queued messages "
              "while we are away, seconds"),
      integer("mqtt.max_inflight", &Config::mqtt_max_inflight, 0, 65535,
              "Upper bound of unacknowledged QoS 1 publishes at once; 0: as many as the broker's Receive "
              "Maximum from its CONNACK allows (MQTT 3.1.1: 20, mosquitto's default). The window is never "
              "above the Receive Maximum nor above mqtt.max_buffered"),
      integer("mqtt.max_buffered", &Config::mqtt_max_buffered, 100, 1000000,
              "Upper bound of the publish window (messages handed to the MQTT client library and not yet "
              "acknowledged)"),
      integer("mqtt.max_queued_bytes", &Config::mqtt_max_queued_bytes, 65536, 1LL << 40,
              "Bytes of outgoing messages waiting to be handed to MQTT at which the service stops taking "
              "device messages (whose answers would add to them) and stops publishing outbox items, until "
              "they drain; nothing is dropped (docs/security.md)"),
      integer("mqtt.max_inbound_bytes", &Config::mqtt_max_inbound_bytes, 65536, 1LL << 40,
              "Bytes of received messages waiting for the service loop (at most 200,000 messages) at which "
              "the MQTT client stops reading from the broker until the loop catches up; the broker keeps "
              "them meanwhile, within its own queue limits (docs/security.md)"),
      text("mqtt.share_group", &Config::mqtt_share_group,
           "Several instances: subscribe to device topics and the API as $share/<group>/<filter> (MQTT 5 "
           "shared subscriptions; every instance needs its own mqtt.client_id). Empty: plain subscriptions"),
      text("storage.url", &Config::storage_url,
           "PostgreSQL database shared by several instances: postgresql://user@host:port/db (libpq URI; "
           "put the password in PGPASSWORD or ~/.pgpass). Empty: the SQLite file storage.path"),
      text("storage.path", &Config::storage_path,
           "SQLite database file (its folder is created); used when storage.url is empty"),
      text("storage.data_dir", &Config::storage_data_dir,
           "Folder of uploaded package files (created); with storage.url, the bytes are in the database and "
           "this folder is a "
           "local cache of HTTP downloads"),
      choice("log.format", &Config::log_format, k_log_formats,
             "Log lines on stdout: text, or one JSON object per line"),
      choice("log.level", &Config::log_level, k_log_levels, "Lowest level logged"),
      integer("log.rate_limit_burst", &Config::log_rate_limit_burst, 1, 100000,
              "Most lines of one kind of remotely triggered warning per window; the rest are counted and "
              "reported as one \"N similar suppressed\" line"),
      integer("log.rate_limit_window_s", &Config::log_rate_limit_window_s, 1, 3600,
              "Window of log.rate_limit_burst, seconds"),
      integer("api.max_request_bytes", &Config::api_max_request_bytes, 1024, 64LL * 1024 * 1024,
              "Largest API request or device message accepted, bytes"),
      integer("api.max_depth", &Config::api_max_depth, 2, 256, "Deepest JSON nesting accepted in a request"),
      integer("devices.max_properties", &Config::devices_max_properties, 1, 100000,
              "Most metadata properties kept per device; properties with new names past it are dropped "
              "(counted, warned about)"),
      integer("devices.max_properties_bytes", &Config::devices_max_properties_bytes, 1024, 16LL * 1024 * 1024,
              "Most bytes of metadata properties (names and values) kept per device; a new property or a "
              "longer value that would pass it is dropped (counted, warned about), bytes"),
      integer("commands.default_ttl_s", &Config::commands_default_ttl_s, 1, 365LL * 86400,
              "Time to live of a command that names none, seconds"),
      integer("commands.max_output_bytes", &Config::commands_max_output_bytes, 1, 64LL * 1024 * 1024,
              "Longest command output stored per device (longer output is cut and marked trimmed), bytes"),
      integer("commands.max_reply_bytes", &Config::commands_max_reply_bytes, 1024, 255LL * 1024 * 1024,
              "Largest reply message accepted on the reply topic (larger ones are dropped and counted); "
              "at least commands.max_output_bytes, bytes"),
      integer("commands.redeliver_interval_s", &Config::commands_redeliver_interval_s, 0, 86400,
              "Re-publish an unanswered delivery to a device that missed it (see commands.presence_gap_s) "
              "once its last send is this old, seconds (0: never)"),
      integer("commands.presence_gap_s", &Config::commands_presence_gap_s, 1, 86400,
              "A device silent (no ping, metadata, reply or pending pull) for longer than this is taken to "
              "have been away and gets again what it was sent before; keep it above the devices' ping "
              "interval, seconds"),
      integer("commands.redeliver_max_attempts", &Config::commands_redeliver_max_attempts, 1, 1000,
              "Most publishes of one delivery, the first included"),
      integer("commands.expand_chunk", &Config::commands_expand_chunk, 1, 10'000'000,
              "Deliveries a commands/send writes before it answers; a send to more devices commits the "
              "rest as a list of targets (every target decided) and writes them this many per loop pass "
              "while the first lines are published"),
      choice("provisioning.token", &Config::provisioning_token, k_token_modes,
             "What a package query must carry: fresh (signed hardware id, ts and nonce, single use), any "
             "(fresh or a static signature), off (nothing: trusted networks only)"),
      integer("provisioning.skew_s", &Config::provisioning_skew_s, 1, 86400,
              "Largest difference between a fresh token's ts and the service clock, seconds"),
      integer("provisioning.rate_limit", &Config::provisioning_rate_limit, 1, 1000000,
              "Package queries allowed per device per window"),
      integer("provisioning.rate_window_s", &Config::provisioning_rate_window_s, 1, 86400,
              "Sliding window of provisioning.rate_limit, seconds"),
      integer("provisioning.download_token_ttl_s", &Config::provisioning_download_token_ttl_s, 1, 7LL * 86400,
              "Life of a download token handed out with a package answer, seconds"),
      integer("provisioning.max_chunk_bytes", &Config::provisioning_max_chunk_bytes, 1, 16LL * 1024 * 1024,
              "Largest upload or download chunk, bytes"),
      integer("provisioning.max_package_bytes", &Config::provisioning_max_package_bytes, 1, 1LL << 40,
              "Largest package file accepted, bytes"),
      integer("provisioning.max_download_factor", &Config::provisioning_max_download_factor, 1, 100,
              "One download token serves at most this many times its package's size (re-requests "
              "included); past it the token is spent and answered token_invalid"),
      integer("provisioning.max_tracked_devices", &Config::provisioning_max_tracked_devices, 1, 100000000,
              "Devices whose query rate windows are held in memory; the least recently seen are reloaded "
              "from the database when they query again"),
      integer("campaigns.tick_ms", &Config::campaigns_tick_ms, 10, 60000,
              "How often campaigns are advanced, milliseconds (also at once after a start or resume and "
              "after a reply that leaves a campaign with nothing in flight, and at most every 50 ms while "
              "replies come)"),
      text("cluster.instance_id", &Config::cluster_instance_id,
           "This instance's id in the leases (\"instance:<id>\", campaign holders) and as the owner of "
           "the deliveries it commits; unique per running instance and kept across restarts (empty: "
           "mqtt.client_id)"),
      integer("cluster.lease_ttl_ms", &Config::cluster_lease_ttl_ms, 300, 600000,
              "Life of an instance's and a campaign's lease; renewed every third of it, so another "
              "instance takes over a dead one's campaigns and unpublished sends after at most this, "
              "milliseconds"),
      integer("retention.commands_days", &Config::retention_commands_days, 1, 36500,
              "Finished commands (no delivery queued or sent) older than this are deleted with their "
              "deliveries, days"),
      integer(
          "retention.campaigns_days", &Config::retention_campaigns_days, 1, 36500,
          "Campaigns that ended (completed, aborted, terminated) longer ago than this are deleted with "
          "their executions, days; request_id records older than the larger of the two retentions go too"),
      integer("retention.batch_rows", &Config::retention_batch_rows, 1, 100000,
              "Most rows one purge transaction deletes; the loop runs one batch per timer tick"),
      integer("retention.interval_s", &Config::retention_interval_s, 1, 86400,
              "How often a purge round starts (it runs batch by batch until nothing old is left), seconds"),
      text("http.agent_listen", &Config::http_agent_listen,
           "Listen address (host:port) of the esthesis agent HTTP API (empty: no agent listener)"),
      text("http.ops_listen", &Config::http_ops_listen,
           "Listen address (host:port) of the operators' endpoints /metrics, /healthz and /readyz "
           "(empty or \"off\": none); never expose it to devices"),
      text("http.console_token", &Config::http_console_token,
           "Bearer token the web console (/console/ on http.ops_listen) needs for its writes: campaign "
           "pause, resume, terminate, package upload (empty: the console is read-only)",
           true),
      integer("http.console_max_streams", &Config::http_console_max_streams, 1, 256,
              "Most open server-sent event streams of the console's live campaign pages (one per open "
              "page; past it 503); each holds one ops listener worker thread"),
      text("http.tls_cert_file", &Config::http_tls_cert_file,
           "TLS: certificate (PEM) of the agent listener (empty with http.tls_key_file: plain HTTP)"),
      text("http.tls_key_file", &Config::http_tls_key_file, "TLS: private key (PEM) of http.tls_cert_file"),
      integer("http.agent_threads", &Config::http_agent_threads, 1, 1024,
              "Worker threads of the agent listener, each serving one connection at a time; more "
              "connections wait (64 queued, then the kernel's backlog)"),
      integer("http.agent_keep_alive_s", &Config::http_agent_keep_alive_s, 1, 60,
              "Longest an idle keep-alive connection to the agent listener holds its worker thread, "
              "seconds; while other connections wait for a worker, each answer closes its connection"),
      choice("registration.mode", &Config::registration_mode, k_registration_modes,
             "Who may register a device over the agent API: disabled, open (anyone), open_with_secret "
             "(registration.secret required), id (only pre-created devices)"),
      text("registration.secret", &Config::registration_secret,
           "Secret an agent must send to register when registration.mode = open_with_secret", true),
      text("registration.mqtt_server", &Config::registration_mqtt_server,
           "MQTT server URL handed to a registered agent (empty: none)"),
      text("registration.provisioning_url", &Config::registration_provisioning_url,
           "Provisioning URL handed to a registered agent (empty: none)"),
      root("topics.command_request", &R::command_request, "Root of command lines to devices (<root>/<hw>)"),
      root("topics.command_reply", &R::command_reply, "Root of command replies from devices"),
      root("topics.command_pending", &R::command_pending, "Root of devices' pending-command requests"),
      root("topics.command_pending_reply", &R::command_pending_reply, "Root of answers to pending requests"),
      root("topics.provisioning_request", &R::provisioning_request, "Root of devices' package queries"),
      root("topics.provisioning_reply", &R::provisioning_reply, "Root of answers to package queries"),
      root("topics.provisioning_download", &R::provisioning_download, "Root of devices' chunk requests"),
      root("topics.provisioning_data", &R::provisioning_data, "Root of package chunks to devices"),
      root("topics.metadata", &R::metadata, "Root of devices' eLP metadata"),
      root("topics.ping", &R::ping, "Root of devices' pings"),
      root("topics.api", &R::api, "Root of the platform API (<root>/<resource>/<action>)"),
      root("topics.events", &R::events, "Root of command and campaign events"),
  };
  return defs;
}

std::string env_name(std::string_view key) {
  std::string out = "DISPATCH_";
  for (char c : key) out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

const KeyDef* find_key(std::string_view key) {
  for (const auto& d : key_defs()) {
    if (key == d.key) return &d;
  }
  return nullptr;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : std::string(sep)) + i;
  return out;
}

// The value as plain text: "tcp://…", "30", "true", "fresh".
std::string as_text(const KeyDef& d, const Value& v) {
  if (d.type == ValueType::choice) return d.choices.at(static_cast<std::size_t>(std::get<std::int64_t>(v)));
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return std::to_string(std::get<std::int64_t>(v));
}

// The value as a TOML literal: strings quoted and escaped.
std::string as_toml(const KeyDef& d, const Value& v) {
  if (d.type == ValueType::string || d.type == ValueType::choice) {
    std::string out = "\"";
    for (char c : as_text(d, v)) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        out += fmt::format("\\u{:04X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        continue;
      }
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    return out + "\"";
  }
  return as_text(d, v);
}

// Checks text (from the environment, a flag or a TOML string) against the key's type and range.
Result<Value> parse_value(const KeyDef& d, std::string_view text, std::string_view source) {
  const auto invalid = [&](const std::string& expected) {
    return make_error(ErrorCode::bad_request, fmt::format("invalid value '{}' for {} (from {}): expected {}",
                                                          text, d.key, source, expected));
  };
  switch (d.type) {
    case ValueType::string:
      return Value(std::string(text));
    case ValueType::boolean:
      if (text == "true") return Value(true);
      if (text == "false") return Value(false);
      return invalid("true or false");
    case ValueType::choice: {
      auto it = std::find(d.choices.begin(), d.choices.end(), text);
      if (it == d.choices.end()) return invalid(fmt::format("one of {}", join(d.choices, ", ")));
      return Value(static_cast<std::int64_t>(it - d.choices.begin()));
    }
    case ValueType::integer: {
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || p != text.data() + text.size() || text.empty()) return invalid("an integer");
      if (v < d.min || v > d.max) {
        return make_error(ErrorCode::bad_request,
                          fmt::format("invalid value {} for {} (from {}): must be in [{}, {}]", v, d.key,
                                      source, d.min, d.max));
      }
      return Value(v);
    }
  }
  return invalid("a value");
}

core::Status set_from_text(Config& c, const KeyDef& d, std::string_view text, std::string_view source) {
  auto v = parse_value(d, text, source);
  if (!v) return v.error();
  d.set(c, *v);
  return {};
}

core::Status apply_toml(Config& c, const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return make_error(ErrorCode::bad_request,
                      fmt::format("cannot read config file {}: {}", path, e.description()));
  }
  for (auto& [section, node] : tbl) {
    auto* sub = node.as_table();
    if (!sub)
      return make_error(ErrorCode::bad_request,
                        fmt::format("config key {}: expected a [section]", section.str()));
    for (auto& [name, value] : *sub) {
      std::string key = fmt::format("{}.{}", section.str(), name.str());
      const KeyDef* d = find_key(key);
      if (!d)
        return make_error(ErrorCode::bad_request, fmt::format("unknown config key {} in {}", key, path));
      std::string text;
      const bool wants_string = d->type == ValueType::string || d->type == ValueType::choice;
      if (auto s = value.as_string(); s && wants_string) {
        text = s->get();
      } else if (auto i = value.as_integer(); i && d->type == ValueType::integer) {
        text = std::to_string(i->get());
      } else if (auto b = value.as_boolean(); b && d->type == ValueType::boolean) {
        text = b->get() ? "true" : "false";
      } else {
        return make_error(ErrorCode::bad_request,
                          fmt::format("config key {}: expected {} in {}", key,
                                      d->type == ValueType::integer   ? "an integer"
                                      : d->type == ValueType::boolean ? "true or false"
                                                                      : "a string",
                                      path));
      }
      if (auto st = set_from_text(c, *d, text, path); !st) return st;
    }
  }
  return {};
}

// Checks that span keys: non-empty essentials and the topic roots (named by their key).
core::Status validate(const Config& c) {
  if (c.mqtt_uri.empty()) return make_error(ErrorCode::bad_request, "mqtt.uri must not be empty");
  if (c.mqtt_client_id.empty()) return make_error(ErrorCode::bad_request, "mqtt.client_id must not be empty");
  if (c.storage_path.empty()) return make_error(ErrorCode::bad_request, "storage.path must not be empty");
  // Lease names are compared as printable ASCII (storage/leases.cpp lists them by prefix).
  for (char ch : c.cluster_instance_id) {
    if (ch < 0x21 || ch > 0x7e)
      return make_error(ErrorCode::bad_request, "cluster.instance_id must be printable ASCII without spaces");
  }
  if (c.commands_max_reply_bytes < c.commands_max_output_bytes) {
    return make_error(
        ErrorCode::bad_request,
        fmt::format("commands.max_reply_bytes ({}) must not be below commands.max_output_bytes ({})",
                    c.commands_max_reply_bytes, c.commands_max_output_bytes));
  }
  if (!c.http_ops_listen.empty() && c.http_ops_listen != "off") {
    if (auto hp = http::parse_listen_address(c.http_ops_listen); !hp)
      return make_error(
          ErrorCode::bad_request,
          fmt::format("invalid config key http.ops_listen: {} (host:port, or \"off\")", hp.error().message));
  }
  if (!c.storage_url.empty() && !storage::is_postgres_url(c.storage_url)) {
    return make_error(ErrorCode::bad_request,
                      "storage.url must be a PostgreSQL URI (postgresql://user@host:port/db) or empty");
  }
  // A share name is one topic level: no '/', no wildcards (MQTT 5 §4.8.2).
  if (c.mqtt_share_group.find_first_of("/+#") != std::string::npos) {
    return make_error(ErrorCode::bad_request, "mqtt.share_group must not contain '/', '+' or '#'");
  }
  if (auto st = protocol::validate(c.topics); !st) {
    // protocol::validate quotes the roots it names, the offending one first: "topic root 'ping' overlaps
    // topic root 'metadata'". Each becomes its key.
    const std::string& m = st.error().message;
    std::vector<std::string> keys;
    for (auto open = m.find('\''); open != std::string::npos; open = m.find('\'', open + 1)) {
      const auto close = m.find('\'', open + 1);
      if (close == std::string::npos) break;
      keys.push_back(fmt::format("topics.{}", m.substr(open + 1, close - open - 1)));
      open = close;
    }
    if (keys.empty()) keys.push_back("[topics]");
    std::string also;
    for (std::size_t k = 1; k < keys.size(); ++k) also += (k == 1 ? " (" : ", ") + keys[k];
    if (!also.empty()) also += ")";
    return make_error(ErrorCode::bad_request, fmt::format("invalid config key {}: {}{}", keys[0], m, also));
  }
  return {};
}

// text as "# " comment lines of at most `width` characters, broken at spaces.
std::string comment_lines(std::string_view text, std::size_t width = 100) {
  std::string out, line = "#";
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(pos, end - pos);
    if (line.size() > 1 && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.resize(1);  // keep the "#" (not line = "#": GCC 12 -O3 reports a false -Wrestrict)
    }
    line += " ";
    line += word;
    pos = end + 1;
  }
  return out + line + "\n";
}

std::string describe(const KeyDef& d) {
  std::string out = d.description;
  if (d.type == ValueType::choice) out += fmt::format(" ({})", join(d.choices, " | "));
  if (d.type == ValueType::integer) out += fmt::format(" [{} .. {}]", d.min, d.max);
  return out;
}

}  // namespace

std::string_view to_string(TokenMode mode) { return k_token_modes.at(static_cast<std::size_t>(mode)); }
std::string_view to_string(RegistrationMode mode) {
  return k_registration_modes.at(static_cast<std::size_t>(mode));
}
std::string_view to_string(LogFormat format) { return k_log_formats.at(static_cast<std::size_t>(format)); }
std::string_view to_string(LogLevel level) { return k_log_levels.at(static_cast<std::size_t>(level)); }

std::string_view to_string(ValueType type) {
  switch (type) {
    case ValueType::string:
      return "string";
    case ValueType::integer:
      return "integer";
    case ValueType::boolean:
      return "boolean";
    case ValueType::choice:
      return "choice";
  }
  return "?";
}

std::vector<ConfigKeyInfo> config_keys() {
  const Config defaults;
  std::vector<ConfigKeyInfo> out;
  for (const auto& d : key_defs()) {
    out.push_back({d.key, env_name(d.key), "--" + d.key, d.type, d.secret ? "" : as_text(d, d.get(defaults)),
                   d.choices, d.min, d.max, d.description, d.secret});
  }
  return out;
}

std::string config_help() {
  std::string out =
      "Usage: dispatchd [--config FILE] [--KEY VALUE | --KEY=VALUE ...]\n"
      "       dispatchd --print-config [--config FILE] [--KEY VALUE ...]   the commented sample TOML\n"
      "       dispatchd --migrate-to postgresql://… [--config FILE]   copy storage.path and "
      "storage.data_dir\n"
      "                 into an empty PostgreSQL database (stop the service first; docs/deployment.md)\n"
      "       dispatchd --print-config-markdown | --print-metrics | --help | --version\n\n"
      "Every key can be set in the TOML file ([section] key = value), by the environment variable\n"
      "shown, or by the flag. Precedence: default < file < environment < flag. docs/configuration.md\n"
      "describes each key.\n\n";
  for (const auto& k : config_keys()) {
    out += fmt::format("  {:<40} {:<44} (default: {})\n", k.flag, k.env,
                       k.default_value.empty() ? "none" : k.default_value);
  }
  return out;
}

std::string config_sample(const Config& config) {
  const Config defaults;
  std::string out =
      "# dispatchd configuration (TOML), generated by `dispatchd --print-config`.\n"
      "#\n"
      "# Every key is listed with what it does, its environment variable and its flag. A commented-out\n"
      "# line shows the built-in default. Precedence: default < this file < environment < flag. An\n"
      "# unknown key or an invalid value stops dispatchd at start (exit code 2) with a message naming it.\n"
      "# The full reference: docs/configuration.md.\n";
  std::string section;
  for (const auto& d : key_defs()) {
    const std::string sec = d.key.substr(0, d.key.find('.'));
    const std::string name = d.key.substr(d.key.find('.') + 1);
    if (sec != section) {
      out += fmt::format("\n[{}]\n", sec);
      section = sec;
    }
    out += '\n';
    out += comment_lines(describe(d) + ".");
    out += fmt::format("# env {}, flag --{}\n", env_name(d.key), d.key);
    const Value v = d.get(config);
    if (d.secret) {
      out += fmt::format("#{} = \"\"{}\n", name, as_text(d, v).empty() ? "" : "   (set; not shown)");
    } else if (v == d.get(defaults)) {
      out += fmt::format("#{} = {}\n", name, as_toml(d, v));
    } else {
      out += fmt::format("{} = {}\n", name, as_toml(d, v));
    }
  }
  return out;
}

std::string config_markdown() {
  std::string out =
      "# Configuration reference\n"
      "\n"
      "<!-- Generated by `dispatchd --print-config-markdown` (scripts/gen-config-docs); do not edit.\n"
      "     The test \"service:docs/configuration.md is generated from the key table\" fails when it drifts. "
      "-->\n"
      "\n"
      "dispatchd reads its settings from built-in defaults, then the TOML file named by `--config FILE`\n"
      "(`[section]` then `key = value`), then `DISPATCH_…` environment variables, then `--key value` (or\n"
      "`--key=value`) flags; a later source wins. An unknown key, a value of the wrong type, out of range\n"
      "or not one of the choices, or an invalid topic root stops dispatchd at start with exit code 2 and a\n"
      "message naming the key.\n"
      "\n"
      "`dispatchd --print-config` prints the full commented sample file (with `--config FILE` and other\n"
      "flags: the effective configuration, keys that differ from the default set). The Debian package\n"
      "installs one as `/etc/dispatch/dispatchd.toml` (see docs/deployment.md).\n"
      "\n"
      "Topic roots (`[topics]`) must be non-empty, without empty levels, `+`, `#`, control characters or\n"
      "a leading `$`, and no root may equal another or lie below another.\n"
      "\n"
      "| Key | Type | Default | Environment | Flag | Description |\n"
      "|---|---|---|---|---|---|\n";
  for (const auto& k : config_keys()) {
    std::string type(to_string(k.type));
    if (k.type == ValueType::choice) type = join(k.choices, " \\| ");
    if (k.type == ValueType::integer) type = fmt::format("integer {} .. {}", k.min, k.max);
    std::string def = k.default_value.empty() ? "(none)" : "`" + k.default_value + "`";
    if (k.type == ValueType::string && !k.default_value.empty()) def = "`\"" + k.default_value + "\"`";
    out += fmt::format("| `{}` | {} | {} | `{}` | `{}` | {} |\n", k.key, type, def, k.env, k.flag,
                       k.description);
  }
  return out;
}

Result<Config> load_config(const std::vector<std::string>& args, const std::vector<std::string>& env,
                           CommandLineRequest& request) {
  Config c;
  // First pass: the command line, collected so that the file can be applied before it.
  std::vector<std::pair<const KeyDef*, std::string>> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--help" || a == "-h") {
      request.help = true;
      continue;
    }
    if (a == "--version") {
      request.version = true;
      continue;
    }
    if (a == "--print-config") {
      request.print_config = true;
      continue;
    }
    if (a == "--print-config-markdown") {
      request.print_config_markdown = true;
      continue;
    }
    if (a == "--print-metrics") {
      request.print_metrics = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    if (a == "--config") {
      if (!has_value) {
        if (i + 1 >= args.size()) return make_error(ErrorCode::bad_request, "--config needs a file name");
        value = args[++i];
      }
      request.config_file = value;
      continue;
    }
    if (a == "--migrate-to") {
      if (!has_value) {
        if (i + 1 >= args.size()) return make_error(ErrorCode::bad_request, "--migrate-to needs a URI");
        value = args[++i];
      }
      if (value.empty()) return make_error(ErrorCode::bad_request, "--migrate-to needs a URI");
      request.migrate_to = value;
      continue;
    }
    if (a.rfind("--", 0) != 0)
      return make_error(ErrorCode::bad_request, fmt::format("unexpected argument '{}'", a));
    const KeyDef* d = find_key(a.substr(2));
    if (!d) return make_error(ErrorCode::bad_request, fmt::format("unknown option {} (see --help)", a));
    if (!has_value) {
      if (i + 1 >= args.size()) return make_error(ErrorCode::bad_request, fmt::format("{} needs a value", a));
      value = args[++i];
    }
    flags.emplace_back(d, value);
  }
  if (request.help || request.version || request.print_config_markdown || request.print_metrics) return c;
  if (!request.config_file.empty()) {
    if (auto st = apply_toml(c, request.config_file); !st) return st.error();
  }
  std::map<std::string, std::string> envmap;
  for (const auto& kv : env) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) envmap[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& d : key_defs()) {
    auto it = envmap.find(env_name(d.key));
    if (it == envmap.end()) continue;
    if (auto st = set_from_text(c, d, it->second, env_name(d.key)); !st) return st.error();
  }
  for (const auto& [d, v] : flags) {
    if (auto st = set_from_text(c, *d, v, "--" + d->key); !st) return st.error();
  }
  if (auto st = validate(c); !st) return st.error();
  return c;
}

}  // namespace dispatch::service
