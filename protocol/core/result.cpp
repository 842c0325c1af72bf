#include "protocol/core/result.h"

#include <array>

namespace dispatch::core {

namespace {
constexpr std::array<std::pair<ErrorCode, std::string_view>, 9> k_names{{
    {ErrorCode::bad_request, "bad_request"},
    {ErrorCode::not_found, "not_found"},
    {ErrorCode::conflict, "conflict"},
    {ErrorCode::unauthorized, "unauthorized"},
    {ErrorCode::rate_limited, "rate_limited"},
    {ErrorCode::token_invalid, "token_invalid"},
    {ErrorCode::too_large, "too_large"},
    {ErrorCode::unavailable, "unavailable"},
    {ErrorCode::internal, "internal"},
}};
}  // namespace

std::string_view to_string(ErrorCode code) {
  for (const auto& [c, name] : k_names) {
    if (c == code) return name;
  }
  return "internal";
}

std::optional<ErrorCode> error_code_from_string(std::string_view s) {
  for (const auto& [c, name] : k_names) {
    if (name == s) return c;
  }
  return std::nullopt;
}

}  // namespace dispatch::core
