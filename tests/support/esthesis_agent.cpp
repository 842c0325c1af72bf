#include "tests/support/esthesis_agent.h"

#include <fcntl.h>
#include <httplib.h>
#include <mqtt/async_client.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "protocol/core/signature.h"

extern char** environ;

namespace dispatch::testing {
namespace {

using core::ErrorCode;
using core::make_error;
using namespace std::chrono_literals;

std::string topic(std::string_view kind, const std::string& hw) {
  return "esthesis/" + std::string(kind) + "/" + hw;
}

// Go's strings.TrimSpace for ASCII.
std::string trim(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\v\f";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

// Go's time.Now().Format(time.RFC3339) in local time: 2026-11-28T17:05:00Z or ...+01:00.
std::string rfc3339_local_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  long off = tm.tm_gmtoff;
  if (off == 0) return std::string(buf) + "Z";
  char zone[32];
  std::snprintf(zone, sizeof zone, "%c%02ld:%02ld", off < 0 ? '-' : '+', std::labs(off) / 3600,
                (std::labs(off) % 3600) / 60);
  return std::string(buf) + zone;
}

std::string sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  return out;
}

// "http://host:port/prefix" -> {"http://host:port", "/prefix"}.
std::pair<std::string, std::string> split_url(const std::string& url) {
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return {url, ""};
  std::string prefix = url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, slash), prefix};
}

// A client as the agent's (resty without timeouts): long timeouts, our own URL encoding.
std::unique_ptr<httplib::Client> http_client(const std::string& base) {
  auto c = std::make_unique<httplib::Client>(base);
  c->set_url_encode(false);
  c->set_connection_timeout(10s);
  c->set_read_timeout(600s);
  c->set_write_timeout(60s);
  c->enable_server_certificate_verification(false);  // test certificates are self-signed
  return c;
}

std::string json_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

}  // namespace

std::vector<std::string> split_single_spaces(std::string_view line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    auto sp = line.find(' ', start);
    out.emplace_back(line.substr(start, sp == std::string_view::npos ? std::string_view::npos : sp - start));
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  return out;
}

ParsedCommand parse_command(std::string_view line) {
  ParsedCommand c;
  auto parts = split_single_spaces(line);
  if (parts.size() < 2) return c;  // no_reply
  c.id = parts[0];
  // The agent slices parts[1][0:1] and parts[1][1:2] unchecked: a shorter token panics.
  if (parts[1].size() < 2) {
    c.outcome = ParsedCommand::Outcome::crash;
    return c;
  }
  c.type = parts[1][0];
  c.exec = parts[1][1];
  if (std::string_view("efrsph").find(c.type) == std::string_view::npos ||
      std::string_view("sa").find(c.exec) == std::string_view::npos) {
    return c;  // no_reply
  }
  if (parts.size() > 2) c.command = parts[2];
  for (size_t i = 3; i < parts.size(); ++i) c.arguments.push_back(parts[i]);
  c.outcome = ParsedCommand::Outcome::run;
  return c;
}

std::string query_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else if (ch == ' ') {
      out += '+';
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 0xf];
    }
  }
  return out;
}

std::string encode_query(const std::map<std::string, std::string>& values) {
  std::string out;
  for (const auto& [k, v] : values) {  // std::map: keys sorted, as url.Values.Encode sorts them
    if (!out.empty()) out += '&';
    out += query_escape(k) + "=" + query_escape(v);
  }
  return out;
}

core::Result<std::string> static_token(std::string_view private_key_pem, std::string_view hardware_id) {
  auto key = core::PrivateKey::from_pem(private_key_pem);
  if (!key) return key.error();
  return key->sign_base64(hardware_id);
}

EsthesisAgent::EsthesisAgent(EsthesisAgentOptions options) : options_(std::move(options)) {}

EsthesisAgent::~EsthesisAgent() { stop(); }

Registration EsthesisAgent::register_device() {
  Registration r;
  auto [base, path] = split_url(options_.registration_url);
  nlohmann::json body = {{"hardwareId", options_.hardware_id},
                         {"tags", options_.tags},
                         {"attributes", options_.attributes},
                         {"type", "CORE"},
                         {"registrationSecret", options_.registration_secret}};
  auto cli = http_client(base);
  auto res = cli->Post(path.c_str(), body.dump(), "application/json");
  if (!res) return r;
  r.status = res->status;
  r.body = res->body;
  if (r.status != 200) return r;
  auto j = nlohmann::json::parse(res->body, nullptr, false);
  if (!j.is_object()) return r;
  r.private_key_pem = json_string(j, "privateKey");
  r.public_key_pem = json_string(j, "publicKey");
  r.mqtt_server = json_string(j, "mqttServer");
  r.provisioning_url = json_string(j, "provisioningUrl");
  options_.private_key_pem = r.private_key_pem;
  options_.mqtt_server = r.mqtt_server;
  options_.provisioning_url = r.provisioning_url;
  return r;
}

core::Status EsthesisAgent::start() {
  stop();
  if (options_.mqtt_server.empty())
    return make_error(ErrorCode::bad_request, "no MQTT server (register first)");
  try {
    auto copts = mqtt::create_options_builder().mqtt_version(MQTTVERSION_3_1_1).finalize();
    client_ =
        std::make_unique<mqtt::async_client>(options_.mqtt_server, options_.hardware_id, copts, nullptr);
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      try {
        on_line(m->to_string());
      } catch (...) {
      }
    });
    // The agent subscribes again in its OnConnect handler after each reconnect (clean session).
    client_->set_connected_handler([this](const std::string&) {
      try {
        client_->subscribe(topic("command/request", options_.hardware_id), 0);
      } catch (...) {
      }
    });
    auto copt = mqtt::connect_options_builder()
                    .mqtt_version(MQTTVERSION_3_1_1)
                    .clean_session(true)
                    .keep_alive_interval(60s)
                    .automatic_reconnect(1s, 1s)
                    .finalize();
    if (!client_->connect(copt)->wait_for(10s) || !client_->is_connected()) {
      client_.reset();
      return make_error(ErrorCode::unavailable, "agent cannot connect to " + options_.mqtt_server);
    }
    if (!client_->subscribe(topic("command/request", options_.hardware_id), 0)->wait_for(10s)) {
      client_.reset();
      return make_error(ErrorCode::unavailable, "agent cannot subscribe");
    }
  } catch (const mqtt::exception& e) {
    client_.reset();
    return make_error(ErrorCode::unavailable, std::string("agent MQTT error: ") + e.what());
  }
  {
    std::lock_guard lk(mu_);
    running_ = true;
    lines_.clear();
  }
  publish_ping();
  if (options_.version_report) {
    const std::string line = "health firmware='" + current_version() + "'";
    {
      std::lock_guard lk(mu_);
      metadata_.push_back(line);
    }
    publish(topic("metadata", options_.hardware_id), line);
  }
  command_thread_ = std::thread([this] { command_loop(); });
  ping_thread_ = std::thread([this] { ping_loop(); });
  return {};
}

void EsthesisAgent::stop() {
  {
    std::lock_guard lk(mu_);
    running_ = false;
    for (int pid : children_) ::kill(-pid, SIGKILL);
  }
  cv_.notify_all();
  if (client_) {
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(2s);
    } catch (...) {
    }
  }
  if (command_thread_.joinable()) command_thread_.join();
  if (ping_thread_.joinable()) ping_thread_.join();
  std::vector<std::thread> asyncs;
  {
    std::lock_guard lk(async_mu_);
    asyncs.swap(async_threads_);
  }
  for (auto& t : asyncs) t.join();
  client_.reset();  // Paho's threads end here, before the members they use
  update_running_ = false;
}

core::Status EsthesisAgent::restart() {
  stop();
  return start();
}

bool EsthesisAgent::connected() const { return client_ && client_->is_connected(); }

void EsthesisAgent::on_line(std::string line) {
  std::lock_guard lk(mu_);
  if (!running_) return;
  lines_.push_back(std::move(line));
  cv_.notify_all();
}

void EsthesisAgent::command_loop() {
  for (;;) {
    std::string line;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return !running_ || !lines_.empty(); });
      if (!running_) return;
      line = std::move(lines_.front());
      lines_.pop_front();
    }
    ParsedCommand c = parse_command(line);
    if (c.outcome == ParsedCommand::Outcome::crash) {
      std::lock_guard lk(mu_);
      ++crashes_;
      continue;
    }
    if (c.outcome == ParsedCommand::Outcome::no_reply) continue;
    {
      std::lock_guard lk(mu_);
      ++executions_[c.id];
    }
    cv_.notify_all();
    run(c);
  }
}

void EsthesisAgent::run(const ParsedCommand& c) {
  const std::string reply_topic = topic("command/reply", options_.hardware_id);
  auto reply = [&](const std::string& line) {
    {
      std::lock_guard lk(mu_);
      if (!running_) return;  // stopped mid-command: a process that exits sends nothing
      replies_.push_back(line);
    }
    cv_.notify_all();
    publish(reply_topic, line);
  };
  switch (c.type) {
    case 'e':
      if (c.exec == 'a') {
        std::lock_guard lk(async_mu_);
        async_threads_.emplace_back([this, c, reply_topic] {
          std::string line = exec(c);
          {
            std::lock_guard lk2(mu_);
            if (!running_) return;
            replies_.push_back(line);
          }
          cv_.notify_all();
          publish(reply_topic, line);
        });
        return;
      }
      reply(exec(c));
      return;
    case 'f':
      reply(firmware(c));
      return;
    case 'r':
      reply(c.id + " f reboot script does not exist.");
      return;
    case 's':
      reply(c.id + " f shutdown script does not exist.");
      return;
    case 'p':
      publish_ping();
      reply(c.id + " s PING command was sent to the device.");
      return;
    case 'h':
      publish(topic("telemetry", options_.hardware_id), "health uptime=1i");
      reply(c.id + " s HEALTH command was sent to the device.");
      return;
    default:
      return;
  }
}

std::string EsthesisAgent::exec(const ParsedCommand& c) {
  ExecOutcome o =
      options_.executor ? options_.executor(c.command, c.arguments) : shell(c.command, c.arguments);
  if (o.ok) return c.id + " s " + trim(o.stdout_text);
  if (c.exec == 'a') return c.id + " f " + o.error + ": " + o.stderr_text;
  return c.id + " f " + o.error;
}

ExecOutcome EsthesisAgent::shell(const std::string& command, const std::vector<std::string>& arguments) {
  std::string script = command;
  for (const auto& a : arguments) script += " " + a;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return {false, "", "", "pipe failed"};
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return {false, "", "", "pipe failed"};
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group: stop() kills the whole tree
  posix_spawnattr_setpgroup(&attr, 0);
  std::string sh = "/bin/sh", dash_c = "-c";
  char* argv[] = {sh.data(), dash_c.data(), script.data(), nullptr};
  pid_t pid = -1;
  int rc;
  {
    std::lock_guard lk(mu_);
    rc = running_ ? posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ) : ECANCELED;
    if (rc == 0) children_.insert(pid);
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  ::close(err[1]);
  ExecOutcome o;
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    return {false, "", "", std::string("exec: ") + std::strerror(rc)};
  }
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&o.stdout_text, &o.stderr_text};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard lk(mu_);
    children_.erase(pid);
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return o;
  o.ok = false;
  if (WIFEXITED(st)) {
    o.error = "exit status " + std::to_string(WEXITSTATUS(st));
  } else if (WIFSIGNALED(st)) {
    o.error = std::string("signal: ") + (WTERMSIG(st) == SIGKILL ? "killed" : strsignal(WTERMSIG(st)));
  }
  return o;
}

// The agent's firmware flow (esthesis-agent.md, "Firmware: command f"), steps 1-7.
std::string EsthesisAgent::firmware(const ParsedCommand& c) {
  auto fail = [&](const std::string& text) { return c.id + " f " + text; };
  // 1. Preconditions.
  if (options_.provisioning_url.empty()) return fail("Provisioning URL is not set.");
  if (update_running_) return fail("An update is already running.");
  if (!options_.provisioning_script_exists) return fail("Provisioning script does not exist.");
  const std::string version = current_version();
  if (version.empty()) return fail("Could not read the current firmware version.");
  update_running_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{update_running_};

  // 2. The static token, only with --secureProvisioning.
  std::map<std::string, std::string> q{{"hardwareId", options_.hardware_id}};
  if (options_.secure_provisioning) {
    auto token = static_token(options_.private_key_pem, options_.hardware_id);
    if (!token) return fail("Could not sign the provisioning request: " + token.error().message);
    q["token"] = *token;
  }
  // 3. The query.
  auto [base, prefix] = split_url(options_.provisioning_url);
  std::string path;
  if (!c.command.empty()) {
    q["packageId"] = c.command;
    path = prefix + "/api/v1/provisioning/find/by-id?" + encode_query(q);
  } else {
    q["version"] = version;
    path = prefix + "/api/v1/provisioning/find?" + encode_query(q);
  }
  auto cli = http_client(base);
  auto res = cli->Get(path.c_str());
  if (!res) return fail("Could not get provisioning info due to '" + httplib::to_string(res.error()) + "'.");
  if (res->status >= 400) {
    return fail("Could not get provisioning info due to '" + std::to_string(res->status) + "'. " + res->body);
  }
  // 4. The fields, decoded only with a JSON Content-Type.
  nlohmann::json info = nlohmann::json::object();
  if (res->get_header_value("Content-Type").starts_with("application/json")) {
    info = nlohmann::json::parse(res->body, nullptr, false);
    if (!info.is_object()) info = nlohmann::json::object();
  }
  const std::string id = json_string(info, "id");
  if (id.empty()) return fail(std::string(k_reply_no_provisioning_info));
  const std::string new_version = json_string(info, "version"), type = json_string(info, "type"),
                    sha256 = json_string(info, "sha256");
  // 5. The download: INTERNAL from the provisioning URL with the token, EXTERNAL from its URL.
  std::string base2 = base, dpath;
  if (type == "INTERNAL") {
    dpath =
        prefix + "/api/v1/provisioning/download?token=" + query_escape(json_string(info, "downloadToken"));
  } else {
    auto [b, p] = split_url(json_string(info, "downloadUrl"));
    base2 = b;
    dpath = p.empty() ? "/" : p;
  }
  auto dcli = http_client(base2);
  auto file = dcli->Get(dpath.c_str());
  if (!file) {
    std::lock_guard lk(mu_);
    ++crashes_;  // the real agent dereferences the failed response and panics
    return fail("download transport error (the real agent crashes here)");
  }
  {
    std::lock_guard lk(mu_);
    last_firmware_ = file->body;
    last_download_status_ = file->status;
  }
  std::string dir = options_.download_dir;
  if (dir.empty()) dir = std::filesystem::path(options_.version_file).parent_path().string();
  std::ofstream(dir + "/" + id + ".bin", std::ios::binary) << file->body;
  // 6. The checksum (size is not checked).
  if (!sha256.empty() && sha256_hex(file->body) != sha256) return fail("Firmware file SHA256 mismatch.");
  // 7. firmware.sh "installs" the version; the agent reports it at its next start.
  std::ofstream(options_.version_file, std::ios::trunc) << new_version;
  return c.id + " s " + std::string(k_reply_firmware_initiated);
}

void EsthesisAgent::ping_loop() {
  std::unique_lock lk(mu_);
  while (running_) {
    if (cv_.wait_for(lk, options_.ping_interval, [&] { return !running_; })) return;
    lk.unlock();
    publish_ping();
    lk.lock();
  }
}

void EsthesisAgent::publish_ping() {
  {
    std::lock_guard lk(mu_);
    ++pings_;
  }
  publish(topic("ping", options_.hardware_id), "health ping=" + rfc3339_local_now());
}

void EsthesisAgent::publish(const std::string& t, const std::string& payload) {
  try {
    if (client_) client_->publish(t, payload.data(), payload.size(), 0, false);
  } catch (...) {
    // QoS 0 while disconnected: lost, as with the agent.
  }
}

int EsthesisAgent::executions_of(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = executions_.find(id);
  return it == executions_.end() ? 0 : it->second;
}

int EsthesisAgent::would_have_crashed() const {
  std::lock_guard lk(mu_);
  return crashes_;
}

std::vector<std::string> EsthesisAgent::replies() const {
  std::lock_guard lk(mu_);
  return replies_;
}

std::optional<std::string> EsthesisAgent::wait_for_reply(const std::string& id,
                                                         std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  std::optional<std::string> found;
  cv_.wait_for(lk, timeout, [&] {
    for (const auto& r : replies_) {
      if (r.size() > id.size() && r.compare(0, id.size(), id) == 0 && r[id.size()] == ' ') {
        found = r;
        return true;
      }
    }
    return false;
  });
  return found;
}

bool EsthesisAgent::wait_for_executions(const std::string& id, int n,
                                        std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] {
    auto it = executions_.find(id);
    return it != executions_.end() && it->second >= n;
  });
}

int EsthesisAgent::pings_sent() const {
  std::lock_guard lk(mu_);
  return pings_;
}

std::vector<std::string> EsthesisAgent::metadata_sent() const {
  std::lock_guard lk(mu_);
  return metadata_;
}

std::string EsthesisAgent::current_version() const {
  std::ifstream f(options_.version_file);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string v = ss.str();
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
  return v;
}

std::string EsthesisAgent::last_firmware() const {
  std::lock_guard lk(mu_);
  return last_firmware_;
}

int EsthesisAgent::last_download_status() const {
  std::lock_guard lk(mu_);
  return last_download_status_;
}

}  // namespace dispatch::testing
