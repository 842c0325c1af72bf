// A real dispatchd process against a private mosquitto, for integration tests. Everything here talks to
// the service only through the broker, as an independent client would.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "service/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

namespace dispatch::testing {

class Daemon {
 public:
  Daemon(const Broker& broker, std::vector<std::string> extra_args = {}, std::vector<std::string> env = {})
      : broker_uri_(broker.uri()), extra_(std::move(extra_args)), env_(std::move(env)) {
    client_id_ = "dispatchd-" + std::to_string(free_port());
    start();
  }
  ~Daemon() { stop(); }

  const std::string& dir() const { return dir_.path(); }
  std::string db_path() const { return dir_.path() + "/dispatch.db"; }
  std::string log() const { return read_file(dir_.path() + "/dispatchd.log"); }

  void start() {
    std::vector<std::string> argv = {std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd",
                                     "--mqtt.uri",
                                     broker_uri_,
                                     "--mqtt.client_id",
                                     client_id_,
                                     "--storage.path",
                                     db_path(),
                                     "--storage.data_dir",
                                     dir_.path() + "/packages",
                                     "--campaigns.tick_ms",
                                     "50"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    proc_ = std::make_unique<Process>(argv, env_, dir_.path() + "/dispatchd.log");
  }
  // Waits until the service answers an API request (so its subscriptions are in place).
  bool wait_ready(service::MqttClient& client, int timeout_ms = 20000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = client.request("esthesis/api/v1/devices/list", R"({"limit":1})", 500);
      if (r) return true;
      if (!proc_->running()) return false;
    }
    return false;
  }
  void set_env(std::vector<std::string> env) { env_ = std::move(env); }
  void kill9() { proc_->kill9(); }
  int terminate() { return proc_->terminate(10000); }
  void stop() {
    if (proc_ && proc_->running()) proc_->kill9();
  }
  bool running() { return proc_ && proc_->running(); }
  Process& process() { return *proc_; }

 private:
  std::string broker_uri_;
  std::vector<std::string> extra_;
  std::vector<std::string> env_;
  std::string client_id_;
  TempDir dir_;
  std::unique_ptr<Process> proc_;
};

// API call helper: the parsed answer (object), failing the test on transport errors.
inline nlohmann::json api(service::MqttClient& c, const std::string& resource_action,
                          const nlohmann::json& body, int timeout_ms = 10000) {
  auto r = c.request("esthesis/api/v1/" + resource_action, body.dump(), timeout_ms);
  if (!r) return nlohmann::json{{"transport_error", r.error().message}};
  return nlohmann::json::parse(*r, nullptr, false);
}

}  // namespace dispatch::testing
