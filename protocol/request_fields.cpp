#include "protocol/request_fields.h"

#include <fmt/format.h>

#include <algorithm>

#include "protocol/ids.h"
#include "protocol/json_request.h"

namespace dispatch::protocol {

core::Result<Page> parse_page(const nlohmann::json& body, CursorKind after_kind) {
  Page page;
  auto limit = optional_int(body, "limit", 1, Page::k_max_limit);
  if (!limit) return limit.error();
  page.limit = static_cast<int>(limit->value_or(Page::k_default_limit));
  if (after_kind == CursorKind::object_id) {
    auto after = optional_object_id(body, "after");
    if (!after) return after.error();
    page.after = *after;
    return page;
  }
  if (body.contains("after") && !body["after"].is_null()) {
    auto after = required_hardware_id(body, "after");
    if (!after) return after.error();
    page.after = *after;
  }
  return page;
}

core::Result<std::vector<std::string>> optional_tags(const nlohmann::json& body, std::string_view field) {
  auto tags = optional_string_array(body, field);
  if (!tags) return tags.error();
  std::vector<std::string> out = tags->value_or(std::vector<std::string>{});
  for (const auto& t : out) {
    if (!valid_object_id(t)) {
      return core::make_error(
          core::ErrorCode::bad_request,
          fmt::format("invalid tag in '{}': tags must match {}", field, k_object_id_pattern));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace dispatch::protocol
