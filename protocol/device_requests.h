// The devices API requests (PROTOCOL §3 devices/register|get|list|delete) as typed values. Pure: a
// parsed JSON object in, a request or a bad_request Error out.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "protocol/core/result.h"
#include "protocol/request_fields.h"

namespace dispatch::protocol {

struct RegisterDeviceRequest {
  std::string hardware_id;
  std::string public_key_pem;     // as sent; a loadable public key
  std::string key_type;           // "ed25519", "ecdsa-p256" or "rsa" (core::to_string(KeyType))
  std::vector<std::string> tags;  // sorted, deduplicated
  std::map<std::string, std::string> attributes;
};

// devices/register. In this order: hardware_id (the id message), "hardware_id '<id>' is reserved for a
// broker role" for dispatchd and platform (the broker ACL's per-device patterns apply to every user
// name), public_key ("field 'public_key': <why the PEM is refused>"), tags, attributes. All bad_request.
core::Result<RegisterDeviceRequest> parse_register_device(const nlohmann::json& body);

// devices/get and devices/delete: `hardware_id`, required.
struct DeviceRef {
  std::string hardware_id;
};
core::Result<DeviceRef> parse_device_ref(const nlohmann::json& body);

// devices/list: an optional `tag` (an object id), then paging (`after` is a hardware id).
struct ListDevicesRequest {
  std::optional<std::string> tag;
  Page page;
};
core::Result<ListDevicesRequest> parse_list_devices(const nlohmann::json& body);

}  // namespace dispatch::protocol
