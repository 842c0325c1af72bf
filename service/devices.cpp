#include "service/devices.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "protocol/core/semver.h"
#include "protocol/core/time.h"
#include "protocol/device_requests.h"
#include "protocol/elp.h"
#include "protocol/topics.h"
#include "service/logging.h"
#include "service/router.h"
#include "storage/devices.h"

namespace dispatch::service {

using core::Result;
using nlohmann::json;
using protocol::TopicKind;

namespace {

constexpr core::TimeMs k_seen_flush_ms = 1000;

json device_json(const storage::DeviceRow& d) {
  json j;
  j["hardware_id"] = d.hardware_id;
  j["key_type"] = d.key_type;
  j["public_key"] = d.public_key_pem;
  j["tags"] = d.tags;
  j["attributes"] = d.attributes;
  j["reported_version"] = d.reported_version ? json(*d.reported_version) : json(nullptr);
  j["properties"] = d.properties;
  j["created_at"] = core::format_rfc3339(d.created_at);
  j["updated_at"] = core::format_rfc3339(d.updated_at);
  j["last_seen"] = d.last_seen ? json(core::format_rfc3339(*d.last_seen)) : json(nullptr);
  return j;
}

}  // namespace

DevicesModule::DevicesModule(const Config& config, core::Clock& clock, storage::Database& db)
    : config_(config), clock_(clock), devices_(std::make_unique<storage::DeviceStore>(db)) {}

DevicesModule::~DevicesModule() = default;

void DevicesModule::register_routes(Router& router) {
  router.add_api("devices", "register", [this](const json& b) { return register_device(b); });
  router.add_api("devices", "get", [this](const json& b) { return get(b); });
  router.add_api("devices", "list", [this](const json& b) { return list(b); });
  router.add_api("devices", "delete", [this](const json& b) { return remove(b); });
  const auto limit = static_cast<std::size_t>(config_.api_max_request_bytes);
  router.add_device(TopicKind::metadata, limit,
                    [this](const std::string& hw, const InboundMessage& m) { on_metadata(hw, m); });
  // A ping is presence only (the router's device hook).
  router.add_device(TopicKind::ping, limit, [](const std::string&, const InboundMessage&) {});
}

void DevicesModule::seen(const std::string& hw) { seen_[hw] = clock_.now_ms(); }

void DevicesModule::flush(bool force) {
  const core::TimeMs now = clock_.now_ms();
  if (seen_.empty() || !(force || now - last_seen_flush_ >= k_seen_flush_ms)) return;
  std::vector<std::string> ids;
  ids.reserve(seen_.size());
  for (const auto& [hw, t] : seen_) ids.push_back(hw);
  if (auto n = devices_->touch_last_seen(ids, now); !n)
    spdlog::warn("last_seen not updated: {}", n.error().message);
  seen_.clear();
  last_seen_flush_ = now;
}

Result<json> DevicesModule::register_device(const json& body) {
  auto req = protocol::parse_register_device(body);
  if (!req) return req.error();
  storage::DeviceRow row;
  row.hardware_id = req->hardware_id;
  row.public_key_pem = req->public_key_pem;
  row.key_type = req->key_type;
  row.tags = req->tags;
  row.attributes = req->attributes;
  auto created = devices_->upsert(row, clock_.now_ms());
  if (!created) return created.error();
  return json{{"hardware_id", req->hardware_id}, {"created", *created}};
}

Result<json> DevicesModule::get(const json& body) {
  auto req = protocol::parse_device_ref(body);
  if (!req) return req.error();
  flush(true);  // a read shows every message seen so far, not the state of the last batch
  auto d = devices_->get(req->hardware_id);
  if (!d) return d.error();
  return device_json(*d);
}

Result<json> DevicesModule::list(const json& body) {
  auto req = protocol::parse_list_devices(body);
  if (!req) return req.error();
  flush(true);
  storage::DeviceQuery q;
  q.tag = req->tag;
  q.limit = req->page.limit;
  q.after = req->page.after;
  auto rows = devices_->list(q);
  if (!rows) return rows.error();
  json list = json::array();
  for (const auto& d : *rows) list.push_back(device_json(d));
  json out{{"devices", list}};
  if (static_cast<int>(rows->size()) == q.limit && !rows->empty())
    out["next_after"] = rows->back().hardware_id;
  return out;
}

Result<json> DevicesModule::remove(const json& body) {
  auto req = protocol::parse_device_ref(body);
  if (!req) return req.error();
  if (auto st = devices_->remove(req->hardware_id); !st) return st.error();
  return json{{"hardware_id", req->hardware_id}, {"deleted", true}};
}

void DevicesModule::on_metadata(const std::string& hw, const InboundMessage& m) {
  auto values = protocol::parse_elp(m.payload);
  if (!values) {
    ++counters_.metadata_malformed;
    log_limited(spdlog::level::warn, "metadata.malformed", {{"hardware_id", hw}},
                "dropping malformed metadata: {}", values.error().message);
    return;
  }
  std::map<std::string, std::string> props;
  std::optional<std::string> version;
  for (const auto& v : *values) {
    props[v.category + "." + v.name] = v.value;
    if (v.category == "health" && v.name == "firmware") {
      if (auto sv = core::parse_semver(v.value)) version = core::format(*sv);
    }
  }
  const core::TimeMs now = clock_.now_ms();
  auto dropped =
      devices_->set_properties(hw, props, now, static_cast<std::size_t>(config_.devices_max_properties),
                               static_cast<std::size_t>(config_.devices_max_properties_bytes));
  if (!dropped) {
    if (dropped.error().code != core::ErrorCode::not_found)
      log_limited(spdlog::level::err, "metadata.not_recorded", {{"hardware_id", hw}},
                  "metadata not recorded: {}", dropped.error().message);
    return;  // metadata of unregistered devices is not kept
  }
  if (*dropped > 0) {
    counters_.properties_dropped += static_cast<std::uint64_t>(*dropped);
    log_limited(spdlog::level::warn, "metadata.bounded", {{"hardware_id", hw}},
                "dropped {} metadata properties past the bounds (devices.max_properties {}, "
                "devices.max_properties_bytes {})",
                *dropped, config_.devices_max_properties, config_.devices_max_properties_bytes);
  }
  if (!version) return;
  if (auto s = devices_->set_reported_version(hw, *version, now); !s) {
    log_limited(spdlog::level::err, "version.not_recorded", {{"hardware_id", hw}},
                "reported version not recorded: {}", s.error().message);
    return;
  }
  if (on_version_) on_version_(hw, *version);
}

}  // namespace dispatch::service
