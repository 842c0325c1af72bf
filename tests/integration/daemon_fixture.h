// A real dispatchd process against a private mosquitto, for integration tests. Everything here talks to
// the service only through the broker, as an independent client would.
#pragma once

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "service/mqtt/mqtt_client.h"
#include "tests/support/broker.h"
#include "tests/support/process.h"

namespace dispatch::testing {

// The PostgreSQL server of scripts/with-postgres (DISPATCH_TEST_PG_URL), or "" when none is set.
inline std::string pg_test_server_url() {
  const char* url = std::getenv("DISPATCH_TEST_PG_URL");
  return url ? url : "";
}
// True when every Daemon of the integration tests runs on PostgreSQL instead of SQLite:
// DISPATCH_TEST_DAEMON_STORAGE=postgres with DISPATCH_TEST_PG_URL set, e.g.
//   DISPATCH_TEST_DAEMON_STORAGE=postgres scripts/with-postgres bash -c 'cd build && ctest -R integration:'
inline bool daemons_on_postgres() {
  const char* s = std::getenv("DISPATCH_TEST_DAEMON_STORAGE");
  return s && std::string(s) == "postgres" && !pg_test_server_url().empty();
}

// A fresh PostgreSQL database on the test server for one daemon or one cluster of daemons: created at
// construction (CREATE DATABASE), dropped with every connection to it at the end (DROP … WITH (FORCE)).
class PgDatabase {
 public:
  // create = false: only the name and URL; create() makes the database later.
  explicit PgDatabase(bool create_now = true) {
    static std::atomic<int> counter{0};
    name_ = "it_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    pqxx::connection admin(pg_test_server_url());
    pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    if (create_now) create();
    // postgresql://user@host:port/dispatch_test[?…] → …/<name_>[?…]
    const std::string base = pg_test_server_url();
    const auto query = base.find('?');
    const auto slash = base.rfind('/', query);
    url_ = base.substr(0, slash + 1) + name_ + (query == std::string::npos ? "" : base.substr(query));
  }
  ~PgDatabase() {
    try {
      pqxx::connection admin(pg_test_server_url());
      pqxx::nontransaction(admin).exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception&) {
      // A server that went away takes the database with its cluster.
    }
  }
  PgDatabase(const PgDatabase&) = delete;
  PgDatabase& operator=(const PgDatabase&) = delete;
  const std::string& url() const { return url_; }
  void create() {
    pqxx::connection admin(pg_test_server_url());
    pqxx::nontransaction(admin).exec("CREATE DATABASE " + name_);
  }

 private:
  std::string name_;
  std::string url_;
};

class Daemon {
 public:
  Daemon(const Broker& broker, std::vector<std::string> extra_args = {}, std::vector<std::string> env = {})
      : broker_uri_(broker.uri()), extra_(std::move(extra_args)), env_(std::move(env)) {
    client_id_ = "dispatchd-" + std::to_string(free_port());
    // Every test daemon gets its own ops port: the default (127.0.0.1:9464) would be taken by the first.
    ops_port_ = free_port();
    // A daemon given its storage.url (a cluster test) uses it; otherwise, with daemons_on_postgres(),
    // it gets a database of its own.
    for (std::size_t i = 0; i + 1 < extra_.size(); ++i) {
      if (extra_[i] == "--storage.url") storage_url_ = extra_[i + 1];
    }
    if (storage_url_.empty() && daemons_on_postgres()) {
      own_db_ = std::make_unique<PgDatabase>();
      storage_url_ = own_db_->url();
      extra_.insert(extra_.end(), {"--storage.url", storage_url_});
    }
    start();
  }
  // Stops the service with SIGTERM and records a test failure unless it exits 0 (see check_ended_well).
  ~Daemon() { finish(); }

  const std::string& dir() const { return dir_.path(); }
  // The port of the ops endpoints (/metrics, /healthz, /readyz) on 127.0.0.1.
  int ops_port() const { return ops_port_; }
  // Where the daemon keeps its state: the SQLite file, or its PostgreSQL URI (Database::open takes both).
  std::string db_path() const { return storage_url_.empty() ? sqlite_path() : storage_url_; }
  std::string sqlite_path() const { return dir_.path() + "/dispatch.db"; }
  bool on_postgres() const { return !storage_url_.empty(); }
  std::string log() const { return read_file(dir_.path() + "/dispatchd.log"); }

  // Starts the service (again: the previous process must have ended well, see check_ended_well).
  void start() {
    check_ended_well();
    ended_by_test_ = false;
    std::vector<std::string> argv = {std::string(DISPATCH_BINARY_DIR) + "/service/dispatchd",
                                     "--mqtt.uri",
                                     broker_uri_,
                                     "--mqtt.client_id",
                                     client_id_,
                                     "--storage.path",
                                     sqlite_path(),
                                     "--storage.data_dir",
                                     dir_.path() + "/packages",
                                     "--campaigns.tick_ms",
                                     "50",
                                     "--http.ops_listen",
                                     "127.0.0.1:" + std::to_string(ops_port_)};
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
  // The test ends the process: it owns the outcome (kill9 is not a failure; terminate's code is returned).
  void kill9() {
    ended_by_test_ = true;
    proc_->kill9();
  }
  int terminate() {
    ended_by_test_ = true;
    return proc_->terminate(k_stop_timeout_ms);
  }
  bool running() { return proc_ && proc_->running(); }
  Process& process() { return *proc_; }

  // How the last log lines of the service read (for failure messages).
  std::string log_tail(std::size_t max_chars = 4000) const {
    auto text = log();
    return text.size() > max_chars ? "..." + text.substr(text.size() - max_chars) : text;
  }

 private:
  static constexpr int k_stop_timeout_ms = 15000;
  static constexpr const char* k_report_hint =
      "\n(scripts/test --sanitize: ASan/LSan reports are in build-asan/sanitizer-reports/)\n";

  // A service the test did not end itself must have ended by SIGKILL (a failpoint) or exit code 0.
  // Anything else is a crash: in the sanitized build an ASan/UBSan report aborts the process (SIGABRT)
  // and a leak found at exit makes it exit non-zero, so this is where a report fails the test.
  void check_ended_well() {
    if (!proc_ || ended_by_test_ || proc_->running()) return;
    int rc = proc_->wait(0);
    if (rc != 0 && rc != 128 + 9) {
      FAIL_CHECK("dispatchd ended on its own with " << rc << " (128+n: signal n)" << k_report_hint
                                                    << log_tail());
    }
  }
  // A clean SIGTERM stop is part of every test; the leak check of a sanitized build runs at that exit.
  void finish() {
    if (proc_ && proc_->running()) {
      int rc = proc_->terminate(k_stop_timeout_ms);
      if (rc != 0) {
        FAIL_CHECK("dispatchd did not stop cleanly on SIGTERM: " << rc << " (128+n: signal n, -1: timeout)"
                                                                 << k_report_hint << log_tail());
      }
      return;
    }
    check_ended_well();
  }

  std::string broker_uri_;
  std::vector<std::string> extra_;
  std::vector<std::string> env_;
  std::string client_id_;
  int ops_port_ = 0;
  std::string storage_url_;
  std::unique_ptr<PgDatabase> own_db_;  // declared before proc_: the process ends before its database goes
  TempDir dir_;
  std::unique_ptr<Process> proc_;
  bool ended_by_test_ = false;
};

// API call helper: the parsed answer (object), failing the test on transport errors.
// A connected MQTT 5 client of the test broker (fails the test when it cannot connect).
inline std::unique_ptr<service::MqttClient> connected_client(const Broker& b, int max_inflight = 16) {
  service::ClientOptions o;
  o.uri = b.uri();
  o.max_inflight = max_inflight;
  auto c = std::make_unique<service::MqttClient>(o);
  REQUIRE(c->connect(10000));
  return c;
}

inline nlohmann::json api(service::MqttClient& c, const std::string& resource_action,
                          const nlohmann::json& body, int timeout_ms = 10000) {
  auto r = c.request("esthesis/api/v1/" + resource_action, body.dump(), timeout_ms);
  if (!r) return nlohmann::json{{"transport_error", r.error().message}};
  return nlohmann::json::parse(*r, nullptr, false);
}

}  // namespace dispatch::testing
