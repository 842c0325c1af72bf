// THE one mapping of an Error to the wire (PROTOCOL §5):
//   {"error":{"code":"<code>","message":"<message>"[,"retry_after_s":<n>]}[,"correlation_id":"<id>"]}
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "protocol/core/result.h"

namespace dispatch::protocol {

// {"error":{"code":…,"message":…}}; "retry_after_s" is added inside "error" when error.retry_after_s is set.
nlohmann::json error_json(const core::Error& error);

// error_json serialized, with a top-level "correlation_id" when one is given. Invalid UTF-8 in the
// message or correlation id is replaced (U+FFFD), never thrown.
std::string error_payload(const core::Error& error,
                          const std::optional<std::string>& correlation_id = std::nullopt);

// Serializes any answer document without throwing on invalid UTF-8 (replaced by U+FFFD): use for every
// JSON the service publishes.
std::string dump_json(const nlohmann::json& document);

}  // namespace dispatch::protocol
