// scripts/bench fanout: command fan-out through dispatchd next to the best raw QoS 1 publisher, in one run.
//
//   A. dispatch: N devices under one tag (written into the database before dispatchd starts); time from
//      commands/send until one raw subscriber (libmosquitto) has received all N command lines.
//   B. baseline: the same subscriber receiving N QoS 1 messages on N distinct topics from a raw libmosquitto
//      publisher whose in-flight window is the broker's Receive Maximum (read from its CONNACK), over
//      --raw-connections connections.
//   Rounds alternate which side goes first; the result is the median ratio.
//   C. API round trip (commands/send to one device, answer received) vs a raw libmosquitto echo answering
//      the same client (Response Topic + Correlation Data).
// The broker is the benchmarks' mosquitto (tests/support/broker.cpp: set_tcp_nodelay true,
// max_queued_messages 60000, max_inflight_messages 20) unless --broker-inflight N (max_inflight_messages N)
// or --mosquitto-defaults (max_inflight_messages 20, max_queued_messages 1000, set_tcp_nodelay false).
// Usage: fanout_bench [--devices 20000] [--rounds 3] [--raw-connections 1] [--roundtrips 500]
//                     [--broker-inflight N] [--mosquitto-defaults] [--dispatchd-arg "--key value"]...
//                     [--dispatchd PATH]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "service/mqtt/mqtt_client.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "tests/bench/proc_cpu.h"
#include "tests/bench/raw/raw_mqtt.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using bench::Clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::unique_ptr<service::MqttClient> client(const std::string& uri) {
  service::ClientOptions o;
  o.uri = uri;
  auto c = std::make_unique<service::MqttClient>(o);
  if (!c->connect(10000)) {
    std::fprintf(stderr, "cannot connect to %s\n", uri.c_str());
    std::exit(1);
  }
  return c;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::string hw_name(size_t i) {
  char hw[32];
  std::snprintf(hw, sizeof hw, "fleet-%06zu", i);
  return hw;
}

bool seed_devices(const std::string& path, size_t n) {
  auto db = storage::Database::open(path);
  if (!db) return false;
  storage::DeviceStore devices(**db);
  auto st = (*db)->transaction([&]() -> core::Status {
    for (size_t i = 0; i < n; ++i) {
      storage::DeviceRow row;
      row.hardware_id = hw_name(i);
      row.public_key_pem = "-";
      row.key_type = "ed25519";
      row.tags = {"fleet"};
      if (auto r = devices.upsert(row, 1); !r) return r.error();
    }
    return {};
  });
  return st.ok();
}

}  // namespace

int main(int argc, char** argv) {
  size_t devices = 20000;
  int roundtrips = 500, rounds = 3, raw_connections = 1, broker_inflight = 0;
  bool mosquitto_defaults = false;
  std::vector<std::string> dispatchd_args;
  std::string dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--mosquitto-defaults") {
      mosquitto_defaults = true;
      continue;
    }
    if (i + 1 >= argc) break;
    std::string v = argv[++i];
    if (k == "--devices")
      devices = std::stoul(v);
    else if (k == "--roundtrips")
      roundtrips = std::stoi(v);
    else if (k == "--rounds")
      rounds = std::max(1, std::stoi(v));
    else if (k == "--raw-connections")
      raw_connections = std::max(1, std::stoi(v));
    else if (k == "--broker-inflight")
      broker_inflight = std::stoi(v);
    else if (k == "--dispatchd")
      dispatchd = v;
    else if (k == "--dispatchd-arg") {
      std::istringstream in(v);
      for (std::string w; in >> w;) dispatchd_args.push_back(w);
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  // Later lines override the fixture's (mosquitto keeps the last value of a repeated option).
  std::string broker_extra;
  if (mosquitto_defaults)
    broker_extra = "max_inflight_messages 20\nmax_queued_messages 1000\nset_tcp_nodelay false\n";
  if (broker_inflight > 0) broker_extra += "max_inflight_messages " + std::to_string(broker_inflight) + "\n";
  testing::Broker broker(broker_extra);
  const auto [host, port] = bench::split_uri(broker.uri());
  testing::TempDir dir;
  const std::string db_path = dir.path() + "/bench.db";
  std::printf("writing %zu devices under tag 'fleet' into the database...\n", devices);
  if (!seed_devices(db_path, devices)) {
    std::fprintf(stderr, "cannot seed the database\n");
    return 1;
  }
  std::vector<std::string> cmd{dispatchd,
                               "--mqtt.uri",
                               broker.uri(),
                               "--storage.path",
                               db_path,
                               "--storage.data_dir",
                               dir.path() + "/pkgs",
                               "--log.level",
                               "warn",
                               "--http.ops_listen",
                               "off"};
  cmd.insert(cmd.end(), dispatchd_args.begin(), dispatchd_args.end());
  testing::Process daemon(cmd, {}, dir.path() + "/dispatchd.log");
  auto platform = client(broker.uri());
  for (int i = 0; i < 100 && !platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 300); ++i) {
  }
  bench::RawCounter counter(host, port, {"esthesis/command/request/+", "bench/raw/+"});

  struct Round {
    double dispatch_rate = 0, raw_rate = 0, api_s = 0;
    double dispatchd_us = 0;  // dispatchd's CPU per line, from commands/send to the last line received
  };
  std::vector<Round> results;
  int window = 0;
  // Same length as dispatchd's command line for `reboot` (26-character id, space, type and exec letters).
  const std::string payload = "01M8C8GRNW6MQM0B82EV8TSBFF ra";
  for (int r = 0; r < rounds; ++r) {
    Round res;
    auto run_dispatch = [&] {
      counter.reset();
      const double cpu0 = bench::cpu_seconds(daemon.pid());
      const auto t0 = Clock::now();
      auto answer =
          platform->request("esthesis/api/v1/commands/send", R"({"type":"reboot","tags":["fleet"]})", 120000);
      if (!answer || answer->find("\"error\"") != std::string::npos) {
        std::fprintf(stderr, "commands/send failed: %s\n",
                     answer ? answer->c_str() : answer.error().message.c_str());
        std::exit(1);
      }
      res.api_s = seconds(t0, Clock::now());
      if (!counter.wait_for(devices, 300))
        std::fprintf(stderr, "dispatch: only %zu received\n", counter.count());
      res.dispatch_rate = static_cast<double>(counter.count()) / seconds(t0, counter.last());
      res.dispatchd_us = (bench::cpu_seconds(daemon.pid()) - cpu0) * 1e6 / static_cast<double>(devices);
    };
    auto run_raw = [&] {
      counter.reset();
      const auto t0 = Clock::now();
      bench::raw_publish(
          host, port, devices, raw_connections, [](size_t i) { return "bench/raw/" + hw_name(i); },
          [&](size_t) { return payload; }, &window);
      if (!counter.wait_for(devices, 300)) std::fprintf(stderr, "raw: only %zu received\n", counter.count());
      res.raw_rate = static_cast<double>(counter.count()) / seconds(t0, counter.last());
    };
    if (r % 2 == 0) {
      run_raw();
      run_dispatch();
    } else {
      run_dispatch();
      run_raw();
    }
    results.push_back(res);
    std::printf(
        "round %d: dispatch %.0f msg/s, raw %.0f msg/s, ratio %.2f (commands/send answered in %.3f s; "
        "dispatchd CPU %.1f us per line)\n",
        r + 1, res.dispatch_rate, res.raw_rate, res.dispatch_rate / res.raw_rate, res.api_s,
        res.dispatchd_us);
    std::fflush(stdout);
  }

  // C. round trips: commands/send to one device vs a raw echo answering the same client.
  std::vector<double> api_ms, echo_ms;
  bench::RawEcho echo(host, port, "bench/echo", R"({"id":"01M8C8GRNW6MQM0B82EV8TSBFF"})");
  for (int i = 0; i < roundtrips; ++i) {
    auto t = Clock::now();
    (void)platform->request("esthesis/api/v1/commands/send",
                            R"({"type":"ping","hardware_ids":["fleet-000001"]})", 10000);
    api_ms.push_back(seconds(t, Clock::now()) * 1000);
    t = Clock::now();
    (void)platform->request("bench/echo/req/x", R"({"type":"ping","hardware_ids":["fleet-000001"]})", 10000);
    echo_ms.push_back(seconds(t, Clock::now()) * 1000);
  }
  daemon.terminate();

  std::vector<double> ratios;
  for (const auto& r : results) ratios.push_back(r.dispatch_rate / r.raw_rate);
  std::sort(ratios.begin(), ratios.end());
  std::printf("\nbroker: %s; raw publisher window (Receive Maximum from CONNACK) %d x %d connection(s)\n",
              mosquitto_defaults ? "mosquitto defaults (inflight 20, queued 1000, no TCP_NODELAY)"
                                 : ("bench config (queued 60000, TCP_NODELAY, inflight " +
                                    std::to_string(broker_inflight > 0 ? broker_inflight : 20) + ")")
                                       .c_str(),
              window, raw_connections);
  std::printf(
      "| round | dispatch msg/s | raw msg/s | ratio | commands/send answered, s | dispatchd CPU per line, us "
      "|\n|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < results.size(); ++i)
    std::printf("| %zu | %.0f | %.0f | %.2f | %.3f | %.1f |\n", i + 1, results[i].dispatch_rate,
                results[i].raw_rate, results[i].dispatch_rate / results[i].raw_rate, results[i].api_s,
                results[i].dispatchd_us);
  std::printf("fan-out of %zu QoS 1 lines: median ratio dispatch / raw = %.2f (goal >= 0.9)\n\n", devices,
              ratios[ratios.size() / 2]);
  std::printf("| round trip, %d alternating requests | p50 ms | p99 ms |\n|---|---|---|\n", roundtrips);
  std::printf("| dispatch: commands/send to one device | %.3f | %.3f |\n", percentile(api_ms, 0.5),
              percentile(api_ms, 0.99));
  std::printf("| raw libmosquitto echo | %.3f | %.3f |\n", percentile(echo_ms, 0.5),
              percentile(echo_ms, 0.99));
  return 0;
}
