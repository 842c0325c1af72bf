#include "service/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>
#include <variant>

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;

namespace {

using Member = std::variant<std::string Config::*, int Config::*, std::int64_t Config::*>;

struct KeyDef {
  const char* key;
  Member member;
  std::int64_t min = 0;
  std::int64_t max = 0;                   // for integers; ignored for strings
  std::vector<const char*> choices = {};  // for strings; empty = any
};

const std::vector<KeyDef>& key_defs() {
  static const std::vector<KeyDef> defs = {
      {"mqtt.uri", &Config::mqtt_uri},
      {"mqtt.client_id", &Config::mqtt_client_id},
      {"mqtt.username", &Config::mqtt_username},
      {"mqtt.password", &Config::mqtt_password},
      {"mqtt.ca_file", &Config::mqtt_ca_file},
      {"mqtt.cert_file", &Config::mqtt_cert_file},
      {"mqtt.key_file", &Config::mqtt_key_file},
      {"mqtt.qos", &Config::mqtt_qos, 0, 1},
      {"mqtt.keepalive_s", &Config::mqtt_keepalive_s, 1, 3600},
      {"mqtt.session_expiry_s", &Config::mqtt_session_expiry_s, 0, 0xFFFFFFFFLL},
      {"mqtt.max_inflight", &Config::mqtt_max_inflight, 1, 65535},
      {"mqtt.max_buffered", &Config::mqtt_max_buffered, 100, 1000000},
      {"storage.path", &Config::storage_path},
      {"storage.data_dir", &Config::storage_data_dir},
      {"log.format", &Config::log_format, 0, 0, {"text", "json"}},
      {"log.level", &Config::log_level, 0, 0, {"trace", "debug", "info", "warn", "error"}},
      {"api.max_request_bytes", &Config::api_max_request_bytes, 1024, 64LL * 1024 * 1024},
      {"api.max_depth", &Config::api_max_depth, 2, 256},
      {"commands.default_ttl_s", &Config::commands_default_ttl_s, 1, 365LL * 86400},
      {"commands.max_output_bytes", &Config::commands_max_output_bytes, 1, 64LL * 1024 * 1024},
      {"commands.redeliver_interval_s", &Config::commands_redeliver_interval_s, 0, 86400},
      {"commands.redeliver_max_attempts", &Config::commands_redeliver_max_attempts, 1, 1000},
      {"provisioning.token", &Config::provisioning_token, 0, 0, {"fresh", "any", "off"}},
      {"provisioning.skew_s", &Config::provisioning_skew_s, 1, 86400},
      {"provisioning.rate_limit", &Config::provisioning_rate_limit, 1, 1000000},
      {"provisioning.rate_window_s", &Config::provisioning_rate_window_s, 1, 86400},
      {"provisioning.download_token_ttl_s", &Config::provisioning_download_token_ttl_s, 1, 7LL * 86400},
      {"provisioning.max_chunk_bytes", &Config::provisioning_max_chunk_bytes, 1, 16LL * 1024 * 1024},
      {"provisioning.max_package_bytes", &Config::provisioning_max_package_bytes, 1, 1LL << 40},
      {"provisioning.max_download_factor", &Config::provisioning_max_download_factor, 1, 100},
      {"provisioning.max_tracked_devices", &Config::provisioning_max_tracked_devices, 1, 100000000},
      {"campaigns.tick_ms", &Config::campaigns_tick_ms, 10, 60000},
      {"topics.command_request", &Config::topics_command_request},
      {"topics.command_reply", &Config::topics_command_reply},
      {"topics.command_pending", &Config::topics_command_pending},
      {"topics.command_pending_reply", &Config::topics_command_pending_reply},
      {"topics.provisioning_request", &Config::topics_provisioning_request},
      {"topics.provisioning_reply", &Config::topics_provisioning_reply},
      {"topics.provisioning_download", &Config::topics_provisioning_download},
      {"topics.provisioning_data", &Config::topics_provisioning_data},
      {"topics.metadata", &Config::topics_metadata},
      {"topics.ping", &Config::topics_ping},
      {"topics.api", &Config::topics_api},
      {"topics.events", &Config::topics_events},
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

std::string current_value(const Config& c, const KeyDef& d) {
  return std::visit(
      [&](auto m) -> std::string {
        if constexpr (std::is_same_v<decltype(m), std::string Config::*>) {
          return c.*m;
        } else {
          return std::to_string(c.*m);
        }
      },
      d.member);
}

// Sets one key from text (env or flag) or from a TOML node. `source` names where it came from.
core::Status set_from_text(Config& c, const KeyDef& d, std::string_view text, std::string_view source) {
  return std::visit(
      [&](auto m) -> core::Status {
        if constexpr (std::is_same_v<decltype(m), std::string Config::*>) {
          if (!d.choices.empty() &&
              std::none_of(d.choices.begin(), d.choices.end(), [&](const char* ch) { return text == ch; })) {
            std::string allowed;
            for (auto* ch : d.choices) allowed += std::string(allowed.empty() ? "" : ", ") + ch;
            return make_error(ErrorCode::bad_request,
                              fmt::format("invalid value '{}' for {} (from {}): expected one of {}", text,
                                          d.key, source, allowed));
          }
          c.*m = std::string(text);
        } else {
          std::int64_t v = 0;
          auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
          if (ec != std::errc() || p != text.data() + text.size() || text.empty()) {
            return make_error(
                ErrorCode::bad_request,
                fmt::format("invalid value '{}' for {} (from {}): expected an integer", text, d.key, source));
          }
          if (v < d.min || v > d.max) {
            return make_error(ErrorCode::bad_request,
                              fmt::format("invalid value {} for {} (from {}): must be in [{}, {}]", v, d.key,
                                          source, d.min, d.max));
          }
          c.*m = static_cast<std::remove_reference_t<decltype(c.*m)>>(v);
        }
        return {};
      },
      d.member);
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
      if (auto s = value.as_string()) {
        if (!std::holds_alternative<std::string Config::*>(d->member)) {
          return make_error(ErrorCode::bad_request, fmt::format("config key {}: expected an integer", key));
        }
        text = s->get();
      } else if (auto i = value.as_integer()) {
        if (std::holds_alternative<std::string Config::*>(d->member)) {
          return make_error(ErrorCode::bad_request, fmt::format("config key {}: expected a string", key));
        }
        text = std::to_string(i->get());
      } else {
        return make_error(ErrorCode::bad_request,
                          fmt::format("config key {}: expected a string or an integer", key));
      }
      if (auto st = set_from_text(c, *d, text, path); !st) return st;
    }
  }
  return {};
}

}  // namespace

std::vector<ConfigKeyInfo> config_keys() {
  Config defaults;
  std::vector<ConfigKeyInfo> out;
  for (const auto& d : key_defs()) {
    out.push_back({d.key, env_name(d.key), std::string("--") + d.key, current_value(defaults, d)});
  }
  return out;
}

std::string config_help() {
  std::string out =
      "Usage: dispatchd [--config FILE] [--KEY VALUE | --KEY=VALUE ...] [--help] [--version]\n\n"
      "Every key can be set in the TOML file ([section] key = value), by the environment variable\n"
      "shown, or by the flag. Precedence: default < file < environment < flag.\n\n";
  for (const auto& k : config_keys()) {
    if (k.key == "mqtt.password") {
      out += fmt::format("  {:<40} {:<44} (default: none)\n", k.flag, k.env);
    } else {
      out += fmt::format("  {:<40} {:<44} (default: {})\n", k.flag, k.env,
                         k.default_value.empty() ? "none" : k.default_value);
    }
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
  if (request.help || request.version) return c;
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
    if (auto st = set_from_text(c, *d, v, std::string("--") + d->key); !st) return st.error();
  }
  if (c.mqtt_uri.empty()) return make_error(ErrorCode::bad_request, "mqtt.uri must not be empty");
  if (c.mqtt_client_id.empty()) return make_error(ErrorCode::bad_request, "mqtt.client_id must not be empty");
  if (c.storage_path.empty()) return make_error(ErrorCode::bad_request, "storage.path must not be empty");
  return c;
}

}  // namespace dispatch::service
