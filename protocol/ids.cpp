#include "protocol/ids.h"

#include <fmt/format.h>

#include <algorithm>

namespace dispatch::protocol {

namespace {

bool is_alnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A hand-written check rather than std::regex: it is on every incoming message's path and must not
// depend on locale.
template <class Allowed>
bool all_of_length(std::string_view s, std::size_t min, std::size_t max, Allowed allowed) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s) {
    if (!allowed(c)) return false;
  }
  return true;
}

}  // namespace

bool valid_hardware_id(std::string_view id) {
  return all_of_length(id, 3, 128, [](char c) { return is_alnum(c) || c == '_' || c == '-'; });
}

bool valid_object_id(std::string_view id) {
  return all_of_length(id, 1, 128,
                       [](char c) { return is_alnum(c) || c == '_' || c == '-' || c == '.' || c == ':'; });
}

core::Status check_hardware_id(std::string_view id, std::string_view field_name) {
  if (valid_hardware_id(id)) return {};
  return core::make_error(
      core::ErrorCode::bad_request,
      fmt::format("invalid {} '{}': must match {}", field_name, printable(id), k_hardware_id_pattern));
}

core::Status check_object_id(std::string_view id, std::string_view field_name) {
  if (valid_object_id(id)) return {};
  return core::make_error(
      core::ErrorCode::bad_request,
      fmt::format("invalid {} '{}': must match {}", field_name, printable(id), k_object_id_pattern));
}

std::string printable(std::string_view text, std::size_t max_bytes) {
  std::string out;
  const std::size_t n = std::min(text.size(), max_bytes);
  out.reserve(n + 3);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace dispatch::protocol
