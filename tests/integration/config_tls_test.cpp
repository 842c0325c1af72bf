// dispatchd at start: an invalid configuration ends it with exit code 2 naming the key; over TLS it
// verifies that the broker's certificate names the host it connects to (Paho's `verify`), for the
// daemon and for the tools' client alike.
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "service/mqtt/mqtt_client.h"
#include "tests/support/process.h"

using dispatch::service::ClientOptions;
using dispatch::service::MqttClient;
using namespace dispatch::testing;

namespace {

const std::string k_dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";

// A test CA and two server certificates it signed: right.crt names localhost and 127.0.0.1 (the host the
// clients dial), wrong.crt names only wrong.example. Same OpenSSL steps as scripts/broker/mint-certs.
const char* k_mint = R"(set -euo pipefail
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=dispatch hostname test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
issue() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "$4" -sha256 -days 30 -extfile "$1.ext" \
    -out "$1.crt" 2>/dev/null
}
issue right localhost "DNS:localhost,IP:127.0.0.1" 1001
issue wrong wrong.example "DNS:wrong.example" 1002
chmod 0644 ./*.crt ./*.key
)";

// One mosquitto with two TLS listeners on loopback: `right_port` presents right.crt, `wrong_port`
// wrong.crt. Anonymous clients, no client certificates: only the server's identity is under test.
class TwoCertBroker {
 public:
  TwoCertBroker() : right_port_(free_port()), wrong_port_(free_port()) {
    namespace fs = std::filesystem;
    const std::string d = dir_.path();
    Process mint({"/bin/bash", "-c", k_mint, "mint", d}, {}, d + "/mint.log");
    if (mint.wait(60000) != 0) FAIL("minting certificates failed: " << read_file(d + "/mint.log"));
    std::ofstream(d + "/mosquitto.conf") << "per_listener_settings false\nallow_anonymous true\n"
                                         << listener(right_port_, "right") << listener(wrong_port_, "wrong");
    // mosquitto started as root runs as user mosquitto: it must read the folder.
    fs::permissions(d, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
    fs::permissions(d + "/mosquitto.conf", fs::perms::owner_read | fs::perms::owner_write |
                                               fs::perms::group_read | fs::perms::others_read);
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/sbin/mosquitto", "-c", d + "/mosquitto.conf"},
        std::vector<std::string>{}, d + "/mosquitto.log");
    if (!wait_for_port(right_port_, 10000) || !wait_for_port(wrong_port_, 10000)) {
      FAIL("mosquitto did not start: " << log());
    }
  }

  std::string right_uri() const { return "ssl://127.0.0.1:" + std::to_string(right_port_); }
  std::string wrong_uri() const { return "ssl://127.0.0.1:" + std::to_string(wrong_port_); }
  std::string ca_file() const { return dir_.path() + "/ca.crt"; }
  std::string log() const { return read_file(dir_.path() + "/mosquitto.log"); }

  ClientOptions client(const std::string& uri, bool verify_hostname) const {
    ClientOptions o;
    o.uri = uri;
    o.ca_file = ca_file();
    o.tls_verify_hostname = verify_hostname;
    return o;
  }

 private:
  std::string listener(int port, const std::string& cert) const {
    const std::string d = dir_.path();
    return "listener " + std::to_string(port) + " 127.0.0.1\ncafile " + d + "/ca.crt\ncertfile " + d + "/" +
           cert + ".crt\nkeyfile " + d + "/" + cert + ".key\ntls_version tlsv1.2\n";
  }

  TempDir dir_;
  int right_port_;
  int wrong_port_;
  std::unique_ptr<Process> proc_;
};

// Polls `path` until it holds `needle` `times` times or `timeout_ms` passes; returns the last content.
std::string wait_for_log(const std::string& path, const std::string& needle, int times, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string text;
  while (std::chrono::steady_clock::now() < deadline) {
    text = read_file(path);
    int n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    if (n >= times) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return text;
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("dispatchd: an invalid configuration exits 2 and names the key", "[integration][config]") {
  TempDir dir;
  struct {
    const char* rule;
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string names;
  } cases[] = {
      {"wildcard topic root", {"--topics.api", "esthesis/#"}, {}, "topics.api"},
      {"overlapping topic roots", {"--topics.metadata", "esthesis/ping/meta"}, {}, "topics.metadata"},
      {"token mode not a choice", {}, {"DISPATCH_PROVISIONING_TOKEN=sometimes"}, "provisioning.token"},
      {"log level not a choice", {"--log.level=loud"}, {}, "log.level"},
      {"unknown key (a prefix of a real one)",
       {"--provisioning.max_tracked", "5"},
       {},
       "--provisioning.max_tracked"},
  };
  int i = 0;
  for (const auto& c : cases) {
    INFO(c.rule);
    const std::string log = dir.path() + "/dispatchd-" + std::to_string(i++) + ".log";
    auto argv = c.args;
    argv.insert(argv.begin(), k_dispatchd);
    argv.insert(argv.end(), {"--storage.path", dir.path() + "/dispatch.db"});
    Process daemon(argv, c.env, log);
    CHECK(daemon.wait(10000) == 2);
    CHECK_THAT(read_file(log), Catch::Contains(c.names));
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/dispatch.db"));  // nothing was started
  }
}

TEST_CASE("TLS: a broker certificate for another host name is refused by the tools' client",
          "[integration][tls]") {
  TwoCertBroker broker;
  {
    MqttClient right(broker.client(broker.right_uri(), true));
    auto st = right.connect(10000);
    INFO((st ? "ok" : st.error().message) << "\n" << broker.log());
    CHECK(st);
  }
  {
    MqttClient wrong(broker.client(broker.wrong_uri(), true));
    auto st = wrong.connect(10000);
    REQUIRE_FALSE(st);
    CHECK_THAT(st.error().message, Catch::Contains("host name verification is on"));
  }
  {
    // The same certificate and CA pass when host name verification is turned off: what refused the
    // connection above is the name, not the chain.
    MqttClient unchecked(broker.client(broker.wrong_uri(), false));
    auto st = unchecked.connect(10000);
    INFO((st ? "ok" : st.error().message) << "\n" << broker.log());
    CHECK(st);
  }
}

TEST_CASE("TLS: dispatchd refuses a broker whose certificate names another host, and keeps retrying",
          "[integration][tls]") {
  TwoCertBroker broker;
  TempDir dir;
  const auto run = [&](const std::string& name, const std::string& uri, std::vector<std::string> extra) {
    std::vector<std::string> argv = {k_dispatchd,
                                     "--http.ops_listen",
                                     "off",
                                     "--mqtt.uri",
                                     uri,
                                     "--mqtt.ca_file",
                                     broker.ca_file(),
                                     "--mqtt.client_id",
                                     "dispatchd-" + name,
                                     "--storage.path",
                                     dir.path() + "/" + name + ".db",
                                     "--storage.data_dir",
                                     dir.path() + "/" + name + "-packages"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(argv, std::vector<std::string>{}, dir.path() + "/" + name + ".log");
  };

  // The wrong name: never connected; the log says why, on the first attempt and again on the tenth.
  auto refused = run("wrong", broker.wrong_uri(), {});
  const std::string refused_log = dir.path() + "/wrong.log";
  const std::string failure = "cannot connect to " + broker.wrong_uri();
  std::string text = wait_for_log(refused_log, failure, 2, 40000);
  INFO("dispatchd log:\n" << text << "\nbroker log:\n" << broker.log());
  CHECK(count(text, failure) >= 2);
  CHECK_THAT(text, Catch::Contains("host name verification is on"));
  CHECK_THAT(text, Catch::Contains("retrying every second"));
  CHECK(text.find("connected to " + broker.wrong_uri()) == std::string::npos);
  CHECK(refused->running());
  CHECK(refused->terminate(15000) == 0);

  // The right name connects (and so does the wrong one when the check is explicitly turned off).
  auto accepted = run("right", broker.right_uri(), {});
  auto unchecked = run("unchecked", broker.wrong_uri(), {"--mqtt.tls_verify_hostname", "false"});
  const std::string right_log =
      wait_for_log(dir.path() + "/right.log", "connected to " + broker.right_uri(), 1, 20000);
  const std::string unchecked_log =
      wait_for_log(dir.path() + "/unchecked.log", "connected to " + broker.wrong_uri(), 1, 20000);
  INFO("right:\n" << right_log << "\nunchecked:\n" << unchecked_log);
  CHECK_THAT(right_log, Catch::Contains("connected to " + broker.right_uri()));
  CHECK_THAT(unchecked_log, Catch::Contains("connected to " + broker.wrong_uri()));
  CHECK(accepted->terminate(15000) == 0);
  CHECK(unchecked->terminate(15000) == 0);
}
