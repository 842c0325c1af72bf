// Resource bound under a query flood (scripts/bench flood): N package queries (default 1,000,000), each
// from a different unknown hardware id, against a real dispatchd with its default limits. Prints the
// service's resident memory and database size as the flood goes on, next to the same readings after the
// first 1 % of the flood: bounded means the memory stops growing once the rate limiter holds its maximum
// number of devices, whatever the number of ids.
//
//   flood_bench [--queries 1000000] [--publishers 4] [--window 2000]
#include <fmt/format.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "protocol/core/clock.h"
#include "protocol/core/encoding.h"
#include "protocol/core/secrets.h"
#include "protocol/core/time.h"
#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "flood_bench: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<service::MqttClient> connect(const std::string& uri, int max_inflight = 16) {
  service::ClientOptions o;
  o.uri = uri;
  o.mqtt_version = 5;
  o.max_inflight = max_inflight;
  auto c = std::make_unique<service::MqttClient>(o);
  if (auto st = c->connect(10000); !st) die("connect: " + st.error().message);
  return c;
}

// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or -1.
long status_kib(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

double file_mib(const std::string& path) {
  struct stat sb {};
  return ::stat(path.c_str(), &sb) == 0 ? sb.st_size / (1024.0 * 1024.0) : 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  long queries = 1'000'000;
  int publishers = 4, window = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--queries") {
      queries = std::atol(argv[i + 1]);
    } else if (k == "--publishers") {
      publishers = std::atoi(argv[i + 1]);
    } else if (k == "--window") {
      window = std::atoi(argv[i + 1]);
    } else {
      die("unknown option " + k);
    }
  }
  if (queries < 100 || publishers < 1 || window < publishers) die("bad options");

  testing::Broker broker;
  testing::TempDir dir;
  const std::string db_path = dir.path() + "/db";
  testing::Process daemon(
      {std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.uri", broker.uri(),
       "--mqtt.client_id", "dispatchd-flood", "--storage.path", db_path, "--storage.data_dir",
       dir.path() + "/pkgs", "--log.level", "warn", "--http.ops_listen", "off"},
      {}, dir.path() + "/dispatchd.log");
  auto platform = connect(broker.uri());
  for (int i = 0;; ++i) {
    if (platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 500)) break;
    if (i > 40 || !daemon.running())
      die("dispatchd did not start: " + testing::read_file(dir.path() + "/dispatchd.log"));
  }
  const int pid = daemon.pid();

  // Every answer arrives on esthesis/provisioning/reply/<id>; one listener counts them all.
  std::atomic<long> answered{0}, unauthorized{0};
  auto listener = connect(broker.uri());
  listener->set_handler([&](service::InboundMessage&& m) {
    if (m.payload.find("\"unauthorized\"") != std::string::npos) ++unauthorized;
    ++answered;
  });
  if (!listener->subscribe("esthesis/provisioning/reply/+")) die("subscribe");

  // A well-formed fresh-token query with a signature of the right size: it passes every check up to the
  // (decoy) signature verification, the most expensive path an unknown device can reach.
  const std::string token = core::base64_encode(core::random_bytes(256));
  auto body = [&](long n) {
    return nlohmann::json{{"version", "1.0.0"},
                          {"ts", core::format_rfc3339(core::SystemClock().now_ms())},
                          {"nonce", fmt::format("flood-nonce-{:012d}", n)},
                          {"token", token}}
        .dump();
  };

  std::printf("## flood: %ld queries from distinct unknown hardware ids, %d publishers\n\n", queries,
              publishers);
  std::printf("| queries answered | RSS MiB | peak RSS MiB | database MiB (with WAL) | answers/s |\n");
  std::printf("|---|---|---|---|---|\n");
  std::mutex print_mu;
  auto report = [&](long n, double rate) {
    std::lock_guard lk(print_mu);
    std::printf("| %ld | %.1f | %.1f | %.1f | %.0f |\n", n, status_kib(pid, "VmRSS") / 1024.0,
                status_kib(pid, "VmHWM") / 1024.0, file_mib(db_path) + file_mib(db_path + "-wal"), rate);
    std::fflush(stdout);
  };
  report(0, 0);

  std::atomic<long> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&] {
      auto c = connect(broker.uri(), 64);
      for (;;) {
        // Keep at most `window` queries unanswered: the flood is as fast as the service answers.
        while (next.load() - answered.load() >= window)
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        const long n = next.fetch_add(1);
        if (n >= queries) break;
        const std::string hw = fmt::format("flood-{:09d}", n);
        if (!c->publish("esthesis/provisioning/request/" + hw, body(n), 1)) die("publish");
      }
      c->flush(60000);
    });
  }
  long step = queries / 10, mark = queries / 100;
  while (answered.load() < queries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!daemon.running()) die("dispatchd died: " + testing::read_file(dir.path() + "/dispatchd.log"));
    const long n = answered.load();
    if (n >= mark) {
      report(n, n / std::chrono::duration<double>(Clock::now() - start).count());
      mark = (n / step + 1) * step;
    }
    if (Clock::now() - start > std::chrono::hours(2)) die("the flood did not finish within 2 hours");
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  report(answered.load(), answered.load() / wall);
  std::printf("\n%ld answered (%ld unauthorized) in %.0f s\n", answered.load(), unauthorized.load(), wall);
  if (unauthorized.load() != queries) die("every query of an unknown device must be answered unauthorized");
  return 0;
}
