// scripts/bench fanout: command fan-out through dispatchd next to raw Paho publishing, in one run.
//
//   A. dispatch: N devices under one tag; time from commands/send until one C++ wildcard subscriber has
//      received all N command lines.
//   B. baseline: the same subscriber receiving N QoS 1 messages on N distinct topics from a plain Paho
//      publisher with the same in-flight window (16).
//   C. API round trip (commands/send to one device, answer received) vs a raw request/response echo.
// Usage: fanout_bench [--devices N] [--roundtrips K]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/signature.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::unique_ptr<service::MqttClient> client(const std::string& uri, int inflight = 16) {
  service::ClientOptions o;
  o.uri = uri;
  o.max_inflight = inflight;
  auto c = std::make_unique<service::MqttClient>(o);
  if (!c->connect(10000)) {
    std::fprintf(stderr, "cannot connect to %s\n", uri.c_str());
    std::exit(1);
  }
  return c;
}

struct Counter {
  std::atomic<size_t> n{0};
  std::atomic<bool> done{false};
  Clock::time_point last;
  size_t target = 0;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

bool wait_count(Counter& c, size_t target, int timeout_s) {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  while (c.n.load() < target && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return c.n.load() >= target;
}

}  // namespace

int main(int argc, char** argv) {
  size_t devices = 50000;
  int roundtrips = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--devices")) devices = std::stoul(argv[i + 1]);
    if (!std::strcmp(argv[i], "--roundtrips")) roundtrips = std::stoi(argv[i + 1]);
  }
  testing::Broker broker;
  testing::TempDir dir;
  testing::Process daemon({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.uri",
                           broker.uri(), "--storage.path", dir.path() + "/bench.db", "--storage.data_dir",
                           dir.path() + "/pkgs", "--log.level", "warn", "--http.ops_listen", "off"},
                          {}, dir.path() + "/dispatchd.log");
  auto platform = client(broker.uri());
  for (int i = 0; i < 100 && !platform->request("esthesis/api/v1/devices/list", "{}", 300); ++i) {
  }

  std::printf("registering %zu devices under tag 'fleet'...\n", devices);
  const std::string pem = core::PrivateKey::generate(core::KeyType::ed25519).public_pem();
  auto t_reg = Clock::now();
  for (size_t i = 0; i < devices; ++i) {
    char hw[32];
    std::snprintf(hw, sizeof hw, "fleet-%06zu", i);
    nlohmann::json b{{"hardware_id", hw}, {"public_key", pem}, {"tags", {"fleet"}}};
    if (!platform->request("esthesis/api/v1/devices/register", b.dump(), 10000)) {
      std::fprintf(stderr, "register failed at %zu\n", i);
      return 1;
    }
  }
  std::printf("registered in %.1f s\n", seconds_since(t_reg));

  Counter counter;
  auto sub = client(broker.uri());
  sub->set_handler([&](service::InboundMessage&&) { counter.n.fetch_add(1); });
  if (!sub->subscribe("esthesis/command/request/+", 1) || !sub->subscribe("bench/raw/+", 1)) return 1;

  // A. dispatch fan-out.
  auto t0 = Clock::now();
  auto answer =
      platform->request("esthesis/api/v1/commands/send", R"({"type":"reboot","tags":["fleet"]})", 60000);
  if (!answer) {
    std::fprintf(stderr, "commands/send failed: %s\n", answer.error().message.c_str());
    return 1;
  }
  double api_s = seconds_since(t0);
  if (!wait_count(counter, devices, 300))
    std::fprintf(stderr, "dispatch: only %zu received\n", counter.n.load());
  double dispatch_s = seconds_since(t0);
  double dispatch_rate = static_cast<double>(counter.n.load()) / dispatch_s;

  // B. raw Paho publisher, same window, distinct topics.
  counter.n = 0;
  auto pub = client(broker.uri(), 16);
  std::string payload = "01M8C8GRNW6MQM0B82EV8TSBFF rs";
  auto t1 = Clock::now();
  for (size_t i = 0; i < devices; ++i) {
    char topic[48];
    std::snprintf(topic, sizeof topic, "bench/raw/fleet-%06zu", i);
    (void)pub->publish(topic, payload, 1);
  }
  if (!wait_count(counter, devices, 300)) std::fprintf(stderr, "raw: only %zu received\n", counter.n.load());
  double raw_s = seconds_since(t1);
  double raw_rate = static_cast<double>(counter.n.load()) / raw_s;

  // C. round trips: commands/send to one device vs a raw echo responder.
  std::vector<double> api_ms, echo_ms;
  for (int i = 0; i < roundtrips; ++i) {
    auto t = Clock::now();
    (void)platform->request("esthesis/api/v1/commands/send",
                            R"({"type":"ping","hardware_ids":["fleet-000001"]})", 10000);
    api_ms.push_back(seconds_since(t) * 1000);
  }
  auto echo = client(broker.uri());
  std::unique_ptr<service::MqttClient>* echo_ptr = &echo;
  echo->set_handler([echo_ptr](service::InboundMessage&& m) {
    (void)(*echo_ptr)->publish(m.response_topic, m.payload, 1, false, {}, m.correlation_data);
  });
  if (!echo->subscribe("bench/echo", 1)) return 1;
  for (int i = 0; i < roundtrips; ++i) {
    auto t = Clock::now();
    (void)platform->request("bench/echo", R"({"type":"ping","hardware_ids":["fleet-000001"]})", 10000);
    echo_ms.push_back(seconds_since(t) * 1000);
  }
  daemon.terminate();

  std::printf("\n%-58s %12s %12s\n",
              ("fan-out of " + std::to_string(devices) + " QoS 1 command lines").c_str(), "msg/s", "seconds");
  std::printf("%-58s %12.0f %12.2f\n", "dispatch: commands/send -> all received by subscriber", dispatch_rate,
              dispatch_s);
  std::printf("%-58s %12.0f %12.2f\n", "baseline: plain Paho publisher, window 16, distinct topics", raw_rate,
              raw_s);
  std::printf("%-58s %12.2f\n", "ratio dispatch / baseline (goal >= 0.8)", dispatch_rate / raw_rate);
  std::printf("(commands/send answered after %.3f s: %zu delivery rows committed first)\n\n", api_s, devices);
  std::printf("%-58s %12s %12s\n",
              ("round trip, " + std::to_string(roundtrips) + " sequential requests").c_str(), "p50 ms",
              "p99 ms");
  std::printf("%-58s %12.3f %12.3f\n", "dispatch: commands/send to one device", percentile(api_ms, 0.5),
              percentile(api_ms, 0.99));
  std::printf("%-58s %12.3f %12.3f\n", "baseline: raw request/response echo", percentile(echo_ms, 0.5),
              percentile(echo_ms, 0.99));
  std::printf("%-58s %12.2f\n", "ratio echo p50 / dispatch p50",
              percentile(echo_ms, 0.5) / percentile(api_ms, 0.5));
  return 0;
}
