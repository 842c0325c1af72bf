#include "protocol/errors.h"

namespace dispatch::protocol {

nlohmann::json error_json(const core::Error& error) {
  nlohmann::json body = {{"code", std::string(core::to_string(error.code))}, {"message", error.message}};
  if (error.retry_after_s) body["retry_after_s"] = *error.retry_after_s;
  return nlohmann::json{{"error", std::move(body)}};
}

std::string error_payload(const core::Error& error, const std::optional<std::string>& correlation_id) {
  nlohmann::json document = error_json(error);
  if (correlation_id) document["correlation_id"] = *correlation_id;
  return dump_json(document);
}

std::string dump_json(const nlohmann::json& document) {
  // The default handler throws on invalid UTF-8; an echoed client string must not be able to do that.
  return document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dispatch::protocol
