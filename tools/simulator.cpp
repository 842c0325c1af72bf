#include "tools/simulator.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "protocol/command_line.h"
#include "protocol/core/secrets.h"
#include "protocol/core/time.h"
#include "protocol/frame.h"
#include "protocol/ids.h"
#include "protocol/reply_line.h"
#include "tools/api.h"

namespace dispatch::tools {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

json SimStats::to_json() const {
  return json{{"devices", devices},
              {"registered", registered},
              {"register_failed", register_failed},
              {"commands_received", commands_received},
              {"duplicates", duplicates},
              {"malformed", malformed},
              {"replies_ok", replies_ok},
              {"replies_failed", replies_failed},
              {"firmware_queries", firmware_queries},
              {"up_to_date", up_to_date},
              {"downloads", downloads},
              {"download_bytes", download_bytes},
              {"firmware_failed", firmware_failed},
              {"reruns", reruns},
              {"pings", pings}};
}

std::string sim_hardware_id(const std::string& prefix, int index) {
  return fmt::format("{}{:06}", prefix, index + 1);
}

namespace {

struct FirmwareJob {
  std::string command_id;
  std::string correlation_id;
  bool downloading = false;
  std::string download_token;
  std::string sha256;
  std::string new_version;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
  std::uint64_t chunks = 0;
  core::Sha256 hasher;
  SteadyClock::time_point deadline;
};

struct Device {
  std::string hw;
  std::string version;
  std::optional<core::PrivateKey> key;
  int connection = 0;
  std::unique_ptr<FirmwareJob> job;
};

// The first result of a command id on a device: re-deliveries get it again.
struct Outcome {
  bool done = false;
  bool success = false;
  std::string output;
};

struct Timer {
  SteadyClock::time_point due;
  std::size_t device;
  std::string command_line;  // parsed again when it fires: the queue stays small and copyable
  bool operator>(const Timer& o) const { return due > o.due; }
};

struct Inbound {
  int connection;
  InboundMessage message;
};

}  // namespace

struct Simulator::Impl {
  SimOptions opts;
  protocol::Topics topics;
  std::vector<std::unique_ptr<MqttClient>> clients;
  std::vector<Device> devices;
  std::unordered_map<std::string, std::size_t> index;
  std::unordered_map<std::string, Outcome> outcomes;  // key: hw '\n' command id
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  std::set<std::size_t> active_jobs;
  std::mt19937_64 rng;
  std::uint64_t next_correlation = 1;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Inbound> inbox;  // guarded by mu

  SimStats* stats = nullptr;

  void enqueue(int connection, InboundMessage&& m) {
    std::lock_guard lk(mu);
    inbox.push_back({connection, std::move(m)});
    cv.notify_one();
  }

  void publish(const Device& d, const core::Result<std::string>& topic, const std::string& payload) {
    if (!topic) return;  // ids were checked at start; a device topic cannot fail here
    // The esthesis agent publishes everything at QoS 0.
    (void)clients[static_cast<std::size_t>(d.connection)]->publish(*topic, payload,
                                                                   opts.esthesis_agent ? 0 : 1);
  }

  void reply(std::size_t di, const std::string& id, bool success, const std::string& output) {
    auto& d = devices[di];
    auto& o = outcomes[d.hw + "\n" + id];
    o.done = true;
    o.success = success;
    o.output = output;
    ++(success ? stats->replies_ok : stats->replies_failed);
    publish(d, topics.command_reply(d.hw), protocol::encode_reply_line(id, success, output));
  }

  void report_version(const Device& d) {
    publish(d, topics.metadata(d.hw), fmt::format("health firmware='{}'", d.version));
  }

  int latency_ms() {
    if (opts.latency_max_ms <= 0) return 0;
    std::uniform_int_distribution<int> dist(opts.latency_min_ms, opts.latency_max_ms);
    return dist(rng);
  }

  bool roll_failure() {
    if (opts.failure_rate <= 0.0) return false;
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    return dist(rng) < opts.failure_rate;
  }

  void on_command(std::size_t di, const std::string& text) {
    ++stats->commands_received;
    auto line = protocol::parse_command_line(text);
    if (!line) {
      // The agent logs and drops what it cannot parse.
      ++stats->malformed;
      return;
    }
    auto& d = devices[di];
    auto key = d.hw + "\n" + line->id;
    if (opts.esthesis_agent) {
      // No de-duplication: a line delivered again runs again (what PROTOCOL §1.3 v1.1 guards against).
      if (!outcomes.emplace(key, Outcome{}).second) ++stats->reruns;
      int delay = latency_ms();
      if (delay > 0) {
        timers.push(Timer{SteadyClock::now() + std::chrono::milliseconds(delay), di, text});
        return;
      }
      execute(di, *line);
      return;
    }
    if (auto it = outcomes.find(key); it != outcomes.end()) {
      ++stats->duplicates;
      if (it->second.done) {
        publish(d, topics.command_reply(d.hw),
                protocol::encode_reply_line(line->id, it->second.success, it->second.output));
      }
      return;
    }
    outcomes.emplace(key, Outcome{});
    int delay = latency_ms();
    if (delay > 0) {
      timers.push(Timer{SteadyClock::now() + std::chrono::milliseconds(delay), di, text});
      return;
    }
    execute(di, *line);
  }

  void execute(std::size_t di, const protocol::CommandLine& line) {
    using protocol::CommandType;
    if (roll_failure()) {
      reply(di, line.id, false,
            line.type == CommandType::firmware ? "simulated firmware failure" : "exit status 1");
      return;
    }
    switch (line.type) {
      case CommandType::exec: {
        std::string out = line.command == "echo" ? std::string() : "simulated: " + line.command;
        for (const auto& a : line.arguments) out += (out.empty() || out.back() == ' ' ? "" : " ") + a;
        reply(di, line.id, true, out);
        return;
      }
      case CommandType::reboot:
        reply(di, line.id, true, "reboot simulated");
        return;
      case CommandType::shutdown:
        reply(di, line.id, true, "shutdown simulated");
        return;
      case CommandType::ping: {
        auto& d = devices[di];
        publish(d, topics.ping(d.hw), fmt::format("health ping={}", core::format_rfc3339(wall_ms())));
        reply(di, line.id, true, "PING command was sent to the device.");
        return;
      }
      case CommandType::health:
        reply(di, line.id, true, "HEALTH command was sent to the device.");
        return;
      case CommandType::firmware:
        if (opts.esthesis_agent) {
          http_firmware(di, line);
        } else {
          start_firmware(di, line);
        }
        return;
    }
  }

  static core::TimeMs wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // The esthesis agent's firmware flow (esthesis-agent.md, "Firmware"): HTTP only, blocking like the
  // agent's, the static token when the device has a key. A success is `Firmware update initiated.`; the
  // update script's reboot is simulated by reporting the new version at once (the agent reports it when
  // it starts again).
  void http_firmware(std::size_t di, const protocol::CommandLine& line) {
    auto& d = devices[di];
    ++stats->firmware_queries;
    if (opts.agent_http.empty()) {
      reply(di, line.id, false, "Provisioning URL is empty.");
      ++stats->firmware_failed;
      return;
    }
    std::map<std::string, std::string> q{{"hardwareId", d.hw}};
    if (d.key) q["token"] = d.key->sign_base64(d.hw);
    std::string path;
    if (!line.command.empty()) {
      q["packageId"] = line.command;
      path = "/api/v1/provisioning/find/by-id?";
    } else {
      q["version"] = d.version;
      path = "/api/v1/provisioning/find?";
    }
    std::string query;
    for (const auto& [k, v] : q) {  // Go's url.Values.Encode: sorted keys
      if (!query.empty()) query += '&';
      query += k + "=" + httplib::detail::encode_query_param(v);
    }
    httplib::Client http(opts.agent_http);
    http.set_read_timeout(opts.firmware_timeout_s, 0);
    auto fail = [&](const std::string& why) {
      ++stats->firmware_failed;
      reply(di, line.id, false, why);
    };
    auto found = http.Get((path + query).c_str());
    if (!found)
      return fail(fmt::format("Could not get provisioning info: {}.", httplib::to_string(found.error())));
    if (found->status >= 400) {
      return fail(fmt::format("Could not get provisioning info due to '{}'. {}", found->status, found->body));
    }
    auto j = json::parse(found->body, nullptr, false);
    if (!j.is_object() || j.value("id", "").empty()) {
      ++stats->up_to_date;
      reply(di, line.id, false, "No provisioning info available.");
      return;
    }
    const std::string version = j.value("version", "");
    const std::string sha = j.value("sha256", "");
    if (j.value("type", "INTERNAL") == "INTERNAL") {
      auto bytes = http.Get(("/api/v1/provisioning/download?token=" +
                             httplib::detail::encode_query_param(j.value("downloadToken", "")))
                                .c_str());
      if (!bytes || bytes->status != 200) {
        return fail(fmt::format("Could not download firmware due to '{}'.", bytes ? bytes->status : 0));
      }
      stats->download_bytes += bytes->body.size();
      if (!sha.empty() && core::sha256_hex(bytes->body) != sha) return fail("Firmware checksum mismatch.");
      ++stats->downloads;
    }
    reply(di, line.id, true, "Firmware update initiated.");
    d.version = version;
    report_version(d);
  }

  void ping_all() {
    const std::string payload = fmt::format("health ping={}", core::format_rfc3339(wall_ms()));
    for (const auto& d : devices) publish(d, topics.ping(d.hw), payload);
    stats->pings += devices.size();
  }

  void start_firmware(std::size_t di, const protocol::CommandLine& line) {
    auto& d = devices[di];
    if (d.job) {
      reply(di, line.id, false, "Update already in progress, ignoring command.");
      return;
    }
    auto job = std::make_unique<FirmwareJob>();
    job->command_id = line.id;
    job->correlation_id = fmt::format("q-{}", next_correlation++);
    job->deadline = SteadyClock::now() + std::chrono::seconds(opts.firmware_timeout_s);
    json q{{"version", d.version}, {"correlation_id", job->correlation_id}};
    if (!line.command.empty()) q["package_id"] = line.command;
    if (d.key) {
      std::string ts = core::format_rfc3339(wall_ms());
      std::string nonce = core::random_hex(16);
      q["ts"] = ts;
      q["nonce"] = nonce;
      q["token"] = d.key->sign_base64(core::fresh_token_message(d.hw, ts, nonce));
    }
    d.job = std::move(job);
    active_jobs.insert(di);
    ++stats->firmware_queries;
    publish(d, topics.provisioning_request(d.hw), q.dump());
  }

  void finish_firmware(std::size_t di, bool success, const std::string& output) {
    auto& d = devices[di];
    if (!d.job) return;
    auto id = d.job->command_id;
    d.job.reset();
    active_jobs.erase(di);
    if (!success) ++stats->firmware_failed;
    reply(di, id, success, output);
  }

  void request_chunk(std::size_t di) {
    auto& d = devices[di];
    auto& job = *d.job;
    auto length = std::min<std::uint64_t>(opts.chunk_size, job.size - job.offset);
    job.correlation_id = fmt::format("d-{}", next_correlation++);
    json req{{"download_token", job.download_token},
             {"offset", job.offset},
             {"length", length},
             {"correlation_id", job.correlation_id}};
    publish(d, topics.provisioning_download(d.hw), req.dump());
  }

  void complete_download(std::size_t di) {
    auto& d = devices[di];
    auto digest = d.job->hasher.final_hex();
    if (!d.job->sha256.empty() && digest != d.job->sha256) {
      finish_firmware(di, false, "hash of downloaded file does not match");
      return;
    }
    ++stats->downloads;
    d.version = d.job->new_version;
    report_version(d);
    finish_firmware(di, true, fmt::format("Firmware updated to {}.", d.version));
  }

  void on_provisioning_reply(std::size_t di, const std::string& payload) {
    auto& d = devices[di];
    if (!d.job || d.job->downloading) return;
    auto j = json::parse(payload, nullptr, false);
    if (!j.is_object() || j.value("correlation_id", "") != d.job->correlation_id) return;
    if (auto err = error_of(j)) {
      finish_firmware(di, false, fmt::format("{}: {}", core::to_string(err->code), err->message));
      return;
    }
    auto status = j.value("status", "");
    if (status == "up_to_date") {
      ++stats->up_to_date;
      finish_firmware(di, true, "up to date");
      return;
    }
    if (status != "update" || !j.contains("package") || !j["package"].is_object()) {
      finish_firmware(di, false, "unreadable provisioning answer");
      return;
    }
    const auto& p = j["package"];
    auto& job = *d.job;
    job.new_version = p.value("version", "");
    job.sha256 = p.value("sha256", "");
    if (p.value("type", "internal") == "external") {
      // The simulator does not fetch URLs; an external package counts as installed.
      d.version = job.new_version;
      report_version(d);
      finish_firmware(di, true, fmt::format("Firmware updated to {} (external, not downloaded).", d.version));
      return;
    }
    job.download_token = p.value("download_token", "");
    job.size = p.contains("size") && p["size"].is_number_unsigned() ? p["size"].get<std::uint64_t>() : 0;
    job.downloading = true;
    if (job.size == 0) {
      complete_download(di);
      return;
    }
    request_chunk(di);
  }

  void on_data(std::size_t di, const std::string& payload) {
    auto& d = devices[di];
    if (!d.job || !d.job->downloading) return;
    auto frame = protocol::parse_frame(payload);
    if (!frame) {
      finish_firmware(di, false, "unreadable download frame: " + frame.error().message);
      return;
    }
    const auto& h = frame->header;
    if (h.value("correlation_id", "") != d.job->correlation_id) return;  // a re-delivered older chunk
    if (auto err = error_of(h)) {
      finish_firmware(di, false, fmt::format("{}: {}", core::to_string(err->code), err->message));
      return;
    }
    auto& job = *d.job;
    auto offset =
        h.contains("offset") && h["offset"].is_number_unsigned() ? h["offset"].get<std::uint64_t>() : 0;
    if (offset != job.offset || frame->body.empty()) {
      finish_firmware(di, false, "download frame out of order");
      return;
    }
    job.hasher.update(frame->body);
    job.offset += frame->body.size();
    stats->download_bytes += frame->body.size();
    if (job.offset >= job.size || h.value("last", false)) {
      complete_download(di);
    } else {
      request_chunk(di);
    }
  }

  void handle(const Inbound& in) {
    auto parsed = topics.parse(in.message.topic);
    if (!parsed || !parsed->valid) return;
    auto it = index.find(parsed->hardware_id);
    if (it == index.end()) return;  // another fleet's device on a shared broker
    switch (parsed->kind) {
      case protocol::TopicKind::command_request:
        on_command(it->second, in.message.payload);
        break;
      case protocol::TopicKind::provisioning_reply:
        on_provisioning_reply(it->second, in.message.payload);
        break;
      case protocol::TopicKind::provisioning_data:
        on_data(it->second, in.message.payload);
        break;
      default:
        break;
    }
  }

  void fire_timers() {
    auto now = SteadyClock::now();
    while (!timers.empty() && timers.top().due <= now) {
      auto t = timers.top();
      timers.pop();
      if (auto line = protocol::parse_command_line(t.command_line)) execute(t.device, *line);
    }
  }

  void expire_jobs() {
    auto now = SteadyClock::now();
    std::vector<std::size_t> late;
    for (auto di : active_jobs) {
      if (devices[di].job->deadline <= now) late.push_back(di);
    }
    for (auto di : late) finish_firmware(di, false, "provisioning timed out");
  }

  bool busy() const { return !timers.empty() || !active_jobs.empty(); }
};

Simulator::Simulator(SimOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->opts = std::move(options);
  impl_->rng.seed(impl_->opts.seed);
  impl_->stats = &stats_;
}

Simulator::~Simulator() {
  for (auto& c : impl_->clients) c->disconnect();
}

namespace {

// --agent esthesis with --agent-http: the agent's first start, POST /api/v1/agent/register; the private key
// of the answer is the device's (it signs the static provisioning token).
core::Status register_over_http(std::vector<Device>& devices, const SimOptions& opts, SimStats& stats,
                                std::string& first_error) {
  std::string tags;
  for (const auto& t : opts.tags) tags += (tags.empty() ? "" : ",") + t;
  std::string attributes;
  for (const auto& [k, v] : opts.attributes) attributes += (attributes.empty() ? "" : ",") + k + "=" + v;
  std::mutex mu;
  auto register_one = [&](std::size_t i) {
    httplib::Client http(opts.agent_http);
    http.set_read_timeout(opts.api_timeout_s, 0);
    json body{{"hardwareId", devices[i].hw},
              {"tags", tags},
              {"attributes", attributes},
              {"type", "CORE"},
              {"registrationSecret", opts.registration_secret}};
    auto r = http.Post("/api/v1/agent/register", body.dump(), "application/json");
    std::string error;
    if (!r) {
      error = "registration: " + httplib::to_string(r.error());
    } else if (r->status != 200) {
      error = fmt::format("registration answered {}", r->status);
    } else {
      auto j = json::parse(r->body, nullptr, false);
      auto key = core::PrivateKey::from_pem(j.is_object() ? j.value("privateKey", "") : "");
      if (key) {
        devices[i].key = std::move(*key);
      } else {
        error = "registration: unreadable privateKey: " + key.error().message;
      }
    }
    std::lock_guard lk(mu);
    if (error.empty()) {
      ++stats.registered;
    } else {
      ++stats.register_failed;
      if (first_error.empty()) first_error = error;
    }
  };
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < 8; ++w) {
    pool.emplace_back([&] {
      for (auto i = next.fetch_add(1); i < devices.size(); i = next.fetch_add(1)) register_one(i);
    });
  }
  for (auto& t : pool) t.join();
  if (stats.registered == 0) return make_error(ErrorCode::unavailable, "registration failed: " + first_error);
  return {};
}

core::Status register_fleet(Simulator& self, std::vector<Device>& devices, const SimOptions& opts,
                            SimStats& stats, std::string& first_error) {
  (void)self;
  if (opts.esthesis_agent && !opts.agent_http.empty())
    return register_over_http(devices, opts, stats, first_error);
  // Keys first, in parallel: RSA generation is slow.
  unsigned workers = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  {
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        for (std::size_t i = w; i < devices.size(); i += workers)
          devices[i].key = core::PrivateKey::generate(opts.key_type);
      });
    }
    for (auto& t : pool) t.join();
  }
  ClientOptions co = opts.mqtt;
  co.client_id = opts.mqtt.client_id.empty() ? std::string() : opts.mqtt.client_id + "-api";
  co.max_inflight = 64;
  ApiClient api(co, opts.api_timeout_s);
  if (auto err = api.connect()) return err->error;
  json attributes = json::object();
  for (const auto& [k, v] : opts.attributes) attributes[k] = v;
  std::mutex mu;
  auto register_one = [&](std::size_t i) {
    json body{{"hardware_id", devices[i].hw},
              {"public_key", devices[i].key->public_pem()},
              {"tags", opts.tags},
              {"attributes", attributes}};
    auto r = api.call("devices", "register", body);
    std::lock_guard lk(mu);
    if (r) {
      ++stats.registered;
    } else {
      ++stats.register_failed;
      if (first_error.empty()) first_error = r.error().text();
    }
  };
  register_one(0);  // alone: the first call subscribes the reply topic
  std::atomic<std::size_t> next{1};
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < 8; ++w) {
    pool.emplace_back([&] {
      for (auto i = next.fetch_add(1); i < devices.size(); i = next.fetch_add(1)) register_one(i);
    });
  }
  for (auto& t : pool) t.join();
  if (stats.registered == 0) return make_error(ErrorCode::unavailable, "registration failed: " + first_error);
  return {};
}

}  // namespace

core::Status Simulator::start() {
  auto& s = *impl_;
  const auto& o = s.opts;
  if (o.count < 1) return make_error(ErrorCode::bad_request, "--count must be at least 1");
  if (o.failure_rate < 0.0 || o.failure_rate > 1.0) {
    return make_error(ErrorCode::bad_request, "--failure-rate must be between 0 and 1");
  }
  if (o.latency_min_ms < 0 || o.latency_min_ms > o.latency_max_ms) {
    return make_error(ErrorCode::bad_request, "--latency-ms must be N or MIN-MAX with 0 <= MIN <= MAX");
  }
  if (o.esthesis_agent && o.ping_interval_s < 1) {
    return make_error(ErrorCode::bad_request, "--ping-interval must be at least 1 second");
  }
  if (!o.agent_http.empty() && o.agent_http.rfind("http://", 0) != 0 &&
      o.agent_http.rfind("https://", 0) != 0) {
    return make_error(ErrorCode::bad_request, "--agent-http must be an http:// or https:// URL");
  }
  if (o.connections < 0 || o.connections > o.count) {
    return make_error(ErrorCode::bad_request, "--connections must be between 0 and --count");
  }
  for (int i = 0; i < o.count; ++i) {
    Device d;
    d.hw = sim_hardware_id(o.prefix, i);
    if (auto st = protocol::check_hardware_id(d.hw, "device id"); !st) return st;
    d.version = o.version;
    d.connection = o.connections > 0 ? i % o.connections : 0;
    s.index.emplace(d.hw, s.devices.size());
    s.devices.push_back(std::move(d));
  }
  stats_.devices = s.devices.size();

  if (o.register_fleet) {
    if (auto st = register_fleet(*this, s.devices, o, stats_, first_register_error_); !st) return st;
  }

  int n_clients = std::max(1, o.connections);
  std::string base_id = o.mqtt.client_id.empty() ? "dispatch-sim-" + core::random_hex(4) : o.mqtt.client_id;
  for (int k = 0; k < n_clients; ++k) {
    ClientOptions co = o.mqtt;
    co.client_id = fmt::format("{}-{}", base_id, k);
    co.max_inflight = 1000;
    auto client = std::make_unique<MqttClient>(co);
    client->set_handler([this, k](InboundMessage&& m) { impl_->enqueue(k, std::move(m)); });
    s.clients.push_back(std::move(client));
  }
  // Paho completes a connect only on its next polling cycle (about a second): connecting the clients in
  // parallel keeps start-up time flat in the number of connections.
  {
    std::vector<core::Status> results(s.clients.size());
    std::vector<std::thread> pool;
    std::atomic<std::size_t> next{0};
    for (unsigned w = 0; w < std::min<std::size_t>(64, s.clients.size()); ++w) {
      pool.emplace_back([&] {
        for (auto i = next.fetch_add(1); i < s.clients.size(); i = next.fetch_add(1))
          results[i] = s.clients[i]->connect(10000);
      });
    }
    for (auto& t : pool) t.join();
    for (const auto& st : results) {
      if (!st) return st;
    }
  }

  using protocol::TopicKind;
  const TopicKind inbound[] = {TopicKind::command_request, TopicKind::provisioning_reply,
                               TopicKind::provisioning_data};
  // The esthesis agent subscribes to its command topic only, at QoS 0 (firmware goes over HTTP).
  const std::size_t n_inbound = o.esthesis_agent ? 1 : std::size(inbound);
  const int sub_qos = o.esthesis_agent ? 0 : 1;
  if (o.connections == 0) {
    // One wildcard per device-facing root: the fast path for large fleets.
    for (std::size_t k = 0; k < n_inbound; ++k) {
      if (auto st = s.clients[0]->subscribe(s.topics.device_filter(inbound[k]), sub_qos); !st) return st;
    }
  } else {
    for (const auto& d : s.devices) {
      for (std::size_t k = 0; k < n_inbound; ++k) {
        auto topic = s.topics.device(inbound[k], d.hw);
        if (!topic) return topic.error();
        if (auto st = s.clients[static_cast<std::size_t>(d.connection)]->subscribe(*topic, sub_qos); !st)
          return st;
      }
    }
  }
  // The agent pings at start, then reports its version (with --versionReport).
  if (o.esthesis_agent) s.ping_all();
  for (const auto& d : s.devices) s.report_version(d);
  for (auto& c : s.clients) c->flush(30000);
  return {};
}

void Simulator::run(const std::atomic<bool>& stop, double duration_s, double until_idle_s) {
  auto& s = *impl_;
  auto started = SteadyClock::now();
  auto last_activity = started;
  auto next_expiry_scan = started;
  auto next_ping = started + std::chrono::seconds(s.opts.ping_interval_s);
  const auto as_duration = [](double secs) {
    return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(secs));
  };
  while (!stop.load()) {
    auto now = SteadyClock::now();
    if (duration_s > 0 && now - started >= as_duration(duration_s)) break;
    if (until_idle_s > 0 && !s.busy() && now - last_activity >= as_duration(until_idle_s)) break;

    auto wait_until = now + std::chrono::milliseconds(200);
    if (s.opts.esthesis_agent) wait_until = std::min(wait_until, next_ping);
    if (!s.timers.empty()) wait_until = std::min(wait_until, s.timers.top().due);
    std::deque<Inbound> batch;
    {
      std::unique_lock lk(s.mu);
      s.cv.wait_until(lk, wait_until, [&] { return !s.inbox.empty(); });
      batch.swap(s.inbox);
    }
    if (!batch.empty()) last_activity = SteadyClock::now();
    for (const auto& in : batch) s.handle(in);
    s.fire_timers();
    if (s.opts.esthesis_agent && SteadyClock::now() >= next_ping) {
      s.ping_all();
      next_ping = SteadyClock::now() + std::chrono::seconds(s.opts.ping_interval_s);
    }
    if (SteadyClock::now() >= next_expiry_scan) {
      s.expire_jobs();
      next_expiry_scan = SteadyClock::now() + std::chrono::seconds(1);
    }
  }
  for (auto& c : s.clients) c->flush(10000);
}

}  // namespace dispatch::tools
