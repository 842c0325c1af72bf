#include "service/agent_api.h"

#include <spdlog/spdlog.h>

#include <any>
#include <nlohmann/json.hpp>
#include <set>

#include "protocol/core/keygen.h"
#include "protocol/core/secrets.h"
#include "protocol/device_requests.h"
#include "protocol/ids.h"
#include "service/devices.h"
#include "service/http/byte_range.h"
#include "service/logging.h"
#include "service/provisioning.h"

namespace dispatch::service {

using core::ErrorCode;
using Json = nlohmann::json;

namespace {

constexpr std::string_view k_find = "/api/v1/provisioning/find";
constexpr std::string_view k_find_by_id = "/api/v1/provisioning/find/by-id";
constexpr std::string_view k_download = "/api/v1/provisioning/download";

http::HttpReply status_only(int status) {
  http::HttpReply r;
  r.status = status;
  return r;
}

http::HttpReply text(int status, std::string body) {
  http::HttpReply r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body) + "\n";
  return r;
}

http::HttpReply json_reply(const Json& body) {
  http::HttpReply r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = body.dump();
  return r;
}

// Our error codes as esthesis status codes. 401 and 429 have empty bodies, as in esthesis CORE.
http::HttpReply refusal(const core::Error& e) {
  switch (e.code) {
    case ErrorCode::rate_limited: {
      auto r = status_only(429);
      r.headers.emplace_back("Retry-After",
                             std::to_string(std::max<std::int64_t>(e.retry_after_s.value_or(1), 1)));
      return r;
    }
    case ErrorCode::unauthorized:
      return status_only(401);
    case ErrorCode::token_invalid:
    case ErrorCode::not_found:
      return text(404, e.message);
    case ErrorCode::bad_request:
    case ErrorCode::too_large:
      return text(400, e.message);
    case ErrorCode::unavailable:
      return text(503, e.message);
    default:
      return text(500, "internal error");
  }
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// The agent sends tags and attributes as comma-separated strings ("a,b" and "k=v,k2=v2").
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    auto item = trim(std::string_view(s).substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

// A string field of the registration body; empty when absent or null, nullopt when of another type.
std::optional<std::string> string_field(const Json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::string();
  if (!it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

bool is_register_path(std::string_view path) {
  return path == "/api/v1/agent/register" || path == "/api/v1/register";
}

// The outcome of the registration checks that need no service state: a refusal to send, or the device
// as devices/register would store it (without its key yet).
struct Registration {
  std::optional<http::HttpReply> refusal;
  bool wrong_secret = false;  // the refusal is a wrong registration secret (logged by the loop)
  std::string hardware_id;
  Json device;
};

Registration refused(http::HttpReply reply) { return Registration{std::move(reply), false, {}, {}}; }

// The registration's checks that need only the config and the request, in esthesis's order. Shared by
// the loop and prepare() (an HTTP worker) so that a key is made only for what the loop would accept
// this far.
Registration check_registration(const Config& config, const http::HttpRequest& r) {
  const RegistrationMode mode = config.registration_mode;
  if (mode == RegistrationMode::disabled) return refused(text(403, "registration is disabled"));
  Json body = Json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return refused(text(400, "the body must be a JSON object"));
  auto hw = string_field(body, "hardwareId");
  auto tags = string_field(body, "tags");
  auto attributes = string_field(body, "attributes");
  auto secret = string_field(body, "registrationSecret");
  if (!hw || !tags || !attributes || !secret) {
    return refused(text(400, "hardwareId, tags, attributes and registrationSecret must be strings"));
  }
  if (auto st = protocol::check_hardware_id(*hw, "hardwareId"); !st)
    return refused(text(400, st.error().message));
  if (mode == RegistrationMode::open_with_secret &&
      !core::constant_time_equal(*secret, config.registration_secret)) {
    return Registration{status_only(401), true, *hw, {}};  // 401 with an empty body, as in esthesis CORE
  }
  Json device{{"hardware_id", *hw}, {"tags", split_commas(*tags)}, {"attributes", Json::object()}};
  for (const auto& pair : split_commas(*attributes)) {
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0)
      return refused(text(400, "attributes must be comma-separated key=value pairs"));
    device["attributes"][trim(pair.substr(0, eq))] = trim(pair.substr(eq + 1));
  }
  return Registration{std::nullopt, false, *hw, std::move(device)};
}

}  // namespace

AgentApi::AgentApi(const Config& config, DevicesModule& devices, Provisioning& provisioning)
    : config_(config), devices_(devices), provisioning_(provisioning) {}

core::Status AgentApi::start() const {
  if (config_.registration_mode == RegistrationMode::open_with_secret &&
      config_.registration_secret.empty()) {
    return core::make_error(ErrorCode::bad_request,
                            "registration.mode = open_with_secret needs a non-empty registration.secret");
  }
  if (config_.registration_mode == RegistrationMode::open) {
    spdlog::warn("registration.mode = open: any client reaching the agent listener can register a device");
  }
  return {};
}

void AgentApi::handle(const http::HttpExchange& x, Answers& out) {
  const http::HttpRequest& r = *x.request;
  if (r.path == k_download && r.method == "GET") {
    if (auto tag = provisioning_.stream_in_progress(r.param("token").value_or(""))) {
      waiting_[*tag].push_back(x);
      return;
    }
  }
  out.emplace_back(x.reply, route(r));
}

http::HttpReply AgentApi::route(const http::HttpRequest& r) {
  try {
    if (r.path == k_find || r.path == k_find_by_id || r.path == k_download) {
      if (r.method != "GET") return text(405, "use GET");
      if (r.path == k_download) return download(r);
      return find(r, r.path == k_find_by_id);
    }
    if (is_register_path(r.path)) {
      if (r.method != "POST") return text(405, "use POST");
      return register_agent(r);
    }
    return text(404, "not found");
  } catch (const std::exception& e) {
    log_limited(spdlog::level::err, "agent_http.threw", {}, "agent HTTP {} {} failed unexpectedly: {}",
                r.method, escape_text(r.path), e.what());
    return text(500, "internal error");
  }
}

http::HttpReply AgentApi::find(const http::HttpRequest& r, bool by_id) {
  const std::string hw = r.param("hardwareId").value_or("");
  if (auto st = protocol::check_hardware_id(hw, "hardwareId"); !st) return text(400, st.error().message);
  // The fields of a §2.1 query, read by the same parser and checked in the same order as over MQTT.
  Json body = Json::object();
  if (by_id) {
    body["package_id"] = r.param("packageId").value_or("");
  } else if (auto v = r.param("version"); v && !v->empty()) {
    body["version"] = *v;
  }
  if (auto t = r.param("token"); t && !t->empty()) {
    body["token"] = *t;
  } else if (config_.provisioning_token != TokenMode::off) {
    // An agent without --secureProvisioning sends no token: a signature that verifies nothing, so the
    // query is counted and refused (401) like a bad signature, not as a malformed query.
    body["token"] = "AAAA";
  }
  auto answer = provisioning_.query(hw, body);
  if (!answer) return refusal(answer.error());
  Json out{{"id", ""},  {"name", ""},   {"version", ""},       {"type", ""},
           {"size", 0}, {"sha256", ""}, {"downloadToken", ""}, {"downloadUrl", ""}};
  if (answer->value("status", "") == "update") {
    const Json& p = (*answer)["package"];
    out["id"] = p.value("id", "");
    out["name"] = p.value("name", "");
    out["version"] = p.value("version", "");
    out["type"] = upper(p.value("type", ""));
    out["size"] = p.value("size", std::int64_t{0});
    out["sha256"] = p.value("sha256", "");
    out["downloadToken"] = p.value("download_token", "");
    out["downloadUrl"] = p.value("url", "");
  }
  return json_reply(out);
}

http::HttpReply AgentApi::download(const http::HttpRequest& r) {
  auto stream = provisioning_.begin_stream(r.param("token").value_or(""));
  if (!stream) {
    if (stream.error().code == ErrorCode::token_invalid) return status_only(404);
    return refusal(stream.error());
  }
  const auto total = static_cast<std::uint64_t>(stream->size);
  // The listener answers an unsatisfiable Range (416) without reporting a stream: do it here instead.
  if (http::select_range(r.range, total).kind == http::RangeSelection::Kind::unsatisfiable) {
    provisioning_.abandon_stream(stream->tag);
    auto reply = status_only(416);
    reply.headers.emplace_back("Content-Range", "bytes */" + std::to_string(total));
    return reply;
  }
  http::HttpReply reply;
  reply.file = http::FileBody{stream->path, 0, total, stream->tag};
  return reply;
}

void AgentApi::on_streamed(const http::HttpStreamed& s, Answers& out) {
  provisioning_.end_stream(s.stream_tag, static_cast<std::int64_t>(s.first),
                           static_cast<std::int64_t>(s.bytes_sent));
  auto it = waiting_.find(s.stream_tag);
  if (it == waiting_.end()) return;
  auto waiting = std::move(it->second);
  waiting_.erase(it);
  for (const auto& x : waiting) handle(x, out);
}

void AgentApi::on_abandoned(const http::HttpReply& reply, Answers& out) {
  if (!reply.file) return;
  provisioning_.abandon_stream(reply.file->stream_tag);
  auto it = waiting_.find(reply.file->stream_tag);
  if (it == waiting_.end()) return;
  auto waiting = std::move(it->second);
  waiting_.erase(it);
  for (const auto& x : waiting) handle(x, out);
}

http::HttpReply AgentApi::register_agent(const http::HttpRequest& r) {
  Registration reg = check_registration(config_, r);
  if (reg.wrong_secret) {
    log_limited(spdlog::level::warn, "registration.wrong_secret", {{"hardware_id", reg.hardware_id}},
                "registration refused: wrong registration secret");
  }
  if (reg.refusal) return std::move(*reg.refusal);
  const std::string& hw = reg.hardware_id;
  Json& device = reg.device;
  const RegistrationMode mode = config_.registration_mode;

  auto existing = devices_.get(Json{{"hardware_id", hw}});
  if (!existing && existing.error().code != ErrorCode::not_found) return refusal(existing.error());
  if (existing && !existing->value("public_key", "").empty())
    return text(409, "the device is already registered");
  if (!existing && mode == RegistrationMode::id) {
    log_limited(spdlog::level::warn, "registration.not_preregistered", {{"hardware_id", hw}},
                "registration refused: not pre-registered (registration.mode = id)");
    return text(403, "the device is not pre-registered");
  }
  if (existing) {  // pre-created: keep what the operator gave it, add what the agent says
    std::set<std::string> all;
    for (const auto& t : (*existing)["tags"]) all.insert(t.get<std::string>());
    for (const auto& t : device["tags"]) all.insert(t.get<std::string>());
    device["tags"] = all;
    for (const auto& [k, v] : (*existing)["attributes"].items()) device["attributes"][k] = v;
  }
  if (auto parsed = protocol::parse_register_device(device); !parsed) return refusal(parsed.error());

  // The key pair was made by prepare() on the HTTP worker: RSA 2048 would stall this (the loop) thread
  // for 50-300 ms per registration.
  const auto* key = std::any_cast<core::Result<core::GeneratedKeyPair>>(&r.prepared);
  if (!key) {
    log_limited(spdlog::level::err, "registration.no_key", {{"hardware_id", hw}},
                "registration refused: no key pair was made on the HTTP worker (the listener has no "
                "prepare hook)");
    return text(500, "internal error");
  }
  if (!*key) return refusal(key->error());
  device["public_key"] = (*key)->public_key_spki_pem;
  auto stored = devices_.register_device(device);
  if (!stored) return refusal(stored.error());
  log_debug({{"hardware_id", hw}}, "device registered over HTTP (registration.mode = {})", to_string(mode));
  return json_reply(Json{{"certificate", ""},
                         {"publicKey", (*key)->public_key_spki_pem},
                         {"privateKey", (*key)->private_key_pkcs8_pem},
                         {"mqttServer", config_.registration_mqtt_server},
                         {"provisioningUrl", config_.registration_provisioning_url},
                         {"rootCaCertificate", ""}});
}

void AgentApi::prepare(const Config& config, http::HttpRequest& r) {
  if (r.method != "POST" || !is_register_path(r.path)) return;
  if (check_registration(config, r).refusal) return;
  r.prepared = core::generate_rsa_key(2048);
}

}  // namespace dispatch::service
