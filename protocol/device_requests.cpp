#include "protocol/device_requests.h"

#include <fmt/format.h>

#include "protocol/core/signature.h"
#include "protocol/json_request.h"

namespace dispatch::protocol {

using core::ErrorCode;
using core::make_error;

core::Result<RegisterDeviceRequest> parse_register_device(const nlohmann::json& body) {
  RegisterDeviceRequest r;
  auto hw = required_hardware_id(body);
  if (!hw) return hw.error();
  if (*hw == "dispatchd" || *hw == "platform") {
    return make_error(ErrorCode::bad_request,
                      fmt::format("hardware_id '{}' is reserved for a broker role", *hw));
  }
  r.hardware_id = std::move(*hw);
  auto pem = required_string(body, "public_key");
  if (!pem) return pem.error();
  auto key = core::PublicKey::from_pem(*pem);
  if (!key)
    return make_error(ErrorCode::bad_request, fmt::format("field 'public_key': {}", key.error().message));
  r.public_key_pem = std::move(*pem);
  r.key_type = std::string(core::to_string(key->type()));
  auto tags = optional_tags(body, "tags");
  if (!tags) return tags.error();
  r.tags = std::move(*tags);
  auto attributes = optional_string_map(body, "attributes");
  if (!attributes) return attributes.error();
  r.attributes = std::move(*attributes);
  return r;
}

core::Result<DeviceRef> parse_device_ref(const nlohmann::json& body) {
  auto hw = required_hardware_id(body);
  if (!hw) return hw.error();
  return DeviceRef{std::move(*hw)};
}

core::Result<ListDevicesRequest> parse_list_devices(const nlohmann::json& body) {
  ListDevicesRequest r;
  auto tag = optional_object_id(body, "tag");
  if (!tag) return tag.error();
  r.tag = std::move(*tag);
  auto page = parse_page(body, CursorKind::hardware_id);
  if (!page) return page.error();
  r.page = std::move(*page);
  return r;
}

}  // namespace dispatch::protocol
