// scripts/bench campaign: one-group exec campaigns over N devices (default 100,000) through dispatchd,
// answered by a raw fleet (libmosquitto), next to the raw round trip through the same broker and fleet.
//
//   A. campaign: time from campaigns/start until campaigns/get says completed (every device answered
//      `<id> s ok`); devices completed per second end to end.
//   B. baseline: a raw libmosquitto publisher (window: the broker's Receive Maximum from its CONNACK)
//      sends N command lines to N distinct topics; the same fleet answers each; time until a raw
//      subscriber has every answer.
//   Rounds alternate which side goes first (a new campaign over the same devices each round); the result
//   is the median ratio.
// Devices are written into the database before dispatchd starts (registration is not what is measured).
// Reports dispatchd's peak RSS (VmHWM) and the database size, per device too (the 1,000,000-device run).
// Usage: campaign_bench [--devices N] [--batch B] [--rounds 3] [--raw-connections 1]
//                       [--dispatchd-arg "--key value"]... [--dispatchd PATH]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
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

// A field of /proc/<pid>/status in kB (e.g. "VmHWM", the peak resident set), 0 when unreadable.
std::int64_t status_kb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return 0;
}

// Bytes of the SQLite database with its write-ahead log.
std::uintmax_t database_bytes(const std::string& path) {
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(path + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  size_t devices = 100000;
  int batch = 10000, rounds = 3, raw_connections = 1;
  std::vector<std::string> dispatchd_args;
  std::string dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--devices")
      devices = std::stoul(v);
    else if (k == "--batch")
      batch = std::stoi(v);
    else if (k == "--rounds")
      rounds = std::max(1, std::stoi(v));
    else if (k == "--raw-connections")
      raw_connections = std::max(1, std::stoi(v));
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
  testing::Broker broker;
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
  bench::RawFleet fleet(
      host, port, {{"esthesis/command/request", "esthesis/command/reply"}, {"bench/request", "bench/reply"}});
  bench::RawCounter replies(host, port, {"bench/reply/+"});

  struct Round {
    double campaign_rate = 0, raw_rate = 0, start_s = 0, campaign_s = 0;
    // CPU per device: dispatchd's over the campaign, the broker's over the campaign and over the raw run.
    double dispatchd_us = 0, broker_campaign_us = 0, broker_raw_us = 0;
  };
  std::vector<Round> results;
  int window = 0;
  for (int r = 0; r < rounds; ++r) {
    Round res;
    auto run_campaign = [&] {
      nlohmann::json doc{{"name", "bench-" + std::to_string(r)},
                         {"type", "exec"},
                         {"command", "true"},
                         {"groups", {{{"tags", {"fleet"}}}}},
                         {"rate", {{"per_minute", 100000000}}},
                         {"batch_size", batch},
                         {"success", {{"threshold_percent", 0}}},
                         {"reply_timeout_s", 600}};
      auto created = platform->request("esthesis/api/v1/campaigns/create", doc.dump(), 10000);
      if (!created) std::exit(1);
      const nlohmann::json id_body{{"id", nlohmann::json::parse(*created).value("id", "")}};
      const double dispatchd_cpu0 = bench::cpu_seconds(daemon.pid());
      const double broker_cpu0 = bench::cpu_seconds(broker.pid());
      const auto t0 = Clock::now();
      if (!platform->request("esthesis/api/v1/campaigns/start", id_body.dump(), 120000)) std::exit(1);
      res.start_s = seconds(t0, Clock::now());
      nlohmann::json last;
      Clock::time_point t_end;
      for (;;) {
        auto got = platform->request("esthesis/api/v1/campaigns/get", id_body.dump(), 30000);
        t_end = Clock::now();
        if (got) last = nlohmann::json::parse(*got, nullptr, false);
        if (last.value("state", "") == "completed" || seconds(t0, t_end) > 900) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (last.value("state", "") != "completed") {
        std::fprintf(stderr, "campaign did not complete: %s\n", last.dump().c_str());
        std::exit(1);
      }
      res.campaign_s = seconds(t0, t_end);
      res.dispatchd_us =
          (bench::cpu_seconds(daemon.pid()) - dispatchd_cpu0) * 1e6 / static_cast<double>(devices);
      res.broker_campaign_us =
          (bench::cpu_seconds(broker.pid()) - broker_cpu0) * 1e6 / static_cast<double>(devices);
      res.campaign_rate =
          static_cast<double>(last["stats"]["succeeded"].get<std::int64_t>()) / res.campaign_s;
    };
    auto run_raw = [&] {
      replies.reset();
      const double broker_cpu0 = bench::cpu_seconds(broker.pid());
      const auto t0 = Clock::now();
      // Command ids unique per round (the fleet answers each id once), as long as dispatchd's (26).
      bench::raw_publish(
          host, port, devices, raw_connections, [](size_t i) { return "bench/request/" + hw_name(i); },
          [r](size_t i) {
            char line[64];
            std::snprintf(line, sizeof line, "R%02d%023zu e true", r, i);
            return std::string(line);
          },
          &window);
      if (!replies.wait_for(devices, 300)) std::fprintf(stderr, "raw: only %zu answers\n", replies.count());
      res.raw_rate = static_cast<double>(replies.count()) / seconds(t0, replies.last());
      res.broker_raw_us =
          (bench::cpu_seconds(broker.pid()) - broker_cpu0) * 1e6 / static_cast<double>(devices);
    };
    if (r % 2 == 0) {
      run_raw();
      run_campaign();
    } else {
      run_campaign();
      run_raw();
    }
    results.push_back(res);
    std::printf(
        "round %d: campaign %.0f devices/s (%.2f s, start answered in %.3f s), raw %.0f/s, ratio %.2f; "
        "CPU per device: dispatchd %.1f us, broker %.1f us (raw run: %.1f us)\n",
        r + 1, res.campaign_rate, res.campaign_s, res.start_s, res.raw_rate, res.campaign_rate / res.raw_rate,
        res.dispatchd_us, res.broker_campaign_us, res.broker_raw_us);
    std::fflush(stdout);
  }
  // Measured before the stop: the peak resident set over the whole run, and the database as it is after
  // every round's campaign (their executions and attempts are kept until retention purges them).
  const std::int64_t peak_rss_kb = status_kb(daemon.pid(), "VmHWM");
  const std::uintmax_t db_bytes = database_bytes(db_path);
  daemon.terminate();

  std::vector<double> ratios;
  for (const auto& r : results) ratios.push_back(r.campaign_rate / r.raw_rate);
  std::sort(ratios.begin(), ratios.end());
  std::printf("\ncampaign of %zu devices, one group, batch %d; raw publisher window %d x %d connection(s)\n",
              devices, batch, window, raw_connections);
  std::printf(
      "| round | campaign devices/s (start -> completed) | seconds | start answered, s | raw publish + fleet "
      "reply /s | ratio | dispatchd CPU per device, us | broker CPU per device, us (campaign / raw) |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < results.size(); ++i)
    std::printf("| %zu | %.0f | %.2f | %.3f | %.0f | %.2f | %.1f | %.1f / %.1f |\n", i + 1,
                results[i].campaign_rate, results[i].campaign_s, results[i].start_s, results[i].raw_rate,
                results[i].campaign_rate / results[i].raw_rate, results[i].dispatchd_us,
                results[i].broker_campaign_us, results[i].broker_raw_us);
  std::printf("median ratio campaign / raw = %.2f (goal >= 0.8); fleet saw %zu command lines, answered %zu\n",
              ratios[ratios.size() / 2], fleet.requests(), fleet.answered());
  std::printf(
      "dispatchd peak RSS %.1f MiB (%.0f bytes per device); database %.1f MiB after %d campaign(s) "
      "(%.0f bytes per device)\n",
      static_cast<double>(peak_rss_kb) / 1024.0,
      static_cast<double>(peak_rss_kb) * 1024.0 / static_cast<double>(devices),
      static_cast<double>(db_bytes) / (1024.0 * 1024.0), rounds,
      static_cast<double>(db_bytes) / static_cast<double>(devices));
  return 0;
}
