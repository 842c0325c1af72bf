// scripts/bench scale: one broker, one PostgreSQL server, the same fleet and the same work for
//   A. 1 dispatchd on SQLite   B. 1 dispatchd on PostgreSQL   C. 3 dispatchd on PostgreSQL, mqtt.share_group
// measured in one run (docs/performance.md, "Several instances"):
//   fan-out: N devices in 3 tags; three commands/send (one per tag) published at once, so that with a
//     share group each instance gets one; time until the fleet has received every line and until every
//     reply has come back as a command event (the delivery committed as succeeded);
//   campaign: one group over the N devices until campaigns/get says completed. With a share group one
//     instance drives it (the one that took campaigns/start, under the campaign's lease); the replies
//     reach every instance, and those reaching another one go through the campaign's inbox (PROTOCOL §7).
// CPU time of every dispatchd, of the PostgreSQL server (postmaster, its live children and the children it
// reaped) and of mosquitto, from /proc/<pid>/stat, per device of the phase.
// Needs a PostgreSQL server: run under scripts/with-postgres (DISPATCH_TEST_PG_URL); the bench switches that
// private server to durable settings (fsync, synchronous_commit, full_page_writes on) first, so that both
// backends commit to disk as in production (SQLite: synchronous=FULL).
// Usage: scale_bench [--devices N]
#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <sstream>
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
using json = nlohmann::json;

namespace {

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
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

std::string hw_name(size_t i) {
  char hw[32];
  std::snprintf(hw, sizeof hw, "fleet-%06zu", i);
  return hw;
}

// /proc/<pid>/stat: {ppid, utime + stime, cutime + cstime} in seconds; ppid -1 when the process is gone.
struct ProcStat {
  long ppid = -1;
  double self_s = 0;
  double children_s = 0;
};
ProcStat proc_stat(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  const auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string t; rest >> t;) f.push_back(t);
  if (f.size() < 15) return {};
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  // After the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  return {std::stol(f[1]), (std::stod(f[11]) + std::stod(f[12])) / tick,
          (std::stod(f[13]) + std::stod(f[14])) / tick};
}

// The PostgreSQL server's CPU: the postmaster's own and its reaped children's, plus its live children.
double postgres_cpu_s(long postmaster) {
  const ProcStat pm = proc_stat(postmaster);
  double total = pm.self_s + pm.children_s;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const ProcStat s = proc_stat(std::stol(e->d_name));
      if (s.ppid == postmaster) total += s.self_s;
    }
    closedir(d);
  }
  return total;
}

struct Cpu {
  double dispatchd = 0;
  double postgres = 0;
  double broker = 0;
};

// The devices: every new command id is answered once with success, from two replier threads.
class Fleet {
 public:
  explicit Fleet(const std::string& uri) {
    for (int i = 0; i < 2; ++i) repliers_.push_back(client(uri, 512));
    listener_ = client(uri);
    listener_->set_handler([this](service::InboundMessage&& m) {
      std::lock_guard<std::mutex> lock(mu_);
      std::string id = m.payload.substr(0, m.payload.find(' '));
      if (!seen_.insert(id + m.topic).second) return;  // a re-delivery: already answered
      ++lines;
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
  std::atomic<size_t> lines{0};

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

struct PhaseResult {
  std::string setup;
  std::string phase;
  double lines_s = 0;  // seconds until every line was received
  double done_s = 0;   // seconds until every device's reply was committed
  Cpu cpu;
  bool ok = false;
};

struct Setup {
  std::string name;
  bool postgres = false;
  int instances = 1;
};

std::string pg_base() {
  const char* url = std::getenv("DISPATCH_TEST_PG_URL");
  return url ? url : "";
}

std::string pg_url_for(const std::string& db) {
  const std::string base = pg_base();
  const auto query = base.find('?');
  const auto slash = base.rfind('/', query);
  return base.substr(0, slash + 1) + db + (query == std::string::npos ? "" : base.substr(query));
}

bool seed(const std::string& location, size_t n) {
  auto db = storage::Database::open(location);
  if (!db) {
    std::fprintf(stderr, "cannot open %s: %s\n", location.c_str(), db.error().message.c_str());
    return false;
  }
  storage::DeviceStore devices(**db);
  auto st = (*db)->transaction([&]() -> core::Status {
    for (size_t i = 0; i < n; ++i) {
      storage::DeviceRow row;
      row.hardware_id = hw_name(i);
      row.public_key_pem = "-";
      row.key_type = "ed25519";
      row.tags = {"fleet", "t" + std::to_string(i % 3)};
      if (auto r = devices.upsert(row, 1); !r) return r.error();
    }
    return {};
  });
  return st.ok();
}

}  // namespace

int main(int argc, char** argv) {
  size_t devices = 6000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--devices")) devices = std::stoul(argv[i + 1]);
  }
  if (pg_base().empty()) {
    std::fprintf(stderr, "scale_bench needs a PostgreSQL server: run it under scripts/with-postgres\n");
    return 2;
  }
  long postmaster = 0;
  {
    pqxx::connection admin(pg_base());
    pqxx::nontransaction w(admin);
    for (const char* setting : {"fsync", "synchronous_commit", "full_page_writes"}) {
      w.exec(std::string("ALTER SYSTEM SET ") + setting + " = on");
    }
    w.exec("SELECT pg_reload_conf()");
    postmaster = proc_stat(w.exec("SELECT pg_backend_pid()")[0][0].as<long>()).ppid;
  }
  {
    // The reload is asynchronous: wait until a new session sees it.
    for (int i = 0; i < 50; ++i) {
      pqxx::connection c(pg_base());
      if (pqxx::nontransaction(c).exec("SHOW fsync")[0][0].as<std::string>() == "on") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  testing::Broker broker;
  std::printf("broker pid %d, PostgreSQL postmaster pid %ld, %zu devices in 3 tags, %ld CPUs\n", broker.pid(),
              postmaster, devices, sysconf(_SC_NPROCESSORS_ONLN));

  const std::vector<Setup> setups = {
      {"1 x SQLite", false, 1}, {"1 x PostgreSQL", true, 1}, {"3 x PostgreSQL, share_group", true, 3}};
  std::vector<PhaseResult> results;
  int counter = 0;
  for (const auto& setup : setups) {
    testing::TempDir dir;
    std::string location = dir.path() + "/bench.db";
    const std::string dbname = "scale_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
    if (setup.postgres) {
      pqxx::connection admin(pg_base());
      pqxx::nontransaction(admin).exec("CREATE DATABASE " + dbname);
      location = pg_url_for(dbname);
    }
    std::printf("\n%s: writing %zu devices...\n", setup.name.c_str(), devices);
    std::fflush(stdout);
    if (!seed(location, devices)) return 1;
    std::vector<std::unique_ptr<testing::Process>> instances;
    for (int i = 0; i < setup.instances; ++i) {
      std::vector<std::string> args = {std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd",
                                       "--mqtt.uri",
                                       broker.uri(),
                                       "--mqtt.client_id",
                                       "scale-" + std::to_string(counter) + "-" + std::to_string(i),
                                       setup.postgres ? "--storage.url" : "--storage.path",
                                       location,
                                       "--storage.data_dir",
                                       dir.path() + "/pkgs-" + std::to_string(i),
                                       "--log.level",
                                       "warn",
                                       "--http.ops_listen",
                                       "off"};
      if (setup.instances > 1) args.insert(args.end(), {"--mqtt.share_group", "scale"});
      instances.push_back(std::make_unique<testing::Process>(
          args, std::vector<std::string>{}, dir.path() + "/dispatchd-" + std::to_string(i) + ".log"));
    }
    auto platform = client(broker.uri());
    // Every instance answers: with a share group, a few requests reach each (round robin).
    for (int ok = 0, i = 0; ok < 3 * setup.instances && i < 300; ++i) {
      if (platform->request("esthesis/api/v1/devices/list", R"({"limit":1})", 300)) ++ok;
    }
    auto cpu_now = [&] {
      Cpu c;
      for (auto& p : instances) c.dispatchd += proc_stat(p->pid()).self_s;
      c.postgres = postgres_cpu_s(postmaster);
      c.broker = proc_stat(broker.pid()).self_s;
      return c;
    };
    auto cpu_since = [&](const Cpu& a) {
      Cpu b = cpu_now();
      return Cpu{b.dispatchd - a.dispatchd, b.postgres - a.postgres, b.broker - a.broker};
    };

    Fleet fleet(broker.uri());
    std::atomic<size_t> events{0};
    auto watcher = client(broker.uri());
    watcher->set_handler([&](service::InboundMessage&&) { events.fetch_add(1); });
    if (!watcher->subscribe("esthesis/events/v1/commands/+", 1)) return 1;

    // Fan-out: three commands at once, one per tag.
    {
      PhaseResult r;
      r.setup = setup.name;
      r.phase = "fan-out";
      const Cpu c0 = cpu_now();
      const auto t0 = Clock::now();
      std::vector<std::thread> senders;
      std::atomic<int> failed{0};
      for (int t = 0; t < 3; ++t) {
        senders.emplace_back([&, t] {
          auto c = client(broker.uri());
          json body{{"type", "exec"}, {"command", "true"}, {"tags", {"t" + std::to_string(t)}}};
          if (!c->request("esthesis/api/v1/commands/send", body.dump(), 120000)) ++failed;
        });
      }
      for (auto& s : senders) s.join();
      const auto deadline = t0 + std::chrono::seconds(600);
      Clock::time_point t_lines{};
      while ((fleet.lines.load() < devices || events.load() < devices) && Clock::now() < deadline) {
        if (t_lines == Clock::time_point{} && fleet.lines.load() >= devices) t_lines = Clock::now();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      const auto t_done = Clock::now();
      if (t_lines == Clock::time_point{}) t_lines = t_done;
      r.cpu = cpu_since(c0);
      r.lines_s = seconds(t0, t_lines);
      r.done_s = seconds(t0, t_done);
      r.ok = failed == 0 && fleet.lines.load() >= devices && events.load() >= devices;
      if (!r.ok) {
        std::fprintf(stderr, "%s fan-out incomplete: %zu lines, %zu events\n", setup.name.c_str(),
                     fleet.lines.load(), events.load());
      }
      results.push_back(r);
    }
    // Campaign: one group over every device.
    {
      PhaseResult r;
      r.setup = setup.name;
      r.phase = "campaign";
      const size_t lines_before = fleet.lines.load();
      json doc{{"name", "bench"},
               {"type", "exec"},
               {"command", "true"},
               {"groups", {{{"tags", {"fleet"}}}}},
               {"rate", {{"per_minute", 100000000}}},
               {"batch_size", 2000},
               {"success", {{"threshold_percent", 0}}},
               {"reply_timeout_s", 600}};
      auto created = platform->request("esthesis/api/v1/campaigns/create", doc.dump(), 10000);
      const std::string id = created ? json::parse(*created).value("id", "") : "";
      const json id_body{{"id", id}};
      const Cpu c0 = cpu_now();
      const auto t0 = Clock::now();
      (void)platform->request("esthesis/api/v1/campaigns/start", id_body.dump(), 120000);
      json last;
      Clock::time_point t_lines{};
      while (seconds(t0, Clock::now()) < 900) {
        if (t_lines == Clock::time_point{} && fleet.lines.load() >= lines_before + devices)
          t_lines = Clock::now();
        auto g = platform->request("esthesis/api/v1/campaigns/get", id_body.dump(), 30000);
        if (g) last = json::parse(*g, nullptr, false);
        if (last.value("state", "") == "completed") break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      const auto t_done = Clock::now();
      if (t_lines == Clock::time_point{}) t_lines = t_done;
      r.cpu = cpu_since(c0);
      r.lines_s = seconds(t0, t_lines);
      r.done_s = seconds(t0, t_done);
      r.ok = last.value("state", "") == "completed";
      if (!r.ok)
        std::fprintf(stderr, "%s campaign did not complete: %s\n", setup.name.c_str(), last.dump().c_str());
      results.push_back(r);
    }
    for (auto& p : instances) p->terminate(15000);
    instances.clear();
    if (setup.postgres) {
      pqxx::connection admin(pg_base());
      pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + dbname + " WITH (FORCE)");
    }
  }

  const double n = static_cast<double>(devices);
  std::printf("\n%zu devices per phase; CPU in microseconds per device (all instances together)\n", devices);
  std::printf("%-30s %-9s %9s %9s %9s %11s %11s %11s %s\n", "setup", "phase", "lines/s", "done/s", "seconds",
              "dispatchd", "postgres", "mosquitto", "");
  for (const auto& r : results) {
    std::printf("%-30s %-9s %9.0f %9.0f %9.2f %11.0f %11.0f %11.0f %s\n", r.setup.c_str(), r.phase.c_str(),
                n / r.lines_s, n / r.done_s, r.done_s, 1e6 * r.cpu.dispatchd / n, 1e6 * r.cpu.postgres / n,
                1e6 * r.cpu.broker / n, r.ok ? "" : "INCOMPLETE");
  }
  bool all_ok = true;
  for (const auto& r : results) all_ok = all_ok && r.ok;
  return all_ok ? 0 : 1;
}
