// JSON requests (PROTOCOL "Conventions"): objects only, UTF-8, size- and depth-limited, unknown fields
// ignored. The only place nlohmann parse exceptions are caught for request payloads; the accessors give
// every handler the same error messages.
//
// A field whose value is JSON null is treated as absent everywhere below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::protocol {

struct JsonLimits {
  std::size_t max_bytes = 256 * 1024;
  int max_depth = 32;
};

// Parses a request payload into a JSON object. Checks, in this order:
//   too_large   "request of <N> bytes exceeds the limit of <M> bytes"   (before any parsing)
//   bad_request "JSON nesting deeper than <max_depth>"                  (a linear pre-scan, no recursion)
//   bad_request "malformed JSON: invalid UTF-8 at byte <k>" / "malformed JSON: syntax error at byte <k>"
//   bad_request "request must be a JSON object"
// Messages never quote the payload (it may hold a token).
core::Result<nlohmann::json> parse_json_object(std::string_view payload, const JsonLimits& limits = {});

// Field accessors. `object` must be a JSON object. Messages:
//   "missing required field '<f>'"
//   "field '<f>' must be a string" / "… must be an integer" / "… must be a boolean" /
//   "… must be an array of strings" / "… must be an object of strings" / "… must be an object"
//   "field '<f>' must be between <min> and <max>"
// all bad_request.
core::Result<std::string> required_string(const nlohmann::json& object, std::string_view field);
core::Result<std::optional<std::string>> optional_string(const nlohmann::json& object,
                                                         std::string_view field);

core::Result<std::int64_t> required_int(const nlohmann::json& object, std::string_view field,
                                        std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                                        std::int64_t max = std::numeric_limits<std::int64_t>::max());
core::Result<std::optional<std::int64_t>> optional_int(
    const nlohmann::json& object, std::string_view field,
    std::int64_t min = std::numeric_limits<std::int64_t>::min(),
    std::int64_t max = std::numeric_limits<std::int64_t>::max());

core::Result<bool> required_bool(const nlohmann::json& object, std::string_view field);
core::Result<std::optional<bool>> optional_bool(const nlohmann::json& object, std::string_view field);

// An array whose every element is a string (an empty array is fine).
core::Result<std::vector<std::string>> required_string_array(const nlohmann::json& object,
                                                             std::string_view field);
core::Result<std::optional<std::vector<std::string>>> optional_string_array(const nlohmann::json& object,
                                                                            std::string_view field);

// An object whose every value is a string (decision: numbers, booleans and nulls are refused rather than
// converted, so what a client stores is exactly what it reads back). Absent → empty map.
core::Result<std::map<std::string, std::string>> optional_string_map(const nlohmann::json& object,
                                                                     std::string_view field);

// A nested object (e.g. campaign "rate"); absent → nullopt.
core::Result<std::optional<nlohmann::json>> optional_object(const nlohmann::json& object,
                                                            std::string_view field);

// A string that must also be a valid id; the id messages of protocol/ids.h with the field name, e.g.
// "invalid hardware_id 'a/b': must match ^[A-Za-z0-9_-]{3,128}$".
core::Result<std::string> required_hardware_id(const nlohmann::json& object,
                                               std::string_view field = "hardware_id");
core::Result<std::string> required_object_id(const nlohmann::json& object, std::string_view field);
core::Result<std::optional<std::string>> optional_object_id(const nlohmann::json& object,
                                                            std::string_view field);
// An optional array of hardware ids; every element checked ("invalid hardware_ids '…': …").
core::Result<std::vector<std::string>> optional_hardware_id_array(const nlohmann::json& object,
                                                                  std::string_view field = "hardware_ids");

}  // namespace dispatch::protocol
