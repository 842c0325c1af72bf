// scripts/bench campaign: a one-group campaign over N devices (default 100,000) through dispatchd, answered
// by a simulated fleet in this process, next to raw Paho publishing measured in the same run.
//
//   A. campaign: time from campaigns/start until campaigns/get says completed (every device answered
//      `<id> s ok`); devices completed per second end to end, and the dispatch rate (command lines
//      received by the fleet per second, from start to the last one).
//   B. baseline: the same kind of wildcard subscriber receiving N QoS 1 messages on N distinct topics
//      from a plain Paho publisher with dispatchd's in-flight window (16).
// Devices are written into the database before dispatchd starts (registration is not what is measured).
// Usage: campaign_bench [--devices N] [--batch B]
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "service/mqtt/mqtt_client.h"
#include "storage/database.h"
#include "storage/devices.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

using namespace dispatch;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// A time stamp written on Paho's thread and read on the main thread.
class Stamp {
 public:
  void set() { ticks_.store(Clock::now().time_since_epoch().count()); }
  Clock::time_point get() const { return Clock::time_point(Clock::duration(ticks_.load())); }

 private:
  std::atomic<Clock::rep> ticks_{0};
};

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

// The devices: every new command id is answered once with success, from two replier threads.
class Fleet {
 public:
  explicit Fleet(const std::string& uri) {
    for (int i = 0; i < 2; ++i) repliers_.push_back(client(uri, 512));
    listener_ = client(uri);
    listener_->set_handler([this](service::InboundMessage&& m) {
      std::lock_guard<std::mutex> lock(mu_);
      last_request.set();
      ++requests;
      std::string id = m.payload.substr(0, m.payload.find(' '));
      if (!seen_.insert(id).second) return;  // a re-delivery: already answered
      queue_.emplace_back(m.topic.substr(m.topic.rfind('/') + 1), std::move(id));
      cv_.notify_one();
    });
    if (!listener_->subscribe("esthesis/command/request/+", 1)) std::exit(1);
    for (auto& r : repliers_) workers_.emplace_back([this, c = r.get()] { run(*c); });
  }
  ~Fleet() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  std::atomic<size_t> requests{0};
  Stamp last_request;

 private:
  void run(service::MqttClient& c) {
    for (;;) {
      std::pair<std::string, std::string> next;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      (void)c.publish("esthesis/command/reply/" + next.first, next.second + " s ok", 1);
    }
  }

  std::vector<std::unique_ptr<service::MqttClient>> repliers_;
  std::unique_ptr<service::MqttClient> listener_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::string>> queue_;
  std::unordered_set<std::string> seen_;
  bool stop_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  size_t devices = 100000;
  int batch = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--devices")) devices = std::stoul(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) batch = std::stoi(argv[i + 1]);
  }
  testing::Broker broker;
  testing::TempDir dir;
  const std::string db_path = dir.path() + "/bench.db";
  std::printf("writing %zu devices under tag 'fleet' into the database...\n", devices);
  if (!seed_devices(db_path, devices)) {
    std::fprintf(stderr, "cannot seed the database\n");
    return 1;
  }
  testing::Process daemon({std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd", "--mqtt.uri",
                           broker.uri(), "--storage.path", db_path, "--storage.data_dir",
                           dir.path() + "/pkgs", "--log.level", "warn", "--http.ops_listen", "off"},
                          {}, dir.path() + "/dispatchd.log");
  auto platform = client(broker.uri());
  for (int i = 0; i < 100 && !platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 300); ++i) {
  }
  Fleet fleet(broker.uri());

  // A. the campaign.
  nlohmann::json doc{{"name", "bench"},
                     {"type", "exec"},
                     {"command", "true"},
                     {"groups", {{{"tags", {"fleet"}}}}},
                     {"rate", {{"per_minute", 100000000}}},
                     {"batch_size", batch},
                     {"success", {{"threshold_percent", 0}}},
                     {"reply_timeout_s", 600}};
  auto created = platform->request("esthesis/api/v1/campaigns/create", doc.dump(), 10000);
  if (!created) return 1;
  const std::string id = nlohmann::json::parse(*created).value("id", "");
  const nlohmann::json id_body{{"id", id}};
  const auto t0 = Clock::now();
  auto started = platform->request("esthesis/api/v1/campaigns/start", id_body.dump(), 120000);
  if (!started) return 1;
  const double start_s = seconds(t0, Clock::now());
  nlohmann::json last;
  Clock::time_point t_end;
  for (;;) {
    auto r = platform->request("esthesis/api/v1/campaigns/get", id_body.dump(), 30000);
    t_end = Clock::now();
    if (r) last = nlohmann::json::parse(*r, nullptr, false);
    if (last.value("state", "") == "completed" || seconds(t0, t_end) > 900) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (last.value("state", "") != "completed") {
    std::fprintf(stderr, "campaign did not complete: %s\n", last.dump().c_str());
    return 1;
  }
  const double campaign_s = seconds(t0, t_end);
  const double completed_rate =
      static_cast<double>(last["stats"]["succeeded"].get<std::int64_t>()) / campaign_s;
  const double dispatch_s = seconds(t0, fleet.last_request.get());
  const double dispatch_rate = static_cast<double>(fleet.requests.load()) / dispatch_s;

  // B. raw Paho publisher, dispatchd's window (16), distinct topics, same subscriber kind.
  std::atomic<size_t> received{0};
  Stamp last_raw;
  auto sub = client(broker.uri());
  sub->set_handler([&](service::InboundMessage&&) {
    last_raw.set();
    received.fetch_add(1);
  });
  if (!sub->subscribe("bench/raw/+", 1)) return 1;
  auto pub = client(broker.uri(), 16);
  const std::string payload = "01M8C8GRNW6MQM0B82EV8TSBFF es true";
  const auto t1 = Clock::now();
  for (size_t i = 0; i < devices; ++i) (void)pub->publish("bench/raw/" + hw_name(i), payload, 1);
  auto deadline = Clock::now() + std::chrono::seconds(300);
  while (received.load() < devices && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const double raw_s = seconds(t1, last_raw.get());
  const double raw_rate = static_cast<double>(received.load()) / raw_s;
  daemon.terminate();

  std::printf(
      "\n%-62s %12s %10s\n",
      ("campaign of " + std::to_string(devices) + " devices, one group, batch " + std::to_string(batch))
          .c_str(),
      "per second", "seconds");
  std::printf("%-62s %12.0f %10.2f\n", "devices completed end to end (start -> get says completed)",
              completed_rate, campaign_s);
  std::printf("%-62s %12.0f %10.2f\n", "dispatch: command lines received by the fleet", dispatch_rate,
              dispatch_s);
  std::printf("%-62s %12.0f %10.2f\n", "baseline: plain Paho publisher, window 16, distinct topics", raw_rate,
              raw_s);
  std::printf("%-62s %12.2f\n", "ratio dispatch / baseline", dispatch_rate / raw_rate);
  std::printf(
      "(campaigns/start answered after %.3f s: expansion of %zu executions committed first; %zu command\n"
      " lines received for %zu devices; reference: AWS IoT Jobs max 1,000/min per job = 16.7/s)\n",
      start_s, devices, fleet.requests.load(), devices);
  return 0;
}
