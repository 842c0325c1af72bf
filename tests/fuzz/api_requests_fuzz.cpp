// Fuzzes the typed API request parsers (commands and devices) on what parse_json_object accepts: each
// either returns a request whose ids are valid or fails with bad_request.
#include "protocol/command_requests.h"
#include "protocol/device_requests.h"
#include "protocol/ids.h"
#include "protocol/json_request.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace dispatch;
  protocol::JsonLimits limits;
  limits.max_bytes = 8192;
  limits.max_depth = 8;
  auto body = protocol::parse_json_object(fuzz::as_text(data, size), limits);
  if (!body) return 0;
  auto bad_request = [](const core::Error& e) { return e.code == core::ErrorCode::bad_request; };
  if (auto r = protocol::parse_send_command(*body)) {
    for (const auto& hw : r->hardware_ids)
      fuzz::check(protocol::valid_hardware_id(hw), "send: valid hardware ids");
    for (const auto& t : r->tags) fuzz::check(protocol::valid_object_id(t), "send: valid tags");
    fuzz::check(!r->hardware_ids.empty() || !r->tags.empty(), "send: has a target");
  } else {
    fuzz::check(bad_request(r.error()), "send fails only with bad_request");
  }
  if (auto r = protocol::parse_command_ref(*body)) {
    fuzz::check(protocol::valid_object_id(r->command_id), "command ref: valid id");
  } else {
    fuzz::check(bad_request(r.error()), "command ref fails only with bad_request");
  }
  if (auto r = protocol::parse_list_commands(*body)) {
    fuzz::check(r->page.limit >= 1 && r->page.limit <= 1000, "list commands: limit in range");
  } else {
    fuzz::check(bad_request(r.error()), "list commands fails only with bad_request");
  }
  if (auto r = protocol::parse_register_device(*body)) {
    fuzz::check(protocol::valid_hardware_id(r->hardware_id), "register: valid hardware id");
  } else {
    fuzz::check(bad_request(r.error()), "register fails only with bad_request");
  }
  if (auto r = protocol::parse_device_ref(*body)) {
    fuzz::check(protocol::valid_hardware_id(r->hardware_id), "device ref: valid hardware id");
  } else {
    fuzz::check(bad_request(r.error()), "device ref fails only with bad_request");
  }
  if (auto r = protocol::parse_list_devices(*body)) {
    fuzz::check(!r->page.after || protocol::valid_hardware_id(*r->page.after), "list devices: valid cursor");
  } else {
    fuzz::check(bad_request(r.error()), "list devices fails only with bad_request");
  }
  return 0;
}
