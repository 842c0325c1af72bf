#include "protocol/json_request.h"

#include <fmt/format.h>

#include "protocol/ids.h"

namespace dispatch::protocol {

namespace {

using core::ErrorCode;
using core::make_error;
using nlohmann::json;

core::Error bad(std::string message) { return make_error(ErrorCode::bad_request, std::move(message)); }

// Counts [ and { outside strings. A linear scan cannot overflow the stack whatever the input; it may
// miscount only on input that the parser then rejects anyway.
bool deeper_than(std::string_view payload, int max_depth) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : payload) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// nullptr when the field is absent or null.
const json* find(const json& object, std::string_view field) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(field);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

core::Error missing(std::string_view field) { return bad(fmt::format("missing required field '{}'", field)); }

core::Result<std::int64_t> as_int(const json& value, std::string_view field, std::int64_t min,
                                  std::int64_t max) {
  if (!value.is_number_integer()) return bad(fmt::format("field '{}' must be an integer", field));
  bool in_range = false;
  std::int64_t v = 0;
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      v = static_cast<std::int64_t>(u);
      in_range = v >= min && v <= max;
    }
  } else {
    v = value.get<std::int64_t>();
    in_range = v >= min && v <= max;
  }
  if (!in_range) return bad(fmt::format("field '{}' must be between {} and {}", field, min, max));
  return v;
}

core::Result<std::vector<std::string>> as_string_array(const json& value, std::string_view field) {
  const auto error = [&] { return bad(fmt::format("field '{}' must be an array of strings", field)); };
  if (!value.is_array()) return error();
  std::vector<std::string> out;
  out.reserve(value.size());
  for (const auto& element : value) {
    if (!element.is_string()) return error();
    out.push_back(element.get<std::string>());
  }
  return out;
}

}  // namespace

core::Result<json> parse_json_object(std::string_view payload, const JsonLimits& limits) {
  if (payload.size() > limits.max_bytes) {
    return make_error(ErrorCode::too_large, fmt::format("request of {} bytes exceeds the limit of {} bytes",
                                                        payload.size(), limits.max_bytes));
  }
  if (deeper_than(payload, limits.max_depth))
    return bad(fmt::format("JSON nesting deeper than {}", limits.max_depth));
  // nlohmann's lexer takes a NUL byte for the end of input and would ignore whatever follows it; a raw
  // NUL is never valid JSON, so refuse it here.
  if (const auto nul = payload.find('\0'); nul != std::string_view::npos) {
    return bad(fmt::format("malformed JSON: syntax error at byte {}", nul + 1));
  }
  json value;
  try {
    value = json::parse(payload.begin(), payload.end());
  } catch (const json::parse_error& e) {
    // e.what() quotes the last token read, which may be part of a secret: report only the position.
    const bool utf8 = std::string_view(e.what()).find("UTF-8") != std::string_view::npos;
    return bad(fmt::format("malformed JSON: {} at byte {}", utf8 ? "invalid UTF-8" : "syntax error", e.byte));
  } catch (const json::exception& e) {
    return bad(fmt::format("malformed JSON: error {}", e.id));
  }
  if (!value.is_object()) return bad("request must be a JSON object");
  return value;
}

core::Result<std::string> required_string(const json& object, std::string_view field) {
  const json* v = find(object, field);
  if (!v) return missing(field);
  if (!v->is_string()) return bad(fmt::format("field '{}' must be a string", field));
  return v->get<std::string>();
}

core::Result<std::optional<std::string>> optional_string(const json& object, std::string_view field) {
  if (!find(object, field)) return std::optional<std::string>{};
  auto s = required_string(object, field);
  if (!s) return s.error();
  return std::optional<std::string>(std::move(s).value());
}

core::Result<std::int64_t> required_int(const json& object, std::string_view field, std::int64_t min,
                                        std::int64_t max) {
  const json* v = find(object, field);
  if (!v) return missing(field);
  return as_int(*v, field, min, max);
}

core::Result<std::optional<std::int64_t>> optional_int(const json& object, std::string_view field,
                                                       std::int64_t min, std::int64_t max) {
  const json* v = find(object, field);
  if (!v) return std::optional<std::int64_t>{};
  auto i = as_int(*v, field, min, max);
  if (!i) return i.error();
  return std::optional<std::int64_t>(*i);
}

core::Result<bool> required_bool(const json& object, std::string_view field) {
  const json* v = find(object, field);
  if (!v) return missing(field);
  if (!v->is_boolean()) return bad(fmt::format("field '{}' must be a boolean", field));
  return v->get<bool>();
}

core::Result<std::optional<bool>> optional_bool(const json& object, std::string_view field) {
  if (!find(object, field)) return std::optional<bool>{};
  auto b = required_bool(object, field);
  if (!b) return b.error();
  return std::optional<bool>(*b);
}

core::Result<std::vector<std::string>> required_string_array(const json& object, std::string_view field) {
  const json* v = find(object, field);
  if (!v) return missing(field);
  return as_string_array(*v, field);
}

core::Result<std::optional<std::vector<std::string>>> optional_string_array(const json& object,
                                                                            std::string_view field) {
  const json* v = find(object, field);
  if (!v) return std::optional<std::vector<std::string>>{};
  auto a = as_string_array(*v, field);
  if (!a) return a.error();
  return std::optional<std::vector<std::string>>(std::move(a).value());
}

core::Result<std::map<std::string, std::string>> optional_string_map(const json& object,
                                                                     std::string_view field) {
  std::map<std::string, std::string> out;
  const json* v = find(object, field);
  if (!v) return out;
  const auto error = [&] { return bad(fmt::format("field '{}' must be an object of strings", field)); };
  if (!v->is_object()) return error();
  for (const auto& [key, value] : v->items()) {
    if (!value.is_string()) return error();
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

core::Result<std::optional<json>> optional_object(const json& object, std::string_view field) {
  const json* v = find(object, field);
  if (!v) return std::optional<json>{};
  if (!v->is_object()) return bad(fmt::format("field '{}' must be an object", field));
  return std::optional<json>(*v);
}

core::Result<std::string> required_hardware_id(const json& object, std::string_view field) {
  auto s = required_string(object, field);
  if (!s) return s;
  if (auto c = check_hardware_id(*s, field); !c) return c.error();
  return s;
}

core::Result<std::string> required_object_id(const json& object, std::string_view field) {
  auto s = required_string(object, field);
  if (!s) return s;
  if (auto c = check_object_id(*s, field); !c) return c.error();
  return s;
}

core::Result<std::optional<std::string>> optional_object_id(const json& object, std::string_view field) {
  if (!find(object, field)) return std::optional<std::string>{};
  auto s = required_object_id(object, field);
  if (!s) return s.error();
  return std::optional<std::string>(std::move(s).value());
}

core::Result<std::vector<std::string>> optional_hardware_id_array(const json& object,
                                                                  std::string_view field) {
  auto ids = optional_string_array(object, field);
  if (!ids) return ids.error();
  if (!*ids) return std::vector<std::string>{};
  for (const auto& id : **ids) {
    if (auto c = check_hardware_id(id, field); !c) return c.error();
  }
  return std::move(**ids);
}

}  // namespace dispatch::protocol
