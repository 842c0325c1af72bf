// Small request helpers shared by the API handlers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::service {

// protocol::optional_tags (kept for the provisioning module).
core::Result<std::vector<std::string>> parse_tags(const nlohmann::json& body, std::string_view field);

// SHA-256 of the canonical JSON of a request body without the transport fields (reply_to, correlation_id):
// the identity of a request for request_id idempotency.
std::string request_fingerprint(const nlohmann::json& body);

}  // namespace dispatch::service
