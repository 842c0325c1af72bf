// Fuzzes protocol::parse_json_object with small limits (so the size and depth checks are reached) and
// every field accessor on what it accepts, with field names that seeds and the dictionary use.
#include <array>

#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  protocol::JsonLimits limits;
  limits.max_bytes = 4096;
  limits.max_depth = 8;
  auto object = protocol::parse_json_object(fuzz::as_text(data, size), limits);
  if (!object) {
    auto code = object.error().code;
    fuzz::check(code == core::ErrorCode::bad_request || code == core::ErrorCode::too_large,
                "parse_json_object fails only with bad_request or too_large");
    return 0;
  }
  fuzz::check(object->is_object(), "parse_json_object returns an object");
  static constexpr std::array<std::string_view, 8> k_fields = {
      "a", "hardware_id", "hardware_ids", "tags", "attributes", "limit", "available", "id"};
  for (auto f : k_fields) {
    (void)protocol::required_string(*object, f);
    (void)protocol::optional_string(*object, f);
    (void)protocol::required_int(*object, f);
    (void)protocol::optional_int(*object, f, 0, 1000);
    (void)protocol::required_bool(*object, f);
    (void)protocol::optional_bool(*object, f);
    (void)protocol::required_string_array(*object, f);
    (void)protocol::optional_string_array(*object, f);
    (void)protocol::optional_string_map(*object, f);
    (void)protocol::optional_object(*object, f);
    (void)protocol::required_object_id(*object, f);
    (void)protocol::optional_object_id(*object, f);
    if (auto hw = protocol::required_hardware_id(*object, f)) {
      fuzz::check(protocol::valid_hardware_id(*hw), "required_hardware_id returns a valid id");
    }
    if (auto hws = protocol::optional_hardware_id_array(*object, f)) {
      for (const auto& hw : *hws) fuzz::check(protocol::valid_hardware_id(hw), "hardware id array is valid");
    }
  }
  return 0;
}
