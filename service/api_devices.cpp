// devices/register|get|list|delete (PROTOCOL §3).
#include <fmt/format.h>

#include "protocol/core/signature.h"
#include "protocol/core/time.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "service/api_util.h"
#include "service/app.h"
#include "storage/devices.h"

namespace dispatch::service {

using core::ErrorCode;
using core::make_error;
using core::Result;

namespace {

nlohmann::json device_json(const storage::DeviceRow& d) {
  nlohmann::json j;
  j["hardware_id"] = d.hardware_id;
  j["key_type"] = d.key_type;
  j["public_key"] = d.public_key_pem;
  j["tags"] = d.tags;
  j["attributes"] = d.attributes;
  j["reported_version"] = d.reported_version ? nlohmann::json(*d.reported_version) : nlohmann::json(nullptr);
  j["properties"] = d.properties;
  j["created_at"] = core::format_rfc3339(d.created_at);
  j["updated_at"] = core::format_rfc3339(d.updated_at);
  j["last_seen"] = d.last_seen ? nlohmann::json(core::format_rfc3339(*d.last_seen)) : nlohmann::json(nullptr);
  return j;
}

}  // namespace

Result<nlohmann::json> App::api_devices_register(const Json& body, const InboundMessage&) {
  auto hw = protocol::required_hardware_id(body);
  if (!hw) return hw.error();
  // The broker ACL's per-device patterns apply to every user name: a device must not share a name with
  // the service's or the platform's certificate identity (scripts/broker/acl).
  if (*hw == "dispatchd" || *hw == "platform") {
    return make_error(ErrorCode::bad_request,
                      fmt::format("hardware_id '{}' is reserved for a broker role", *hw));
  }
  auto pem = protocol::required_string(body, "public_key");
  if (!pem) return pem.error();
  auto key = core::PublicKey::from_pem(*pem);
  if (!key)
    return make_error(ErrorCode::bad_request, fmt::format("field 'public_key': {}", key.error().message));
  auto tags = parse_tags(body, "tags");
  if (!tags) return tags.error();
  auto attributes = protocol::optional_string_map(body, "attributes");
  if (!attributes) return attributes.error();

  storage::DeviceRow row;
  row.hardware_id = *hw;
  row.public_key_pem = *pem;
  row.key_type = std::string(core::to_string(key->type()));
  row.tags = *tags;
  row.attributes = *attributes;
  auto created = devices_->upsert(row, clock_.now_ms());
  if (!created) return created.error();
  return nlohmann::json{{"hardware_id", *hw}, {"created", *created}};
}

Result<nlohmann::json> App::api_devices_get(const Json& body, const InboundMessage&) {
  auto hw = protocol::required_hardware_id(body);
  if (!hw) return hw.error();
  auto d = devices_->get(*hw);
  if (!d) return d.error();
  return device_json(*d);
}

Result<nlohmann::json> App::api_devices_list(const Json& body, const InboundMessage&) {
  storage::DeviceQuery q;
  auto tag = protocol::optional_object_id(body, "tag");
  if (!tag) return tag.error();
  q.tag = *tag;
  auto limit = protocol::optional_int(body, "limit", 1, 1000);
  if (!limit) return limit.error();
  q.limit = static_cast<int>(limit->value_or(100));
  if (body.contains("after") && !body["after"].is_null()) {
    auto after = protocol::required_hardware_id(body, "after");
    if (!after) return after.error();
    q.after = *after;
  }
  auto rows = devices_->list(q);
  if (!rows) return rows.error();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& d : *rows) list.push_back(device_json(d));
  nlohmann::json out{{"devices", list}};
  if (static_cast<int>(rows->size()) == q.limit && !rows->empty())
    out["next_after"] = rows->back().hardware_id;
  return out;
}

Result<nlohmann::json> App::api_devices_delete(const Json& body, const InboundMessage&) {
  auto hw = protocol::required_hardware_id(body);
  if (!hw) return hw.error();
  if (auto st = devices_->remove(*hw); !st) return st.error();
  return nlohmann::json{{"hardware_id", *hw}, {"deleted", true}};
}

}  // namespace dispatch::service
