#include "service/api_util.h"

#include "protocol/core/secrets.h"
#include "protocol/errors.h"
#include "protocol/request_fields.h"

namespace dispatch::service {

core::Result<std::vector<std::string>> parse_tags(const nlohmann::json& body, std::string_view field) {
  return protocol::optional_tags(body, field);
}

std::string request_fingerprint(const nlohmann::json& body) {
  nlohmann::json copy = body;
  copy.erase("reply_to");
  copy.erase("correlation_id");
  // nlohmann's object keys are sorted, so dump() is canonical.
  return core::sha256_hex(protocol::dump_json(copy));
}

}  // namespace dispatch::service
