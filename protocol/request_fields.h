// Request fields shared by several API resources: paging (`limit`, `after`) and tag lists. Pure
// functions over a parsed JSON object (protocol/json_request.h); every failure is bad_request with the
// json_request messages.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/core/result.h"

namespace dispatch::protocol {

// What kind of id a list's `after` cursor is.
enum class CursorKind { object_id, hardware_id };

struct Page {
  static constexpr int k_default_limit = 100;
  static constexpr int k_max_limit = 1000;
  int limit = k_default_limit;       // `limit`: 1..1000, default 100
  std::optional<std::string> after;  // `after`: the last id of the previous page; absent or null = first
};

// `limit` then `after`. Errors: "field 'limit' must be between 1 and 1000", "field 'limit' must be an
// integer", and the id messages of protocol/ids.h for a malformed `after`.
core::Result<Page> parse_page(const nlohmann::json& body, CursorKind after_kind);

// An optional array of tags; each must be an object id (^[A-Za-z0-9_.:-]{1,128}$): "invalid tag in
// '<field>': tags must match …". Absent or null = empty. Sorted, deduplicated.
core::Result<std::vector<std::string>> optional_tags(const nlohmann::json& body, std::string_view field);

}  // namespace dispatch::protocol
