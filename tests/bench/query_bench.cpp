// Provisioning benchmark (scripts/bench query | download): package queries of 16 concurrent devices with
// fresh RSA-2048 tokens next to a raw libmosquitto echo over the same broker (same clients, payloads, QoS,
// answer size; rounds alternate which side goes first), and chunked downloads next to raw publishing of
// the same bytes. Starts its own mosquitto and dispatchd.
//
//   query_bench [--only query|download] [--devices 16] [--queries 150] [--rounds 5] [--package-mib 4]
//               [--dispatchd PATH] [--ops-listen HOST:PORT]
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/bench/proc_cpu.h"
#include "tests/bench/raw/raw_mqtt.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t k_chunk = 256 * 1024;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "query_bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<service::MqttClient> connect(const std::string& uri) {
  service::ClientOptions o;
  o.uri = uri;
  o.mqtt_version = 5;
  auto c = std::make_unique<service::MqttClient>(o);
  if (auto st = c->connect(10000); !st) die("connect: " + st.error().message);
  return c;
}

json call(service::MqttClient& c, const std::string& action, const json& body) {
  auto r = c.request("esthesis/api/v1/" + action, body.dump(), 20000);
  if (!r) die(action + ": " + r.error().message);
  auto j = json::parse(*r);
  if (j.contains("error")) die(action + ": " + j.dump());
  return j;
}

struct Stats {
  double seconds = 0;
  // CPU seconds over the round: dispatchd's, the broker's and this benchmark's (its clients).
  double dispatchd_cpu = 0, broker_cpu = 0, bench_cpu = 0;
  double dispatchd_written = 0;  // bytes dispatchd wrote to storage (its database) over the round
  std::size_t count = 0;
  std::uint64_t bytes = 0;
  std::vector<double> latencies_ms;
  double rate() const { return count / seconds; }
  double mbps() const { return bytes / seconds / (1024.0 * 1024.0); }
  // Microseconds of CPU per request.
  double per(double cpu) const { return count ? cpu * 1e6 / static_cast<double>(count) : 0; }
  double pct(double p) {
    if (latencies_ms.empty()) return 0;
    std::sort(latencies_ms.begin(), latencies_ms.end());
    return latencies_ms[std::min(latencies_ms.size() - 1, static_cast<std::size_t>(p * latencies_ms.size()))];
  }
};

// Runs fn(i) on n threads at once; returns the wall time in seconds.
template <class F>
double run_parallel(int n, F fn) {
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (!go.load()) std::this_thread::yield();
      fn(i);
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  start = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  std::string dispatchd = std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd";
  int devices = 16, queries = 150, package_mib = 4, rounds = 5;
  std::string ops_listen = "off";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--only") {
      only = argv[i + 1];
    } else if (k == "--devices") {
      devices = std::atoi(argv[i + 1]);
    } else if (k == "--queries") {
      queries = std::atoi(argv[i + 1]);
    } else if (k == "--rounds") {
      rounds = std::max(1, std::atoi(argv[i + 1]));
    } else if (k == "--package-mib") {
      package_mib = std::atoi(argv[i + 1]);
    } else if (k == "--ops-listen") {
      ops_listen = argv[i + 1];  // dispatchd's /metrics, to read its batch sizes during a run
    } else if (k == "--dispatchd") {
      dispatchd = argv[i + 1];  // another build, for a side-by-side comparison
    } else {
      die("unknown option " + k);
    }
  }
  const bool do_query = only.empty() || only == "query";
  const bool do_download = only.empty() || only == "download";

  testing::Broker broker;
  testing::TempDir dir;
  testing::Process daemon(
      {dispatchd, "--mqtt.uri", broker.uri(), "--mqtt.client_id", "dispatchd-bench", "--storage.path",
       dir.path() + "/db", "--storage.data_dir", dir.path() + "/pkgs", "--provisioning.rate_limit", "1000000",
       "--log.level", "warn", "--http.ops_listen", ops_listen},
      {}, dir.path() + "/dispatchd.log");
  auto platform = connect(broker.uri());
  for (int i = 0;; ++i) {
    if (platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 500)) break;
    if (i > 40 || !daemon.running())
      die("dispatchd did not start: " + testing::read_file(dir.path() + "/dispatchd.log"));
  }
  // The raw baseline: a libmosquitto echo answering bench/echo/req/<x> on bench/echo/rep/<x> with an
  // answer as long as dispatchd's (set below), or with a 256 KiB chunk when the request starts with 'D'.
  const auto [host, port] = bench::split_uri(broker.uri());
  bench::RawEcho echo(host, port, "bench/echo", "{}", std::string(k_chunk, 'x'));

  std::fprintf(stderr, "setting up %d devices with RSA-2048 keys and a %d MiB package...\n", devices,
               package_mib);
  std::vector<core::PrivateKey> keys;
  std::vector<std::string> hws;
  for (int i = 0; i < devices; ++i) {
    keys.push_back(core::PrivateKey::generate(core::KeyType::rsa));
    hws.push_back(fmt::format("bench-dev-{:03d}", i));
    call(*platform, "devices/register",
         {{"hardware_id", hws.back()}, {"public_key", keys.back().public_pem()}});
  }
  std::string data = core::random_bytes(static_cast<std::size_t>(package_mib) * 1024 * 1024);
  auto created = call(*platform, "packages/create",
                      {{"name", "bench"},
                       {"version", "2.0.0"},
                       {"type", "internal"},
                       {"sha256", core::sha256_hex(data)},
                       {"size", data.size()},
                       {"available", true}});
  const std::string package_id = created["id"];
  for (std::size_t at = 0; at < data.size(); at += k_chunk) {
    json h{{"id", package_id}, {"offset", at}, {"last", at + k_chunk >= data.size()}};
    auto r = platform->request("esthesis/api/v1/packages/upload",
                               protocol::encode_frame(h, std::string_view(data).substr(at, k_chunk)), 20000);
    if (!r || json::parse(*r).contains("error")) die("upload failed");
  }

  // Per device: a connected client subscribed to its reply and data topics and to its echo topic.
  std::vector<std::unique_ptr<service::MqttClient>> clients;
  for (int i = 0; i < devices; ++i) {
    clients.push_back(connect(broker.uri()));
    for (const std::string& t : {"esthesis/provisioning/reply/" + hws[i],
                                 "esthesis/provisioning/data/" + hws[i], "bench/echo/rep/" + hws[i]}) {
      if (!clients.back()->subscribe(t)) die("subscribe " + t);
    }
  }
  auto query_json = [&](int i, const std::string& nonce) {
    const std::string ts = core::format_rfc3339(core::SystemClock().now_ms());
    return json{{"version", "1.0.0"},
                {"ts", ts},
                {"nonce", nonce},
                {"correlation_id", nonce},
                {"token", keys[i].sign_base64(core::fresh_token_message(hws[i], ts, nonce))}}
        .dump();
  };

  if (do_query) {
    // One query first: the echo answers with as many bytes as dispatchd's answer (an `update` with a
    // download token).
    {
      auto& c = *clients[0];
      if (!c.publish("esthesis/provisioning/request/" + hws[0], query_json(0, "probe00000000000000"), 1))
        die("publish");
      auto m = c.next(20000);
      if (!m) die("no answer to the probe query");
      echo.set_answer(std::string(m->payload.size(), 'x'));
      std::printf("dispatchd's answer: %zu bytes; the raw echo answers as many\n", m->payload.size());
    }
    // Tokens are signed before timing: the benchmark measures the service, not the devices' signing.
    // Every round signs fresh nonces, so no query is a replay.
    auto sign_round = [&](int round) {
      std::vector<std::vector<std::string>> payloads(devices);
      run_parallel(devices, [&](int i) {
        for (int q = 0; q < queries; ++q)
          payloads[i].push_back(query_json(i, fmt::format("r{:02d}n{:03d}{:011d}", round, i, q)));
      });
      return payloads;
    };
    auto bench = [&](const std::vector<std::vector<std::string>>& payloads, bool raw) {
      std::vector<Stats> stats(devices);
      const double cpu0[3] = {bench::cpu_seconds(daemon.pid()), bench::cpu_seconds(broker.pid()),
                              bench::cpu_seconds(getpid())};
      const double written0 = bench::written_bytes(daemon.pid());
      const double wall = run_parallel(devices, [&](int i) {
        auto& c = *clients[i];
        for (int q = 0; q < queries; ++q) {
          const auto t0 = Clock::now();
          const std::string topic =
              raw ? "bench/echo/req/" + hws[i] : "esthesis/provisioning/request/" + hws[i];
          if (!c.publish(topic, payloads[i][q], 1)) die("publish");
          auto m = c.next(20000);
          if (!m) die("no answer");
          if (!raw && m->payload.find("\"status\":\"update\"") == std::string::npos)
            die("bad answer: " + m->payload);
          stats[i].latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
      });
      Stats all;
      all.seconds = wall;
      all.dispatchd_cpu = bench::cpu_seconds(daemon.pid()) - cpu0[0];
      all.broker_cpu = bench::cpu_seconds(broker.pid()) - cpu0[1];
      all.bench_cpu = bench::cpu_seconds(getpid()) - cpu0[2];
      all.dispatchd_written = bench::written_bytes(daemon.pid()) - written0;
      for (auto& s : stats) {
        all.count += s.latencies_ms.size();
        all.latencies_ms.insert(all.latencies_ms.end(), s.latencies_ms.begin(), s.latencies_ms.end());
      }
      return all;
    };
    // The machine is shared and noisy: rounds alternate baseline and service, and the median ratio is
    // the result.
    std::printf("## query (%d devices x %d queries per round, fresh RSA-2048 tokens, %d rounds)\n", devices,
                queries, rounds);
    std::printf(
        "| round | dispatchd req/s | p50 ms | p99 ms | raw libmosquitto echo req/s | p50 ms | p99 ms | ratio "
        "| CPU µs per query: dispatchd / broker / clients | raw: echo process / broker / clients | dispatchd "
        "bytes written per query |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::vector<double> ratios;
    for (int r = 0; r < rounds; ++r) {
      const auto payloads = sign_round(r);
      Stats raw, svc;
      if (r % 2 == 0) {
        raw = bench(payloads, true);
        svc = bench(payloads, false);
      } else {
        svc = bench(payloads, false);
        raw = bench(payloads, true);
      }
      ratios.push_back(svc.rate() / raw.rate());
      // The raw echo runs in this process: its CPU is in the clients' column of the raw side.
      std::printf(
          "| %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %.0f / %.0f / %.0f | - / %.0f / %.0f | "
          "%.0f |\n",
          r + 1, svc.rate(), svc.pct(0.5), svc.pct(0.99), raw.rate(), raw.pct(0.5), raw.pct(0.99),
          ratios.back(), svc.per(svc.dispatchd_cpu), svc.per(svc.broker_cpu), svc.per(svc.bench_cpu),
          raw.per(raw.broker_cpu), raw.per(raw.bench_cpu), svc.per(svc.dispatchd_written) / 1e6);
      std::fflush(stdout);
    }
    std::sort(ratios.begin(), ratios.end());
    std::printf("\nmedian ratio (dispatchd / raw echo): %.2f\n\n", ratios[ratios.size() / 2]);
  }

  if (do_download) {
    std::vector<std::string> tokens(devices);
    for (int i = 0; i < devices; ++i) {
      auto& c = *clients[i];
      if (!c.publish("esthesis/provisioning/request/" + hws[i],
                     query_json(i, fmt::format("dl{:03d}{:013d}", i, 0)), 1)) {
        die("publish");
      }
      auto m = c.next(20000);
      if (!m) die("no answer");
      tokens[i] = json::parse(m->payload)["package"]["download_token"];
    }
    auto bench = [&](bool raw) {
      std::atomic<std::uint64_t> bytes{0};
      Stats s;
      s.seconds = run_parallel(devices, [&](int i) {
        auto& c = *clients[i];
        std::string got;
        got.reserve(data.size());
        for (std::size_t at = 0; at < data.size(); at += k_chunk) {
          if (raw) {
            if (!c.publish("bench/echo/req/" + hws[i], "D", 1)) die("publish");
          } else {
            json req{{"download_token", tokens[i]}, {"offset", at}, {"length", k_chunk}};
            if (!c.publish("esthesis/provisioning/download/" + hws[i], req.dump(), 1)) die("publish");
          }
          auto m = c.next(20000);
          if (!m) die("no chunk");
          if (raw) {
            bytes += m->payload.size();
          } else {
            auto f = protocol::parse_frame(m->payload);
            if (!f || f->header.contains("error")) die("download error: " + m->payload.substr(0, 200));
            got.append(f->body);
            bytes += f->body.size();
          }
        }
        if (!raw && got != data) die("downloaded bytes differ");
      });
      s.bytes = bytes;
      return s;
    };
    Stats raw = bench(true);
    Stats svc = bench(false);
    std::printf("## download (%d devices x %d MiB in 256 KiB chunks, sha256-checked)\n", devices,
                package_mib);
    std::printf("| | MiB/s |\n|---|---|\n");
    std::printf("| dispatchd chunked download | %.1f |\n", svc.mbps());
    std::printf("| raw MQTT publish of 256 KiB replies | %.1f |\n", raw.mbps());
    std::printf("| ratio | %.2f |\n", svc.mbps() / raw.mbps());
  }
  daemon.terminate();
  return 0;
}
