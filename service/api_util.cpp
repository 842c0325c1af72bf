#include "service/api_util.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/core/secrets.h"
#include "protocol/errors.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"

namespace dispatch::service {

core::Result<std::vector<std::string>> parse_tags(const nlohmann::json& body, std::string_view field) {
  auto tags = protocol::optional_string_array(body, field);
  if (!tags) return tags.error();
  std::vector<std::string> out = tags->value_or(std::vector<std::string>{});
  for (const auto& t : out) {
    if (!protocol::valid_object_id(t)) {
      return core::make_error(
          core::ErrorCode::bad_request,
          fmt::format("invalid tag in '{}': tags must match {}", field, protocol::k_object_id_pattern));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string request_fingerprint(const nlohmann::json& body) {
  nlohmann::json copy = body;
  copy.erase("reply_to");
  copy.erase("correlation_id");
  // nlohmann's object keys are sorted, so dump() is canonical.
  return core::sha256_hex(protocol::dump_json(copy));
}

}  // namespace dispatch::service
