// dispatch-sim: simulates a fleet of esthesis device agents against a broker (see tools/simulator.h).
// Exit codes: 0 ran and stopped normally, 2 usage error, 3 broker or service unreachable (or registration
// failed for every device).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <random>

#include "tools/api.h"
#include "tools/simulator.h"

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true); }

// "N" or "MIN-MAX" (milliseconds).
bool parse_latency(const std::string& text, int& min_ms, int& max_ms) {
  try {
    auto dash = text.find('-');
    std::size_t used = 0;
    if (dash == std::string::npos) {
      min_ms = max_ms = std::stoi(text, &used);
      return used == text.size() && min_ms >= 0;
    }
    min_ms = std::stoi(text.substr(0, dash), &used);
    if (used != dash) return false;
    auto rest = text.substr(dash + 1);
    max_ms = std::stoi(rest, &used);
    return used == rest.size() && min_ms >= 0 && min_ms <= max_ms;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dispatch::tools;
  CLI::App app{
      "dispatch-sim: simulates N esthesis device agents. Devices are <prefix>000001…; each parses command "
      "lines\n"
      "as the agent does, replies '<id> s|f <output>' with the given failure rate and latency, deduplicates "
      "by\n"
      "command id, and runs the firmware flow for 'f' (fresh-token query, chunked MQTT download, sha256 "
      "check,\n"
      "health firmware='<version>' on esthesis/metadata/{hw}, success reply).\n"
      "Prints 'dispatch-sim: N devices ready …' on stderr once subscribed, and a summary at the end.\n"
      "Exit codes: 0 ok, 2 usage error, 3 broker/service unreachable or no device could be registered."};
  SimOptions o;
  std::string broker = "tcp://127.0.0.1:1883";
  if (const char* env = std::getenv("DISPATCH_BROKER"); env && *env) broker = env;
  int mqtt_version = 5;
  std::string key_type = "ed25519", latency = "0", attr_text;
  std::vector<std::string> attrs;
  double duration_s = 0, until_idle_s = 0;
  bool json_output = false;
  std::uint64_t seed = std::random_device{}();
  std::size_t chunk_kib = 256;

  app.add_option("--broker", broker, "Broker URI (env DISPATCH_BROKER)")->capture_default_str();
  app.add_option("--mqtt-version", mqtt_version, "5, or 3 for MQTT 3.1.1 like the esthesis agent")
      ->check(CLI::IsMember({3, 5}))
      ->capture_default_str();
  app.add_option("--ca-file", o.mqtt.ca_file, "CA certificate (PEM) for ssl:// brokers");
  app.add_option("--cert-file", o.mqtt.cert_file, "Client certificate (PEM)");
  app.add_option("--key-file", o.mqtt.key_file, "Client private key (PEM)");
  bool tls_no_verify_hostname = false;
  app.add_flag("--tls-no-verify-hostname", tls_no_verify_hostname,
               "DANGEROUS: accept a broker certificate that does not name the host of --broker");
  app.add_option("--username", o.mqtt.username, "Broker user name");
  app.add_option("--password", o.mqtt.password, "Broker password");
  app.add_option("--client-id", o.mqtt.client_id, "Client id prefix (default: random)");
  app.add_option("--count", o.count, "Number of devices")->capture_default_str();
  app.add_option("--prefix", o.prefix, "Device id prefix")->capture_default_str();
  app.add_option("--tag", o.tags, "Device tag for --register (repeatable)");
  app.add_option("--attr", attrs, "Device attribute key=value for --register (repeatable)");
  app.add_option("--version", o.version, "Firmware version every device starts with")->capture_default_str();
  app.add_flag("--register", o.register_fleet,
               "Generate a key per device (kept in memory) and register the fleet through devices/register");
  app.add_option("--key-type", key_type, "rsa, ec_p256 or ed25519")
      ->check(CLI::IsMember({"rsa", "ec_p256", "ed25519"}))
      ->capture_default_str();
  app.add_option("--failure-rate", o.failure_rate, "Fraction of commands answered with failure (0..1)")
      ->capture_default_str();
  app.add_option("--latency-ms", latency, "Reply latency: N, or MIN-MAX for a uniform range")
      ->capture_default_str();
  auto* dur = app.add_option("--duration", duration_s, "Stop after SECONDS");
  auto* idle =
      app.add_option("--until-idle", until_idle_s, "Stop after SECONDS without traffic or pending work");
  dur->excludes(idle);
  app.add_option(
         "--connections", o.connections,
         "0: one connection with wildcard subscriptions (fast); K: K connections, devices spread over them, "
         "each subscribed to its own devices' topics")
      ->capture_default_str();
  app.add_option("--seed", seed, "Random seed for failures and latency (default: random)");
  app.add_option("--chunk-kib", chunk_kib, "Download chunk size in KiB")->capture_default_str();
  app.add_option("--firmware-timeout", o.firmware_timeout_s, "Seconds before a firmware flow fails")
      ->capture_default_str();
  app.add_option("--timeout", o.api_timeout_s, "Seconds to wait for each registration answer")
      ->capture_default_str();
  std::string agent;
  app.add_option("--agent", agent,
                 "esthesis: behave like the unmodified esthesis agent (MQTT 3.1.1, command topic at QoS 0, "
                 "QoS 0 publishes, no de-duplication, pings, firmware over HTTP via --agent-http)")
      ->check(CLI::IsMember({"esthesis"}));
  app.add_option("--ping-interval", o.ping_interval_s, "--agent esthesis: seconds between pings")
      ->capture_default_str();
  app.add_option("--agent-http", o.agent_http,
                 "--agent esthesis: the service's agent listener (http.agent_listen) as http://host:port, "
                 "for firmware and, with --register, registration over HTTP");
  app.add_option("--registration-secret", o.registration_secret,
                 "--agent esthesis --register: the registrationSecret sent (registration.mode "
                 "open_with_secret)");
  app.add_flag("--json", json_output, "Print the summary as JSON");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? k_exit_ok : k_exit_usage;
  }
  if (!parse_latency(latency, o.latency_min_ms, o.latency_max_ms)) {
    std::cerr << "error: --latency-ms must be N or MIN-MAX (milliseconds, MIN <= MAX)\n";
    return k_exit_usage;
  }
  for (const auto& a : attrs) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "error: --attr '" << a << "' must be key=value\n";
      return k_exit_usage;
    }
    o.attributes.emplace_back(a.substr(0, eq), a.substr(eq + 1));
  }
  o.mqtt.uri = broker;
  o.esthesis_agent = agent == "esthesis";
  // The esthesis agent speaks MQTT 3.1.1 and its static token is an RSA signature.
  if (o.esthesis_agent) {
    mqtt_version = 3;
    key_type = "rsa";
  }
  o.mqtt.mqtt_version = mqtt_version == 3 ? 4 : 5;
  o.mqtt.tls_verify_hostname = !tls_no_verify_hostname;
  o.key_type = key_type == "rsa"       ? dispatch::core::KeyType::rsa
               : key_type == "ec_p256" ? dispatch::core::KeyType::ec_p256
                                       : dispatch::core::KeyType::ed25519;
  o.seed = seed;
  o.chunk_size = std::max<std::size_t>(1, chunk_kib) * 1024;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  Simulator sim(o);
  if (auto st = sim.start(); !st) {
    std::cerr << "error: " << st.error().message << "\n";
    return st.error().code == dispatch::core::ErrorCode::bad_request ? k_exit_usage : k_exit_unreachable;
  }
  auto stats = sim.stats();
  if (o.register_fleet) {
    std::cerr << fmt::format("dispatch-sim: registered {} of {} devices", stats.registered, stats.devices);
    if (stats.register_failed) std::cerr << " (first failure: " << sim.first_register_error() << ")";
    std::cerr << "\n";
  }
  std::cerr << fmt::format("dispatch-sim: {} devices ready ({} connection(s), MQTT {})\n", stats.devices,
                           std::max(1, o.connections), mqtt_version == 3 ? "3.1.1" : "5")
            << std::flush;

  sim.run(g_stop, duration_s, until_idle_s);
  stats = sim.stats();
  if (json_output) {
    std::cout << stats.to_json().dump() << "\n";
  } else {
    std::cout << fmt::format(
        "devices {}  commands received {}  duplicates {}  malformed {}  replies ok {}  replies failed {}\n"
        "firmware queries {}  up to date {}  downloads {}  download bytes {}  firmware failures {}\n"
        "pings {}  reruns {}\n",
        stats.devices, stats.commands_received, stats.duplicates, stats.malformed, stats.replies_ok,
        stats.replies_failed, stats.firmware_queries, stats.up_to_date, stats.downloads, stats.download_bytes,
        stats.firmware_failed, stats.pings, stats.reruns);
  }
  return k_exit_ok;
}
