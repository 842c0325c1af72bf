// scripts/bench http: the esthesis agent's HTTP path next to the MQTT path and next to raw baselines,
// all in one run, over one broker and one dispatchd.
//
//   A. package queries: HTTP `GET /api/v1/provisioning/find` (keep-alive, the static token an esthesis
//      agent sends) and the MQTT query (§2.1, the same static token), each closed loop from N devices,
//      next to a raw HTTP server (cpp-httplib, answering the same bytes from memory) and a raw MQTT echo.
//   B. downloads: HTTP `GET /api/v1/provisioning/download?token=` and the MQTT chunked download (256 KiB
//      chunks), each of a fresh single-use token per device and sha256-checked, next to the raw HTTP
//      server sending the same bytes from memory.
// Rounds alternate the sides; the median ratio is the result (the machine is shared and noisy).
//
//   http_bench [--devices 16] [--queries 200] [--rounds 3] [--package-mib 4]
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/secrets.h"
#include "protocol/core/signature.h"
#include "protocol/frame.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/bench/raw/raw_mqtt.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t k_chunk = 256 * 1024;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "http_bench: %s\n", what.c_str());
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

// Runs fn(i) on n threads released together; returns the wall time in seconds.
template <class F>
double run_parallel(int n, F fn) {
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ++ready;
      while (!go.load()) std::this_thread::yield();
      fn(i);
    });
  }
  while (ready.load() < n) std::this_thread::yield();
  const auto start = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The raw HTTP baseline: cpp-httplib (the library dispatchd embeds) with its default thread pool,
// answering /find with a fixed JSON body and /download with the package bytes from memory.
class RawHttp {
 public:
  RawHttp(std::string find_body, const std::string& package)
      : find_body_(std::move(find_body)), package_(package) {
    server_.set_tcp_nodelay(true);
    server_.Get("/find", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(find_body_, "application/json");
    });
    server_.Get("/download", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(package_, "application/octet-stream");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) die("raw HTTP server: cannot bind");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~RawHttp() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  std::string find_body_;
  const std::string& package_;
  int port_ = 0;
  std::thread thread_;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 16, queries = 200, rounds = 3, package_mib = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--devices") {
      devices = std::max(1, std::atoi(argv[i + 1]));
    } else if (k == "--queries") {
      queries = std::max(1, std::atoi(argv[i + 1]));
    } else if (k == "--rounds") {
      rounds = std::max(1, std::atoi(argv[i + 1]));
    } else if (k == "--package-mib") {
      package_mib = std::max(1, std::atoi(argv[i + 1]));
    } else {
      die("unknown option " + k);
    }
  }

  testing::Broker broker;
  testing::TempDir dir;
  const int http_port = testing::free_port();
  testing::Process daemon(
      {std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.uri", broker.uri(),
       "--mqtt.client_id", "dispatchd-bench", "--storage.path", dir.path() + "/db", "--storage.data_dir",
       dir.path() + "/pkgs", "--provisioning.rate_limit", "1000000", "--provisioning.token", "any",
       "--http.agent_listen", fmt::format("127.0.0.1:{}", http_port), "--log.level", "warn"},
      {}, dir.path() + "/dispatchd.log");
  auto platform = connect(broker.uri());
  for (int i = 0;; ++i) {
    if (platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 500)) break;
    if (i > 40 || !daemon.running())
      die("dispatchd did not start: " + testing::read_file(dir.path() + "/dispatchd.log"));
  }
  if (!testing::wait_for_port(http_port, 10000)) die("the agent listener did not open");

  std::fprintf(stderr, "setting up %d devices with RSA-2048 keys and a %d MiB package...\n", devices,
               package_mib);
  std::vector<std::string> hws, tokens;
  for (int i = 0; i < devices; ++i) {
    auto key = core::PrivateKey::generate(core::KeyType::rsa);
    hws.push_back(fmt::format("bench-dev-{:03d}", i));
    tokens.push_back(key.sign_base64(hws.back()));  // the static token of an esthesis agent
    call(*platform, "devices/register", {{"hardware_id", hws.back()}, {"public_key", key.public_pem()}});
  }
  const std::string data = core::random_bytes(static_cast<std::size_t>(package_mib) * 1024 * 1024);
  const std::string sha = core::sha256_hex(data);
  auto created = call(*platform, "packages/create",
                      {{"name", "bench"},
                       {"version", "2.0.0"},
                       {"type", "internal"},
                       {"sha256", sha},
                       {"size", data.size()},
                       {"available", true}});
  const std::string package_id = created["id"];
  for (std::size_t at = 0; at < data.size(); at += k_chunk) {
    json h{{"id", package_id}, {"offset", at}, {"last", at + k_chunk >= data.size()}};
    auto r = platform->request("esthesis/api/v1/packages/upload",
                               protocol::encode_frame(h, std::string_view(data).substr(at, k_chunk)), 20000);
    if (!r || json::parse(*r).contains("error")) die("upload failed");
  }

  // Per device: an MQTT client on its reply, data and echo topics, and two keep-alive HTTP clients.
  std::vector<std::unique_ptr<service::MqttClient>> clients;
  std::vector<std::unique_ptr<httplib::Client>> http, raw_http;
  for (int i = 0; i < devices; ++i) {
    clients.push_back(connect(broker.uri()));
    for (const std::string& t : {"esthesis/provisioning/reply/" + hws[i],
                                 "esthesis/provisioning/data/" + hws[i], "bench/echo/rep/" + hws[i]}) {
      if (!clients.back()->subscribe(t)) die("subscribe " + t);
    }
    http.push_back(std::make_unique<httplib::Client>("127.0.0.1", http_port));
    http.back()->set_keep_alive(true);
    http.back()->set_read_timeout(20, 0);
  }
  auto find_path = [&](int i) {
    return "/api/v1/provisioning/find?hardwareId=" + hws[i] +
           "&version=1.0.0&token=" + httplib::detail::encode_query_param(tokens[i]);
  };
  // The baselines answer what the service answers, byte for byte in size.
  auto sample = http[0]->Get(find_path(0));
  if (!sample || sample->status != 200) die("HTTP find failed");
  const std::string find_answer = sample->body;
  auto mqtt_query = [&](int i, int q) {
    return json{{"version", "1.0.0"}, {"token", tokens[i]}, {"correlation_id", fmt::format("q{}", q)}}.dump();
  };
  if (!clients[0]->publish("esthesis/provisioning/request/" + hws[0], mqtt_query(0, 0), 1)) die("publish");
  auto first = clients[0]->next(20000);
  if (!first || first->payload.find("\"status\":\"update\"") == std::string::npos) {
    die("MQTT query failed: " + (first ? first->payload : std::string("no answer")));
  }
  // The raw MQTT baseline: a libmosquitto echo answering bench/echo/req/<x> on bench/echo/rep/<x> with the
  // same answer.
  const auto [host, port] = bench::split_uri(broker.uri());
  bench::RawEcho echo(host, port, "bench/echo", first->payload);
  RawHttp raw(find_answer, data);
  for (int i = 0; i < devices; ++i) {
    raw_http.push_back(std::make_unique<httplib::Client>("127.0.0.1", raw.port()));
    raw_http.back()->set_keep_alive(true);
    raw_http.back()->set_read_timeout(20, 0);
  }

  enum class Side { http, raw_http, mqtt, raw_mqtt };
  auto queries_per_s = [&](Side side) {
    const double wall = run_parallel(devices, [&](int i) {
      for (int q = 0; q < queries; ++q) {
        if (side == Side::http || side == Side::raw_http) {
          auto res = side == Side::http ? http[i]->Get(find_path(i)) : raw_http[i]->Get("/find");
          if (!res || res->status != 200 || res->body.find(package_id) == std::string::npos)
            die("bad HTTP find");
        } else {
          const std::string topic =
              (side == Side::mqtt ? "esthesis/provisioning/request/" : "bench/echo/req/") + hws[i];
          if (!clients[i]->publish(topic, mqtt_query(i, q), 1)) die("publish");
          auto m = clients[i]->next(20000);
          if (!m || m->payload.find("\"status\":\"update\"") == std::string::npos) die("bad MQTT answer");
        }
      }
    });
    return devices * queries / wall;
  };

  std::printf("## package queries (%d devices x %d closed-loop queries per side and round, static token)\n",
              devices, queries);
  std::printf(
      "| round | HTTP find q/s | raw HTTP q/s | ratio | MQTT query q/s | raw MQTT echo q/s | ratio |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  std::vector<double> http_ratio, mqtt_ratio;
  for (int r = 0; r < rounds; ++r) {
    const double rh = queries_per_s(Side::raw_http), h = queries_per_s(Side::http);
    const double rm = queries_per_s(Side::raw_mqtt), m = queries_per_s(Side::mqtt);
    http_ratio.push_back(h / rh);
    mqtt_ratio.push_back(m / rm);
    std::printf("| %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", r + 1, h, rh, h / rh, m, rm, m / rm);
    std::fflush(stdout);
  }
  std::printf("\nmedian ratio: HTTP find / raw HTTP %.2f; MQTT query / raw MQTT echo %.2f\n\n",
              median(http_ratio), median(mqtt_ratio));

  // Downloads: every device gets a fresh token (single use) per round and side.
  auto fresh_download = [&](int i) {
    auto res = http[i]->Get(find_path(i));
    if (!res || res->status != 200) die("find for a download token failed");
    return json::parse(res->body)["downloadToken"].get<std::string>();
  };
  enum class Dl { http, raw_http, mqtt };
  auto mib_per_s = [&](Dl side) {
    std::vector<std::string> dl_tokens(devices);
    if (side != Dl::raw_http) {
      for (int i = 0; i < devices; ++i) dl_tokens[i] = fresh_download(i);
    }
    const double wall = run_parallel(devices, [&](int i) {
      std::string got;
      if (side == Dl::http || side == Dl::raw_http) {
        auto res = side == Dl::http ? http[i]->Get("/api/v1/provisioning/download?token=" +
                                                   httplib::detail::encode_query_param(dl_tokens[i]))
                                    : raw_http[i]->Get("/download");
        if (!res || res->status != 200) die("HTTP download failed");
        got = std::move(res->body);
      } else {
        got.reserve(data.size());
        for (std::size_t at = 0; at < data.size(); at += k_chunk) {
          json req{{"download_token", dl_tokens[i]}, {"offset", at}, {"length", k_chunk}};
          if (!clients[i]->publish("esthesis/provisioning/download/" + hws[i], req.dump(), 1)) die("publish");
          auto m = clients[i]->next(20000);
          if (!m) die("no chunk");
          auto f = protocol::parse_frame(m->payload);
          if (!f || f->header.contains("error")) die("download error: " + m->payload.substr(0, 200));
          got.append(f->body);
        }
      }
      if (core::sha256_hex(got) != sha) die("downloaded bytes differ");
    });
    return devices * static_cast<double>(data.size()) / wall / (1024.0 * 1024.0);
  };
  std::printf("## downloads (%d devices x %d MiB, one fresh single-use token each, sha256-checked)\n",
              devices, package_mib);
  std::printf(
      "| round | HTTP download MiB/s | MQTT chunked MiB/s | raw HTTP MiB/s | HTTP / raw | MQTT / raw |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::vector<double> dl_http, dl_mqtt;
  for (int r = 0; r < rounds; ++r) {
    const double rh = mib_per_s(Dl::raw_http), h = mib_per_s(Dl::http), m = mib_per_s(Dl::mqtt);
    dl_http.push_back(h / rh);
    dl_mqtt.push_back(m / rh);
    std::printf("| %d | %.1f | %.1f | %.1f | %.2f | %.2f |\n", r + 1, h, m, rh, h / rh, m / rh);
    std::fflush(stdout);
  }
  std::printf("\nmedian ratio: HTTP download / raw HTTP %.2f; MQTT chunked / raw HTTP %.2f\n",
              median(dl_http), median(dl_mqtt));
  daemon.terminate();
  return 0;
}
